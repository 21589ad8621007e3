"""A compact piece bitfield (BEP 3): bit ``i`` of the big-endian bit string is piece ``i``.

The high bit of byte 0 is piece 0. A wire bitfield is exactly ``ceil(num_pieces / 8)`` bytes and its spare bits
(past the last piece) must be zero; :meth:`Bitfield.from_bytes` checks both and raises
:class:`shoal.errors.PeerProtocolError` with ``DisconnectReason.BAD_BITFIELD``.

Counting and set operations go through ``int.from_bytes`` so they run in C, never bit by bit in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from shoal.errors import DisconnectReason, LocalProtocolError, PeerProtocolError

_BIT = tuple(0x80 >> i for i in range(8))
_POSITIONS = tuple(tuple(i for i in range(8) if byte & (0x80 >> i)) for byte in range(256))
"""Set bit offsets (MSB first) of every byte value, so iteration never tests bits one by one."""


def bitfield_size(num_pieces: int) -> int:
    """Bytes in the wire bitfield of a torrent with ``num_pieces`` pieces."""
    return (num_pieces + 7) >> 3


class Bitfield:
    """A mutable set of piece indices in ``range(num_pieces)`` with a cached count."""

    __slots__ = ("_bits", "_count", "num_pieces")

    def __init__(self, num_pieces: int, *, full: bool = False) -> None:
        if num_pieces < 0:
            raise LocalProtocolError(f"num_pieces {num_pieces} is negative")
        self.num_pieces = num_pieces
        self._bits = bytearray(bitfield_size(num_pieces))
        self._count = 0
        if full:
            self.set_all()

    # --- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, num_pieces: int) -> Bitfield:
        """Parse a wire bitfield, checking its length and that the spare bits are clear."""
        expected = bitfield_size(num_pieces)
        if len(data) != expected:
            raise PeerProtocolError(
                f"bitfield of {len(data)} bytes does not match {expected} bytes for {num_pieces} pieces",
                DisconnectReason.BAD_BITFIELD,
            )
        spare = expected * 8 - num_pieces
        if spare and data[-1] & ((1 << spare) - 1):
            raise PeerProtocolError(
                f"bitfield has spare bits set past piece {num_pieces - 1}", DisconnectReason.BAD_BITFIELD
            )
        bf = cls(num_pieces)
        bf._bits[:] = data
        bf._count = int.from_bytes(bf._bits, "big").bit_count()
        return bf

    @classmethod
    def from_indices(cls, num_pieces: int, indices: Iterable[int]) -> Bitfield:
        bf = cls(num_pieces)
        for i in indices:
            bf.add(i)
        return bf

    @classmethod
    def from_string(cls, pattern: str) -> Bitfield:
        """Test fixture form: ``"x  x"`` or ``"1001"`` (``x``/``1`` = have)."""
        return cls.from_indices(len(pattern), (i for i, c in enumerate(pattern) if c in "x1"))

    def copy(self) -> Bitfield:
        bf = Bitfield(0)
        bf.num_pieces = self.num_pieces
        bf._bits = bytearray(self._bits)
        bf._count = self._count
        return bf

    # --- queries --------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.num_pieces

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int) or not 0 <= index < self.num_pieces:
            return False
        return bool(self._bits[index >> 3] & _BIT[index & 7])

    def has(self, index: int) -> bool:
        return index in self

    @property
    def count(self) -> int:
        """Number of pieces set."""
        return self._count

    @property
    def is_full(self) -> bool:
        return self._count == self.num_pieces

    @property
    def is_empty(self) -> bool:
        return self._count == 0

    def __iter__(self) -> Iterator[int]:
        """Set indices in ascending order."""
        positions = _POSITIONS
        for byte_index, byte in enumerate(self._bits):
            if byte:
                base = byte_index << 3
                for offset in positions[byte]:
                    yield base + offset

    def missing(self) -> Iterator[int]:
        """Clear indices in ascending order."""
        inverse = self.inverted()
        return iter(inverse)

    def to_bytes(self) -> bytes:
        return bytes(self._bits)

    def to_string(self) -> str:
        return "".join("x" if i in self else " " for i in range(self.num_pieces))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bitfield):
            return NotImplemented
        return self.num_pieces == other.num_pieces and self._bits == other._bits

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Bitfield({self.num_pieces}, count={self._count})"

    # --- updates --------------------------------------------------------------------------------------------

    def _check(self, index: int) -> None:
        if not 0 <= index < self.num_pieces:
            raise LocalProtocolError(f"piece index {index} out of range 0..{self.num_pieces - 1}")

    def add(self, index: int) -> bool:
        """Set piece ``index``; return True if it was newly set."""
        self._check(index)
        i, bit = index >> 3, _BIT[index & 7]
        byte = self._bits[i]
        if byte & bit:
            return False
        self._bits[i] = byte | bit
        self._count += 1
        return True

    def discard(self, index: int) -> bool:
        """Clear piece ``index``; return True if it was set."""
        self._check(index)
        i, bit = index >> 3, _BIT[index & 7]
        byte = self._bits[i]
        if not byte & bit:
            return False
        self._bits[i] = byte & ~bit & 0xFF
        self._count -= 1
        return True

    def set_all(self) -> None:
        n = self.num_pieces
        self._bits[:] = b"\xff" * len(self._bits)
        spare = len(self._bits) * 8 - n
        if spare:
            self._bits[-1] = (0xFF << spare) & 0xFF
        self._count = n

    def clear_all(self) -> None:
        self._bits[:] = bytes(len(self._bits))
        self._count = 0

    # --- set operations (in C through big ints) ------------------------------------------------------------

    def _as_int(self) -> int:
        return int.from_bytes(self._bits, "big")

    def _from_int(self, value: int) -> Bitfield:
        bf = Bitfield(0)
        bf.num_pieces = self.num_pieces
        bf._bits = bytearray(value.to_bytes(len(self._bits), "big"))
        bf._count = value.bit_count()
        return bf

    def _same_size(self, other: Bitfield) -> None:
        if other.num_pieces != self.num_pieces:
            raise LocalProtocolError(f"bitfield sizes differ: {self.num_pieces} and {other.num_pieces}")

    def inverted(self) -> Bitfield:
        full = Bitfield(self.num_pieces, full=True)._as_int()
        return self._from_int(full & ~self._as_int())

    def __and__(self, other: Bitfield) -> Bitfield:
        self._same_size(other)
        return self._from_int(self._as_int() & other._as_int())

    def __or__(self, other: Bitfield) -> Bitfield:
        self._same_size(other)
        return self._from_int(self._as_int() | other._as_int())

    def __sub__(self, other: Bitfield) -> Bitfield:
        """Pieces in ``self`` that are not in ``other`` (e.g. what a peer has that we lack)."""
        self._same_size(other)
        return self._from_int(self._as_int() & ~other._as_int())

    def has_any_of(self, other: Bitfield) -> bool:
        """True if ``self`` and ``other`` share a piece (``bool(a & b)`` without building a bitfield)."""
        self._same_size(other)
        return bool(self._as_int() & other._as_int())
