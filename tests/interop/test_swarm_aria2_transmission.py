"""Acceptance (issue 3) with aria2 and Transmission, through opentracker: Shoal downloads from each and seeds to each.

Transmission 3.00 runs in a network namespace made by the test (it ignores 127.0.0.0/8 peers); Shoal and the
tracker listen on the host end of the veth pair. Transmission does not create empty files: compared without them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from interop.conftest import SAMPLE_PIECE
from interop.harness import content
from interop.harness.aria2 import Aria2Peer
from interop.harness.netns import Netns
from interop.harness.opentracker import OpenTracker
from interop.harness.transmission import TransmissionPeer
from swarm_helpers import MULTI_FILE_SPEC, make_payload, shoal_get, shoal_seed, wait_seed_registered

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]


@pytest.fixture
def sample(tmp_path: Path) -> content.Content:
    root = make_payload(tmp_path / "seed" / "shapes", MULTI_FILE_SPEC)
    return content.Content(path=root, files=dict(MULTI_FILE_SPEC))


def _torrent(tmp_path: Path, sample: content.Content, ot: OpenTracker) -> content.TorrentFile:
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[ot.announce_url]
    )
    ot.allow(t.info_hash)
    return t


def test_shoal_downloads_from_aria2(
    tmp_path: Path,
    sample: content.Content,
    make_tracker: Callable[..., OpenTracker],
    make_aria2: Callable[..., Aria2Peer],
) -> None:
    ot = make_tracker()
    t = _torrent(tmp_path, sample, ot)
    a2 = make_aria2(t.path, sample.parent, seed=True)
    a2.wait_seeding(timeout=30)
    wait_seed_registered(ot, t.info_hash)
    with shoal_get(t.path, tmp_path / "dl", tmp_path / "shoal", "--no-seed", "--timeout", "120") as sh:
        assert sh.wait_exit(timeout=150) == 0, sh.log()
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_aria2_downloads_from_shoal(
    tmp_path: Path,
    sample: content.Content,
    make_tracker: Callable[..., OpenTracker],
    make_aria2: Callable[..., Aria2Peer],
) -> None:
    ot = make_tracker()
    t = _torrent(tmp_path, sample, ot)
    with shoal_seed(t.path, sample.path, tmp_path / "shoal") as sh:
        sh.port()
        wait_seed_registered(ot, t.info_hash)
        a2 = make_aria2(t.path, tmp_path / "dl")
        a2.wait_complete(timeout=120)
        assert int(sh.wait_stats(lambda s: int(s["uploaded"]) > 0, 20, "upload")["uploaded"]) > 0  # type: ignore[call-overload]
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_shoal_downloads_from_transmission(
    tmp_path: Path,
    sample: content.Content,
    make_netns: Callable[[], Netns],
    make_tracker: Callable[..., OpenTracker],
    make_transmission: Callable[..., TransmissionPeer],
) -> None:
    ns = make_netns()
    ot = make_tracker(host=ns.host_addr)
    t = _torrent(tmp_path, sample, ot)
    tr = make_transmission(ns)
    tid = tr.add(t.path, sample.parent)
    tr.wait_complete(tid, timeout=60)  # its check of the data, then it seeds and announces
    wait_seed_registered(ot, t.info_hash, timeout=40)
    with shoal_get(
        t.path, tmp_path / "dl", tmp_path / "shoal", "--no-seed", "--timeout", "150", bind=ns.host_addr
    ) as sh:
        assert sh.wait_exit(timeout=180) == 0, sh.log()
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_transmission_downloads_from_shoal(
    tmp_path: Path,
    sample: content.Content,
    make_netns: Callable[[], Netns],
    make_tracker: Callable[..., OpenTracker],
    make_transmission: Callable[..., TransmissionPeer],
) -> None:
    ns = make_netns()
    ot = make_tracker(host=ns.host_addr)
    t = _torrent(tmp_path, sample, ot)
    with shoal_seed(t.path, sample.path, tmp_path / "shoal", bind=ns.host_addr) as sh:
        sh.port()
        wait_seed_registered(ot, t.info_hash)
        tr = make_transmission(ns)
        tid = tr.add(t.path, tmp_path / "tr-dl")
        tr.wait_complete(tid, timeout=150)
    content.assert_same_tree(sample.path, tmp_path / "tr-dl" / sample.name, skip_empty=True)
