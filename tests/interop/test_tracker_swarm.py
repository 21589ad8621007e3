"""Issue 5 acceptance 1-2: real clients swarm through `shoal tracker` (no Shoal engine involved) and complete a
download; afterwards the tracker's scrape matches what the swarm did.

libtorrent, Transmission (in a network namespace: it ignores loopback peers) and aria2 over HTTP; libtorrent and
Transmission over UDP (aria2 1.36 with its DHT off does not speak UDP trackers).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from interop.conftest import SAMPLE_PIECE
from interop.harness import content
from interop.harness.aria2 import Aria2Peer
from interop.harness.libtorrent_peer import LtSession
from interop.harness.netns import Netns
from interop.harness.proc import stop, wait_for
from interop.harness.transmission import TransmissionPeer
from shoal.config import Settings
from shoal.errors import TrackerError
from shoal.tracker.client import TrackerClient
from shoal.tracker.proto.messages import ScrapeStats

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]
# libtorrent waits up to stop_tracker_timeout (5 s) for its "stopped" announces when a session closes, and over
# UDP it never hears the answer once it is closing: 1 s keeps teardown short (no test here checks that announce).
LT = {"stop_tracker_timeout": 1}
# a bound, not an expectation: libtorrent retries a failed announce only after ~20 s
ANNOUNCE_WAIT = 60


class ShoalTracker:
    """`python -m shoal tracker` in a subprocess on ``host`` (ports from the OS)."""

    def __init__(self, host: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shoal", "tracker", "--http", f"{host}:0", "--udp", f"{host}:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        try:
            assert self.proc.stdout is not None
            lines = [self.proc.stdout.readline().decode() for _ in range(2)]
            if not all(line.startswith("shoal tracker: ") for line in lines):
                raise RuntimeError(f"shoal tracker did not start (exit {self.proc.poll()}): {lines}")
            self.http_url, self.udp_url = (line.split(": ", 1)[1].strip() for line in lines)
        except BaseException:
            self.close()
            raise

    def url(self, transport: str) -> str:
        return self.http_url if transport == "http" else self.udp_url

    def scrape(self, info_hash_hex: str) -> ScrapeStats:
        async def go() -> ScrapeStats:
            async with TrackerClient(Settings(tracker_timeout=5.0)) as client:
                ih = bytes.fromhex(info_hash_hex)
                return (await client.scrape(self.http_url, [ih]))[ih]

        return asyncio.run(go())

    def wait_scrape(self, info_hash_hex: str, expected: ScrapeStats, timeout: float = 30) -> None:
        last: list[ScrapeStats] = []

        def matches() -> bool:
            try:
                last[:] = [self.scrape(info_hash_hex)]
            except TrackerError:  # a scrape lost or late on a loaded machine: ask again until the deadline
                return False
            return last[0] == expected

        try:
            wait_for(matches, timeout=timeout, what=f"scrape {expected}", interval=0.5)
        except TimeoutError:
            raise AssertionError(f"scrape is {last}, expected {expected}") from None

    def close(self) -> None:
        stop(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def fresh_loopback() -> str:
    """A loopback address for one tracker (all of 127.0.0.0/8 is local on Linux).

    libtorrent caches UDP tracker connection ids process-wide per tracker IP, not per port, for 60 s: a Shoal
    tracker on 127.0.0.1 would be sent the id an earlier test's opentracker handed out, drop it (BEP 15: a
    wrong id gets no answer), and libtorrent announces again only ~20 s later.
    """
    return f"127.{secrets.randbelow(254) + 1}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


@pytest.fixture
def make_shoal_tracker() -> Iterator[Callable[[str], ShoalTracker]]:
    made: list[ShoalTracker] = []

    def make(host: str = "127.0.0.1") -> ShoalTracker:
        made.append(ShoalTracker(host))
        return made[-1]

    try:
        yield make
    finally:
        for t in made:
            t.close()


@pytest.mark.parametrize("transport", ["http", "udp"])
def test_libtorrent_swarm(
    tmp_path: Path,
    sample: content.Content,
    transport: str,
    make_shoal_tracker: Callable[[str], ShoalTracker],
    make_lt: Callable[..., LtSession],
) -> None:
    tracker = make_shoal_tracker(fresh_loopback())
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[tracker.url(transport)]
    )
    seeder, leecher = make_lt(settings=LT), make_lt(settings=LT)
    hs = seeder.add(t.path, sample.parent, seed=True)
    seeder.wait_announced(hs, timeout=ANNOUNCE_WAIT)
    hl = leecher.add(t.path, tmp_path / "dl")
    leecher.wait_complete(hl, timeout=60)
    # the leecher announced "completed": two seeders, one download, nobody leeching
    tracker.wait_scrape(t.info_hash, ScrapeStats(complete=2, downloaded=1, incomplete=0))
    leecher.close()  # flushes libtorrent's files before they are compared
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_aria2_downloads_from_libtorrent_over_http(
    tmp_path: Path,
    sample: content.Content,
    make_shoal_tracker: Callable[[str], ShoalTracker],
    make_lt: Callable[..., LtSession],
    make_aria2: Callable[..., Aria2Peer],
) -> None:
    tracker = make_shoal_tracker("127.0.0.1")
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[tracker.http_url]
    )
    seeder = make_lt(settings=LT)
    hs = seeder.add(t.path, sample.parent, seed=True)
    seeder.wait_announced(hs, timeout=ANNOUNCE_WAIT)
    a2 = make_aria2(t.path, tmp_path / "dl", keep_seeding=True)
    a2.wait_complete(timeout=60)
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)
    tracker.wait_scrape(t.info_hash, ScrapeStats(complete=2, downloaded=1, incomplete=0))
    a2.rpc("aria2.remove", a2.status()["gid"])  # aria2 says "stopped" to the tracker
    tracker.wait_scrape(t.info_hash, ScrapeStats(complete=1, downloaded=1, incomplete=0))


def test_libtorrent_downloads_from_aria2_over_http(
    tmp_path: Path,
    sample: content.Content,
    make_shoal_tracker: Callable[[str], ShoalTracker],
    make_lt: Callable[..., LtSession],
    make_aria2: Callable[..., Aria2Peer],
) -> None:
    tracker = make_shoal_tracker("127.0.0.1")
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[tracker.http_url]
    )
    a2 = make_aria2(t.path, sample.parent, seed=True)
    a2.wait_seeding(timeout=60)
    tracker.wait_scrape(t.info_hash, ScrapeStats(complete=1, downloaded=0, incomplete=0))
    leecher = make_lt(settings=LT)
    hl = leecher.add(t.path, tmp_path / "dl")
    leecher.wait_complete(hl, timeout=60)
    tracker.wait_scrape(t.info_hash, ScrapeStats(complete=2, downloaded=1, incomplete=0))
    leecher.close()  # flushes libtorrent's files before they are compared
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


@pytest.mark.parametrize("transport", ["http", "udp"])
def test_transmission_downloads_from_libtorrent(
    tmp_path: Path,
    sample: content.Content,
    transport: str,
    make_netns: Callable[[], Netns],
    make_shoal_tracker: Callable[[str], ShoalTracker],
    make_lt: Callable[..., LtSession],
    make_transmission: Callable[..., TransmissionPeer],
) -> None:
    ns = make_netns()
    tracker = make_shoal_tracker(ns.host_addr)
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[tracker.url(transport)]
    )
    seeder = make_lt(ns.host_addr, settings=LT)
    hs = seeder.add(t.path, sample.parent, seed=True)
    seeder.wait_announced(hs, timeout=ANNOUNCE_WAIT)
    tr = make_transmission(ns)
    tid = tr.add(t.path, tmp_path / "tr-dl")
    tr.wait_complete(tid, timeout=90)
    content.assert_same_tree(sample.path, tmp_path / "tr-dl" / sample.name, skip_empty=True)
    tracker.wait_scrape(t.info_hash, ScrapeStats(complete=2, downloaded=1, incomplete=0))


def test_libtorrent_downloads_from_transmission_over_udp(
    tmp_path: Path,
    sample: content.Content,
    make_netns: Callable[[], Netns],
    make_shoal_tracker: Callable[[str], ShoalTracker],
    make_lt: Callable[..., LtSession],
    make_transmission: Callable[..., TransmissionPeer],
) -> None:
    ns = make_netns()
    tracker = make_shoal_tracker(ns.host_addr)
    t = content.make_torrent(
        sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[tracker.udp_url]
    )
    tr = make_transmission(ns)
    tid = tr.add(t.path, sample.parent)
    tr.wait_complete(tid, timeout=90)
    tracker.wait_scrape(t.info_hash, ScrapeStats(complete=1, downloaded=0, incomplete=0))
    leecher = make_lt(ns.host_addr, settings=LT)
    hl = leecher.add(t.path, tmp_path / "dl")
    leecher.wait_complete(hl, timeout=90)
    tracker.wait_scrape(t.info_hash, ScrapeStats(complete=2, downloaded=1, incomplete=0))
    leecher.close()  # flushes libtorrent's files before they are compared
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)
