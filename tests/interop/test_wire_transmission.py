"""The wire layer against a Transmission 3.00 seeder (in its own network namespace) over a raw socket.

Transmission sends its BEP 10 handshake before its piece set, which the connection must accept.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from interop.harness.netns import Netns
from interop.harness.transmission import TransmissionPeer
from interop.test_wire_libtorrent import PIECE, SIZE, TIMEOUT, has, make_torrent, pump
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire.connection import PeerConnection
from shoal.wire.handshake import Reserved, make_peer_id

pytestmark = pytest.mark.interop


def test_connect_to_transmission_seeder(
    tmp_path: Path, make_netns: Callable[[], Netns], make_transmission: Callable[..., TransmissionPeer]
) -> None:
    src, torrent, _info = make_torrent(tmp_path)
    ns = make_netns()
    tr = make_transmission(ns)
    tid = tr.add(torrent.path, src.parent)
    tr.wait_complete(tid, timeout=60)
    info_hash = bytes.fromhex(torrent.info_hash)
    conn = PeerConnection(
        info_hash,
        make_peer_id(random.Random(4)),
        initiator=True,
        num_pieces=torrent.num_pieces,
        piece_length=PIECE,
        total_length=SIZE,
        reserved=Reserved.make(extension=True, fast=True),
        now=time.monotonic(),
    )
    with socket.create_connection((ns.ns_addr, tr.peer_port), timeout=TIMEOUT) as sock:
        sock.sendall(conn.initiate())
        events = pump(sock, conn, has(ev.BitfieldReceived))
        hs = next(e for e in events if isinstance(e, ev.Handshaken))
        assert hs.info_hash == info_hash and hs.peer_id.startswith(b"-TR3000-")
        assert next(e for e in events if isinstance(e, ev.BitfieldReceived)).bitfield.is_full
        ext = [e for e in events if isinstance(e, ev.ExtensionHandshaken)]
        if ext:
            assert ext[0].handshake.v is not None and "Transmission" in ext[0].handshake.v
        sock.sendall(conn.send_extension_handshake() + conn.send(m.Interested()))
        pump(sock, conn, lambda es: not conn.peer_choking)
        sock.sendall(conn.request(0, 0, 16384))
        got = pump(sock, conn, has(ev.BlockReceived))
        block = next(e for e in got if isinstance(e, ev.BlockReceived))
        assert block.data == src.path.read_bytes()[:16384]
