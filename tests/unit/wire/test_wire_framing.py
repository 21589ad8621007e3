from __future__ import annotations

import pytest

from shoal.errors import DisconnectReason, LocalProtocolError, PeerProtocolError
from shoal.wire import messages as m
from shoal.wire.framing import KEEPALIVE_ID, FrameReader


def frames(reader: FrameReader) -> list[tuple[int, bytes]]:
    out = []
    while (frame := reader.next_frame()) is not None:
        msg_id, start, end = frame
        out.append((msg_id, bytes(reader.buffer[start:end])))
    return out


def test_byte_by_byte() -> None:
    reader = FrameReader(1000)
    stream = m.Have(3).encode() + m.KeepAlive().encode() + m.Piece(1, 0, b"data").encode()
    got: list[tuple[int, bytes]] = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        got += frames(reader)
    assert got == [
        (m.HAVE, b"\x00\x00\x00\x03"),
        (KEEPALIVE_ID, b""),
        (m.PIECE, b"\x00\x00\x00\x01\x00\x00\x00\x00data"),
    ]
    assert len(reader) == 0


@pytest.mark.parametrize("prefix", [b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", (1 << 20).to_bytes(4, "big")])
def test_huge_prefix_refused_before_buffering(prefix: bytes) -> None:
    """Case 15: 0xFFFFFFFF, 0x7FFFFFFF, 1 MiB + 1 with a 1 MiB limit: refused from the 4 prefix bytes alone."""
    reader = FrameReader((1 << 20) - 1, capacity=1024)
    reader.feed(prefix)
    with pytest.raises(PeerProtocolError) as info:
        reader.next_frame()
    assert info.value.reason is DisconnectReason.MESSAGE_TOO_LARGE
    assert reader.capacity == 1024


def test_max_message_size_exact_and_one_past() -> None:
    reader = FrameReader(9)
    reader.feed(m.Piece(0, 0, b"").encode() + b"\x00\x00\x00\x0a")
    assert reader.next_frame() is not None
    with pytest.raises(PeerProtocolError, match="exceeds max_message_size 9"):
        reader.next_frame()


def test_payload_limit_checked_at_the_id_byte() -> None:
    reader = FrameReader(1 << 20, capacity=1024)
    reader.set_payload_limit(m.PIECE, 8 + 16384)
    assert reader.payload_limit(m.PIECE) == 8 + 16384 and reader.payload_limit(m.HAVE) == 4
    assert reader.payload_limit(99) is None
    with pytest.raises(LocalProtocolError):
        reader.set_payload_limit(m.HAVE, 10)
    reader.feed((8 + 16384 + 1 + 1).to_bytes(4, "big") + bytes([m.PIECE]))
    with pytest.raises(PeerProtocolError, match="exceeds limit 16392") as info:
        reader.next_frame()
    assert info.value.reason is DisconnectReason.MESSAGE_TOO_LARGE
    assert reader.capacity == 1024


def test_fixed_size_checked_at_the_id_byte() -> None:
    reader = FrameReader(1 << 20)
    reader.feed(b"\x00\x00\x01\x00\x04")  # have with a 255-byte payload, none of it sent yet
    with pytest.raises(PeerProtocolError, match="have message"):
        reader.next_frame()


def test_unknown_id_at_the_id_byte() -> None:
    reader = FrameReader(1 << 20)
    reader.feed(b"\x00\x00\x00\x01\x63")
    with pytest.raises(PeerProtocolError, match="unknown message id 99"):
        reader.next_frame()


def test_buffer_grows_for_a_large_message_and_shrinks_after() -> None:
    reader = FrameReader(1 << 22, capacity=1024)
    big = m.Bitfield(b"\xff" * 100_000).encode()
    reader.feed(big)
    assert frames(reader) == [(m.BITFIELD, b"\xff" * 100_000)]
    reader.feed(m.Have(1).encode())
    assert reader.capacity <= 16 * 1024  # shrunk back once the big message was consumed
    assert frames(reader) == [(m.HAVE, b"\x00\x00\x00\x01")]
    reader.trim()
    assert reader.capacity == 0
    reader.feed(m.Have(2).encode())
    assert frames(reader) == [(m.HAVE, b"\x00\x00\x00\x02")]


def test_read_size_follows_the_peer() -> None:
    reader = FrameReader(1 << 20)
    assert len(reader.get_buffer()) >= 4096
    sizes = []
    for _ in range(8):  # a fast peer fills every read
        view = reader.get_buffer()
        n = len(view)
        view[:n] = bytes(n)  # zero-length keep-alives: consumed below
        del view
        reader.buffer_updated(n)
        sizes.append(n)
        while reader.next_frame() is not None:
            pass
    assert sizes[-1] >= 256 * 1024 > sizes[0]
    for _ in range(8):  # then goes quiet: tiny reads shrink it again
        view = reader.get_buffer()
        view[:4] = bytes(4)
        del view
        reader.buffer_updated(4)
        assert reader.next_frame() is not None
    assert reader.capacity <= 64 * 1024
    reader.trim()
    assert reader.capacity == 0
    assert len(reader.get_buffer()) >= 4096


def test_compaction_keeps_partial_message() -> None:
    reader = FrameReader(1 << 20, capacity=64)
    stream = b"".join(m.Have(i).encode() for i in range(100))
    got = []
    for i in range(0, len(stream), 7):
        reader.feed(stream[i : i + 7])
        got += frames(reader)
    assert [int.from_bytes(p, "big") for _, p in got] == list(range(100))
    assert reader.capacity == 64


def test_get_buffer_and_buffer_updated() -> None:
    reader = FrameReader(1 << 20, capacity=16)
    data = m.Have(5).encode() * 3
    view = reader.get_buffer(-1)
    assert len(view) >= len(data)
    view[: len(data)] = data
    reader.buffer_updated(len(data))
    del view
    assert [p for _, p in frames(reader)] == [b"\x00\x00\x00\x05"] * 3
    reader.feed(b"\x00")  # growing or compacting never fails because of an exported view
    view = reader.get_buffer(1 << 17)
    assert len(view) >= 1 << 17
    reader.feed(b"\x00" * 10)


def test_take_and_peek() -> None:
    reader = FrameReader(100)
    reader.feed(b"abc")
    assert reader.peek(2) == b"ab"
    assert reader.take(4) is None
    assert reader.take(3) == b"abc"
    assert len(reader) == 0


def test_a_quiet_reader_gives_its_buffer_back_between_messages() -> None:
    """Issue 7 case 5: after its messages are dealt with, a quiet connection holds no receive buffer."""
    reader = FrameReader(1 << 20)
    view = reader.get_buffer()
    msg = m.Have(7).encode()
    view[: len(msg)] = msg
    reader.buffer_updated(len(msg))
    frame = reader.next_frame()
    assert frame is not None
    payload = memoryview(reader.buffer)[frame[1] : frame[2]]
    reader.release_if_quiet()
    assert reader.capacity == 0
    assert bytes(payload) == b"\x00\x00\x00\x07"  # a view of the old buffer still reads what it read
    assert len(reader.get_buffer()) >= 4096  # the next read allocates again
    reader.buffer_updated(0)


def test_a_reader_keeps_a_partial_message_and_a_streaming_peer_keeps_its_buffer() -> None:
    reader = FrameReader(1 << 20)
    reader.feed(m.Have(1).encode()[:5])
    reader.release_if_quiet()
    assert len(reader) == 5 and reader.capacity > 0  # half a message: kept
    reader.feed(m.Have(1).encode()[5:])
    assert frames(reader) == [(m.HAVE, b"\x00\x00\x00\x01")]
    for _ in range(4):  # a fast peer fills every read: the read size grows past the minimum
        view = reader.get_buffer()
        n = len(view)
        view[:n] = bytes(n)
        del view
        reader.buffer_updated(n)
        while reader.next_frame() is not None:
            pass
    capacity = reader.capacity
    reader.release_if_quiet()
    assert reader.capacity == capacity  # still streaming: no new buffer for every read


def test_readers_share_their_default_limits_until_one_changes_them() -> None:
    a = FrameReader(1 << 20)
    b = FrameReader(1 << 20)
    a.set_payload_limit(m.PIECE, 8 + 16384)
    assert a.payload_limit(m.PIECE) == 8 + 16384
    assert b.payload_limit(m.PIECE) == 1 << 20  # b's limits are its own
    assert FrameReader(1 << 20).payload_limit(m.PIECE) == 1 << 20
    assert FrameReader(1000).payload_limit(m.PIECE) == 1000  # tables per max_message_size
    b.feed((8 + 16384 + 2).to_bytes(4, "big") + bytes([m.PIECE]))
    assert b.next_frame() is None  # within b's limit: waits for the payload
    a.feed((8 + 16384 + 2).to_bytes(4, "big") + bytes([m.PIECE]))
    with pytest.raises(PeerProtocolError, match="exceeds limit 16392"):
        a.next_frame()
