from __future__ import annotations

import random

import pytest

from helpers import INFO_HASH, ConnectionPair, drain
from shoal.config import Settings
from shoal.errors import DisconnectReason, LocalProtocolError
from shoal.policy.bitfield import Bitfield
from shoal.types import PeerAddr
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire.connection import PeerConnection
from shoal.wire.extension import encode_extension_handshake
from shoal.wire.handshake import Reserved, encode_handshake, make_peer_id
from shoal.wire.metadata import MetadataData, MetadataReject, MetadataRequest, encode_metadata_message
from shoal.wire.pex import PexPeer, encode_pex

NO_FAST = Reserved.make(extension=True, fast=False)
BLOCK = 16384


def opened(**kw: object) -> ConnectionPair:
    pair = ConnectionPair(**kw)  # type: ignore[arg-type]
    pair.handshake()
    return pair


def violation(events: list[ev.Event]) -> ev.ProtocolViolation:
    assert events, "expected a violation"
    last = events[-1]
    assert isinstance(last, ev.ProtocolViolation), events
    return last


# --- handshake ------------------------------------------------------------------------------------------------


def test_handshake_both_sides() -> None:
    pair = ConnectionPair()
    a_events, b_events = pair.handshake()
    assert isinstance(b_events[0], ev.HandshakeReceived)
    assert b_events[0].info_hash == INFO_HASH
    assert b_events[0].reserved.fast and b_events[0].reserved.extension
    assert a_events == [ev.Handshaken(pair.b.our_peer_id, pair.b.reserved, INFO_HASH)]
    assert b_events[1] == ev.Handshaken(pair.a.our_peer_id, pair.a.reserved, INFO_HASH)
    assert pair.a.fast and pair.b.fast and pair.a.supports_extensions
    assert pair.a.state == pair.b.state == "open"


def test_fast_needs_both_bits() -> None:
    pair = opened(reserved_b=NO_FAST)
    assert not pair.a.fast and not pair.b.fast


def test_peer_id_format() -> None:
    pid = make_peer_id(random.Random(7))
    assert pid.startswith(b"-SH0100-") and len(pid) == 20
    assert pid == make_peer_id(random.Random(7))


def test_initiator_wrong_info_hash() -> None:
    pair = ConnectionPair()
    pair.a.initiate()
    other = encode_handshake(b"\x01" * 20, b"-XX0000-" + bytes(12), Reserved.make())
    event = violation(pair.b_to_a(other))
    assert event.reason is DisconnectReason.WRONG_INFO_HASH


def test_acceptor_with_known_info_hash_refuses_another() -> None:
    conn = PeerConnection(INFO_HASH, make_peer_id(random.Random(1)), initiator=False)
    conn.receive_data(encode_handshake(b"\x02" * 20, bytes(20), Reserved.make()))
    assert violation(drain(conn)).reason is DisconnectReason.WRONG_INFO_HASH


def test_info_hash_event_before_peer_id() -> None:
    """The listener routes on the first 48 bytes; the peer id may come later."""
    conn = PeerConnection(None, make_peer_id(random.Random(1)), initiator=False)
    hs = encode_handshake(INFO_HASH, b"-XX0000-" + bytes(12), Reserved.make())
    conn.receive_data(hs[:48])
    events = drain(conn)
    assert events == [ev.HandshakeReceived(INFO_HASH, Reserved.make())]
    conn.accept(INFO_HASH, 4)
    assert drain(conn) == []
    conn.receive_data(hs[48:])
    assert isinstance(drain(conn)[0], ev.Handshaken)


def test_self_connection() -> None:
    pid = make_peer_id(random.Random(1))
    conn = PeerConnection(INFO_HASH, pid, initiator=True)
    conn.initiate()
    conn.receive_data(encode_handshake(INFO_HASH, pid, Reserved.make()))
    assert violation(drain(conn)).reason is DisconnectReason.SELF_CONNECTION


@pytest.mark.parametrize("garbage", [b"\x13BitTorrent protocoX", b"\x14", b"GET / HTTP/1.1\r\n"])
def test_bad_protocol_string_refused_early(garbage: bytes) -> None:
    conn = PeerConnection(None, make_peer_id(random.Random(1)), initiator=False)
    conn.receive_data(garbage)
    assert violation(drain(conn)).reason is DisconnectReason.BAD_HANDSHAKE


def test_api_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        PeerConnection(None, bytes(20), initiator=True)
    conn = PeerConnection(None, bytes(20), initiator=False)
    with pytest.raises(LocalProtocolError):
        conn.initiate()
    with pytest.raises(LocalProtocolError):
        conn.accept(INFO_HASH)
    with pytest.raises(LocalProtocolError):
        conn.send(m.Interested())


# --- choke, interest, pieces sets ------------------------------------------------------------------------------


def test_flags_and_events_only_on_change() -> None:
    pair = opened()
    events = pair.b_to_a(
        pair.b.send(m.Unchoke())
        + pair.b.send(m.Unchoke())
        + pair.b.send(m.Interested())
        + m.Interested().encode()
    )
    assert events == [ev.PeerUnchoked(), ev.PeerInterested()]
    assert (
        not pair.a.peer_choking and pair.a.peer_interested and not pair.b.am_choking and pair.b.am_interested
    )
    events = pair.b_to_a(pair.b.send(m.Choke()) + pair.b.send(m.NotInterested()))
    assert events == [ev.PeerChoked(), ev.PeerNotInterested()]


def test_bitfield_and_haves() -> None:
    pair = opened()
    bf = Bitfield.from_string("x  x      ")
    events = pair.b_to_a(pair.b.send_have_state(bf) + pair.b.send(m.Have(5)) + m.Have(5).encode())
    assert events == [ev.BitfieldReceived(Bitfield.from_string("x  x      ")), ev.HaveReceived(5)]
    assert pair.a.peer_bitfield == Bitfield.from_string("x  x x    ")


def test_have_state_uses_have_all_and_have_none_with_fast() -> None:
    pair = opened()
    assert pair.b.send_have_state(Bitfield(10, full=True)) == m.HaveAll().encode()
    pair = opened()
    assert pair.b.send_have_state(Bitfield(10)) == m.HaveNone().encode()
    pair = opened(reserved_b=NO_FAST)
    assert pair.b.send_have_state(Bitfield(10)) == b""
    assert pair.b.send_have_state(Bitfield(10, full=True)) == m.Bitfield(b"\xff\xc0").encode()


@pytest.mark.parametrize(
    "raw",
    [
        m.Bitfield(b"\xff").encode(),  # 1 byte short for 10 pieces
        m.Bitfield(b"\xff\xc0\x00").encode(),  # 1 byte long
        m.Bitfield(b"\xff\xe0").encode(),  # spare bit 10 set
    ],
)
def test_bad_bitfield(raw: bytes) -> None:
    pair = opened()
    event = violation(pair.b_to_a(raw))
    assert event.reason in (DisconnectReason.BAD_BITFIELD, DisconnectReason.MESSAGE_TOO_LARGE)
    assert not event.ban


def test_second_piece_set_message_is_merged() -> None:
    # Tolerated (aria2 1.36 sends one; see engine interop tests): the sets are merged, not a violation.
    pair = opened()
    events = pair.b_to_a(m.HaveNone().encode() + m.Bitfield(b"\x00\x00").encode())
    assert events == [ev.BitfieldReceived(Bitfield(10))]  # the second changed nothing: no event
    events = pair.b_to_a(m.Bitfield(b"\x80\x40").encode() + m.HaveNone().encode())
    assert events == [ev.BitfieldReceived(Bitfield.from_string("x        x"))]
    assert pair.a.peer_bitfield == Bitfield.from_string("x        x") and not pair.a.closed


def test_magnet_second_bitfield_merged() -> None:
    pair = opened(num_pieces=None, piece_length=None)
    pair.b_to_a(m.Bitfield(b"\x80").encode() + m.Bitfield(b"\x20").encode())
    pair.a.set_num_pieces(3)
    assert drain(pair.a) == [ev.BitfieldReceived(Bitfield.from_string("x x"))]


def test_have_out_of_range() -> None:
    pair = opened()
    pair.b_to_a(m.Have(9).encode())
    assert "out of range" in violation(pair.b_to_a(m.Have(10).encode())).message


@pytest.mark.parametrize(
    "msg", [m.HaveAll(), m.HaveNone(), m.Suggest(1), m.AllowedFast(1), m.Reject(0, 0, BLOCK)], ids=repr
)
def test_fast_messages_without_fast(msg: m.Message) -> None:
    pair = opened(reserved_b=NO_FAST)
    assert "without the fast extension" in violation(pair.b_to_a(msg.encode())).message


def test_suggest_and_allowed_fast() -> None:
    pair = opened()
    events = pair.b_to_a(m.Suggest(3).encode() + m.AllowedFast(4).encode() + m.AllowedFast(4).encode())
    assert events == [ev.Suggested(3), ev.AllowedFastReceived(4)]
    assert pair.a.allowed_fast == {4}
    assert pair.a.request(4, 0, BLOCK)  # allowed while choked
    with pytest.raises(LocalProtocolError):
        pair.a.request(3, 0, BLOCK)
    assert violation(pair.b_to_a(m.Suggest(10).encode())).reason is DisconnectReason.PROTOCOL_VIOLATION


def test_allowed_fast_sets_are_per_connection() -> None:
    """Both allowed-fast sets start as one shared empty frozenset (memory, issue 7): the first piece gives a
    connection a set of its own, in either direction, and no other connection sees it."""
    one, other = opened(), opened()
    for pair in (one, other):
        pair.b.send_have_state(Bitfield(10, full=True))
    one.b_to_a(m.AllowedFast(4).encode())
    one.b.send(m.AllowedFast(2))  # b lets a request piece 2 while b chokes a
    assert one.a.allowed_fast == {4}
    assert other.a.allowed_fast == frozenset() and other.b.allowed_fast == frozenset()
    with pytest.raises(LocalProtocolError):
        other.a.request(4, 0, BLOCK)  # choked, and 4 is allowed only on the other connection
    one.b.data_to_send()
    assert one.a_to_b(m.Request(2, 0, BLOCK).encode())  # accepted while choked
    assert other.a_to_b(m.Request(2, 0, BLOCK).encode()) == []
    assert other.b.data_to_send() == m.Reject(2, 0, BLOCK).encode()  # refused: not allowed fast there


def test_allowed_fast_flood_is_bounded() -> None:
    pair = opened(settings=Settings(max_allowed_fast_received=2), num_pieces=100)
    events = pair.b_to_a(b"".join(m.AllowedFast(i).encode() for i in range(50)))
    assert events == [ev.AllowedFastReceived(0), ev.AllowedFastReceived(1)]


def test_port() -> None:
    pair = opened()
    assert pair.b_to_a(m.Port(6881).encode()) == [ev.DhtPortReceived(6881)]


def test_keepalive() -> None:
    pair = opened()
    assert pair.b_to_a(m.KeepAlive().encode() * 3) == [ev.KeepAliveReceived()] * 3


def test_unknown_message_id() -> None:
    pair = opened()
    assert "unknown message id 99" in violation(pair.b_to_a(b"\x00\x00\x00\x01\x63")).message


def test_oversized_prefix_after_handshake() -> None:
    pair = opened()
    assert violation(pair.b_to_a(b"\xff\xff\xff\xff")).reason is DisconnectReason.MESSAGE_TOO_LARGE


def test_events_stop_after_violation() -> None:
    pair = opened()
    events = pair.b_to_a(b"\x00\x00\x00\x01\x63" + m.Unchoke().encode())
    assert len(events) == 1 and pair.a.closed
    pair.a.receive_data(m.Unchoke().encode())
    assert pair.a.next_event() is None


# --- requests from the peer (we serve) ------------------------------------------------------------------------


def serving(**kw: object) -> ConnectionPair:
    """b has every piece and unchokes a."""
    pair = opened(**kw)
    pair.b_to_a(pair.b.send_have_state(Bitfield(10, full=True)) + pair.b.send(m.Unchoke()))
    return pair


def test_request_served_and_block_delivered() -> None:
    pair = serving()
    assert pair.a_to_b(pair.a.request(1, BLOCK, BLOCK)) == [ev.BlockRequested(1, BLOCK, BLOCK)]
    assert pair.b.peer_requests == [(1, BLOCK, BLOCK)]
    assert pair.b_to_a(pair.b.send_block(1, BLOCK, b"z" * BLOCK)) == [
        ev.BlockReceived(1, BLOCK, b"z" * BLOCK)
    ]
    assert pair.a.our_requests == [] and pair.b.peer_requests == []


@pytest.mark.parametrize(
    ("req", "text"),
    [
        ((10, 0, BLOCK), "out of range"),  # piece one past the last
        ((0, 0, 0), "not in 1..max_request_length"),
        ((0, 0, BLOCK + 1), "not in 1..max_request_length"),  # one past max_request_length
        ((0, 32768 - BLOCK + 1, BLOCK), "past the end"),  # one byte past the piece
        ((9, 1, BLOCK), "past the end"),  # the last piece is one block: one byte past it
    ],
)
def test_invalid_requests(req: tuple[int, int, int], text: str) -> None:
    pair = serving(total_length=9 * 32768 + BLOCK)
    event = violation(pair.a_to_b(m.Request(*req).encode()))
    assert event.reason is DisconnectReason.INVALID_REQUEST and text in event.message


def test_request_while_choked_is_rejected_with_fast() -> None:
    pair = opened()
    pair.b_to_a(pair.b.send_have_state(Bitfield(10, full=True)))
    assert pair.a_to_b(m.Request(0, 0, BLOCK).encode()) == []
    assert pair.b.data_to_send() == m.Reject(0, 0, BLOCK).encode()
    assert pair.b.invalid_requests == 1


def test_request_while_choked_is_ignored_without_fast() -> None:
    pair = opened(reserved_b=NO_FAST)
    pair.b_to_a(pair.b.send_have_state(Bitfield(10, full=True)))
    assert pair.a_to_b(m.Request(0, 0, BLOCK).encode()) == []
    assert pair.b.data_to_send() == b""


def test_allowed_fast_request_while_choked_is_served() -> None:
    pair = opened()
    pair.b_to_a(pair.b.send_have_state(Bitfield(10, full=True)) + pair.b.send(m.AllowedFast(2)))
    assert pair.a_to_b(pair.a.request(2, 0, BLOCK)) == [ev.BlockRequested(2, 0, BLOCK)]


def test_request_for_piece_not_advertised() -> None:
    pair = opened()
    pair.b_to_a(pair.b.send_have_state(Bitfield.from_string("x         ")) + pair.b.send(m.Unchoke()))
    assert pair.a_to_b(m.Request(1, 0, BLOCK).encode()) == []
    assert pair.b.data_to_send() == m.Reject(1, 0, BLOCK).encode()


def test_duplicate_request_ignored() -> None:
    pair = serving()
    assert len(pair.a_to_b(m.Request(0, 0, BLOCK).encode() * 2)) == 1


def test_max_pending_requests_one_past() -> None:
    pair = serving(settings=Settings(max_pending_requests=4), num_pieces=10)
    events = pair.a_to_b(b"".join(m.Request(0, 0, 1 + i).encode() for i in range(5)))
    assert len(events) == 4 and len(pair.b.peer_requests) == 4
    assert pair.b.data_to_send() == m.Reject(0, 0, 5).encode()


def test_max_invalid_requests_one_past() -> None:
    pair = opened(settings=Settings(max_invalid_requests=3))
    pair.b_to_a(pair.b.send_have_state(Bitfield(10, full=True)))
    assert pair.a_to_b(b"".join(m.Request(0, 0, 1 + i).encode() for i in range(3))) == []
    event = violation(pair.a_to_b(m.Request(0, 0, 9).encode()))
    assert event.reason is DisconnectReason.TOO_MANY_REQUESTS


def test_cancel() -> None:
    pair = serving()
    pair.a_to_b(pair.a.request(0, 0, BLOCK))
    assert pair.a_to_b(pair.a.cancel(0, 0, BLOCK)) == [ev.RequestCancelled(0, 0, BLOCK)]
    assert pair.b.send_block(0, 0, b"x" * BLOCK) == b""
    assert pair.b.data_to_send() == m.Reject(0, 0, BLOCK).encode()  # BEP 6: every request gets one answer
    assert pair.b_to_a(m.Reject(0, 0, BLOCK).encode()) == []  # the answer to our cancel: silent
    assert "never requested" in violation(pair.b_to_a(m.Reject(0, 0, BLOCK).encode())).message
    pair = serving()
    assert pair.a_to_b(m.Cancel(5, 0, BLOCK).encode()) == []  # cancel of nothing: ignored


def test_choke_rejects_pending_with_fast() -> None:
    pair = serving()
    pair.b.send(m.AllowedFast(3))
    pair.a_to_b(pair.a.request(0, 0, BLOCK) + pair.a.request(3, 0, BLOCK))
    out = pair.b.send(m.Choke())
    assert out == m.Choke().encode() + m.Reject(0, 0, BLOCK).encode()
    assert pair.b.peer_requests == [(3, 0, BLOCK)]
    assert pair.b_to_a(out) == [ev.PeerChoked(), ev.Rejected(0, 0, BLOCK)]


def test_choke_drops_pending_without_fast() -> None:
    pair = serving(reserved_b=NO_FAST)
    pair.a_to_b(pair.a.request(0, 0, BLOCK))
    out = pair.b.send(m.Choke())
    assert out == m.Choke().encode() and pair.b.peer_requests == []
    assert pair.b_to_a(out) == [ev.PeerChoked(((0, 0, BLOCK),))]
    assert pair.a.our_requests == []
    # a late answer to a request lost to the choke is still accepted
    assert pair.b_to_a(m.Piece(0, 0, b"x" * BLOCK).encode()) == [ev.BlockReceived(0, 0, b"x" * BLOCK)]


# --- pieces from the peer (we download) ------------------------------------------------------------------------


def test_unsolicited_piece() -> None:
    pair = serving()
    event = violation(pair.b_to_a(m.Piece(0, 0, b"x" * BLOCK).encode()))
    assert event.reason is DisconnectReason.UNSOLICITED_PIECE


def test_piece_of_wrong_length_is_unsolicited() -> None:
    pair = serving()
    pair.a.request(0, 0, BLOCK)
    assert (
        violation(pair.b_to_a(m.Piece(0, 0, b"x" * 100).encode())).reason
        is DisconnectReason.UNSOLICITED_PIECE
    )


def test_piece_after_our_cancel_is_accepted_once() -> None:
    pair = serving()
    pair.a.request(0, 0, BLOCK)
    pair.a.cancel(0, 0, BLOCK)
    block = m.Piece(0, 0, b"x" * BLOCK).encode()
    assert pair.b_to_a(block) == [ev.BlockReceived(0, 0, b"x" * BLOCK)]
    assert violation(pair.b_to_a(block)).reason is DisconnectReason.UNSOLICITED_PIECE


def test_piece_bigger_than_max_request_length_refused_at_header() -> None:
    pair = serving()
    header = (9 + BLOCK + 1).to_bytes(4, "big") + bytes([m.PIECE])
    assert violation(pair.b_to_a(header)).reason is DisconnectReason.MESSAGE_TOO_LARGE


def test_reject_of_never_requested() -> None:
    pair = serving()
    assert "never requested" in violation(pair.b_to_a(m.Reject(0, 0, BLOCK).encode())).message


def test_our_request_limits() -> None:
    pair = serving(settings=Settings(max_outstanding_requests=2))
    pair.a.request(0, 0, 1)
    pair.a.request(0, 1, 1)
    with pytest.raises(LocalProtocolError, match="max_outstanding_requests"):
        pair.a.request(0, 2, 1)
    assert pair.a.cancel(5, 0, 1) == b""


def test_send_piece_dataclass_needs_request() -> None:
    pair = serving()
    with pytest.raises(LocalProtocolError):
        pair.b.send(m.Piece(0, 0, b"x"))
    pair.a_to_b(pair.a.request(0, 0, 1))
    assert pair.b.send(m.Piece(0, 0, b"x")) == m.Piece(0, 0, b"x").encode()


# --- extension protocol --------------------------------------------------------------------------------------


def test_extension_handshake_exchange() -> None:
    pair = opened(metadata_size=1234)
    events = pair.a_to_b(pair.a.send_extension_handshake(p=6881, yourip=b"\x7f\x00\x00\x01"))
    (event,) = events
    assert isinstance(event, ev.ExtensionHandshaken)
    hs = event.handshake
    assert hs.m == {"ut_metadata": 1, "ut_pex": 2} and hs.p == 6881 and hs.metadata_size == 1234
    assert hs.reqq == 500 and hs.yourip == b"\x7f\x00\x00\x01" and hs.v == "Shoal 0.1.0"
    assert pair.b.peer_extension_id("ut_pex") == 2


def test_extended_message_without_bit() -> None:
    pair = opened(reserved_b=Reserved.make(extension=False, fast=True))
    assert "extension protocol bit" in violation(pair.b_to_a(m.Extended(0, b"de").encode())).message
    with pytest.raises(LocalProtocolError):
        pair.b.send_extension_handshake()


def test_unknown_extended_message_ignored() -> None:
    pair = opened()
    assert pair.b_to_a(m.Extended(77, b"whatever").encode()) == []


def test_extended_handshake_garbage_is_a_violation() -> None:
    pair = opened()
    assert (
        violation(pair.b_to_a(m.Extended(0, b"li1ee").encode())).reason is DisconnectReason.PROTOCOL_VIOLATION
    )


def test_extended_message_size_one_past() -> None:
    pair = opened(settings=Settings(max_extended_message_size=100))
    assert pair.b_to_a(m.Extended(77, b"x" * 99).encode()) == []
    assert (
        violation(pair.b_to_a(m.Extended(77, b"x" * 100).encode())).reason
        is DisconnectReason.MESSAGE_TOO_LARGE
    )


def exchange_ext(pair: ConnectionPair) -> None:
    pair.b_to_a(pair.b.send_extension_handshake())
    pair.a_to_b(pair.a.send_extension_handshake())


def test_metadata_messages_through_connection() -> None:
    pair = opened()
    exchange_ext(pair)
    assert pair.a_to_b(pair.a.send_metadata(MetadataRequest(0))) == [ev.MetadataRequested(0)]
    assert pair.b_to_a(pair.b.send_metadata(MetadataData(0, 5, b"hello"))) == [
        ev.MetadataPieceReceived(0, 5, b"hello")
    ]
    assert pair.b_to_a(pair.b.send_metadata(MetadataReject(1))) == [ev.MetadataRejected(1)]
    bad = encode_metadata_message(MetadataData(0, 5, b"hell"))
    assert violation(pair.b_to_a(pair.b.send_extended("ut_metadata", bad))).reason is (
        DisconnectReason.PROTOCOL_VIOLATION
    )


def test_pex_through_connection_rate_limited() -> None:
    pair = opened()
    exchange_ext(pair)
    payload = encode_pex([PexPeer(PeerAddr("1.2.3.4", 5), 2)], [PeerAddr("5.6.7.8", 9)])
    assert pair.b_to_a(pair.b.send_pex(payload)) == [
        ev.PexReceived((PexPeer(PeerAddr("1.2.3.4", 5), 2),), (PeerAddr("5.6.7.8", 9),))
    ]
    assert pair.b_to_a(pair.b.send_pex(payload)) == []  # a second one within a minute is dropped
    pair.a.receive_data(pair.b.send_pex(payload), now=60.0)
    assert isinstance(pair.a.next_event(), ev.PexReceived)


def test_extension_handshake_updates_map() -> None:
    pair = opened()
    exchange_ext(pair)
    update = encode_extension_handshake({"ut_pex": 0, "ut_holepunch": 4} | {"ut_metadata": 3}, v=None)
    pair.b_to_a(m.Extended(0, update).encode())
    assert pair.a.peer_extensions.m == {"ut_metadata": 3, "ut_holepunch": 4}
    assert pair.a.peer_extensions.v == "Shoal 0.1.0"
    with pytest.raises(LocalProtocolError):
        pair.a.send_pex(b"de")


def test_custom_extension_delivered_raw() -> None:
    pair = ConnectionPair()
    pair.a.extensions["lt_donthave"] = 7
    pair.handshake()
    assert pair.b_to_a(m.Extended(7, b"\x00\x00\x00\x01").encode()) == [
        ev.ExtendedReceived("lt_donthave", b"\x00\x00\x00\x01")
    ]


# --- magnets: piece count unknown until metadata arrives ------------------------------------------------------


def test_magnet_bitfield_checked_when_metadata_arrives() -> None:
    pair = opened(num_pieces=None, piece_length=None)
    assert pair.a.peer_bitfield is None
    assert pair.b_to_a(m.Bitfield(b"\xa0").encode() + m.Have(1).encode()) == [ev.HaveReceived(1)]
    pair.a.set_num_pieces(3, piece_length=16384, total_length=40000)
    assert drain(pair.a) == [ev.BitfieldReceived(Bitfield.from_string("xxx"))]
    assert pair.a.piece_size(2) == 40000 - 2 * 16384


def test_magnet_bad_bitfield_reported_when_metadata_arrives() -> None:
    pair = opened(num_pieces=None, piece_length=None)
    pair.b_to_a(m.Bitfield(b"\xa0\x00").encode())
    pair.a.set_num_pieces(3)
    assert violation(drain(pair.a)).reason is DisconnectReason.BAD_BITFIELD


def test_magnet_have_all_and_out_of_range_have() -> None:
    pair = opened(num_pieces=None, piece_length=None)
    pair.b_to_a(m.HaveAll().encode())
    pair.a.set_num_pieces(3)
    assert drain(pair.a) == [ev.BitfieldReceived(Bitfield(3, full=True))]
    pair = opened(num_pieces=None, piece_length=None)
    pair.b_to_a(m.Have(3).encode())
    pair.a.set_num_pieces(3)
    assert "out of range" in violation(drain(pair.a)).message


# --- end of stream and timers -----------------------------------------------------------------------------------


def test_eof_after_buffered_messages() -> None:
    pair = opened()
    pair.a.receive_data(m.Unchoke().encode())
    pair.a.receive_data(b"")
    assert drain(pair.a) == [ev.PeerUnchoked(), ev.ConnectionClosed(DisconnectReason.CLOSED_BY_PEER)]
    assert pair.a.get_timer() is None


def test_eof_during_handshake() -> None:
    conn = PeerConnection(None, bytes(20), initiator=False)
    conn.receive_data(b"\x13Bit")
    conn.receive_data(b"")
    assert drain(conn) == [ev.ConnectionClosed(DisconnectReason.CLOSED_BY_PEER)]


def test_handshake_timeout() -> None:
    s = Settings(handshake_timeout=20.0)
    conn = PeerConnection(None, bytes(20), initiator=False, settings=s, now=100.0)
    conn.receive_data(b"\x13BitTorrent", now=101.0)
    assert conn.get_timer() == 120.0
    assert conn.handle_timer(119.0) == b""
    assert conn.next_event() is None
    conn.handle_timer(120.0)
    assert drain(conn) == [ev.ConnectionClosed(DisconnectReason.TIMEOUT)]


def test_keepalive_and_inactivity() -> None:
    s = Settings(keepalive_interval=60.0, peer_inactivity_timeout=120.0)
    pair = ConnectionPair(settings=s)
    pair.handshake()
    a = pair.a
    assert a.get_timer() == 60.0
    assert a.handle_timer(59.0) == b""
    assert a.handle_timer(60.0) == m.KeepAlive().encode()
    assert a.get_timer() == 120.0
    a.receive_data(m.KeepAlive().encode(), now=110.0)
    assert drain(a) == [ev.KeepAliveReceived()]
    assert a.handle_timer(120.0) == m.KeepAlive().encode()
    assert a.get_timer() == 180.0
    assert a.handle_timer(229.0) == m.KeepAlive().encode()
    a.handle_timer(230.0)
    assert drain(a) == [ev.ConnectionClosed(DisconnectReason.INACTIVE)]
    assert a.handle_timer(231.0) == b""


def test_receive_without_now_counts_at_next_timer() -> None:
    s = Settings(keepalive_interval=1000.0, peer_inactivity_timeout=120.0)
    pair = ConnectionPair(settings=s)
    pair.handshake()
    pair.a.receive_data(m.KeepAlive().encode())
    assert drain(pair.a) == [ev.KeepAliveReceived()]
    pair.a.handle_timer(100.0)
    assert pair.a.get_timer() == 220.0


def test_drip_feed_times_out() -> None:
    """Case 21: one byte every 30 s never completes a message, so the inactivity timeout still fires."""
    s = Settings(keepalive_interval=1000.0, peer_inactivity_timeout=120.0)
    pair = ConnectionPair(settings=s)
    pair.handshake()
    frame = m.Have(1).encode()
    for i, byte in enumerate(frame[:4]):
        pair.a.receive_data(bytes([byte]), now=30.0 * (i + 1))
        assert drain(pair.a) == []
        pair.a.handle_timer(30.0 * (i + 1))
    assert drain(pair.a) == [ev.ConnectionClosed(DisconnectReason.INACTIVE)]


def test_accept_must_match_the_info_hash_asked_for() -> None:
    conn = PeerConnection(None, bytes(20), initiator=False)
    conn.receive_data(encode_handshake(INFO_HASH, b"-XX0000-" + bytes(12), Reserved.make()))
    assert isinstance(conn.next_event(), ev.HandshakeReceived)
    with pytest.raises(LocalProtocolError, match="peer asked for"):
        conn.accept(b"\x05" * 20, 4)
    with pytest.raises(LocalProtocolError, match="needs the info-hash"):
        conn.accept()
    assert conn.accept(INFO_HASH, 4)[28:48] == INFO_HASH


def test_magnet_bitfield_limited_by_max_piece_count_one_past() -> None:
    pair = opened(num_pieces=None, piece_length=None, settings=Settings(max_piece_count=16))
    assert pair.b_to_a(m.Bitfield(b"\xff\xff").encode()) == []
    pair = opened(num_pieces=None, piece_length=None, settings=Settings(max_piece_count=16))
    assert (
        violation(pair.b_to_a(m.Bitfield(b"\xff\xff\x00").encode())).reason
        is DisconnectReason.MESSAGE_TOO_LARGE
    )


def test_magnet_haves_bounded_by_max_piece_count_one_past() -> None:
    pair = opened(num_pieces=None, piece_length=None, settings=Settings(max_piece_count=11))
    events = pair.b_to_a(b"".join(m.Have(i).encode() for i in (7, 8, 9, 10, 7)))
    assert events == [ev.HaveReceived(7), ev.HaveReceived(8), ev.HaveReceived(9), ev.HaveReceived(10)]
    assert "beyond max_piece_count 11" in violation(pair.b_to_a(m.Have(11).encode())).message


@pytest.mark.parametrize(
    ("have", "ok"), [(0, True), (8, True), (9, True), (10, False), (15, False), (16, False)]
)
def test_magnet_have_range_checked_when_metadata_arrives(have: int, ok: bool) -> None:
    pair = opened(num_pieces=None, piece_length=None)
    pair.b_to_a(m.Have(have).encode())
    pair.a.set_num_pieces(10)
    events = drain(pair.a)
    if ok:
        assert events == [ev.BitfieldReceived(Bitfield.from_indices(10, [have]))]
    else:
        assert "out of range" in violation(events).message


def test_duplicate_request_is_a_no_op() -> None:
    pair = serving()
    assert pair.a.request(0, 0, BLOCK)
    assert pair.a.request(0, 0, BLOCK) == b""
    assert pair.a.our_requests == [(0, 0, BLOCK)]


def test_invalid_request_count_resets_on_unchoke() -> None:
    pair = opened(settings=Settings(max_invalid_requests=3))
    pair.b_to_a(pair.b.send_have_state(Bitfield(10, full=True)))
    for round_ in range(3):
        assert pair.a_to_b(b"".join(m.Request(0, 0, 1 + i + 10 * round_).encode() for i in range(3))) == []
        assert pair.b.invalid_requests == 3
        pair.b.send(m.Unchoke())
        assert pair.b.invalid_requests == 0
        pair.b.send(m.Choke())
    assert not pair.b.closed


def test_magnet_have_state_then_metadata_then_have() -> None:
    pair = opened(num_pieces=None, piece_length=None)
    assert pair.a.send_have_state(Bitfield(0)) == m.HaveNone().encode()
    pair.a.set_num_pieces(4)
    assert drain(pair.a) == [ev.BitfieldReceived(Bitfield(4))]
    assert pair.a.send(m.Have(2)) == m.Have(2).encode()
    pair = opened(num_pieces=None, piece_length=None, reserved_b=NO_FAST)
    assert pair.a.send_have_state(Bitfield(0)) == b""


def test_nothing_to_serve_after_close() -> None:
    pair = serving()
    pair.a_to_b(pair.a.request(0, 0, BLOCK))
    pair.b.receive_data(b"\x00\x00\x00\x01\x63")
    assert violation(drain(pair.b)).reason is DisconnectReason.PROTOCOL_VIOLATION
    assert pair.b.send_block(0, 0, bytes(BLOCK)) == b""
    assert pair.b.data_to_send() == b""
    with pytest.raises(LocalProtocolError):
        pair.b.send(m.Have(1))


def test_magnet_raw_bitfield_spelling_all_is_not_have_all() -> None:
    pair = opened(num_pieces=None, piece_length=None)
    pair.b_to_a(m.Bitfield(b"all").encode())
    pair.a.set_num_pieces(24)
    assert drain(pair.a) == [ev.BitfieldReceived(Bitfield.from_bytes(b"all", 24))]
