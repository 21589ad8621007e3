"""Connection and request limits through the real engine (cases 20, 22): a seeding ``Session`` on loopback and
scripted fake peers (``shoal.testing.fake_peer``) connecting from distinct loopback addresses 127.0.0.x.

* ``max_peers_per_torrent`` and ``max_peers_global``: extra connections are closed, the seeder keeps working;
* ``max_connections_per_ip``: extra connections from one address are closed;
* ``max_pending_requests``: a burst of valid requests is served up to the queue limit and the rest rejected
  (BEP 6), every request answered exactly once;
* a flood of invalid requests gets the peer disconnected, and an honest leecher is still served afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faultkit import FAST, seeder
from shoal.codec.metainfo import Metainfo
from shoal.config import Settings
from shoal.engine.session import Session
from shoal.testing.fake_peer import FakePeer, FakePeerStream
from shoal.types import BLOCK_SIZE, PeerAddr
from shoal.wire import messages as m
from swarm_helpers import make_payload, make_torrent, same_tree

pytestmark = pytest.mark.timeout(120)

PIECE = 32 * 1024


def _payload(root: Path, name: str, size: int, seed: int) -> tuple[Path, Path, Metainfo]:
    src = make_payload(root / f"src-{name}" / name, [("a.bin", size)], seed=seed)
    data = make_torrent(src, piece_length=PIECE)
    torrent = root / f"{name}.torrent"
    torrent.write_bytes(data)
    return src, torrent, Metainfo.from_bytes(data)


@contextlib.asynccontextmanager
async def fake(meta: Metainfo, addr: PeerAddr, host: str, n: int) -> AsyncIterator[FakePeerStream]:
    peer = FakePeer(
        meta.info_hash,
        num_pieces=meta.info.num_pieces,
        piece_length=meta.info.piece_length,
        rng=random.Random(f"{host}/{n}"),  # a distinct peer id per fake peer
    )
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(addr.host, addr.port, local_addr=(host, 0)), 10
    )
    stream = FakePeerStream(peer, reader, writer)
    try:
        await stream.send(peer.handshake() + peer.bitfield([]))
        yield stream
    finally:
        await stream.close()


async def _alive(streams: list[FakePeerStream]) -> int:
    await asyncio.sleep(0.5)
    closed = await asyncio.gather(*(s.wait_closed(0.5) for s in streams))
    return sum(1 for c in closed if not c)


async def test_max_peers_per_torrent_and_global(tmp_path: Path) -> None:
    src1, t1, m1 = _payload(tmp_path, "one", 500_000, 1)
    src2, t2, m2 = _payload(tmp_path, "two", 500_000, 2)
    settings = FAST.with_(max_peers_per_torrent=3, max_peers_global=5)
    async with seeder(t1, src1, settings) as (session, h1, addr):
        h2 = await session.add(t2, save_path=src2.parent, data_name=src2.name, force_recheck=True)
        await h2.wait_complete(timeout=30)
        async with contextlib.AsyncExitStack() as stack:
            first = [
                await stack.enter_async_context(fake(m1, addr, f"127.0.0.{10 + i}", i)) for i in range(8)
            ]
            assert await _alive(first) == 3
            assert h1.status().peers == 3
            second = [
                await stack.enter_async_context(fake(m2, addr, f"127.0.1.{10 + i}", i)) for i in range(8)
            ]
            assert await _alive(second) == 2  # 5 in the session at most
            assert h1.status().peers + h2.status().peers == 5


async def test_max_connections_per_ip(tmp_path: Path) -> None:
    src, torrent, meta = _payload(tmp_path, "one", 500_000, 1)
    settings = FAST.with_(max_peers_per_torrent=10, max_connections_per_ip=2)
    async with seeder(torrent, src, settings) as (_, h, addr), contextlib.AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(fake(meta, addr, "127.0.0.33", i)) for i in range(6)]
        assert await _alive(streams) == 2
        assert h.status().peers == 2


async def _until_quiet(stream: FakePeerStream, want: int, timeout: float) -> list[object]:
    got: list[object] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        msgs = await stream.receive(0.5)
        got.extend(msgs)
        if sum(isinstance(x, (m.Piece, m.Reject)) for x in got) >= want:
            break
    return got


async def test_request_burst_is_capped_by_max_pending_requests(tmp_path: Path) -> None:
    src, torrent, meta = _payload(tmp_path, "one", 2_000_000, 1)
    settings = FAST.with_(max_pending_requests=16)
    blocks = [(p, o) for p in range(meta.info.num_pieces) for o in range(0, PIECE, BLOCK_SIZE)][:100]
    async with (
        seeder(torrent, src, settings) as (_, seeding, addr),
        fake(meta, addr, "127.0.0.40", 0) as peer,
    ):
        # a slow upload keeps requests queued (a seeder serving from the page cache at once never queues)
        seeding.set_rate_limits(upload=200_000)
        await peer.send(peer.peer.interested())
        await peer.receive_until(m.Unchoke, timeout=20)
        await peer.send(b"".join(peer.peer.request(p, o) for p, o in blocks))
        got = await _until_quiet(peer, len(blocks), 30)
        pieces = [x for x in got if isinstance(x, m.Piece)]
        rejects = [x for x in got if isinstance(x, m.Reject)]
        assert len(pieces) + len(rejects) == len(blocks), "every request is answered exactly once"
        assert rejects, "a burst over max_pending_requests is not all queued"
        assert len(pieces) < len(blocks)
        data = (src / "a.bin").read_bytes()
        for piece in pieces:
            start = piece.piece * PIECE + piece.offset
            assert piece.data == data[start : start + len(piece.data)]
        assert not await peer.wait_closed(0.5), "valid requests over the limit are rejected, not punished"


async def test_request_flood_while_choked_disconnects_and_seeder_keeps_serving(tmp_path: Path) -> None:
    src, torrent, _ = _payload(tmp_path, "one", 1_000_000, 1)
    meta = Metainfo.from_bytes(torrent.read_bytes())
    settings: Settings = FAST.with_(max_invalid_requests=50)
    async with seeder(torrent, src, settings) as (_, _, addr):
        async with fake(meta, addr, "127.0.0.50", 0) as peer:
            # never interested, so never unchoked: every request is refused and counted
            await peer.send(peer.peer.request_flood(5000))
            assert await peer.wait_closed(20), "a request flood did not get the peer disconnected"
        async with Session(FAST, listen=("127.0.0.1", 0)) as session:
            h = await session.add(torrent, save_path=tmp_path / "out", peers=[addr])
            await h.wait_complete(timeout=60)
    assert same_tree(src, tmp_path / "out" / src.name)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_connection_flood_is_shed_and_descriptors_come_back(tmp_path: Path) -> None:
    """Case 22: 300 inbound connections that say nothing, half a handshake, or a handshake and then nothing.
    Idle ones die at ``handshake_timeout`` / ``peer_inactivity_timeout``, the rest at the peer limits; afterwards
    the process has as many file descriptors as before and the seeder still serves an honest leecher."""
    src, torrent, meta = _payload(tmp_path, "one", 500_000, 1)
    settings = FAST.with_(
        handshake_timeout=1.0, peer_inactivity_timeout=2.0, max_peers_per_torrent=10, max_peers_global=20
    )
    async with seeder(torrent, src, settings) as (_, h, addr):
        baseline = _open_fds()
        peer = FakePeer(meta.info_hash, num_pieces=meta.info.num_pieces, piece_length=PIECE)
        streams: list[FakePeerStream] = []
        for i in range(300):
            host = f"127.0.{2 + i // 200}.{1 + i % 200}"
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(addr.host, addr.port, local_addr=(host, 0)), 10
            )
            stream = FakePeerStream(peer, reader, writer)
            if i % 3 == 1:
                await stream.send(peer.partial_handshake(30))
            elif i % 3 == 2:
                await stream.send(FakePeer(meta.info_hash, rng=random.Random(i)).handshake())
            streams.append(stream)
        try:
            closed = await asyncio.gather(*(s.wait_closed(15) for s in streams))
            assert all(closed), f"{closed.count(False)} idle connections were never closed"
            assert h.status().peers == 0
        finally:
            for s in streams:
                await s.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while _open_fds() > baseline and loop.time() < deadline:
            await asyncio.sleep(0.1)
        assert _open_fds() <= baseline, "file descriptors leaked after the flood"
        async with Session(FAST, listen=("127.0.0.1", 0)) as session:
            leech = await session.add(torrent, save_path=tmp_path / "out", peers=[addr])
            await leech.wait_complete(timeout=60)
    assert same_tree(src, tmp_path / "out" / src.name)


async def test_pex_cannot_steer_us_at_a_victim(tmp_path: Path) -> None:
    """Cases 23, 34: a peer floods ut_pex naming one victim address over and over, plus thousands of
    unreachable private addresses and port 0. The victim sees a handful of connection attempts, not one per
    mention; half-open connections stay within ``max_half_open``; nothing fails."""
    _, torrent, meta = _payload(tmp_path, "one", 500_000, 1)
    victim_hits = 0

    async def victim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal victim_hits
        victim_hits += 1
        writer.close()

    async def liar(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = FakePeer(
            meta.info_hash, num_pieces=meta.info.num_pieces, piece_length=PIECE, rng=random.Random(5)
        )
        stream = FakePeerStream(peer, reader, writer)
        await stream.send(peer.handshake() + peer.extension_handshake(m={"ut_pex": 2}) + peer.bitfield([]))
        await stream.receive(2.0)  # the victim's handshake and extended handshake (learns its ut_pex id)
        target = PeerAddr("127.0.0.1", victim_port)
        for i in range(20):
            junk = [PeerAddr(f"10.{i}.{j // 250}.{j % 250 + 1}", 6881) for j in range(50)]
            await stream.send(peer.pex([target] * 50 + junk + [PeerAddr("10.9.9.9", 0)]))
        await stream.receive(4.0)
        await stream.close()

    victim_server = await asyncio.start_server(victim, "127.0.0.1", 0)
    liar_server = await asyncio.start_server(liar, "127.0.0.1", 0)
    victim_port = victim_server.sockets[0].getsockname()[1]
    settings = FAST.with_(max_half_open=8, peer_connect_timeout=1.0)
    try:
        async with Session(settings, listen=("127.0.0.1", 0)) as session:
            h = await session.add(
                torrent,
                save_path=tmp_path / "out",
                peers=[PeerAddr("127.0.0.1", liar_server.sockets[0].getsockname()[1])],
            )
            loop = asyncio.get_running_loop()
            end = loop.time() + 4
            while loop.time() < end:
                assert session.half_open <= settings.max_half_open
                await asyncio.sleep(0.05)
            assert h.status().error is None
    finally:
        for server in (victim_server, liar_server):
            server.close()
            await server.wait_closed()
    assert 1 <= victim_hits <= 5, f"the victim was hit {victim_hits} times"


async def test_idle_peers_hold_no_receive_buffer_and_no_instance_dict(tmp_path: Path) -> None:
    """Issue 7 case 5 through the real engine: once its handshake and bitfield are handled, an idle peer keeps no
    receive buffer (given back at once, not at its next timer), no request queue, and its PeerTask has slots,
    not a __dict__; it is still served when it asks."""
    import weakref

    src, torrent, meta = _payload(tmp_path, "idle", 200_000, 3)
    async with seeder(torrent, src, FAST) as (_session, handle, addr), contextlib.AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(fake(meta, addr, f"127.0.0.{30 + i}", i)) for i in range(4)
        ]
        assert not hasattr(handle._task, "__dict__")  # the torrent's task has slots too (case 6)
        await asyncio.wait_for(handle.wait_metadata(), 1)  # known from the start: no event is made for it
        peers = handle._task.peers
        for _ in range(100):
            if len(peers.active) == 4:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert len(peers.active) == 4
        for peer in peers.active:
            assert peer.conn is not None and peer.conn._reader.capacity == 0
            assert not hasattr(peer, "__dict__")
            assert peer.upload_queue is None  # made at its first request
            assert weakref.ref(peer)() is peer  # engine/pex.py keys peers weakly
        stream = streams[0]
        await stream.send(m.Interested().encode())
        await stream.receive_until(m.Unchoke, timeout=20)
        await stream.send(m.Request(0, 0, BLOCK_SIZE).encode())
        got = await stream.receive_until(m.Piece, timeout=20)
        pieces = [x for x in got if isinstance(x, m.Piece)]
        assert pieces and len(pieces[0].data) == BLOCK_SIZE
