"""The wire layer against libtorrent 2.1.1 over a raw loopback socket (no Shoal engine involved).

1. We connect to a libtorrent seeder: its handshake, extended handshake, have-all, unchoke, a block and the
   ut_metadata pieces parse, and the metadata verifies against the info-hash.
2. libtorrent connects to our listening socket and downloads a small torrent served block by block from a
   PeerConnection: the whole download completes, so libtorrent accepted every message we sent.
"""

from __future__ import annotations

import hashlib
import random
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from interop.harness import content
from interop.harness.libtorrent_peer import LtSession
from shoal.codec import bencode
from shoal.policy.bitfield import Bitfield
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire.connection import PeerConnection
from shoal.wire.handshake import Reserved, make_peer_id
from shoal.wire.metadata import MetadataFetcher, MetadataRequest, MetadataServer

pytestmark = pytest.mark.interop

PIECE = 32 * 1024
SIZE = 5 * PIECE - 1000  # short last piece
TIMEOUT = 30.0


def make_torrent(tmp_path: Path) -> tuple[content.Content, content.TorrentFile, bytes]:
    src = content.make_file(tmp_path / "seed" / "data.bin", SIZE, seed=11)
    torrent = content.make_torrent(src.path, tmp_path / "t.torrent", piece_length=PIECE)
    meta = bencode.decode(torrent.data, strict=False)
    info = bencode.raw_value(torrent.data, b"info")
    assert isinstance(meta, dict) and info is not None
    assert hashlib.sha1(info).hexdigest() == torrent.info_hash
    return src, torrent, info


def pump(
    sock: socket.socket, conn: PeerConnection, until: Callable[[list[ev.Event]], bool]
) -> list[ev.Event]:
    """Read into ``conn`` until ``until(events so far)``; every wait bounded by TIMEOUT."""
    events: list[ev.Event] = []
    deadline = time.monotonic() + TIMEOUT
    while not until(events):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out; events so far: {events[-10:]}")
        sock.settimeout(left)
        data = sock.recv(1 << 16)
        conn.receive_data(data, now=time.monotonic())
        while (event := conn.next_event()) is not None:
            events.append(event)
            assert not isinstance(event, ev.ProtocolViolation), event
        if not data:
            break
        if extra := conn.data_to_send():
            sock.sendall(extra)
    return events


def wait_same_tree(expected: Path, actual: Path, leecher: LtSession) -> None:
    """libtorrent reports a torrent complete once every piece hashed, which can be before its last writes reach
    the file (it hashes from its store buffer): compare until equal, bounded by TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while content.tree_differences(expected, actual) and time.monotonic() < deadline:
        leecher.pump(0.1)
    content.assert_same_tree(expected, actual)


def has(kind: type) -> Callable[[list[ev.Event]], bool]:
    return lambda events: any(isinstance(e, kind) for e in events)


def test_connect_to_libtorrent_seeder(tmp_path: Path, make_lt: Callable[..., LtSession]) -> None:
    src, torrent, info = make_torrent(tmp_path)
    seeder = make_lt()
    seeder.add(torrent.path, src.parent, seed=True)
    info_hash = bytes.fromhex(torrent.info_hash)
    conn = PeerConnection(
        info_hash,
        make_peer_id(random.Random(1)),
        initiator=True,
        num_pieces=torrent.num_pieces,
        piece_length=PIECE,
        total_length=SIZE,
        reserved=Reserved.make(extension=True, fast=True, dht=True),
        now=time.monotonic(),
    )
    with socket.create_connection(("127.0.0.1", seeder.port), timeout=TIMEOUT) as sock:
        sock.sendall(conn.initiate())
        events = pump(sock, conn, lambda es: has(ev.ExtensionHandshaken)(es) and has(ev.BitfieldReceived)(es))
        hs = next(e for e in events if isinstance(e, ev.Handshaken))
        assert hs.info_hash == info_hash and hs.peer_id.startswith(b"-LT")
        assert hs.reserved.fast and hs.reserved.extension and conn.fast
        ext = next(e for e in events if isinstance(e, ev.ExtensionHandshaken)).handshake
        assert "ut_metadata" in ext.m and "ut_pex" in ext.m
        assert ext.metadata_size == len(info)
        assert ext.v is not None and "libtorrent" in ext.v.lower()
        assert ext.reqq is not None and ext.reqq > 0
        bitfield = next(e for e in events if isinstance(e, ev.BitfieldReceived)).bitfield
        assert bitfield.is_full

        sock.sendall(conn.send_extension_handshake() + conn.send(m.Interested()))
        pump(sock, conn, lambda es: not conn.peer_choking)
        last = torrent.num_pieces - 1
        last_size = SIZE - last * PIECE
        sock.sendall(
            conn.request(0, 0, 16384)
            + conn.request(last, 0, last_size - 16384 if last_size > 16384 else last_size)
        )
        blocks = [
            e
            for e in pump(sock, conn, lambda es: sum(isinstance(e, ev.BlockReceived) for e in es) == 2)
            if isinstance(e, ev.BlockReceived)
        ]
        data = src.path.read_bytes()
        for block in blocks:
            start = block.piece * PIECE + block.offset
            assert block.data == data[start : start + len(block.data)]

        fetcher = MetadataFetcher(info_hash, 1 << 20)
        assert fetcher.set_size(ext.metadata_size, "lt")
        result = None
        while result is None:
            piece = fetcher.next_request("lt", 0.0)
            assert piece is not None
            sock.sendall(conn.send_metadata(MetadataRequest(piece)))
            got = pump(sock, conn, has(ev.MetadataPieceReceived))
            md = next(e for e in got if isinstance(e, ev.MetadataPieceReceived))
            result = fetcher.on_data("lt", md.piece, md.total_size, md.data)
        assert result.ok and result.info == info


def serve(
    sock: socket.socket,
    leecher: LtSession,
    handle: Any,
    torrent: content.TorrentFile,
    data: bytes,
    info: bytes,
) -> ev.ProtocolViolation | None:
    """Serve one connection until libtorrent has everything; returns the violation if it sent garbage."""
    info_hash = bytes.fromhex(torrent.info_hash)
    server = MetadataServer(info)
    conn = PeerConnection(None, make_peer_id(random.Random(2)), initiator=False, now=time.monotonic())
    deadline = time.monotonic() + 60
    while not handle.status().is_seeding:
        assert time.monotonic() < deadline, f"libtorrent did not finish: {leecher.stats(handle)}"
        leecher.pump(0.0)
        ready, _, _ = select.select([sock], [], [], 0.1)
        if not ready:
            continue
        chunk = sock.recv(1 << 16)
        if not chunk:
            return None
        conn.receive_data(chunk, now=time.monotonic())
        out = []
        while (event := conn.next_event()) is not None:
            if isinstance(event, ev.ProtocolViolation):
                return event
            assert not isinstance(event, ev.ConnectionClosed), event
            if isinstance(event, ev.HandshakeReceived):
                assert event.info_hash == info_hash
                geometry = {"piece_length": PIECE, "total_length": SIZE, "metadata_size": len(info)}
                out.append(conn.accept(info_hash, torrent.num_pieces, **geometry))
            elif isinstance(event, ev.Handshaken):
                out.append(conn.send_have_state(Bitfield(torrent.num_pieces, full=True)))
                out.append(conn.send_extension_handshake(upload_only=True))
            elif isinstance(event, ev.PeerInterested):
                out.append(conn.send(m.Unchoke()))
            elif isinstance(event, ev.BlockRequested):
                start = event.piece * PIECE + event.offset
                out.append(conn.send_block(event.piece, event.offset, data[start : start + event.length]))
            elif isinstance(event, ev.MetadataRequested):
                out.append(conn.send_metadata(server.respond(event.piece)))
        out.append(conn.data_to_send())
        sock.sendall(b"".join(out))
    return None


def test_libtorrent_downloads_from_our_connection(tmp_path: Path, make_lt: Callable[..., LtSession]) -> None:
    """libtorrent's default out_enc_policy tries an MSE-encrypted connection first; a bare PeerConnection does not
    speak MSE (the engine answers it before the connection: shoal.wire.mse), so that attempt is refused as a bad
    handshake and libtorrent reconnects in plaintext."""
    src, torrent, info = make_torrent(tmp_path)
    data = src.path.read_bytes()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        leecher = make_lt()
        handle: Any = leecher.add(torrent.path, tmp_path / "dl", peers=[("127.0.0.1", port)])
        listener.settimeout(TIMEOUT)
        refused = []
        for _attempt in range(4):
            sock, _ = listener.accept()
            with sock:
                violation = serve(sock, leecher, handle, torrent, data, info)
            if violation is None and handle.status().is_seeding:
                break
            if violation is not None:
                assert violation.reason.value == "bad handshake", violation
                refused.append(violation)
            handle.connect_peer(("127.0.0.1", port))
        assert handle.status().is_seeding, leecher.stats(handle)
        wait_same_tree(src.path, tmp_path / "dl" / "data.bin", leecher)


def test_libtorrent_fetches_magnet_metadata_from_our_connection(
    tmp_path: Path, make_lt: Callable[..., LtSession]
) -> None:
    """A libtorrent magnet download from a PeerConnection alone: ut_metadata from our MetadataServer, then data."""
    src, torrent, info = make_torrent(tmp_path)
    data = src.path.read_bytes()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        leecher = make_lt(settings={"out_enc_policy": 2})  # plaintext only (enc_policy.pe_disabled)
        lt = leecher.lt
        atp = lt.parse_magnet_uri(f"magnet:?xt=urn:btih:{torrent.info_hash}")
        atp.save_path = str(tmp_path / "dl")
        atp.flags &= ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
        handle: Any = leecher.session.add_torrent(atp)
        handle.connect_peer(("127.0.0.1", port))
        listener.settimeout(TIMEOUT)
        sock, _ = listener.accept()
        with sock:
            assert serve(sock, leecher, handle, torrent, data, info) is None
        assert handle.status().is_seeding, leecher.stats(handle)
        assert handle.status().has_metadata
        wait_same_tree(src.path, tmp_path / "dl" / "data.bin", leecher)
