"""The wire layer against an aria2 1.36 seeder over a raw loopback socket (no Shoal engine involved)."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from interop.harness.aria2 import Aria2Peer
from interop.test_wire_libtorrent import PIECE, SIZE, TIMEOUT, has, make_torrent, pump
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire.connection import PeerConnection
from shoal.wire.handshake import Reserved, make_peer_id

pytestmark = pytest.mark.interop


def test_connect_to_aria2_seeder(tmp_path: Path, make_aria2: Callable[..., Aria2Peer]) -> None:
    src, torrent, _info = make_torrent(tmp_path)
    seeder = make_aria2(torrent.path, src.parent, seed=True)
    seeder.wait_seeding(timeout=30)
    info_hash = bytes.fromhex(torrent.info_hash)
    conn = PeerConnection(
        info_hash,
        make_peer_id(random.Random(3)),
        initiator=True,
        num_pieces=torrent.num_pieces,
        piece_length=PIECE,
        total_length=SIZE,
        reserved=Reserved.make(extension=True, fast=True),
        now=time.monotonic(),
    )
    with socket.create_connection(("127.0.0.1", seeder.port), timeout=TIMEOUT) as sock:
        sock.sendall(conn.initiate())
        events = pump(sock, conn, has(ev.BitfieldReceived))
        hs = next(e for e in events if isinstance(e, ev.Handshaken))
        assert hs.info_hash == info_hash and hs.peer_id.startswith(b"A2-")
        bitfield = next(e for e in events if isinstance(e, ev.BitfieldReceived)).bitfield
        assert bitfield.is_full
        assert conn.supports_extensions  # aria2 sets the BEP 10 bit
        out = conn.send(m.Interested())
        if conn.supports_extensions:
            out = conn.send_extension_handshake() + out
        sock.sendall(out)
        events += pump(sock, conn, lambda es: not conn.peer_choking)
        if conn.supports_extensions:
            ext = next(e for e in events if isinstance(e, ev.ExtensionHandshaken)).handshake
            assert ext.v is not None and "aria2" in ext.v
        sock.sendall(conn.request(1, 16384, 16384))
        got = pump(sock, conn, has(ev.BlockReceived))
        block = next(e for e in got if isinstance(e, ev.BlockReceived))
        data = src.path.read_bytes()
        assert block.data == data[PIECE + 16384 : PIECE + 32768]
