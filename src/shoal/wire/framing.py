"""Incremental length-prefix framing for the peer wire, with size limits checked before buffering.

:class:`FrameReader` keeps one ``bytearray`` with a read position and a write position. Bytes come in through
:meth:`FrameReader.feed` (a copy into free space) or, with no copy at all, through :meth:`FrameReader.get_buffer` and
:meth:`FrameReader.buffer_updated` (the ``asyncio.BufferedProtocol`` shape). Consumed bytes are never shifted one
message at a time: the unread tail is moved to the front only when the free space runs out, so the work is
O(bytes received). The buffer is replaced (never resized in place) when it must grow, so a memoryview handed out
by :meth:`get_buffer` never blocks it; it shrinks back after a large message has been consumed.

A length prefix above ``max_message_size`` is refused as soon as its 4 bytes arrive, and a payload longer than the
limit for its message id (:meth:`FrameReader.set_payload_limit`; fixed sizes from :data:`shoal.wire.messages.FIXED_PAYLOAD`) as soon
as the id byte arrives, so a hostile prefix never makes the buffer grow.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from shoal.errors import DisconnectReason, LocalProtocolError, PeerProtocolError
from shoal.wire.messages import EXTENDED, FIXED_PAYLOAD, PIECE, REQUEST, check_payload_length, message_name

_U32 = struct.Struct(">I")
_PIECE_HEAD = struct.Struct(">IBII")

DEFAULT_CAPACITY = 4 * 1024
"""Initial (and idle) buffer size: an idle peer costs a few KiB (issue 7: under 50 KiB per idle peer)."""
MIN_READ_SPACE = 4 * 1024
MAX_READ_SPACE = 256 * 1024
"""Reads offered by :meth:`FrameReader.get_buffer` double while they come back full, up to this."""

_TABLE = EXTENDED + 1
"""Message ids 0..20 have table entries; every higher id is unknown."""

KEEPALIVE_ID = -1
"""``msg_id`` reported by :meth:`FrameReader.next_frame` for a keep-alive (zero-length message)."""


@functools.cache
def _tables(max_message_size: int) -> tuple[list[int], list[int]]:
    """The default [lo, hi] payload-length tables for ``max_message_size`` (see :class:`FrameReader`)."""
    lo = [0] * _TABLE
    hi = [-1] * _TABLE
    for msg_id in range(_TABLE):
        name = message_name(msg_id)
        if not name.startswith("unknown"):
            fixed = FIXED_PAYLOAD.get(msg_id)
            lo[msg_id] = (
                fixed if fixed is not None else (8 if msg_id == PIECE else 1 if msg_id == EXTENDED else 0)
            )
            hi[msg_id] = fixed if fixed is not None else max_message_size
    return lo, hi


class FrameReader:
    """Length-prefixed frames out of a byte stream.

    ``next_frame()`` returns ``(msg_id, payload_start, payload_end)``: the payload is
    ``reader.buffer[payload_start:payload_end]`` and stays valid until the next call to ``feed``/``get_buffer``.
    """

    __slots__ = (
        "_capacity",
        "_end",
        "_hi",
        "_lo",
        "_offered",
        "_read_size",
        "_start",
        "buffer",
        "max_message_size",
    )

    def __init__(self, max_message_size: int, *, capacity: int = DEFAULT_CAPACITY) -> None:
        self.max_message_size = max_message_size
        # Allowed payload length (after the id byte) per id, as [lo, hi] tables indexed by id: one range check per
        # frame. Unknown ids have hi = -1; fixed-size messages lo = hi; others are limited by set_payload_limit.
        # Both are shared by every reader with this max_message_size until set_payload_limit copies ``_hi``.
        self._lo, self._hi = _tables(max_message_size)
        self._capacity = capacity
        self._read_size = MIN_READ_SPACE
        self._offered = 0
        self.buffer = bytearray(capacity)
        self._start = 0
        self._end = 0

    def set_payload_limit(self, msg_id: int, limit: int) -> None:
        """Refuse payloads (after the id byte) longer than ``limit`` for message ``msg_id``."""
        if msg_id in FIXED_PAYLOAD or not 0 <= msg_id < _TABLE or self._hi[msg_id] < 0:
            raise LocalProtocolError(f"message id {msg_id} has a fixed size or is unknown")
        if self._hi is _tables(self.max_message_size)[1]:
            self._hi = list(self._hi)  # this reader's own limits from now on
        self._hi[msg_id] = min(limit, self.max_message_size)

    def payload_limit(self, msg_id: int) -> int | None:
        """The longest payload accepted for ``msg_id`` (None for an unknown id)."""
        return self._hi[msg_id] if 0 <= msg_id < _TABLE and self._hi[msg_id] >= 0 else None

    def __len__(self) -> int:
        """Bytes received and not yet consumed."""
        return self._end - self._start

    @property
    def capacity(self) -> int:
        return len(self.buffer)

    # --- input ---------------------------------------------------------------------------------------------

    def _make_room(self, n: int) -> None:
        live = self._end - self._start
        need = live + n
        buf = self.buffer
        cap = len(buf)
        oversized = cap > 4 * self._capacity and need <= self._capacity
        if need <= cap and not oversized:
            buf[:live] = buf[self._start : self._end]  # same-size slice assignment: never resizes
        else:
            grown = max(need, min(2 * cap, self.max_message_size + 4 + self._capacity))
            new = bytearray(grown if need > cap else self._capacity)
            new[:live] = buf[self._start : self._end]
            self.buffer = new
        self._start = 0
        self._end = live

    def _adapt(self, nbytes: int, filled: bool) -> None:
        """Follow the peer's pace: double the read size after a full read, halve it after a small one."""
        size = self._read_size
        if filled:
            self._read_size = min(2 * size, MAX_READ_SPACE)
        elif nbytes < size // 8:
            self._read_size = max(size // 2, MIN_READ_SPACE)

    def _reset_if_empty(self) -> None:
        if self._start == self._end:
            self._start = self._end = 0
            keep = max(self._read_size, self._capacity)
            if len(self.buffer) > 4 * keep:
                self.buffer = bytearray(keep)

    def trim(self) -> None:
        """Give memory back when nothing is buffered (call when the connection goes quiet)."""
        if self._start == self._end:
            self._start = self._end = 0
            self._read_size = MIN_READ_SPACE
            if self.buffer:
                self.buffer = bytearray()  # the next read allocates what it needs

    def release_if_quiet(self) -> None:
        """Give the buffer back when nothing is buffered and the peer's reads are small (a quiet peer, between its
        messages): an idle connection then holds no receive buffer, and its next read allocates one of
        :data:`MIN_READ_SPACE`. A peer that streams (reads that fill the buffer) keeps its buffer. Call only
        after every frame handed out has been dealt with; a view of the old buffer stays valid, as it is not
        reused."""
        if self._start == self._end and self._read_size == MIN_READ_SPACE and self.buffer:
            self._start = self._end = 0
            self.buffer = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (copied once into the buffer)."""
        n = len(data)
        self._adapt(n, n >= self._read_size)
        self._reset_if_empty()
        end = self._end
        if end + n > len(self.buffer):
            self._make_room(n)
            end = self._end
        self.buffer[end : end + n] = data
        self._end = end + n

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Free space to receive into directly (``asyncio.BufferedProtocol.get_buffer``)."""
        want = max(sizehint, self._read_size)
        self._reset_if_empty()
        if len(self.buffer) - self._end < want:
            self._make_room(want)
        self._offered = len(self.buffer) - self._end
        return memoryview(self.buffer)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written at the start of the view from :meth:`get_buffer`."""
        if nbytes < 0 or self._end + nbytes > len(self.buffer):
            raise LocalProtocolError(f"buffer_updated({nbytes}) exceeds the space handed out")
        self._end += nbytes
        self._adapt(nbytes, nbytes >= self._offered)

    # --- output --------------------------------------------------------------------------------------------

    def peek(self, n: int) -> bytes:
        """Up to ``n`` unread bytes, not consumed."""
        return bytes(self.buffer[self._start : min(self._start + n, self._end)])

    def take(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes (consumed), or None if fewer have arrived."""
        if self._end - self._start < n:
            return None
        start = self._start
        self._start = start + n
        return bytes(self.buffer[start : start + n])

    def next_frame(self) -> tuple[int, int, int] | None:
        """The next complete frame as ``(msg_id, payload_start, payload_end)``, or None if incomplete.

        Raises :class:`PeerProtocolError` for a length over ``max_message_size``, an unknown id, a fixed-size
        message of the wrong size or a payload over its limit, before the payload is buffered.
        """
        start = self._start
        avail = self._end - start
        if avail < 4:
            return None
        buf = self.buffer
        (length,) = _U32.unpack_from(buf, start)
        if length == 0:
            self._start = start + 4
            return (KEEPALIVE_ID, start + 4, start + 4)
        if length > self.max_message_size:
            raise PeerProtocolError(
                f"message length {length} exceeds max_message_size {self.max_message_size}",
                DisconnectReason.MESSAGE_TOO_LARGE,
            )
        if avail < 5:
            return None
        msg_id = buf[start + 4]
        if msg_id >= _TABLE or not self._lo[msg_id] <= length - 1 <= self._hi[msg_id]:
            self._refuse(msg_id, length - 1)
        if avail < 4 + length:
            return None
        self._start = end = start + 4 + length
        return (msg_id, start + 5, end)

    def take_pieces(
        self, out: list[tuple[int, int, int, int]], requested: dict[Any, float], late: dict[Any, None]
    ) -> None:
        """Consume the complete piece messages at the read position that answer a request: appends ``(piece,
        offset, block_start, block_end)`` for each to ``out``, and removes its ``(piece, offset, length)`` from
        ``requested`` (or, a block we cancelled, from ``late``).

        Stops at the first frame that is anything else (another id, incomplete, shorter than a piece header, over
        the piece payload limit, or a block nobody asked for); :meth:`next_frame` then reads and checks it as
        usual. The batched block path of the connection: one call and one loop per read, not per block.
        """
        buf = self.buffer
        pos = self._start
        stop = self._end
        longest = min(self._hi[PIECE] + 1, self.max_message_size)  # message length = id byte + payload
        unpack = _PIECE_HEAD.unpack_from
        append = out.append
        pop = requested.pop  # its values are times, never None: pop(key, None) is None when key is not there
        while stop - pos >= 13:
            length, msg_id, piece, offset = unpack(buf, pos)
            end = pos + 4 + length
            if msg_id != PIECE or not 9 <= length <= longest or end > stop:
                break
            if pop((piece, offset, length - 9), None) is None:  # one lookup, not ``in`` and ``del``
                key = (piece, offset, length - 9)
                if key not in late:
                    break
                del late[key]
            append((piece, offset, pos + 13, end))
            pos = end
        self._start = pos

    def next_request(self) -> int | None:
        """If the next frame is a complete request message, consume it and return where its 12-byte payload
        starts; else None, nothing consumed (:meth:`next_frame` then reads it as usual). The batched request path
        of the connection: a seeder reads runs of requests without building a frame tuple for each."""
        start = self._start
        if self._end - start < 17:
            return None
        buf = self.buffer
        if (
            buf[start + 4] != REQUEST
            or buf[start + 3] != 13
            or buf[start]
            or buf[start + 1]
            or buf[start + 2]
        ):
            return None
        self._start = start + 17
        return start + 5

    def _refuse(self, msg_id: int, payload_length: int) -> None:
        check_payload_length(msg_id, payload_length)  # unknown ids, fixed sizes and minimum sizes
        limit = self._hi[msg_id]  # check_payload_length has refused ids outside the table
        if payload_length > limit:
            raise PeerProtocolError(
                f"{message_name(msg_id)} message with payload of {payload_length} bytes exceeds limit {limit}",
                DisconnectReason.MESSAGE_TOO_LARGE,
            )
