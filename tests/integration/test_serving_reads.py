"""How a seeder reads what it serves: a lone block by itself, a piece asked block after block whole and cached.

A peer asking one block of each piece must not make the seeder read (and cache) whole pieces: with many such peers
that read 64x the data served and kept the read cache full (issue 7, active connections). A peer asking for all the
blocks of a piece gets the piece read once.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from faultkit import FAST, seeder
from shoal.codec.metainfo import Metainfo
from shoal.testing.fake_peer import FakePeer, FakePeerStream
from shoal.types import BLOCK_SIZE
from shoal.wire import messages as m
from swarm_helpers import make_payload, make_torrent

pytestmark = pytest.mark.timeout(60)

PIECE = 4 * BLOCK_SIZE
PIECES = 16


async def _peer(meta: Metainfo, port: int, host: str) -> FakePeerStream:
    peer = FakePeer(meta.info_hash, num_pieces=PIECES, piece_length=PIECE, rng=random.Random(host))
    stream = await FakePeerStream.connect(peer, "127.0.0.1", port)
    await stream.send(peer.handshake() + peer.bitfield([]) + peer.interested())
    await stream.receive_until(m.Unchoke, timeout=20)
    return stream


async def _blocks(stream: FakePeerStream, want: int) -> list[m.Piece]:
    got: list[m.Piece] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while len(got) < want and loop.time() < deadline:
        got += [x for x in await stream.receive(0.5) if isinstance(x, m.Piece)]
    return got


@pytest.mark.parametrize("page_cache_reads", [True, False], ids=["nowait", "worker-threads"])
async def test_lone_blocks_are_read_alone_and_streamed_pieces_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page_cache_reads: bool
) -> None:
    if not page_cache_reads:  # every read goes to the worker threads, as from a cold disk
        monkeypatch.delattr(os, "RWF_NOWAIT", raising=False)
    src = make_payload(tmp_path / "src" / "data", [("a.bin", PIECE * PIECES)], seed=7)
    torrent = tmp_path / "t.torrent"
    torrent.write_bytes(make_torrent(src, piece_length=PIECE))
    meta = Metainfo.from_bytes(torrent.read_bytes())
    data = (src / "a.bin").read_bytes()
    async with seeder(torrent, src, FAST) as (_, handle, addr):
        scatter = await _peer(meta, addr.port, "127.0.0.21")
        try:
            for piece in range(PIECES):  # one block of each piece, one request at a time
                offset = (piece % 4) * BLOCK_SIZE
                await scatter.send(scatter.peer.request(piece, offset))
                (block,) = await _blocks(scatter, 1)
                assert (block.piece, block.offset) == (piece, offset)
                assert block.data == data[piece * PIECE + offset :][:BLOCK_SIZE]
        finally:
            await scatter.close()
        counters = handle.stats
        assert counters.get("pieces_read", 0) == 0, counters
        assert counters["blocks_read"] == PIECES, counters

        stream = await _peer(meta, addr.port, "127.0.0.22")
        try:
            await stream.send(b"".join(stream.peer.request(3, o) for o in range(0, PIECE, BLOCK_SIZE)))
            got = await _blocks(stream, 4)
            assert sorted(b.offset for b in got) == list(range(0, PIECE, BLOCK_SIZE))
            assert (
                b"".join(b.data for b in sorted(got, key=lambda b: b.offset)) == data[3 * PIECE : 4 * PIECE]
            )
        finally:
            await stream.close()
        counters = handle.stats
        assert counters["pieces_read"] == 1, counters  # the rest of piece 3 came from one whole read
        assert counters["blocks_read"] <= PIECES + 1, counters
