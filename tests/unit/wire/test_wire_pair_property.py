"""Two honest PeerConnections driven by random API calls never see a protocol violation from each other.

This checks that what one side's API lets it send is exactly what the other side's checks accept: request and
reject ledgers, cancels racing with blocks, chokes with and without the fast extension, allowed-fast grants.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import ConnectionPair
from shoal.errors import LocalProtocolError
from shoal.policy.bitfield import Bitfield
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire.handshake import Reserved

NUM = 6
PIECE = 32768
BLOCK = 16384
BLOCKS = [(p, o, BLOCK) for p in range(NUM) for o in (0, BLOCK)]

actions = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "choke",
                "unchoke",
                "allowed_fast",
                "request",
                "cancel",
                "serve",
                "reject",
                "have",
                "deliver",
                "flush",
            ]
        ),
        st.integers(0, len(BLOCKS) - 1),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None, database=None)
@given(actions, st.booleans(), st.booleans())
def test_random_honest_exchanges(steps: list[tuple[str, int]], fast: bool, deliver_each: bool) -> None:
    reserved = Reserved.make(extension=True, fast=fast)
    pair = ConnectionPair(num_pieces=NUM, piece_length=PIECE, reserved_a=reserved, reserved_b=reserved)
    pair.handshake()
    a, b = pair.a, pair.b  # a downloads, b seeds
    to_a = bytearray(b.send_have_state(Bitfield(NUM, full=True)))
    to_b = bytearray(a.send_have_state(Bitfield(NUM)) + a.send(m.Interested()))
    events: list[ev.Event] = []

    def deliver() -> None:
        if to_b:
            events.extend(pair.a_to_b(bytes(to_b)))
            to_b.clear()
        if to_a:
            events.extend(pair.b_to_a(bytes(to_a)))
            to_a.clear()
        to_a.extend(b.data_to_send())
        to_b.extend(a.data_to_send())

    for action, i in steps:
        piece, offset, length = BLOCKS[i]
        if action == "choke":
            to_a += b.send(m.Choke())
        elif action == "unchoke":
            to_a += b.send(m.Unchoke())
        elif action == "allowed_fast" and fast:
            to_a += b.send(m.AllowedFast(piece))
        elif action == "request":
            try:
                to_b += a.request(piece, offset, length)
            except LocalProtocolError:
                assert a.peer_choking or len(a.our_requests) >= a.settings.max_outstanding_requests
        elif action == "cancel":
            to_b += a.cancel(piece, offset, length)
        elif action == "serve":
            for key in b.peer_requests[:2]:
                to_a += b.send_block(key[0], key[1], bytes(key[2]))
        elif action == "reject" and fast and b.peer_requests:
            to_a += b.send(m.Reject(*b.peer_requests[0]))
        elif action == "have":
            to_b += a.send(m.Have(piece))
        elif action == "deliver":
            deliver()
        elif action == "flush":
            deliver()
            deliver()
        if deliver_each:
            deliver()
    deliver()
    deliver()
    bad = [e for e in events if isinstance(e, ev.ProtocolViolation | ev.ConnectionClosed)]
    assert not bad, bad
    assert not a.closed and not b.closed
