"""The harness works: reference peers transfer a multi-file torrent to each other through opentracker.

These are also the baselines Shoal's interop tests are measured against: if one of these fails, the harness or the
machine is broken, not Shoal.
"""

from __future__ import annotations

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

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def test_libtorrent_seeds_libtorrent_downloads(
    tmp_path: Path,
    sample: content.Content,
    make_tracker: Callable[..., OpenTracker],
    make_lt: Callable[..., LtSession],
) -> None:
    ot = make_tracker()
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[ot.announce_url]
    )
    ot.allow(t.info_hash)
    seeder, leecher = make_lt(), make_lt()
    hs = seeder.add(t.path, sample.parent, seed=True)
    seeder.wait_announced(hs, timeout=15)
    hl = leecher.add(t.path, tmp_path / "dl")
    stats = leecher.wait_complete(hl, timeout=60)
    assert stats["downloaded"] >= t.total_size
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)
    assert ot.scrape(t.info_hash)["complete"] >= 1


def test_libtorrent_seeds_aria2_downloads(
    tmp_path: Path,
    sample: content.Content,
    make_tracker: Callable[..., OpenTracker],
    make_lt: Callable[..., LtSession],
    make_aria2: Callable[..., Aria2Peer],
) -> None:
    ot = make_tracker()
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[ot.announce_url]
    )
    ot.allow(t.info_hash)
    seeder = make_lt()
    hs = seeder.add(t.path, sample.parent, seed=True)
    seeder.wait_announced(hs, timeout=15)
    a2 = make_aria2(t.path, tmp_path / "dl")
    a2.wait_complete(timeout=60)
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_aria2_seeds_libtorrent_downloads(
    tmp_path: Path,
    sample: content.Content,
    make_tracker: Callable[..., OpenTracker],
    make_lt: Callable[..., LtSession],
    make_aria2: Callable[..., Aria2Peer],
) -> None:
    ot = make_tracker()
    # aria2 1.36 with DHT off cannot use UDP trackers ("udp is not supported yet"): HTTP here.
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[ot.announce_url]
    )
    ot.allow(t.info_hash)
    a2 = make_aria2(t.path, sample.parent, seed=True)
    a2.wait_seeding(timeout=30)
    leecher = make_lt()
    hl = leecher.add(t.path, tmp_path / "dl")
    leecher.wait_complete(hl, timeout=60)
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_libtorrent_seeds_transmission_downloads_in_netns(
    tmp_path: Path,
    sample: content.Content,
    make_netns: Callable[[], Netns],
    make_tracker: Callable[..., OpenTracker],
    make_lt: Callable[..., LtSession],
    make_transmission: Callable[..., TransmissionPeer],
) -> None:
    ns = make_netns()
    ot = make_tracker(host=ns.host_addr)
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[ot.announce_url]
    )
    ot.allow(t.info_hash)
    seeder = make_lt(ns.host_addr)
    hs = seeder.add(t.path, sample.parent, seed=True)
    seeder.wait_announced(hs, timeout=15)
    tr = make_transmission(ns)
    tid = tr.add(t.path, tmp_path / "tr-dl")
    tr.wait_complete(tid, timeout=60)
    # Transmission 3.00 does not create 0-byte files.
    content.assert_same_tree(sample.path, tmp_path / "tr-dl" / sample.name, skip_empty=True)


def test_transmission_seeds_libtorrent_downloads_in_netns(
    tmp_path: Path,
    sample: content.Content,
    make_netns: Callable[[], Netns],
    make_tracker: Callable[..., OpenTracker],
    make_lt: Callable[..., LtSession],
    make_transmission: Callable[..., TransmissionPeer],
) -> None:
    ns = make_netns()
    ot = make_tracker(host=ns.host_addr)
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[ot.announce_url]
    )
    ot.allow(t.info_hash)
    tr = make_transmission(ns)
    tid = tr.add(t.path, sample.parent)
    tr.wait_complete(tid, timeout=30)  # its check of the data
    leecher = make_lt(ns.host_addr)
    hl = leecher.add(t.path, tmp_path / "dl")
    leecher.wait_complete(hl, timeout=60)
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)
