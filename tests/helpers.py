"""Test helpers shared across test trees.

``ConnectionPair`` joins two :class:`shoal.wire.connection.PeerConnection` objects with byte strings (the h11
``ConnectionPair`` / aioquic ``roundtrip`` shape): no sockets, no loop. ``MseInitiator`` is the connecting side of
an MSE handshake (as libtorrent runs it), to drive :class:`shoal.wire.mse.MseResponder`.
"""

from __future__ import annotations

import random

from shoal.config import Settings
from shoal.wire import events as ev
from shoal.wire.connection import PeerConnection
from shoal.wire.handshake import Reserved, make_peer_id
from shoal.wire.mse import CRYPTO_PLAINTEXT, CRYPTO_RC4, KEY_SIZE, MAX_PAD, RC4, VC, G, P, req2_hash, sha1

INFO_HASH = bytes(range(20))


def drain(conn: PeerConnection) -> list[ev.Event]:
    """Every event the connection has ready."""
    out: list[ev.Event] = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


class ConnectionPair:
    """``a`` initiates, ``b`` accepts; :meth:`handshake` brings both to OPEN.

    ``a_to_b(data)`` feeds ``data`` to ``b`` and returns ``b``'s events (and the other way round); automatic
    replies (``data_to_send``) are left for the test to deliver with :meth:`flush`.
    """

    def __init__(
        self,
        *,
        num_pieces: int | None = 10,
        piece_length: int | None = 32768,
        total_length: int | None = None,
        settings: Settings | None = None,
        reserved_a: Reserved | None = None,
        reserved_b: Reserved | None = None,
        metadata_size: int | None = None,
        info_hash: bytes = INFO_HASH,
        seed: int = 0,
    ) -> None:
        rng = random.Random(seed)
        self.info_hash = info_hash
        self.num_pieces = num_pieces
        if total_length is None and num_pieces is not None and piece_length is not None:
            total_length = num_pieces * piece_length
        self.geometry = {"piece_length": piece_length, "total_length": total_length}
        self.a = PeerConnection(
            info_hash,
            make_peer_id(rng),
            initiator=True,
            num_pieces=num_pieces,
            settings=settings,
            reserved=reserved_a,
            metadata_size=metadata_size,
            piece_length=piece_length,
            total_length=total_length,
        )
        self.b = PeerConnection(
            None, make_peer_id(rng), initiator=False, settings=settings, reserved=reserved_b
        )
        self.metadata_size = metadata_size

    def handshake(self) -> tuple[list[ev.Event], list[ev.Event]]:
        """Both handshakes; returns (a's events, b's events)."""
        b_events = self.a_to_b(self.a.initiate())
        assert isinstance(b_events[0], ev.HandshakeReceived)
        reply = self.b.accept(
            self.info_hash,
            self.num_pieces,
            piece_length=self.geometry["piece_length"],
            total_length=self.geometry["total_length"],
            metadata_size=self.metadata_size,
        )
        a_events = self.b_to_a(reply)
        b_events += drain(self.b)
        return a_events, b_events

    def a_to_b(self, data: bytes) -> list[ev.Event]:
        self.b.receive_data(data, now=0.0)
        return drain(self.b)

    def b_to_a(self, data: bytes) -> list[ev.Event]:
        self.a.receive_data(data, now=0.0)
        return drain(self.a)

    def flush(self) -> tuple[list[ev.Event], list[ev.Event]]:
        """Deliver both sides' automatic replies; returns (a's events, b's events)."""
        to_b = self.a.data_to_send()
        to_a = self.b.data_to_send()
        return self.b_to_a(to_a) if to_a else [], self.a_to_b(to_b) if to_b else []


class MseInitiator:
    """The connecting side (A) of an MSE handshake, as libtorrent runs it: ``step1()`` (Ya, PadA), then
    ``step3(yb)`` with the responder's public key, then ``read_reply(data)`` on what followed Yb."""

    def __init__(self, rng: random.Random, *, info_hash: bytes = INFO_HASH) -> None:
        self.rng = rng
        self.info_hash = info_hash
        self.x = rng.getrandbits(160)
        self.ya = pow(G, self.x, P).to_bytes(KEY_SIZE, "big")

    def step1(self, pad: int = 37) -> bytes:
        return self.ya + self.rng.randbytes(pad)

    def step3(
        self,
        yb: bytes,
        *,
        provide: int = CRYPTO_PLAINTEXT | CRYPTO_RC4,
        pad_c: int = 5,
        ia: bytes = b"",
        vc: bytes = VC,
        pad_c_len: int | None = None,
    ) -> bytes:
        s = pow(int.from_bytes(yb[:KEY_SIZE], "big"), self.x, P).to_bytes(KEY_SIZE, "big")
        self.s = s
        self.enc = enc = RC4(sha1(b"keyA", s, self.info_hash))
        self.dec = RC4(sha1(b"keyB", s, self.info_hash))
        mask = bytes(a ^ b for a, b in zip(req2_hash(self.info_hash), sha1(b"req3", s), strict=True))
        body = (
            vc + provide.to_bytes(4, "big") + (pad_c if pad_c_len is None else pad_c_len).to_bytes(2, "big")
        )
        body += bytes(pad_c) + len(ia).to_bytes(2, "big")
        return sha1(b"req1", s) + mask + enc.crypt(body) + enc.crypt(ia)

    def read_reply(self, data: bytes) -> tuple[int, bytes]:
        """The responder's step 4 (``data`` starts after Yb): its crypto_select, and the bytes after it."""
        target = RC4(sha1(b"keyB", self.s, self.info_hash)).crypt(VC)
        at = data.find(target)
        assert 0 <= at <= MAX_PAD, "no verification constant after PadB"
        head = self.dec.crypt(data[at : at + 14])
        assert head[:8] == VC
        pad_d = int.from_bytes(head[12:14], "big")
        return int.from_bytes(head[8:12], "big"), data[at + 14 + pad_d :]
