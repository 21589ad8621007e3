"""Hostile bytes into a whole PeerConnection: only events come out, never an exception; memory stays bounded.

Random bytes (unstructured), and streams of structurally valid frames with random ids, fields and lengths
(structured, which reaches the state machine past the framing checks), are fed in random chunk sizes after a real
handshake, on both the fast and the non-fast path, with and without a known piece count.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.config import Settings
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire.connection import PeerConnection
from shoal.wire.handshake import Reserved, encode_handshake, make_peer_id

INFO_HASH = bytes(range(20))
LIMITS = Settings(max_message_size=64 * 1024, max_extended_message_size=8 * 1024, max_piece_count=4096)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


def connection(fast: bool, num_pieces: int | None, batches: bool = False) -> PeerConnection:
    rng = random.Random(0)
    conn = PeerConnection(
        INFO_HASH,
        make_peer_id(rng),
        initiator=True,
        num_pieces=num_pieces,
        settings=LIMITS,
        piece_length=32768 if num_pieces else None,
        block_batches=batches,
    )
    conn.initiate()
    conn.receive_data(encode_handshake(INFO_HASH, make_peer_id(rng), Reserved.make(fast=fast)), now=0.0)
    assert isinstance(conn.next_event(), ev.Handshaken)
    return conn


def feed_all(conn: PeerConnection, data: bytes, chunk: int) -> list[ev.Event]:
    events: list[ev.Event] = []
    for i in range(0, len(data), chunk):
        conn.receive_data(data[i : i + chunk], now=float(i))
        while (event := conn.next_event()) is not None:
            assert isinstance(event, ev.Event)
            events.append(event)
        # at most one incomplete message (bounded by the limits) plus a chunk is ever held
        assert conn.buffered_bytes <= LIMITS.max_message_size + 4 + chunk
    conn.data_to_send()
    return events


def check_terminal(events: list[ev.Event]) -> None:
    for event in events[:-1]:
        assert not isinstance(event, ev.ProtocolViolation | ev.ConnectionClosed)


@FUZZ
@given(st.binary(max_size=4096), st.integers(1, 300), st.booleans(), st.sampled_from([None, 10, 1000]))
def test_random_bytes(data: bytes, chunk: int, fast: bool, num_pieces: int | None) -> None:
    check_terminal(feed_all(connection(fast, num_pieces), data, chunk))


IDS = [*range(0, 10), 13, 14, 15, 16, 17, 20]
fields = st.integers(0, 2**32 - 1) | st.integers(0, 20) | st.sampled_from([16384, 16385, 32768])


@st.composite
def frame(draw: st.DrawFn) -> bytes:
    msg_id = draw(st.sampled_from(IDS))
    kind = draw(st.integers(0, 9))
    if kind == 0:  # any payload
        payload = draw(st.binary(max_size=64))
    elif msg_id in (m.REQUEST, m.CANCEL, m.REJECT):
        payload = b"".join(draw(fields).to_bytes(4, "big") for _ in range(3))
    elif msg_id in (m.HAVE, m.SUGGEST, m.ALLOWED_FAST):
        payload = draw(fields).to_bytes(4, "big")
    elif msg_id == m.PIECE and kind == 1:  # one of the blocks the test requested
        payload = bytes(4) + draw(st.sampled_from([0, 16384])).to_bytes(4, "big") + bytes(16384)
    elif msg_id == m.PIECE:
        payload = b"".join(draw(fields).to_bytes(4, "big") for _ in range(2)) + draw(st.binary(max_size=64))
    elif msg_id == m.EXTENDED:
        payload = bytes([draw(st.integers(0, 3))]) + draw(
            st.sampled_from([b"d1:md6:ut_pexi2eee", b"d8:msg_typei0e5:piecei0ee", b"de", b"le"])
            | st.binary(max_size=40)
        )
    elif msg_id == m.BITFIELD:
        payload = draw(st.binary(min_size=0, max_size=3))
    elif msg_id == m.PORT:
        payload = draw(st.binary(min_size=2, max_size=2))
    else:
        payload = b""
    return (len(payload) + 1).to_bytes(4, "big") + bytes([msg_id]) + payload


@FUZZ
@given(
    st.lists(frame(), max_size=40),
    st.integers(1, 200),
    st.booleans(),
    st.sampled_from([None, 10, 20]),
    st.booleans(),
)
def test_structured_frames(
    frames: list[bytes], chunk: int, fast: bool, num_pieces: int | None, batches: bool
) -> None:
    conn = connection(fast, num_pieces, batches)
    conn.receive_data(m.Unchoke().encode())
    conn.next_event()
    # a few requests of our own so that some pieces and rejects are solicited
    for offset in (0, 16384):
        conn.request(0, offset, 16384)
    events = feed_all(conn, b"".join(frames), chunk)
    check_terminal(events)
    delivered = [(e.piece, e.offset, len(e.data)) for e in events if isinstance(e, ev.BlockReceived)]
    for e in events:
        if isinstance(e, ev.BlocksReceived):  # batches (block_batches=True) are checked like single blocks
            delivered += [(p, o, end - start) for p, o, start, end in e.blocks]
    assert sorted(delivered) == sorted(set(delivered))
    assert set(delivered) <= {(0, 0, 16384), (0, 16384, 16384)}
    if num_pieces is None and not conn.closed:
        conn.set_num_pieces(10)
        while conn.next_event() is not None:
            pass


@FUZZ
@given(st.binary(max_size=200), st.integers(1, 70))
def test_random_handshake_bytes(data: bytes, chunk: int) -> None:
    conn = PeerConnection(None, bytes(20), initiator=False, settings=LIMITS)
    events = feed_all(conn, data, chunk)
    check_terminal(events)
    for event in events:
        assert isinstance(event, ev.HandshakeReceived | ev.ProtocolViolation)


@FUZZ
@given(st.binary(max_size=300) | st.builds(lambda b: b"d" + b + b"e", st.binary(max_size=200)))
def test_extension_payload_decoders_raise_only_peer_protocol_error(payload: bytes) -> None:
    from shoal.errors import PeerProtocolError
    from shoal.wire.extension import decode_extension_handshake
    from shoal.wire.metadata import decode_metadata_message
    from shoal.wire.pex import decode_pex

    for decode in (
        lambda p: decode_extension_handshake(p, max_metadata_size=1 << 20, max_reqq=500),
        lambda p: decode_metadata_message(p, max_metadata_size=1 << 20),
        lambda p: decode_pex(p, max_peers=50),
    ):
        try:
            decode(payload)
        except PeerProtocolError:
            pass
