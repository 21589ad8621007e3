from __future__ import annotations

import pytest

from shoal.errors import DisconnectReason, PeerProtocolError
from shoal.wire import messages as m

LITERALS: list[tuple[m.Message, bytes]] = [
    (m.KeepAlive(), b"\x00\x00\x00\x00"),
    (m.Choke(), b"\x00\x00\x00\x01\x00"),
    (m.Unchoke(), b"\x00\x00\x00\x01\x01"),
    (m.Interested(), b"\x00\x00\x00\x01\x02"),
    (m.NotInterested(), b"\x00\x00\x00\x01\x03"),
    (m.Have(0x01020304), b"\x00\x00\x00\x05\x04\x01\x02\x03\x04"),
    (m.Bitfield(b"\xf0\x80"), b"\x00\x00\x00\x03\x05\xf0\x80"),
    (
        m.Request(1, 0x4000, 0x4000),
        b"\x00\x00\x00\x0d\x06\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00",
    ),
    (m.Piece(2, 16, b"abc"), b"\x00\x00\x00\x0c\x07\x00\x00\x00\x02\x00\x00\x00\x10abc"),
    (
        m.Cancel(1, 0x4000, 0x4000),
        b"\x00\x00\x00\x0d\x08\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00",
    ),
    (m.Port(6881), b"\x00\x00\x00\x03\x09\x1a\xe1"),
    (m.Suggest(7), b"\x00\x00\x00\x05\x0d\x00\x00\x00\x07"),
    (m.HaveAll(), b"\x00\x00\x00\x01\x0e"),
    (m.HaveNone(), b"\x00\x00\x00\x01\x0f"),
    (m.Reject(1, 2, 3), b"\x00\x00\x00\x0d\x10\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03"),
    (m.AllowedFast(9), b"\x00\x00\x00\x05\x11\x00\x00\x00\x09"),
    (m.Extended(0, b"de"), b"\x00\x00\x00\x04\x14\x00de"),
]


@pytest.mark.parametrize(("msg", "raw"), LITERALS, ids=[type(x).__name__ for x, _ in LITERALS])
def test_encode_literal(msg: m.Message, raw: bytes) -> None:
    assert msg.encode() == raw


@pytest.mark.parametrize(("msg", "raw"), LITERALS, ids=[type(x).__name__ for x, _ in LITERALS])
def test_decode_literal(msg: m.Message, raw: bytes) -> None:
    assert m.decode_frame(raw) == msg


def test_every_id_has_a_decoder_and_a_name() -> None:
    for msg, _ in LITERALS[1:]:
        assert msg.msg_id in m.DECODERS
        assert not m.message_name(msg.msg_id).startswith("unknown")


def test_hot_path_encoders_match_dataclasses() -> None:
    assert m.encode_request(m.REQUEST, 1, 2, 3) == m.Request(1, 2, 3).encode()
    assert m.encode_piece_header(4, 5, 3) + b"xyz" == m.Piece(4, 5, b"xyz").encode()


FIXED = [
    (m.CHOKE, 0),
    (m.UNCHOKE, 0),
    (m.INTERESTED, 0),
    (m.NOT_INTERESTED, 0),
    (m.HAVE, 4),
    (m.REQUEST, 12),
    (m.CANCEL, 12),
    (m.PORT, 2),
    (m.SUGGEST, 4),
    (m.HAVE_ALL, 0),
    (m.HAVE_NONE, 0),
    (m.REJECT, 12),
    (m.ALLOWED_FAST, 4),
]


@pytest.mark.parametrize(("msg_id", "size"), FIXED)
@pytest.mark.parametrize("delta", [-1, 1])
def test_fixed_size_one_off(msg_id: int, size: int, delta: int) -> None:
    """Case 16: have with 3/5 bytes, request with 11/13, choke with a payload, port with 1/3 bytes..."""
    if size + delta < 0:
        return
    with pytest.raises(PeerProtocolError) as info:
        m.decode_message(msg_id, b"\x00" * (size + delta))
    assert info.value.reason is DisconnectReason.PROTOCOL_VIOLATION
    assert not info.value.ban


@pytest.mark.parametrize("msg_id", [10, 11, 12, 18, 19, 21, 99, 255])
def test_unknown_id(msg_id: int) -> None:
    with pytest.raises(PeerProtocolError, match=f"unknown message id {msg_id}"):
        m.decode_message(msg_id, b"")


def test_piece_needs_header() -> None:
    with pytest.raises(PeerProtocolError, match="at least 8"):
        m.decode_message(m.PIECE, b"\x00" * 7)
    assert m.decode_message(m.PIECE, b"\x00" * 8) == m.Piece(0, 0, b"")


def test_extended_needs_id() -> None:
    with pytest.raises(PeerProtocolError, match="extended id"):
        m.decode_message(m.EXTENDED, b"")


def test_frame_length_mismatch() -> None:
    with pytest.raises(PeerProtocolError):
        m.decode_frame(b"\x00\x00\x00\x02\x00")
    with pytest.raises(PeerProtocolError):
        m.decode_frame(b"\x00\x00")
    with pytest.raises(PeerProtocolError):
        m.decode_message(-1, b"x")
