"""FakePeerStream over a real loopback socket against a minimal PeerConnection server (port 0, timeouts)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from shoal.policy.bitfield import Bitfield
from shoal.testing.fake_peer import FakePeer, FakePeerStream
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire.connection import PeerConnection
from shoal.wire.handshake import Handshake, make_peer_id

INFO_HASH = bytes(range(20))
NUM = 4


async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A victim: accepts our torrent, sends have-all, closes on any violation."""
    conn = PeerConnection(None, make_peer_id(random.Random(1)), initiator=False)
    try:
        while not conn.closed:
            data = await asyncio.wait_for(reader.read(65536), 10.0)
            conn.receive_data(data, now=0.0)
            while (event := conn.next_event()) is not None:
                if isinstance(event, ev.HandshakeReceived):
                    writer.write(conn.accept(INFO_HASH, NUM, piece_length=16384, total_length=NUM * 16384))
                elif isinstance(event, ev.Handshaken):
                    writer.write(conn.send_have_state(Bitfield(NUM, full=True)))
            await writer.drain()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def victim_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(serve_one, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5.0)


async def test_honest_handshake_then_oversized_prefix(victim_port: int) -> None:
    peer = FakePeer(INFO_HASH, num_pieces=NUM, piece_length=16384)
    stream = await FakePeerStream.connect(peer, "127.0.0.1", victim_port)
    try:
        await stream.send(peer.handshake())
        got = await stream.receive_until(m.HaveAll, timeout=10.0)
        assert isinstance(got[0], Handshake) and got[0].info_hash == INFO_HASH
        await stream.send(peer.length_prefix(0xFFFFFFFF))
        assert await stream.wait_closed(timeout=10.0)
    finally:
        await stream.close()


async def test_bad_protocol_string_is_dropped(victim_port: int) -> None:
    peer = FakePeer(b"\x01" * 20)
    stream = await FakePeerStream.connect(peer, "127.0.0.1", victim_port)
    try:
        await stream.send(peer.handshake(protocol=b"\x13BitTorrent protocoX"))
        assert await stream.wait_closed(timeout=10.0)
    finally:
        await stream.close()
