"""Acceptance 3 (issue 3): a mixed swarm started at once, and leechers that upload.

One Shoal seeder (upload capped, so the leechers must trade among themselves), leechers of every kind — libtorrent,
aria2, Transmission (in a network namespace; everyone else listens on the host end of its veth pair) — and two
Shoal leechers, all started together against one opentracker. Every leecher completes byte-identical, and each
Shoal leecher demonstrably uploaded to other leechers (the seeder never downloads, so any upload of a Shoal leecher
went to another leecher).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from interop.conftest import SAMPLE_PIECE
from interop.harness import content
from interop.harness.aria2 import Aria2Peer
from interop.harness.libtorrent_peer import LtSession
from interop.harness.netns import Netns
from interop.harness.opentracker import OpenTracker
from interop.harness.transmission import TransmissionPeer
from swarm_helpers import MULTI_FILE_SPEC, make_payload, shoal_get, shoal_seed, wait_seed_registered

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]


def test_mixed_swarm_all_complete_and_shoal_leechers_upload(
    tmp_path: Path,
    make_netns: Callable[[], Netns],
    make_tracker: Callable[..., OpenTracker],
    make_lt: Callable[..., LtSession],
    make_aria2: Callable[..., Aria2Peer],
    make_transmission: Callable[..., TransmissionPeer],
) -> None:
    ns = make_netns()
    host = ns.host_addr
    root = make_payload(tmp_path / "seed" / "shapes", MULTI_FILE_SPEC)
    sample = content.Content(path=root, files=dict(MULTI_FILE_SPEC))
    ot = make_tracker(host=host)
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[ot.announce_url]
    )
    ot.allow(t.info_hash)

    with shoal_seed(
        t.path, sample.path, tmp_path / "seeder", "--upload-limit", "400000", bind=host
    ) as seeder:
        seeder.port()
        wait_seed_registered(ot, t.info_hash)
        # Everyone at once. Each leecher then holds pieces the others want only if the capped seeder shares its
        # upload among them in turn (test_upload_limit_is_shared_fairly_among_unchoked_peers): when it served
        # whoever came first, one leecher got nearly every piece first and a Shoal leecher could upload nothing.
        shoal_a = shoal_get(t.path, tmp_path / "dl-shoal-a", tmp_path / "shoal-a", bind=host)
        shoal_b = shoal_get(t.path, tmp_path / "dl-shoal-b", tmp_path / "shoal-b", bind=host)
        with shoal_a, shoal_b:
            lt = make_lt(host)
            hl = lt.add(t.path, tmp_path / "dl-lt")
            a2 = make_aria2(t.path, tmp_path / "dl-aria2", listen_ip=host, keep_seeding=True)
            tr = make_transmission(ns)
            tid = tr.add(t.path, tmp_path / "dl-tr")

            def progress() -> dict[str, float]:
                lt.pump(0.05)
                return {
                    "shoal-a": float(shoal_a.stats().get("progress", 0.0)),  # type: ignore[arg-type]
                    "shoal-b": float(shoal_b.stats().get("progress", 0.0)),  # type: ignore[arg-type]
                    "libtorrent": float(lt.stats(hl)["progress"]),
                    "aria2": a2.progress(),
                    "transmission": tr.progress(tid),
                }

            deadline = time.monotonic() + 240
            now = progress()
            while time.monotonic() < deadline and min(now.values()) < 1.0:
                time.sleep(0.5)
                now = progress()
            assert min(now.values()) >= 1.0, f"not all complete: {now}; shoal-a: {shoal_a.log()}"
            time.sleep(1.0)  # let the stats files catch up
            up_a = int(shoal_a.stats()["uploaded"])  # type: ignore[call-overload]
            up_b = int(shoal_b.stats()["uploaded"])  # type: ignore[call-overload]
            seeder_up = int(seeder.stats()["uploaded"])  # type: ignore[call-overload]

    assert up_a > 0 and up_b > 0, (up_a, up_b)
    assert up_a + up_b >= SAMPLE_PIECE  # at least a piece's worth went to other leechers
    total = sum(MULTI_FILE_SPEC[i][1] for i in range(len(MULTI_FILE_SPEC)))
    assert seeder_up < 5 * total  # five leechers: the seeder alone did not feed everyone
    for d in ("dl-shoal-a", "dl-shoal-b", "dl-lt", "dl-aria2"):
        content.assert_same_tree(sample.path, tmp_path / d / sample.name)
    content.assert_same_tree(sample.path, tmp_path / "dl-tr" / sample.name, skip_empty=True)
