"""Issue 7: an idle peer connection costs little memory (goal: under 50 KiB per idle peer)."""

from __future__ import annotations

from fuzzkit import peak_memory
from helpers import ConnectionPair
from shoal.policy.bitfield import Bitfield

PAIRS = 100


def test_idle_connection_memory() -> None:
    pairs: list[ConnectionPair] = []

    def build() -> None:
        for i in range(PAIRS):
            pair = ConnectionPair(num_pieces=1000, piece_length=1 << 20, seed=i)
            pair.handshake()
            pair.b_to_a(pair.b.send_have_state(Bitfield(1000, full=True)) + pair.b.send_extension_handshake())
            pair.a_to_b(pair.a.send_have_state(Bitfield(1000)) + pair.a.send_extension_handshake())
            pair.a.handle_timer(1.0)  # timers fire on quiet connections and release the receive buffer
            pair.b.handle_timer(1.0)
            pairs.append(pair)

    peak = peak_memory(build)
    per_connection = peak / (2 * PAIRS)
    assert per_connection < 20 * 1024, per_connection


def test_a_connection_whose_events_are_handled_holds_no_receive_buffer() -> None:
    """The engine calls ``release_idle_buffer`` after each read's events: an idle connection then keeps no receive
    buffer at all (not only once a timer fires), and the next message is read as before."""
    from shoal.wire import events as ev
    from shoal.wire import messages as m

    pair = ConnectionPair(num_pieces=1000, piece_length=1 << 20)
    pair.handshake()
    pair.b_to_a(pair.b.send_have_state(Bitfield(1000)))
    for conn in (pair.a, pair.b):
        conn.release_idle_buffer()
        assert conn._reader.capacity == 0
    events = pair.b_to_a(pair.b.send(m.Have(5)))
    assert [type(e) for e in events] == [ev.HaveReceived]
    pair.a.release_idle_buffer()
    assert pair.a._reader.capacity == 0
    pair.a.receive_data(pair.b.send(m.Have(6))[:3], now=0.0)  # part of a message: kept
    pair.a.release_idle_buffer()
    assert len(pair.a._reader) == 3


def test_a_peer_we_upload_to_keeps_its_receive_buffer_until_it_is_choked() -> None:
    """Interested and unchoked, a peer asks again soon: its buffer stays (no allocation per request); choked or
    not interested, it is an idle peer again and gives the buffer back."""
    from shoal.wire import messages as m

    pair = ConnectionPair(num_pieces=1000, piece_length=1 << 20)
    pair.handshake()
    pair.b_to_a(pair.b.send_have_state(Bitfield(1000)))
    pair.b_to_a(pair.b.send(m.Interested()))
    pair.a.send(m.Unchoke())
    pair.b_to_a(pair.b.send(m.Have(5)))
    pair.a.release_idle_buffer()
    assert pair.a._reader.capacity > 0
    pair.a.send(m.Choke())
    pair.a.release_idle_buffer()
    assert pair.a._reader.capacity == 0
    pair.a.send(m.Unchoke())
    pair.b_to_a(pair.b.send(m.NotInterested()))
    pair.a.release_idle_buffer()
    assert pair.a._reader.capacity == 0
