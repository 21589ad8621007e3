"""Peer wire messages (BEP 3, BEP 6 fast extension, BEP 10 extended, BEP 5 port).

Every message is a frozen, slotted dataclass with ``encode() -> bytes`` giving the full frame (4-byte big-endian
length prefix, 1-byte id, payload). :func:`decode_message` turns ``(msg_id, payload)`` back into a message through
:data:`DECODERS`, a table keyed by id; every payload length and field is checked and a violation raises
:class:`shoal.errors.PeerProtocolError` carrying a ``DisconnectReason`` and a ``ban`` flag.

Fixed payload sizes are in :data:`FIXED_PAYLOAD`; the connection checks them as soon as the 5-byte header has
arrived, so a malformed fixed-size message is refused before its payload is buffered.

The per-block hot path (``Piece`` in, ``Request``/``Piece`` out) does not build these dataclasses: it uses
:func:`encode_request` and :func:`encode_piece_header` and the connection's own ``struct.unpack_from`` parsing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import ClassVar

from shoal.errors import DisconnectReason, PeerProtocolError
from shoal.records import record

CHOKE = 0
UNCHOKE = 1
INTERESTED = 2
NOT_INTERESTED = 3
HAVE = 4
BITFIELD = 5
REQUEST = 6
PIECE = 7
CANCEL = 8
PORT = 9
SUGGEST = 13
HAVE_ALL = 14
HAVE_NONE = 15
REJECT = 16
ALLOWED_FAST = 17
EXTENDED = 20

FAST_IDS = frozenset({SUGGEST, HAVE_ALL, HAVE_NONE, REJECT, ALLOWED_FAST})
"""Ids that are only legal when both sides set the fast-extension bit (BEP 6)."""

FIXED_PAYLOAD: dict[int, int] = {
    CHOKE: 0,
    UNCHOKE: 0,
    INTERESTED: 0,
    NOT_INTERESTED: 0,
    HAVE: 4,
    REQUEST: 12,
    CANCEL: 12,
    PORT: 2,
    SUGGEST: 4,
    HAVE_ALL: 0,
    HAVE_NONE: 0,
    REJECT: 12,
    ALLOWED_FAST: 4,
}
"""Payload length (after the id byte) of every fixed-size message."""

_HDR = struct.Struct(">IB")
_U32 = struct.Struct(">I")
_HAVE = struct.Struct(">IBI")
_REQ = struct.Struct(">IBIII")
_REQ_PAYLOAD = struct.Struct(">III")
_PIECE_HDR = struct.Struct(">IBII")
_PORT = struct.Struct(">IBH")

KEEPALIVE_BYTES = b"\x00\x00\x00\x00"


def _simple(msg_id: int) -> bytes:
    return _HDR.pack(1, msg_id)


REQUEST_FRAME = _REQ  # length 13, id, piece, offset, length: the frame encode_request packs


def encode_request(msg_id: int, piece: int, offset: int, length: int) -> bytes:
    """Frame for request (6), cancel (8) or reject (16)."""
    return _REQ.pack(13, msg_id, piece, offset, length)


def encode_piece_header(piece: int, offset: int, length: int) -> bytes:
    """The 13 bytes before a block of ``length`` bytes in a piece message."""
    return _PIECE_HDR.pack(9 + length, PIECE, piece, offset)


def _violation(
    message: str, reason: DisconnectReason = DisconnectReason.PROTOCOL_VIOLATION
) -> PeerProtocolError:
    return PeerProtocolError(message, reason, ban=False)


class Message:
    """Base of every wire message."""

    __slots__ = ()
    msg_id: ClassVar[int] = -1

    def encode(self) -> bytes:
        raise NotImplementedError


@record
class KeepAlive(Message):
    msg_id: ClassVar[int] = -1

    def encode(self) -> bytes:
        return KEEPALIVE_BYTES


@record
class Choke(Message):
    msg_id: ClassVar[int] = CHOKE

    def encode(self) -> bytes:
        return _simple(CHOKE)


@record
class Unchoke(Message):
    msg_id: ClassVar[int] = UNCHOKE

    def encode(self) -> bytes:
        return _simple(UNCHOKE)


@record
class Interested(Message):
    msg_id: ClassVar[int] = INTERESTED

    def encode(self) -> bytes:
        return _simple(INTERESTED)


@record
class NotInterested(Message):
    msg_id: ClassVar[int] = NOT_INTERESTED

    def encode(self) -> bytes:
        return _simple(NOT_INTERESTED)


@record
class HaveAll(Message):
    msg_id: ClassVar[int] = HAVE_ALL

    def encode(self) -> bytes:
        return _simple(HAVE_ALL)


@record
class HaveNone(Message):
    msg_id: ClassVar[int] = HAVE_NONE

    def encode(self) -> bytes:
        return _simple(HAVE_NONE)


@record
class Have(Message):
    piece: int
    msg_id: ClassVar[int] = HAVE

    def encode(self) -> bytes:
        return _HAVE.pack(5, HAVE, self.piece)


@record
class Suggest(Message):
    piece: int
    msg_id: ClassVar[int] = SUGGEST

    def encode(self) -> bytes:
        return _HAVE.pack(5, SUGGEST, self.piece)


@record
class AllowedFast(Message):
    piece: int
    msg_id: ClassVar[int] = ALLOWED_FAST

    def encode(self) -> bytes:
        return _HAVE.pack(5, ALLOWED_FAST, self.piece)


@record
class Bitfield(Message):
    """The raw wire bitfield; its length is checked against the piece count by the connection."""

    data: bytes
    msg_id: ClassVar[int] = BITFIELD

    def encode(self) -> bytes:
        return _HDR.pack(1 + len(self.data), BITFIELD) + self.data


@record
class Request(Message):
    piece: int
    offset: int
    length: int
    msg_id: ClassVar[int] = REQUEST

    def encode(self) -> bytes:
        return _REQ.pack(13, REQUEST, self.piece, self.offset, self.length)


@record
class Cancel(Message):
    piece: int
    offset: int
    length: int
    msg_id: ClassVar[int] = CANCEL

    def encode(self) -> bytes:
        return _REQ.pack(13, CANCEL, self.piece, self.offset, self.length)


@record
class Reject(Message):
    piece: int
    offset: int
    length: int
    msg_id: ClassVar[int] = REJECT

    def encode(self) -> bytes:
        return _REQ.pack(13, REJECT, self.piece, self.offset, self.length)


@record
class Piece(Message):
    piece: int
    offset: int
    data: bytes
    msg_id: ClassVar[int] = PIECE

    def encode(self) -> bytes:
        return _PIECE_HDR.pack(9 + len(self.data), PIECE, self.piece, self.offset) + self.data


@record
class Port(Message):
    """DHT port (BEP 5)."""

    port: int
    msg_id: ClassVar[int] = PORT

    def encode(self) -> bytes:
        return _PORT.pack(3, PORT, self.port)


@record
class Extended(Message):
    """BEP 10: ``ext_id`` 0 is the extended handshake, others are ids from the receiver's ``m`` map."""

    ext_id: int
    payload: bytes
    msg_id: ClassVar[int] = EXTENDED

    def encode(self) -> bytes:
        return _HDR.pack(2 + len(self.payload), EXTENDED) + bytes((self.ext_id,)) + self.payload


# --- decoding -----------------------------------------------------------------------------------------------

_NO_PAYLOAD: dict[int, Message] = {
    CHOKE: Choke(),
    UNCHOKE: Unchoke(),
    INTERESTED: Interested(),
    NOT_INTERESTED: NotInterested(),
    HAVE_ALL: HaveAll(),
    HAVE_NONE: HaveNone(),
}

_NAMES = {
    CHOKE: "choke",
    UNCHOKE: "unchoke",
    INTERESTED: "interested",
    NOT_INTERESTED: "not interested",
    HAVE: "have",
    BITFIELD: "bitfield",
    REQUEST: "request",
    PIECE: "piece",
    CANCEL: "cancel",
    PORT: "port",
    SUGGEST: "suggest",
    HAVE_ALL: "have all",
    HAVE_NONE: "have none",
    REJECT: "reject",
    ALLOWED_FAST: "allowed fast",
    EXTENDED: "extended",
}


def message_name(msg_id: int) -> str:
    return _NAMES.get(msg_id, f"unknown message id {msg_id}")


def check_payload_length(msg_id: int, length: int) -> None:
    """Raise if a message with id ``msg_id`` cannot have a payload of ``length`` bytes (id byte excluded)."""
    if msg_id not in _NAMES:
        raise _violation(f"unknown message id {msg_id}")
    fixed = FIXED_PAYLOAD.get(msg_id)
    if fixed is not None and length != fixed:
        raise _violation(f"{_NAMES[msg_id]} message with payload of {length} bytes, expected {fixed}")
    if msg_id == PIECE and length < 8:
        raise _violation(f"piece message with payload of {length} bytes, expected at least 8")
    if msg_id == EXTENDED and length < 1:
        raise _violation("extended message without an extended id")


def _decode_fixed(msg_id: int) -> Callable[[bytes], Message]:
    msg = _NO_PAYLOAD[msg_id]
    return lambda payload: msg


def _decode_index(cls: type[Have] | type[Suggest] | type[AllowedFast]) -> Callable[[bytes], Message]:
    return lambda payload: cls(_U32.unpack(payload)[0])


def _decode_triple(cls: type[Request] | type[Cancel] | type[Reject]) -> Callable[[bytes], Message]:
    return lambda payload: cls(*_REQ_PAYLOAD.unpack(payload))


def _decode_piece(payload: bytes) -> Message:
    piece, offset = struct.unpack_from(">II", payload)
    return Piece(piece, offset, payload[8:])


DECODERS: dict[int, Callable[[bytes], Message]] = {
    CHOKE: _decode_fixed(CHOKE),
    UNCHOKE: _decode_fixed(UNCHOKE),
    INTERESTED: _decode_fixed(INTERESTED),
    NOT_INTERESTED: _decode_fixed(NOT_INTERESTED),
    HAVE: _decode_index(Have),
    BITFIELD: lambda payload: Bitfield(payload),
    REQUEST: _decode_triple(Request),
    PIECE: _decode_piece,
    CANCEL: _decode_triple(Cancel),
    PORT: lambda payload: Port(struct.unpack(">H", payload)[0]),
    SUGGEST: _decode_index(Suggest),
    HAVE_ALL: _decode_fixed(HAVE_ALL),
    HAVE_NONE: _decode_fixed(HAVE_NONE),
    REJECT: _decode_triple(Reject),
    ALLOWED_FAST: _decode_index(AllowedFast),
    EXTENDED: lambda payload: Extended(payload[0], payload[1:]),
}
"""Decoder per message id; each takes the payload after the id byte, already length-checked."""


def decode_message(msg_id: int, payload: bytes) -> Message:
    """Decode one message body (``msg_id`` is the byte after the length prefix; -1 means keep-alive)."""
    if msg_id == -1:
        if payload:
            raise _violation("keep-alive with a payload")
        return KeepAlive()
    check_payload_length(msg_id, len(payload))
    return DECODERS[msg_id](bytes(payload))


def decode_frame(frame: bytes) -> Message:
    """Decode one whole frame (length prefix included); for tests and tools, not the hot path."""
    if len(frame) < 4:
        raise _violation(f"frame of {len(frame)} bytes is shorter than a length prefix")
    (length,) = _U32.unpack_from(frame)
    if length != len(frame) - 4:
        raise _violation(f"length prefix {length} does not match frame body of {len(frame) - 4} bytes")
    if length == 0:
        return KeepAlive()
    return decode_message(frame[4], frame[5:])
