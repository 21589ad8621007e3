"""MSE handshakes against a real seeding ``Session`` (cases 15 and 21 for the encrypted handshake).

An honest MSE handshake (the way libtorrent opens its connections) is answered and the download starts on that
connection; garbage, a handshake naming another torrent, an oversized PadC, RC4 only, a stall in the middle, and a
plain handshake for another torrent after the encrypted one all get the connection closed, and the seeder keeps
serving an honest peer afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path

import pytest

from faultkit import FAST, seeder
from helpers import MseInitiator
from shoal.codec.metainfo import Metainfo
from shoal.testing.fake_peer import FakePeer
from shoal.types import PeerAddr
from shoal.wire import events as ev
from shoal.wire.connection import PeerConnection
from shoal.wire.handshake import HANDSHAKE_SIZE
from shoal.wire.mse import CRYPTO_PLAINTEXT, CRYPTO_RC4, KEY_SIZE, MAX_PAD
from swarm_helpers import make_payload, make_torrent

pytestmark = pytest.mark.timeout(120)

PIECE = 32 * 1024
SETTINGS = dataclasses.replace(FAST, handshake_timeout=2.0)


@pytest.fixture
def torrent(tmp_path: Path) -> tuple[Path, Path, Metainfo]:
    src = make_payload(tmp_path / "src" / "t", [("a.bin", 3 * PIECE + 100)], seed=3)
    data = make_torrent(src, piece_length=PIECE)
    path = tmp_path / "t.torrent"
    path.write_bytes(data)
    return path, src, Metainfo.from_bytes(data)


async def read_some(reader: asyncio.StreamReader, n: int, timeout: float = 10.0) -> bytes:
    out = b""
    while len(out) < n:
        chunk = await asyncio.wait_for(reader.read(65536), timeout)
        if not chunk:
            break
        out += chunk
    return out


async def closed(reader: asyncio.StreamReader, timeout: float = 10.0) -> bool:
    """True once the seeder closed the connection (bytes it still sends are read and dropped)."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def open_mse(
    addr: PeerAddr, info_hash: bytes, seed: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, MseInitiator, bytes]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(addr.host, addr.port), 10)
    a = MseInitiator(random.Random(seed), info_hash=info_hash)
    writer.write(a.step1(pad=100))
    reply = await read_some(reader, KEY_SIZE)
    return reader, writer, a, reply


async def test_honest_mse_handshake_is_served(torrent: tuple[Path, Path, Metainfo]) -> None:
    path, src, meta = torrent
    async with seeder(path, src, SETTINGS) as (_, _, addr):
        reader, writer, a, reply = await open_mse(addr, meta.info_hash, 1)
        try:
            writer.write(a.step3(reply))
            peer = FakePeer(meta.info_hash, num_pieces=meta.info.num_pieces, piece_length=PIECE)
            rest = reply[KEY_SIZE:]
            while True:
                try:
                    select, after = a.read_reply(rest)
                    break
                except AssertionError:
                    rest += await asyncio.wait_for(reader.read(65536), 10)
            assert select == CRYPTO_PLAINTEXT
            writer.write(peer.handshake())  # the plaintext stream from here on
            after += await read_some(reader, HANDSHAKE_SIZE - len(after))
            assert after[28:48] == meta.info_hash
        finally:
            writer.close()


async def test_rc4_only_peer_gets_an_rc4_stream(torrent: tuple[Path, Path, Metainfo]) -> None:
    """Transmission's default offers RC4 only: the seeder answers in RC4 and serves a block through it."""
    path, src, meta = torrent
    async with seeder(path, src, SETTINGS) as (_, _, addr):
        reader, writer, a, reply = await open_mse(addr, meta.info_hash, 5)
        try:
            peer = FakePeer(meta.info_hash, num_pieces=meta.info.num_pieces, piece_length=PIECE)
            hello = peer.handshake() + peer.bitfield([]) + peer.interested()
            writer.write(a.step3(reply, provide=CRYPTO_RC4, ia=hello[:20]) + a.enc.crypt(hello[20:]))
            rest = reply[KEY_SIZE:]
            while True:
                try:
                    select, after = a.read_reply(rest)
                    break
                except AssertionError:
                    rest += await asyncio.wait_for(reader.read(65536), 10)
            assert select == CRYPTO_RC4
            conn = PeerConnection(
                meta.info_hash,
                peer.peer_id,
                initiator=True,
                num_pieces=meta.info.num_pieces,
                piece_length=PIECE,
                total_length=meta.info.total_length,
                now=0.0,
            )
            conn.initiate()
            stream = a.dec.crypt(after)
            blocks: list[ev.BlockReceived] = []
            async with asyncio.timeout(10):
                while not blocks:
                    conn.receive_data(stream, now=0.0)
                    while (event := conn.next_event()) is not None:
                        if isinstance(event, ev.PeerUnchoked):
                            writer.write(a.enc.crypt(conn.request(0, 0, 16384)))
                        elif isinstance(event, ev.BlockReceived):
                            blocks.append(event)
                    if not blocks:
                        stream = a.dec.crypt(await reader.read(65536))
            assert bytes(blocks[0].data) == (src / "a.bin").read_bytes()[:16384]
        finally:
            writer.close()


@pytest.mark.parametrize(
    "what",
    [
        "garbage",
        "other torrent",
        "oversized PadC",
        "nothing offered",
        "stall",
        "plain handshake for another torrent",
    ],
)
async def test_bad_mse_handshakes_are_closed(
    tmp_path: Path, torrent: tuple[Path, Path, Metainfo], what: str
) -> None:
    path, src, meta = torrent
    async with seeder(path, src, SETTINGS) as (session, _, addr):
        src2 = make_payload(tmp_path / "src2" / "u", [("b.bin", PIECE)], seed=4)
        other = make_torrent(src2, piece_length=PIECE)
        await session.add(other, save_path=src2.parent, seed=True)  # a second torrent of the same session
        if what == "garbage":
            reader, writer = await asyncio.wait_for(asyncio.open_connection(addr.host, addr.port), 10)
            writer.write(random.Random(2).randbytes(KEY_SIZE + MAX_PAD + 40))
        else:
            ih = b"\xee" * 20 if what == "other torrent" else meta.info_hash
            reader, writer, a, reply = await open_mse(addr, ih, 3)
            if what == "oversized PadC":
                writer.write(a.step3(reply, pad_c=0, pad_c_len=MAX_PAD + 1))
            elif what == "nothing offered":
                writer.write(a.step3(reply, provide=0))
            elif what == "stall":
                writer.write(a.step3(reply)[:30])  # then nothing: the handshake timeout applies
            elif what == "plain handshake for another torrent":
                writer.write(a.step3(reply) + FakePeer(Metainfo.from_bytes(other).info_hash).handshake())
            else:
                writer.write(a.step3(reply))
        try:
            assert await closed(reader), what
        finally:
            writer.close()
        # the seeder still answers an honest plain handshake
        peer = FakePeer(meta.info_hash, num_pieces=meta.info.num_pieces, piece_length=PIECE)
        r2, w2 = await asyncio.wait_for(asyncio.open_connection(addr.host, addr.port), 10)
        try:
            w2.write(peer.handshake())
            got = await read_some(r2, HANDSHAKE_SIZE)
            assert got[28:48] == meta.info_hash
        finally:
            w2.close()
