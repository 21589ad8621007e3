"""Acceptance 5 (issue 3): a peer sending corrupt blocks is detected, its data never reaches the file, it is banned.

The liar is B's scripted FakePeer over a real loopback socket: it claims every piece, unchokes, and answers each
request with the right piece/offset/length but one byte flipped. Shoal must fail the piece's hash, ban the liar
(it was the only contributor), refuse it when it comes back, and still finish from an honest seeder.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from shoal import alerts
from shoal.codec.metainfo import Metainfo
from shoal.config import Settings
from shoal.engine.session import Session
from shoal.testing.fake_peer import FakePeer, FakePeerStream
from shoal.types import PeerAddr
from shoal.wire import messages as m
from swarm_helpers import make_file, make_torrent, same_tree

PIECE = 64 * 1024


def settings() -> Settings:
    return Settings(engine_tick_interval=0.1, choke_interval=1.0)


async def _lie(stream: FakePeerStream, liar: FakePeer, max_blocks: int) -> int:
    """Answer requests with corrupt blocks until the victim hangs up; returns how many were sent."""
    sent = 0
    while sent < max_blocks:
        got = await stream.receive(timeout=5)
        if not got:
            break
        for msg in got:
            if isinstance(msg, m.Request):
                await stream.send(liar.corrupt_block(msg.piece, msg.offset, msg.length))
                sent += 1
    return sent


async def test_corrupt_peer_is_banned_and_its_data_never_written(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src" / "data.bin", 4 * PIECE + 1000)
    raw = make_torrent(src, piece_length=PIECE)
    meta = Metainfo.from_bytes(raw)
    content = src.read_bytes()
    out = tmp_path / "dl"
    async with Session(settings(), listen=("127.0.0.1", 0)) as victim:
        torrent = await victim.add(raw, save_path=out)
        liar = FakePeer(meta.info_hash, num_pieces=meta.info.num_pieces, piece_length=PIECE, content=content)
        stream = await FakePeerStream.connect(liar, "127.0.0.1", victim.listen_port)
        try:
            await stream.send(
                liar.handshake() + liar.extension_handshake() + liar.have_all() + liar.unchoke()
            )
            sent = await asyncio.wait_for(_lie(stream, liar, 200), timeout=30)
            assert sent >= 1
            assert await stream.wait_closed(timeout=10)
        finally:
            await stream.close()

        got = victim.alerts().pop_all()
        failed = [a for a in got if isinstance(a, alerts.HashFailed)]
        banned = [a for a in got if isinstance(a, alerts.PeerBanned)]
        assert failed, got
        assert banned and "corrupt" in banned[0].reason
        st = torrent.status()
        assert st.pieces_have == 0 and st.total_done == 0
        # Nothing the liar sent reached the file: it is absent or still all zeros (sparse).
        target = out / "data.bin"
        if target.exists():
            assert target.read_bytes().strip(b"\0") == b""

        # It comes back with the same peer id: refused.
        again = await FakePeerStream.connect(liar, "127.0.0.1", victim.listen_port)
        try:
            await again.send(liar.handshake() + liar.have_all())
            assert await again.wait_closed(timeout=10)
        finally:
            await again.close()

        # An honest seeder completes the download; the result is byte-identical.
        async with Session(settings(), listen=("127.0.0.1", 0)) as seeder:
            seeded = await seeder.add(raw, save_path=src.parent)
            await seeded.wait_complete(timeout=10)
            torrent.add_peer(PeerAddr("127.0.0.1", seeder.listen_port))
            await torrent.wait_complete(timeout=30)
        assert same_tree(src, target)
        assert torrent.stats["peers_banned"] >= 1


async def test_unsolicited_garbage_disconnects_without_writing(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src" / "d.bin", 2 * PIECE)
    raw = make_torrent(src, piece_length=PIECE)
    meta = Metainfo.from_bytes(raw)
    async with Session(settings(), listen=("127.0.0.1", 0)) as victim:
        await victim.add(raw, save_path=tmp_path / "dl")
        peer = FakePeer(meta.info_hash, num_pieces=2, piece_length=PIECE, content=src.read_bytes())
        stream = await FakePeerStream.connect(peer, "127.0.0.1", victim.listen_port)
        try:
            await stream.send(peer.handshake() + peer.have_all() + peer.block(0, 0))  # never requested
            assert await stream.wait_closed(timeout=10)
        finally:
            with contextlib.suppress(Exception):
                await stream.close()
        assert (
            not (tmp_path / "dl" / "d.bin").exists()
            or (tmp_path / "dl" / "d.bin").read_bytes().strip(b"\0") == b""
        )


async def test_smart_ban_finds_the_liar_in_a_shared_piece(tmp_path: Path) -> None:
    """RELIABILITY case 49a: one piece split between a liar and an honest seed; only the liar is banned."""
    src = make_file(tmp_path / "src" / "one.bin", PIECE)  # a single piece of 4 blocks
    raw = make_torrent(src, piece_length=PIECE)
    meta = Metainfo.from_bytes(raw)
    content = src.read_bytes()
    s = settings().with_(request_timeout=2.0)
    async with Session(s, listen=("127.0.0.1", 0)) as victim, Session(s, listen=("127.0.0.1", 0)) as honest:
        await (await honest.add(raw, save_path=src.parent)).wait_complete(timeout=10)
        torrent = await victim.add(raw, save_path=tmp_path / "dl")
        liar = FakePeer(meta.info_hash, num_pieces=1, piece_length=PIECE, content=content)
        stream = await FakePeerStream.connect(liar, "127.0.0.1", victim.listen_port)
        try:
            await stream.send(
                liar.handshake() + liar.extension_handshake() + liar.have_all() + liar.unchoke()
            )
            lied = 0
            while lied < 2:  # corrupt answers to the first two requests, silence for the rest
                for msg in await stream.receive(timeout=5):
                    if isinstance(msg, m.Request) and lied < 2:
                        await stream.send(liar.corrupt_block(msg.piece, msg.offset, msg.length))
                        lied += 1
            torrent.add_peer(PeerAddr("127.0.0.1", honest.listen_port))
            await torrent.wait_complete(timeout=30)
            assert await stream.wait_closed(timeout=10)  # banned once the good copy proved its blocks wrong
        finally:
            await stream.close()
        got = victim.alerts().pop_all()
        banned = [a for a in got if isinstance(a, alerts.PeerBanned)]
        assert len(banned) == 1 and banned[0].peer != f"127.0.0.1:{honest.listen_port}", banned
        assert "smart ban" in banned[0].reason
        assert any(isinstance(a, alerts.HashFailed) for a in got)
    assert same_tree(src, tmp_path / "dl" / "one.bin")
