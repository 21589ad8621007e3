"""``PeerConnection(block_batches=True)``: piece messages that arrive back to back come as one ``BlocksReceived``
with views of the receive buffer, checked exactly like single ``BlockReceived`` events; and ``request_many``."""

from __future__ import annotations

import pytest

from helpers import ConnectionPair, drain
from shoal.config import Settings
from shoal.errors import DisconnectReason, LocalProtocolError
from shoal.policy.bitfield import Bitfield
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire.framing import FrameReader

BLOCK = 16384


def serving(**kw: object) -> ConnectionPair:
    """b has every piece and unchokes a; a reports blocks in batches."""
    pair = ConnectionPair(**kw)  # type: ignore[arg-type]
    pair.handshake()
    pair.a.block_batches = True
    pair.b_to_a(pair.b.send_have_state(Bitfield(10, full=True)) + pair.b.send(m.Unchoke()))
    return pair


def piece(index: int, offset: int, fill: int, length: int = BLOCK) -> bytes:
    return m.Piece(index, offset, bytes([fill]) * length).encode()


def blocks_of(event: ev.Event) -> list[tuple[int, int, bytes]]:
    assert isinstance(event, ev.BlocksReceived), event
    return [(p, o, bytes(event.data[s:e])) for p, o, s, e in event.blocks]


def test_back_to_back_pieces_are_one_event() -> None:
    pair = serving()
    pair.a.request_many([(0, 0, BLOCK), (0, BLOCK, BLOCK), (1, 0, 100)])
    events = pair.b_to_a(piece(0, 0, 1) + piece(0, BLOCK, 2) + piece(1, 0, 3, 100))
    assert len(events) == 1
    assert blocks_of(events[0]) == [(0, 0, b"\1" * BLOCK), (0, BLOCK, b"\2" * BLOCK), (1, 0, b"\3" * 100)]
    assert pair.a.our_requests == []


def test_other_messages_end_a_batch() -> None:
    pair = serving()
    pair.a.request_many([(0, 0, BLOCK), (0, BLOCK, BLOCK)])
    events = pair.b_to_a(piece(0, 0, 1) + m.KEEPALIVE_BYTES + piece(0, BLOCK, 2))
    assert [type(e) for e in events] == [ev.BlocksReceived, ev.KeepAliveReceived, ev.BlocksReceived]
    assert blocks_of(events[2]) == [(0, BLOCK, b"\2" * BLOCK)]


def test_incomplete_piece_waits_for_its_bytes() -> None:
    pair = serving()
    pair.a.request_many([(0, 0, BLOCK), (0, BLOCK, BLOCK)])
    data = piece(0, 0, 1) + piece(0, BLOCK, 2)
    cut = len(data) - 5
    first = pair.b_to_a(data[:cut])
    assert [p for p, _, _ in blocks_of(first[0])] == [0] and len(first) == 1
    assert blocks_of(pair.b_to_a(data[cut:])[0]) == [(0, BLOCK, b"\2" * BLOCK)]


def test_unsolicited_piece_ends_the_batch_then_is_a_violation() -> None:
    pair = serving()
    pair.a.request(0, 0, BLOCK)
    events = pair.b_to_a(piece(0, 0, 1) + piece(5, 0, 2))
    assert blocks_of(events[0]) == [(0, 0, b"\1" * BLOCK)]
    assert isinstance(events[1], ev.ProtocolViolation)
    assert events[1].reason is DisconnectReason.UNSOLICITED_PIECE
    assert len(events) == 2 and drain(pair.a) == []


def test_a_repeated_block_in_one_batch_is_unsolicited() -> None:
    pair = serving()
    pair.a.request(0, 0, BLOCK)
    events = pair.b_to_a(piece(0, 0, 1) + piece(0, 0, 1))
    assert blocks_of(events[0]) == [(0, 0, b"\1" * BLOCK)]
    assert isinstance(events[1], ev.ProtocolViolation)


def test_piece_after_our_cancel_is_accepted_once() -> None:
    pair = serving()
    pair.a.request(0, 0, BLOCK)
    pair.a.cancel(0, 0, BLOCK)
    assert blocks_of(pair.b_to_a(piece(0, 0, 7))[0]) == [(0, 0, b"\7" * BLOCK)]
    event = pair.b_to_a(piece(0, 0, 7))[0]
    assert isinstance(event, ev.ProtocolViolation) and event.reason is DisconnectReason.UNSOLICITED_PIECE


def test_piece_over_the_limit_is_refused_at_its_header() -> None:
    pair = serving()
    pair.a.request(0, 0, BLOCK)
    header = (9 + BLOCK + 1).to_bytes(4, "big") + bytes([m.PIECE]) + bytes(8)
    events = pair.b_to_a(piece(0, 0, 1) + header)
    assert blocks_of(events[0]) == [(0, 0, b"\1" * BLOCK)]
    assert (
        isinstance(events[1], ev.ProtocolViolation) and events[1].reason is DisconnectReason.MESSAGE_TOO_LARGE
    )


def test_take_pieces_takes_the_requested_ones() -> None:
    reader = FrameReader(1 << 20)
    reader.set_payload_limit(m.PIECE, 8 + BLOCK)
    data = piece(2, 0, 1, 10) + piece(2, 10, 2, 10) + piece(2, 20, 3, 10) + m.Have(1).encode()
    reader.feed(data)
    out: list[tuple[int, int, int, int]] = []
    requested: dict[tuple[int, int, int], float] = {(2, 0, 10): 1.0, (5, 0, 10): 2.0}  # the ledger: times
    late: dict[tuple[int, int, int], None] = {(2, 10, 10): None}
    reader.take_pieces(out, requested, late)
    assert [(p, o, e - s) for p, o, s, e in out] == [(2, 0, 10), (2, 10, 10)]  # asked for, then cancelled
    assert requested == {(5, 0, 10): 2.0} and not late
    assert len(reader) == len(data) - 2 * (13 + 10)  # the third, asked for by nobody, is left for next_frame
    frame = reader.next_frame()
    assert frame is not None and frame[0] == m.PIECE
    out.clear()
    reader.take_pieces(out, requested, late)  # a have: nothing taken
    assert not out and reader.next_frame() is not None and len(reader) == 0


def test_request_many_equals_single_requests() -> None:
    pair = serving()
    keys = [(0, 0, BLOCK), (0, BLOCK, BLOCK), (3, 0, BLOCK)]
    out = pair.a.request_many([*keys, keys[0]])  # a repeat inside the batch is sent once
    assert out == b"".join(m.encode_request(m.REQUEST, *k) for k in keys)
    assert pair.a.our_requests == keys
    assert pair.a.request_many(keys) == b""  # all pending already
    assert pair.a_to_b(out) == [ev.BlockRequested(*k) for k in keys]


def test_request_many_is_all_or_nothing() -> None:
    pair = serving(settings=Settings(max_outstanding_requests=3))
    pair.a.request(0, 0, 1)
    with pytest.raises(LocalProtocolError, match="max_outstanding_requests"):
        pair.a.request_many([(0, 1, 1), (0, 2, 1), (0, 3, 1)])  # one past the limit
    assert pair.a.our_requests == [(0, 0, 1)]
    pair.a.request_many([(0, 1, 1), (0, 2, 1)])  # exactly at the limit
    assert len(pair.a.our_requests) == 3


def test_request_many_while_choked_only_allowed_fast() -> None:
    pair = serving()
    pair.b_to_a(pair.b.send(m.Choke()) + pair.b.send(m.AllowedFast(4)))
    assert pair.a.request_many([(4, 0, BLOCK)])
    with pytest.raises(LocalProtocolError, match="chokes us"):
        pair.a.request_many([(4, BLOCK, BLOCK), (5, 0, BLOCK)])
    assert pair.a.our_requests == [(4, 0, BLOCK)]


def test_the_request_ledger_is_the_trackers() -> None:
    """One ledger: the engine's RequestTracker reads the connection's, which enters a request when it is encoded
    (at the time given) and drops it when answered, cancelled, rejected or choked away."""
    from shoal.policy.requests import RequestTracker

    pair = serving()
    tracker = RequestTracker(request_timeout=30.0, snub_timeout=60.0, ledger=pair.a.request_ledger)
    keys = [(0, 0, BLOCK), (0, BLOCK, BLOCK), (1, 0, BLOCK), (2, 0, BLOCK)]
    pair.a.request_many(keys[:2], 5.0)
    pair.a.request_many(keys[2:], 20.0)
    assert len(tracker) == 4 and tracker.next_deadline() == 35.0
    assert tracker.timed_out(40.0) == keys[:2]  # still outstanding: the engine cancels them on the wire
    pair.a.cancel(*keys[0])
    pair.b_to_a(piece(0, BLOCK, 1))
    assert tracker.outstanding() == keys[2:]
    assert pair.a.fast  # BEP 6 both ways: a choke keeps the requests, each is rejected
    pair.b_to_a(pair.b.send(m.Choke()) + m.encode_request(m.REJECT, *keys[2]))
    assert tracker.outstanding() == keys[3:] and tracker.timed_out(1000.0) == keys[3:]
