"""The lying-peer harness (issue 6) against the wire layer: a FakePeer misbehaves, a PeerConnection reacts.

Each test names the case from RELIABILITY-CASES.md and checks the documented behaviour: disconnect (a terminal
``ProtocolViolation`` with its reason and ban flag), ignore (no event, connection stays open), or bounded memory.
Block corruption and bans for bad data are the engine's (hash checks); here the wire only delivers the block.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from helpers import drain
from shoal.config import Settings
from shoal.errors import DisconnectReason
from shoal.policy.bitfield import Bitfield
from shoal.testing.fake_peer import FakePeer
from shoal.types import PeerAddr
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire.connection import PeerConnection
from shoal.wire.handshake import Handshake, Reserved, make_peer_id
from shoal.wire.metadata import MetadataFetcher

INFO_HASH = bytes(range(20))
PIECE = 32768
NUM = 8
CONTENT = random.Random(5).randbytes(NUM * PIECE)
METADATA = b"d6:lengthi262144e4:name1:x12:piece lengthi32768e6:pieces160:" + bytes(160) + b"e"


def victim(
    settings: Settings | None = None, *, num_pieces: int | None = NUM, now: float = 0.0
) -> PeerConnection:
    return PeerConnection(
        None,
        make_peer_id(random.Random(1)),
        initiator=False,
        settings=settings,
        num_pieces=num_pieces,
        now=now,
    )


def fake(**kw: object) -> FakePeer:
    return FakePeer(INFO_HASH, num_pieces=NUM, piece_length=PIECE, content=CONTENT, metadata=METADATA, **kw)  # type: ignore[arg-type]


def connect(
    settings: Settings | None = None, *, num_pieces: int | None = NUM, **kw: object
) -> tuple[PeerConnection, FakePeer]:
    conn = victim(settings, num_pieces=num_pieces)
    peer = fake(**kw)
    conn.receive_data(peer.handshake(), now=0.0)
    assert isinstance(conn.next_event(), ev.HandshakeReceived)
    reply = conn.accept(
        INFO_HASH, num_pieces, piece_length=PIECE if num_pieces else None, total_length=NUM * PIECE
    )
    assert isinstance(peer.parse(reply)[0], Handshake)
    assert isinstance(conn.next_event(), ev.Handshaken)
    return conn, peer


def feed(conn: PeerConnection, data: bytes, now: float = 0.0) -> list[ev.Event]:
    conn.receive_data(data, now=now)
    return drain(conn)


def disconnected(events: list[ev.Event], reason: DisconnectReason) -> ev.ProtocolViolation:
    assert events and isinstance(events[-1], ev.ProtocolViolation), events
    assert events[-1].reason is reason, events[-1]
    return events[-1]


# --- case 15: huge length prefixes ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0xFFFFFFFF, 0x7FFFFFFF, (1 << 20) + 1])
def test_case15_huge_length_prefix(length: int) -> None:
    conn, peer = connect(Settings(max_message_size=1 << 20))
    before = conn.buffered_bytes
    event = disconnected(
        feed(conn, peer.length_prefix(length, msg_id=None)), DisconnectReason.MESSAGE_TOO_LARGE
    )
    assert not event.ban and conn.buffered_bytes <= before + 4


def test_case15_piece_prefix_over_block_limit_refused_at_header() -> None:
    conn, peer = connect()
    disconnected(feed(conn, peer.length_prefix(9 + 16384 + 1)), DisconnectReason.MESSAGE_TOO_LARGE)


# --- case 16: wrong fixed sizes and unknown ids ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg_id", "payload"),
    [
        (m.HAVE, b"\x00" * 3),
        (m.REQUEST, b"\x00" * 11),
        (m.REQUEST, b"\x00" * 13),
        (m.CHOKE, b"\x00"),
        (m.PORT, b"\x00" * 5),
        (99, b""),
    ],
)
def test_case16_malformed_messages(msg_id: int, payload: bytes) -> None:
    conn, peer = connect()
    disconnected(feed(conn, peer.message(msg_id, payload)), DisconnectReason.PROTOCOL_VIOLATION)


def test_case16_unknown_extended_message_is_ignored() -> None:
    conn, peer = connect()
    assert feed(conn, m.Extended(200, b"junk").encode() + peer.unchoke()) == [ev.PeerUnchoked()]
    assert not conn.closed


# --- case 17: bitfield lies -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["short", "long", "spare"])
def test_case17_bad_bitfield(kind: str) -> None:
    conn, peer = connect(num_pieces=NUM + 1)
    peer.num_pieces = NUM + 1
    data = {
        "short": peer.short_bitfield(),
        "long": peer.bitfield(raw=b"\xff\x80\x00"),
        "spare": peer.spare_bits_bitfield(),
    }[kind]
    event = feed(conn, data)[-1]
    assert isinstance(event, ev.ProtocolViolation)
    assert event.reason in (DisconnectReason.BAD_BITFIELD, DisconnectReason.MESSAGE_TOO_LARGE)


@pytest.mark.parametrize(
    ("second", "after"),
    [("have_all", list(range(NUM))), ("have_none", [1, 2]), ("bitfield", [1, 2, 5])],
)
def test_case17_second_piece_set_is_merged(second: str, after: list[int]) -> None:
    """Tolerated (aria2 1.36 sends one): merged, never shrinking; an event only when the set grew."""
    conn, peer = connect()
    data = peer.bitfield([5]) if second == "bitfield" else getattr(peer, second)()
    events = feed(conn, peer.bitfield([1, 2]) + data)
    assert events[0] == ev.BitfieldReceived(Bitfield.from_indices(NUM, [1, 2]))
    expected = Bitfield.from_indices(NUM, after)
    assert events[1:] == ([] if after == [1, 2] else [ev.BitfieldReceived(expected)])
    assert conn.peer_bitfield == expected and not conn.closed


def test_case17_alternating_have_all_have_none_flood() -> None:
    conn, peer = connect()
    events = feed(conn, (peer.have_none() + peer.have_all()) * 1000)
    assert events == [ev.BitfieldReceived(Bitfield(NUM)), ev.BitfieldReceived(Bitfield(NUM, full=True))]
    assert conn.peer_bitfield == Bitfield(NUM, full=True) and not conn.closed


# --- case 18: index and range lies ---------------------------------------------------------------------------


@pytest.mark.parametrize("piece", [NUM, 2**32 - 1])
def test_case18_have_out_of_range(piece: int) -> None:
    conn, peer = connect()
    disconnected(feed(conn, peer.have(piece)), DisconnectReason.PROTOCOL_VIOLATION)


@pytest.mark.parametrize(
    ("piece", "offset", "length"),
    [(0, PIECE - 16384 + 1, 16384), (0, 0, 0), (0, 0, 32768), (NUM, 0, 16384), (0, 2**32 - 1, 1)],
)
def test_case18_bad_requests_disconnect(piece: int, offset: int, length: int) -> None:
    conn, peer = connect()
    conn.send_have_state(Bitfield(NUM, full=True))
    conn.send(m.Unchoke())
    disconnected(feed(conn, peer.request(piece, offset, length)), DisconnectReason.INVALID_REQUEST)


def test_case18_cancel_for_unknown_block_is_ignored() -> None:
    conn, _peer = connect()
    assert feed(conn, m.Cancel(3, 0, 16384).encode()) == []
    assert not conn.closed


# --- case 19: unsolicited or oversized data ---------------------------------------------------------------------


def test_case19_unsolicited_piece() -> None:
    conn, peer = connect()
    disconnected(feed(conn, peer.block(0, 0)), DisconnectReason.UNSOLICITED_PIECE)


def test_case19_block_flood_after_one_request() -> None:
    conn, peer = connect()
    feed(conn, peer.have_all() + peer.unchoke())
    conn.request(0, 0, 16384)
    events = feed(conn, peer.block_flood(50, piece=0))
    assert isinstance(events[0], ev.BlockReceived)
    disconnected(events, DisconnectReason.UNSOLICITED_PIECE)
    assert len(events) == 2


def test_case19_corrupt_block_is_delivered_for_the_engine_to_hash() -> None:
    conn, peer = connect()
    feed(conn, peer.have_all() + peer.unchoke())
    conn.request(1, 16384, 16384)
    (event,) = feed(conn, peer.corrupt_block(1, 16384))
    assert isinstance(event, ev.BlockReceived) and event.data != peer.block_data(1, 16384)


# --- case 20: request floods ----------------------------------------------------------------------------------


def test_case20_request_flood_while_unchoked() -> None:
    s = Settings(max_pending_requests=500, max_invalid_requests=300)
    conn, peer = connect(s)
    conn.send_have_state(Bitfield(NUM, full=True))
    conn.send(m.Unchoke())
    events = feed(conn, peer.request_flood(10_000))
    assert sum(isinstance(e, ev.BlockRequested) for e in events) == 500
    disconnected(events, DisconnectReason.TOO_MANY_REQUESTS)
    assert (
        conn.peer_requests == []
    )  # never more than 500 queued (events above); nothing left to serve once closed


def test_case20_requests_while_choked() -> None:
    conn, peer = connect(Settings(max_invalid_requests=300))
    conn.send_have_state(Bitfield(NUM, full=True))
    events = feed(conn, peer.request_flood(300))
    assert events == [] and not conn.closed
    assert len(conn.data_to_send()) == 300 * 17  # each one rejected (BEP 6)
    disconnected(feed(conn, peer.request(1)), DisconnectReason.TOO_MANY_REQUESTS)


# --- case 21: handshake abuse --------------------------------------------------------------------------------


def test_case21_wrong_protocol_string() -> None:
    conn = victim()
    peer = fake()
    events = feed(conn, peer.handshake(protocol=b"\x13BitTorrent Protocol"))
    disconnected(events, DisconnectReason.BAD_HANDSHAKE)


def test_case21_wrong_info_hash_initiator() -> None:
    conn = PeerConnection(INFO_HASH, make_peer_id(random.Random(1)), initiator=True)
    conn.initiate()
    disconnected(feed(conn, fake().handshake(info_hash=b"\xee" * 20)), DisconnectReason.WRONG_INFO_HASH)


def test_case21_self_connection() -> None:
    conn = victim()
    peer = fake(peer_id=make_peer_id(random.Random(1)))
    feed(conn, peer.handshake())
    conn.accept(INFO_HASH, NUM)
    disconnected(drain(conn), DisconnectReason.SELF_CONNECTION)


@pytest.mark.parametrize("nbytes", [0, 1, 47, 67])
def test_case21_never_ending_handshake(nbytes: int) -> None:
    conn = victim(Settings(handshake_timeout=20.0), now=0.0)
    if nbytes:
        feed(conn, fake().partial_handshake(nbytes), now=1.0)
    if nbytes >= 48:
        conn.accept(INFO_HASH, NUM)
        drain(conn)
    assert conn.get_timer() == 20.0
    conn.handle_timer(20.0)
    assert drain(conn)[-1] == ev.ConnectionClosed(DisconnectReason.TIMEOUT)


def test_case21_endless_keepalives_keep_the_connection_alive() -> None:
    s = Settings(peer_inactivity_timeout=120.0, keepalive_interval=60.0)
    conn, peer = connect(s)
    for t in range(60, 1200, 60):
        assert feed(conn, peer.keepalives(1), now=float(t)) == [ev.KeepAliveReceived()]
        conn.handle_timer(float(t))
    assert not conn.closed  # legal; an engine drops useless peers by its own policy


# --- case 23: extension floods ---------------------------------------------------------------------------------


def test_case23_pex_flood() -> None:
    conn, peer = connect()
    events = feed(conn, peer.extension_handshake() + peer.pex_flood(messages=20, peers_per_message=500))
    pex = [e for e in events if isinstance(e, ev.PexReceived)]
    assert len(pex) == 1 and len(pex[0].added) == 50  # one per minute, 50 peers each
    assert not conn.closed
    later = feed(conn, peer.pex([PeerAddr("1.2.3.4", 1)]), now=60.0)
    assert later == [ev.PexReceived((later[0].added[0],), ())]  # type: ignore[attr-defined]


def test_case23_oversized_extended_handshake() -> None:
    conn, peer = connect(Settings(max_extended_message_size=128 * 1024))
    big = peer.extension_handshake({b"m": {}, b"pad": b"x" * (128 * 1024)})
    disconnected(feed(conn, big), DisconnectReason.MESSAGE_TOO_LARGE)


def test_case23_reqq_clamped() -> None:
    conn, peer = connect(Settings(max_outstanding_requests=1000))
    (event,) = feed(conn, peer.extension_handshake({b"m": {}, b"reqq": 2**31}))
    assert isinstance(event, ev.ExtensionHandshaken) and event.handshake.reqq == 1000


# --- case 25 / 26: metadata lies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [-1, 0, 2**31, 100_000_000])
def test_case25_handshake_metadata_size_lies_are_ignored(size: int) -> None:
    conn, peer = connect(Settings(max_metadata_size=4 * 1024 * 1024))
    (event,) = feed(conn, peer.extension_handshake({b"m": {b"ut_metadata": 3}, b"metadata_size": size}))
    assert isinstance(event, ev.ExtensionHandshaken) and event.handshake.metadata_size is None


@pytest.mark.parametrize(
    "kind", ["total_size_over_limit", "piece_out_of_range", "piece_too_long", "piece_too_short"]
)
def test_case25_bad_metadata_messages_disconnect(kind: str) -> None:
    conn, peer = connect(Settings(max_metadata_size=64 * 1024), num_pieces=None)
    feed(conn, peer.extension_handshake())
    data = {
        "total_size_over_limit": peer.metadata_piece(0, total_size=64 * 1024 + 1),
        "piece_out_of_range": peer.metadata_piece(1, data=b"x"),
        "piece_too_long": peer.metadata_piece(0, data=METADATA + b"x"),
        "piece_too_short": peer.metadata_piece(0, data=METADATA[:-1]),
    }[kind]
    disconnected(feed(conn, data), DisconnectReason.PROTOCOL_VIOLATION)


def test_case26_poisoned_metadata_from_three_peers() -> None:
    real = random.Random(3).randbytes(40_000)
    info_hash = hashlib.sha1(real).digest()
    poisoned = bytearray(real)
    poisoned[20_000] ^= 1
    fetcher = MetadataFetcher(info_hash, 1 << 20)
    liars = [FakePeer(info_hash, metadata=bytes(poisoned)) for _ in range(3)]
    conns = []
    for i, liar in enumerate(liars):
        conn = PeerConnection(info_hash, make_peer_id(random.Random(10 + i)), initiator=True)
        conn.initiate()
        feed(conn, liar.handshake() + liar.extension_handshake(metadata_size=len(real)))
        fetcher.set_size(len(real), i)
        conns.append(conn)
    result = None
    for i, (conn, liar) in enumerate(zip(conns, liars, strict=True)):
        piece = fetcher.next_request(i, 0.0)
        assert piece is not None
        (event,) = feed(conn, liar.metadata_piece(piece))
        assert isinstance(event, ev.MetadataPieceReceived)
        result = fetcher.on_data(i, event.piece, event.total_size, event.data)
    assert result is not None and not result.ok and result.contributors == {0, 1, 2}
    assert fetcher.total_size is None  # reset: asked again from other peers


def test_fake_peer_learns_victim_extension_ids() -> None:
    conn, peer = connect()
    feed(conn, peer.extension_handshake())
    out = peer.parse(conn.send_extension_handshake())
    assert isinstance(out[0], m.Extended) and peer.ext_ids["ut_pex"] == conn.extensions["ut_pex"]


def test_fake_peer_reserved_without_fast_makes_fast_messages_fatal() -> None:
    conn, peer = connect(reserved=Reserved.make(fast=False))
    disconnected(feed(conn, peer.have_all()), DisconnectReason.PROTOCOL_VIOLATION)


def test_floods_keep_memory_flat() -> None:
    """~2 MB of legal-looking floods (haves, suggests, allowed-fast, keep-alives, duplicate interest, ignored
    extended messages, choked requests) through one connection: peak traced memory stays well under 4 MiB."""
    from fuzzkit import peak_memory

    num = 100_000
    conn, peer = connect(Settings(max_invalid_requests=10**9), num_pieces=num)
    conn.send_have_state(Bitfield(num, full=True))
    chunk = b"".join(
        [
            b"".join(m.Have(i).encode() for i in range(0, 2000)),
            b"".join(m.Suggest(i).encode() for i in range(2000)),
            b"".join(m.AllowedFast(i).encode() for i in range(2000)),
            peer.keepalives(2000),
            m.Interested().encode() * 2000,
            m.Extended(99, b"x" * 1000).encode() * 100,
            peer.request_flood(2000),
        ]
    )

    def run() -> None:
        for i in range(8):
            conn.receive_data(chunk, now=float(i))
            while conn.next_event() is not None:
                pass
            conn.data_to_send()

    peak = peak_memory(run)
    assert not conn.closed
    assert peak < 4 * 1024 * 1024, peak
