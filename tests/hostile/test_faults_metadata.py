"""Poisoned metadata through the engine (cases 25, 26): a magnet download whose first peers serve an info dictionary
that does not hash to the magnet's info-hash (or lie about its size). The torrent must never start with the wrong
info dictionary, must not fail, and must complete once an honest peer shows up.

The liars are ``shoal.testing.fake_peer.FakePeer`` servers on loopback that answer every ut_metadata request with
their own (poisoned) bytes."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faultkit import FAST, seeder, wait_status
from shoal.codec.bencode import raw_value
from shoal.codec.magnet import Magnet
from shoal.codec.metainfo import Metainfo
from shoal.engine.handle import TorrentState
from shoal.engine.session import Session
from shoal.testing.fake_peer import FakePeer, FakePeerStream
from shoal.types import PeerAddr
from shoal.wire import messages as m
from shoal.wire.metadata import MetadataRequest, decode_metadata_message
from swarm_helpers import make_payload, make_torrent, same_tree

pytestmark = pytest.mark.timeout(120)

OUR_UT_METADATA = 3  # the id the liar asks to receive ut_metadata on
LIE_SIZE = 5 * 1024 * 1024  # under max_metadata_size, so the engine believes it until the data disagrees


class Liar:
    """Serves a torrent's info-hash but poisoned metadata: ``flip`` bytes flipped, or a wrong ``total_size``."""

    def __init__(self, meta: Metainfo, info: bytes, *, lie: str, seed: int, delay: float = 0.0) -> None:
        self.delay = delay
        self.meta = meta
        self.lie = lie
        self.seed = seed
        poisoned = bytes(b ^ 0x20 for b in info) if lie == "flip" else info
        self.peer = FakePeer(
            meta.info_hash,
            num_pieces=meta.info.num_pieces,
            piece_length=meta.info.piece_length,
            metadata=poisoned,
            rng=random.Random(seed),
        )
        self.requests = 0
        self.server: asyncio.Server | None = None
        self._streams: list[FakePeerStream] = []

    @property
    def addr(self) -> PeerAddr:
        assert self.server is not None
        return PeerAddr("127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = FakePeer(
            self.meta.info_hash,
            num_pieces=self.peer.num_pieces,
            piece_length=self.peer.piece_length,
            metadata=self.peer.metadata,
            rng=random.Random(f"{self.seed}/{len(self._streams)}"),  # a distinct peer id per liar
        )
        stream = FakePeerStream(peer, reader, writer)
        self._streams.append(stream)
        size = len(peer.metadata) if self.lie == "flip" else LIE_SIZE
        await stream.send(
            peer.handshake()
            + peer.extension_handshake(m={"ut_metadata": OUR_UT_METADATA}, metadata_size=size)
            + peer.have_all()
        )
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            for _ in range(200):
                msgs = await stream.receive(5.0)
                if not msgs:
                    return
                for msg in msgs:
                    if isinstance(msg, m.Extended) and msg.ext_id == OUR_UT_METADATA:
                        req = decode_metadata_message(msg.payload, max_metadata_size=1 << 30)
                        if isinstance(req, MetadataRequest):
                            self.requests += 1
                            total = None if self.lie == "flip" else LIE_SIZE
                            await asyncio.sleep(self.delay)
                            await stream.send(peer.metadata_piece(req.piece, total_size=total))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Liar]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield self
        finally:
            for s in self._streams:
                await s.close()
            self.server.close()
            await self.server.wait_closed()


async def test_poisoned_metadata_never_starts_the_torrent(tmp_path: Path) -> None:
    await _poisoned_then_honest(tmp_path, "flip")


async def test_metadata_size_lie_does_not_block_the_magnet(tmp_path: Path) -> None:
    await _poisoned_then_honest(tmp_path, "size")


async def _poisoned_then_honest(tmp_path: Path, lie: str) -> None:
    src = make_payload(tmp_path / "src" / "payload", [("a.bin", 400_000), ("b.bin", 123_456)], seed=9)
    data = make_torrent(src, piece_length=16384)
    torrent = tmp_path / "payload.torrent"
    torrent.write_bytes(data)
    meta = Metainfo.from_bytes(data)
    info = raw_value(data, b"info")
    assert info is not None
    uri = Magnet.from_metainfo(meta).to_uri()
    liars = [Liar(meta, info, lie=lie, seed=i) for i in range(2)]
    async with contextlib.AsyncExitStack() as stack:
        for liar in liars:
            await stack.enter_async_context(liar.running())
        async with Session(FAST, listen=("127.0.0.1", 0)) as session:
            h = await session.add(uri, save_path=tmp_path / "out", peers=[liar.addr for liar in liars])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while sum(liar.requests for liar in liars) < 1 and loop.time() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            st = h.status()
            assert st.state is TorrentState.DOWNLOADING_METADATA and st.error is None, st
            assert st.pieces_total == 0 or st.pieces_have == 0
            assert not (tmp_path / "out" / "payload").exists(), "files created from poisoned metadata"
            # an honest seeder arrives: the right metadata, then the data
            async with seeder(torrent, src) as (_, _, honest):
                h.add_peer(honest)
                await wait_status(
                    h, lambda s: s.pieces_total == meta.info.num_pieces, 8, "the right metadata"
                )
                await h.wait_complete(timeout=60)
            assert h.info_hash == meta.info_hash
    assert same_tree(src, tmp_path / "out" / "payload")


def _torrent(tmp_path: Path) -> tuple[Path, Path, Metainfo, bytes]:
    src = make_payload(tmp_path / "src" / "payload", [("a.bin", 400_000), ("b.bin", 123_456)], seed=9)
    data = make_torrent(src, piece_length=16384)
    torrent = tmp_path / "payload.torrent"
    torrent.write_bytes(data)
    info = raw_value(data, b"info")
    assert info is not None
    return src, torrent, Metainfo.from_bytes(data), info


async def test_honest_peer_already_connected_is_asked_after_poisoned_metadata(tmp_path: Path) -> None:
    src, torrent, meta, info = _torrent(tmp_path)
    uri = Magnet.from_metainfo(meta).to_uri()
    liar = Liar(meta, info, lie="flip", seed=7, delay=1.5)  # answers late, so the honest peer is idle by then
    async with liar.running(), Session(FAST, listen=("127.0.0.1", 0)) as session:
        h = await session.add(uri, save_path=tmp_path / "out", peers=[liar.addr])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while liar.requests < 1:
            assert loop.time() < deadline, "the liar was never asked for metadata"
            await asyncio.sleep(0.05)
        async with seeder(torrent, src) as (_, _, honest):
            h.add_peer(honest)
            await wait_status(
                h,
                # the honest peer may already have finished the download (and both sides hung up)
                lambda s: (s.peers >= 1 or s.is_complete) and h.stats.get("peers_banned", 0) >= 1,
                20,
                "the ban",
            )
            await h.wait_complete(timeout=8)
    assert same_tree(src, tmp_path / "out" / "payload")
