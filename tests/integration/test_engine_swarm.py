"""Shoal <-> Shoal on real loopback sockets: one seeder, leechers, byte-identical results."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal import alerts
from shoal.config import Settings
from shoal.engine.handle import Torrent, TorrentState
from shoal.engine.session import Session
from shoal.errors import ShoalError
from shoal.types import PeerAddr
from swarm_helpers import MULTI_FILE_SPEC, make_file, make_payload, make_torrent, same_tree

LOOP = ("127.0.0.1", 0)


def fast_settings() -> Settings:
    return Settings(engine_tick_interval=0.1, choke_interval=1.0)


@contextlib.asynccontextmanager
async def seeder_and_leechers(
    seeder_settings: Settings, leecher_settings: Settings, count: int
) -> AsyncIterator[tuple[Session, list[Session]]]:
    """A started seeder session and ``count`` started leecher sessions, all closed on the way out."""
    seeder = Session(seeder_settings, listen=LOOP)
    leechers = [Session(leecher_settings, listen=LOOP) for _ in range(count)]
    try:
        for session in (seeder, *leechers):
            await session.start()
        yield seeder, leechers
    finally:
        for session in (*leechers, seeder):
            await session.close()


async def leech_from(
    seeder: Session, leechers: list[Session], torrent: Path, tmp_path: Path
) -> list[Torrent]:
    """Each leecher adds ``torrent`` into ``tmp_path/dl<i>``, told of the seeder alone."""
    only_seeder = [PeerAddr("127.0.0.1", seeder.listen_port)]
    return [
        await ls.add(torrent, save_path=tmp_path / f"dl{i}", peers=only_seeder)
        for i, ls in enumerate(leechers)
    ]


async def _seed(tmp_path: Path, payload: Path, torrent: bytes) -> tuple[Session, object]:
    seeder = Session(fast_settings(), listen=LOOP)
    await seeder.start()
    t = await seeder.add(torrent, save_path=payload.parent)
    await t.wait_complete(timeout=20)
    return seeder, t


async def test_multi_file_download_from_one_seeder(tmp_path: Path) -> None:
    src = make_payload(tmp_path / "src" / "multi", MULTI_FILE_SPEC)
    torrent = make_torrent(src, piece_length=256 * 1024)
    seeder, st = await _seed(tmp_path, src, torrent)
    try:
        assert st.status().state is TorrentState.SEEDING  # type: ignore[attr-defined]
        async with Session(fast_settings(), listen=LOOP) as leecher:
            t = await leecher.add(
                torrent, save_path=tmp_path / "dl", peers=[PeerAddr("127.0.0.1", seeder.listen_port)]
            )
            status = await t.wait_complete(timeout=30)
            assert status.is_complete
            assert status.downloaded >= status.total_wanted
        assert same_tree(src, tmp_path / "dl" / "multi")
    finally:
        await seeder.close()


async def test_single_file_three_leechers_share(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src" / "one.bin", 6 * 1024 * 1024 + 5)
    torrent = make_torrent(src, piece_length=64 * 1024)
    seeder, _ = await _seed(tmp_path, src, torrent)
    sessions = [Session(fast_settings(), listen=LOOP) for _ in range(3)]
    try:
        for s in sessions:
            await s.start()
        everyone = [seeder, *sessions]
        handles = []
        for i, s in enumerate(sessions):
            peers = [PeerAddr("127.0.0.1", o.listen_port) for o in everyone if o is not s]
            handles.append(await s.add(torrent, save_path=tmp_path / f"dl{i}", peers=peers))
        await asyncio.wait_for(asyncio.gather(*(h.wait_complete() for h in handles)), timeout=60)
        for i in range(3):
            assert same_tree(src, tmp_path / f"dl{i}" / "one.bin")
    finally:
        for s in sessions:
            await s.close()
        await seeder.close()


async def test_resume_after_clean_stop_downloads_nothing_again(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src" / "r.bin", 2 * 1024 * 1024)
    torrent = make_torrent(src, piece_length=64 * 1024)
    seeder, _ = await _seed(tmp_path, src, torrent)
    try:
        async with Session(fast_settings(), listen=LOOP) as s1:
            t = await s1.add(
                torrent, save_path=tmp_path / "dl", peers=[PeerAddr("127.0.0.1", seeder.listen_port)]
            )
            await t.wait_complete(timeout=30)
        async with Session(fast_settings(), listen=LOOP) as s2:
            t2 = await s2.add(torrent, save_path=tmp_path / "dl")
            status = await t2.wait_complete(timeout=10)
            assert status.downloaded == 0
            assert t2.stats["pieces_from_resume"] == 32
            assert t2.stats.get("pieces_from_recheck", 0) == 0
    finally:
        await seeder.close()


async def test_alerts_report_finish(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src" / "a.bin", 300_000)
    torrent = make_torrent(src, piece_length=32 * 1024)
    seeder, _ = await _seed(tmp_path, src, torrent)
    try:
        async with Session(fast_settings(), listen=LOOP) as leecher:
            t = await leecher.add(
                torrent, save_path=tmp_path / "dl", peers=[PeerAddr("127.0.0.1", seeder.listen_port)]
            )
            await t.wait_complete(timeout=30)
            got = leecher.alerts().pop_all()
            kinds = {type(a) for a in got}
            assert alerts.TorrentFinished in kinds
            assert alerts.PeerConnected in kinds
            assert sum(1 for a in got if isinstance(a, alerts.PieceFinished)) == 10
    finally:
        await seeder.close()


@pytest.mark.parametrize("paused", [True])
async def test_pause_and_resume(tmp_path: Path, paused: bool) -> None:
    src = make_file(tmp_path / "src" / "p.bin", 1024 * 1024)
    torrent = make_torrent(src, piece_length=64 * 1024)
    seeder, _ = await _seed(tmp_path, src, torrent)
    try:
        async with Session(fast_settings(), listen=LOOP) as leecher:
            t = await leecher.add(
                torrent,
                save_path=tmp_path / "dl",
                peers=[PeerAddr("127.0.0.1", seeder.listen_port)],
                paused=paused,
            )
            await asyncio.sleep(0.3)
            assert t.status().state is TorrentState.PAUSED
            assert t.status().downloaded == 0
            t.resume()
            await t.wait_complete(timeout=30)
            t.pause()
            assert t.status().state is TorrentState.PAUSED
            for _ in range(100):
                if t.status().peers == 0:
                    break
                await asyncio.sleep(0.05)
            assert t.status().peers == 0
            t.resume()
            assert t.status().state is TorrentState.SEEDING
        assert same_tree(src, tmp_path / "dl" / "p.bin")
    finally:
        await seeder.close()


async def test_ipv6_loopback(tmp_path: Path) -> None:
    import socket

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    src = make_file(tmp_path / "src" / "six.bin", 500_000)
    torrent = make_torrent(src, piece_length=32 * 1024)
    try:
        seeder = Session(fast_settings(), listen=("::1", 0))
        await seeder.start()
    except Exception as exc:  # no ::1 configured (some containers)
        pytest.skip(f"cannot listen on ::1: {exc}")
    try:
        await (await seeder.add(torrent, save_path=src.parent)).wait_complete(timeout=10)
        async with Session(fast_settings(), listen=("::1", 0)) as leecher:
            t = await leecher.add(
                torrent, save_path=tmp_path / "dl", peers=[PeerAddr("::1", seeder.listen_port)]
            )
            await t.wait_complete(timeout=30)
    finally:
        await seeder.close()
    assert same_tree(src, tmp_path / "dl" / "six.bin")


async def test_alerts_async_iteration_ends_on_close(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src" / "it.bin", 100_000)
    torrent = make_torrent(src, piece_length=32 * 1024)
    session = Session(fast_settings(), listen=LOOP)
    await session.start()
    await (await session.add(torrent, save_path=src.parent)).wait_complete(timeout=10)
    await session.close()
    seen = [type(a) async for a in session.alerts()]
    assert alerts.ListenSucceeded in seen and alerts.TorrentAdded in seen


async def test_one_connection_per_peer_and_limits_are_settings(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src" / "dup.bin", 200_000)
    torrent = make_torrent(src, piece_length=32 * 1024)
    seeder, _ = await _seed(tmp_path, src, torrent)
    try:
        async with Session(fast_settings(), listen=LOOP) as leecher:
            addr = PeerAddr("127.0.0.1", seeder.listen_port)
            t = await leecher.add(torrent, save_path=tmp_path / "dl", peers=[addr, addr])
            t.add_peer(addr)
            await t.wait_complete(timeout=30)
            assert t.status().peers <= 1
    finally:
        await seeder.close()


async def test_pex_introduces_leechers_to_each_other(tmp_path: Path) -> None:
    """BEP 11: two leechers that only know the seeder learn of each other through its ut_pex messages."""
    src = make_file(tmp_path / "src" / "pex.bin", 2 * 1024 * 1024)
    torrent = make_torrent(src, piece_length=64 * 1024)
    s = fast_settings().with_(pex_interval=0.5)
    seeder = Session(s, listen=LOOP)
    await seeder.start()
    try:
        await (await seeder.add(torrent, save_path=src.parent, upload_limit=500_000)).wait_complete(
            timeout=10
        )
        async with Session(s, listen=LOOP) as b, Session(s, listen=LOOP) as c:
            only_seeder = [PeerAddr("127.0.0.1", seeder.listen_port)]
            tb = await b.add(torrent, save_path=tmp_path / "b", peers=only_seeder)
            tc = await c.add(torrent, save_path=tmp_path / "c", peers=only_seeder)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while tb.status().peers < 2 or tc.status().peers < 2:
                assert loop.time() < deadline, (tb.status().peers, tc.status().peers)
                await asyncio.sleep(0.1)
            await asyncio.wait_for(asyncio.gather(tb.wait_complete(), tc.wait_complete()), timeout=60)
    finally:
        await seeder.close()


async def test_taken_listen_port_falls_back_to_the_next(tmp_path: Path) -> None:
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    try:
        if taken >= 65535:
            pytest.skip("the OS gave the last port")
        async with Session(fast_settings(), listen=("127.0.0.1", taken)) as s:
            assert s.listen_port != taken and taken < s.listen_port <= taken + 9
            assert any(isinstance(a, alerts.ListenFailed) for a in s.alerts().pop_all())
        with pytest.raises(ShoalError):
            async with Session(fast_settings().with_(listen_port_tries=1), listen=("127.0.0.1", taken)):
                pass
    finally:
        blocker.close()


async def test_upload_limit_is_shared_fairly_among_unchoked_peers(tmp_path: Path) -> None:
    """A seeder under an upload limit serves its unchoked peers in turn, not whoever it happens to serve first.

    Before, every pass served one peer's whole queue while the bucket lasted, and the tick served peers in the
    order they connected: the first leecher took most of the seeder's upload (a mixed swarm in CI left one Shoal
    leecher with nothing to pass on)."""
    src = make_file(tmp_path / "src" / "fair.bin", 24 * 1024 * 1024)
    torrent = make_torrent(src, piece_length=64 * 1024)
    s = fast_settings().with_(pex_interval=3600.0)
    async with seeder_and_leechers(s, s, 3) as (seeder, leechers):
        st = await seeder.add(torrent, save_path=src.parent, upload_limit=400_000)
        await st.wait_complete(timeout=20)
        await leech_from(seeder, leechers, torrent, tmp_path)
        task = st._task  # type: ignore[attr-defined]
        assert (
            task.transfer.max_pending_writes == 256
        )  # 16 MiB of 64 KiB pieces (Settings.max_pending_write_bytes)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(task.peers.active) < 3 or sum(p.uploaded for p in task.peers.active) < 1_500_000:
            assert loop.time() < deadline, [p.uploaded for p in task.peers.active]
            await asyncio.sleep(0.1)
        shares = sorted(p.uploaded for p in task.peers.active)
        # an even split is a third each; served in turn, none gets under a sixth
        assert shares[0] >= sum(shares) / 6, shares


async def test_a_slot_that_comes_free_goes_to_a_waiting_peer_before_the_next_round(tmp_path: Path) -> None:
    """One upload slot and no choke round for an hour: the second leecher, interested while the first one holds
    the slot, is unchoked as soon as the first one finishes and loses interest (before, the freed slot stayed
    empty until the next round). The seeder's upload is capped so the first download lasts a few seconds."""
    src = make_file(tmp_path / "src" / "slot.bin", 4 * 1024 * 1024)
    torrent = make_torrent(src, piece_length=64 * 1024)
    s = fast_settings().with_(pex_interval=3600.0)
    # the seeder tells nobody of anybody (ut_pex with no peers): the leechers cannot trade, only wait for its slot
    one_slot = s.with_(upload_slots=1, choke_interval=3600.0, max_pex_peers=0)
    async with seeder_and_leechers(one_slot, s, 2) as (seeder, leechers):
        st = await seeder.add(torrent, save_path=src.parent, upload_limit=2_000_000)
        await st.wait_complete(timeout=20)
        task = st._task  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        handles = await leech_from(seeder, leechers, torrent, tmp_path)
        deadline = loop.time() + 20
        while not (len(task.peers.active) == 2 and all(p.conn.peer_interested for p in task.peers.active)):
            assert loop.time() < deadline, "both leechers never connected and asked"
            assert not handles[0].status().is_complete, "the first leecher finished before the second asked"
            await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*(h.wait_complete() for h in handles)), timeout=40)
        for i in range(2):
            assert same_tree(src, tmp_path / f"dl{i}" / "slot.bin")


async def test_a_session_upload_limit_is_shared_among_its_torrents(tmp_path: Path) -> None:
    """Two torrents seeded under one session-wide upload limit, a leecher on each: both get a fair part of it.
    The torrents take turns at the front of the tick; before, the first torrent's peers drained the shared
    bucket every tick."""
    s = fast_settings().with_(pex_interval=3600.0)
    async with seeder_and_leechers(s.with_(upload_rate_limit=400_000), s, 2) as (seeder, leechers):
        tasks = []
        for i, ls in enumerate(leechers):
            src = make_file(tmp_path / f"src{i}" / f"t{i}.bin", 16 * 1024 * 1024, seed=i + 7)
            torrent = make_torrent(src, piece_length=64 * 1024)
            st = await seeder.add(torrent, save_path=src.parent)
            await st.wait_complete(timeout=20)
            tasks.append(st._task)  # type: ignore[attr-defined]
            await ls.add(
                torrent, save_path=tmp_path / f"dl{i}", peers=[PeerAddr("127.0.0.1", seeder.listen_port)]
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        sent = [0, 0]
        while sum(sent) < 1_500_000:
            assert loop.time() < deadline, sent
            await asyncio.sleep(0.1)
            sent = [sum(p.uploaded for p in t.peers.active) for t in tasks]
        assert min(sent) >= sum(sent) / 4, sent  # an even split is a half each


async def test_a_limited_seeder_serves_a_whole_pipeline_between_ticks(tmp_path: Path) -> None:
    """Under an upload limit with room to spare, a request arrival is answered with the peer's share of the bucket,
    not a single block: with no tick at all on the seeder, a leecher still gets its 4 MiB. (Served a block per
    arrival, the leecher's pipeline stalled until the next tick, and a 60 MB/s limit gave 13 MB/s.)"""
    src = make_file(tmp_path / "src" / "pipe.bin", 4 * 1024 * 1024)
    torrent = make_torrent(src, piece_length=256 * 1024)
    seeder = Session(fast_settings().with_(engine_tick_interval=3600.0), listen=LOOP)
    await seeder.start()
    try:
        st = await seeder.add(torrent, save_path=src.parent, upload_limit=50_000_000)
        await st.wait_complete(timeout=20)
        async with Session(fast_settings(), listen=LOOP) as leecher:
            t = await leecher.add(
                torrent, save_path=tmp_path / "dl", peers=[PeerAddr("127.0.0.1", seeder.listen_port)]
            )
            await t.wait_complete(timeout=30)
        assert same_tree(src, tmp_path / "dl" / "pipe.bin")
    finally:
        await seeder.close()
