"""Piece availability from what each peer said (sans-IO); used by :class:`shoal.policy.picker.PiecePicker`.

Every peer's claim is stored (a packed bitfield, or "has everything"), so each message is applied as an exact
transition from the previous claim: a second bitfield replaces the first, ``have_all`` after a bitfield removes
the bitfield's counts first, ``have_none`` after ``have_all`` removes the seed, a repeated ``have`` is a no-op,
``dont_have`` of an unclaimed piece is a no-op, and a peer leaving twice is a no-op. Counts therefore never go
negative (reliability case 17).

Peers that have everything are counted once in ``seeds`` instead of per piece, so a seed arriving or leaving
costs O(1). ``counts[i] + seeds`` is the availability of piece ``i``.

The owner is told about changes through two callbacks: ``on_change(piece)`` after a single count moved (a
``have``), and ``on_bulk()`` after many moved at once (a bitfield), so it can re-sort lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from shoal.errors import DisconnectReason, PeerProtocolError
from shoal.policy.bitfield import Bitfield

# For each byte value, the bit offsets (MSB first) that are set.
BITS: tuple[tuple[int, ...], ...] = tuple(tuple(o for o in range(8) if b & (0x80 >> o)) for b in range(256))


class PeerHave:
    """What one peer claims to have."""

    __slots__ = ("all", "bits", "count")

    def __init__(self, nbytes: int) -> None:
        self.all = False
        self.bits = bytearray(nbytes)
        self.count = 0

    def has(self, i: int) -> bool:
        return self.all or bool(self.bits[i >> 3] & (0x80 >> (i & 7)))


def _noop_change(piece: int) -> None:
    return None


def _noop() -> None:
    return None


class Availability:
    """Per-piece counts of peers that have it. See the module docstring."""

    def __init__(
        self,
        num_pieces: int,
        *,
        on_change: Callable[[int], None] = _noop_change,
        on_bulk: Callable[[], None] = _noop,
    ) -> None:
        self.num_pieces = num_pieces
        self.nbytes = (num_pieces + 7) // 8
        self.counts = [0] * num_pieces
        self.seeds = 0
        self.peers: dict[Hashable, PeerHave] = {}
        self._on_change = on_change
        self._on_bulk = on_bulk

    def __getitem__(self, piece: int) -> int:
        return self.counts[piece] + self.seeds

    def get(self, peer: Hashable) -> PeerHave | None:
        return self.peers.get(peer)

    def _peer(self, peer: Hashable) -> PeerHave:
        ph = self.peers.get(peer)
        if ph is None:
            ph = self.peers[peer] = PeerHave(self.nbytes)
        return ph

    def _bulk(self, bits: bytes | bytearray, delta: int) -> None:
        counts = self.counts
        n = 0
        for bi, byte in enumerate(bits):
            if byte:
                base = bi << 3
                for o in BITS[byte]:
                    counts[base + o] += delta
                    n += 1
        if n:
            self._on_bulk()

    def _clear(self, ph: PeerHave) -> None:
        if ph.all:
            ph.all = False
            self.seeds -= 1
        elif ph.count:
            self._bulk(ph.bits, -1)
            ph.bits = bytearray(self.nbytes)
        ph.count = 0

    def _check(self, piece: int, what: str) -> None:
        if not 0 <= piece < self.num_pieces:
            raise PeerProtocolError(f"{what} index {piece} out of range 0..{self.num_pieces - 1}")

    def bitfield(self, peer: Hashable, bits: bytes | bytearray | Bitfield) -> None:
        """A peer's bitfield (wire bytes or a :class:`Bitfield`); replaces anything it said before. Spare bits
        are ignored; a wrong length raises :class:`PeerProtocolError` (``BAD_BITFIELD``)."""
        if isinstance(bits, Bitfield):
            bits = bits.to_bytes()
        if len(bits) != self.nbytes:
            raise PeerProtocolError(
                f"bitfield length {len(bits)} is not {self.nbytes} for {self.num_pieces} pieces",
                DisconnectReason.BAD_BITFIELD,
            )
        ph = self._peer(peer)
        self._clear(ph)
        b = bytearray(bits)
        spare = self.nbytes * 8 - self.num_pieces
        if spare and b:
            b[-1] &= (0xFF << spare) & 0xFF
        count = sum(len(BITS[x]) for x in b)
        if count == self.num_pieces and count:
            ph.all = True
            ph.count = count
            self.seeds += 1
            return
        ph.bits = b
        ph.count = count
        self._bulk(b, +1)

    def have(self, peer: Hashable, piece: int) -> None:
        self._check(piece, "have")
        ph = self._peer(peer)
        if ph.has(piece):
            return
        ph.bits[piece >> 3] |= 0x80 >> (piece & 7)
        ph.count += 1
        self.counts[piece] += 1
        self._on_change(piece)

    def dont_have(self, peer: Hashable, piece: int) -> None:
        self._check(piece, "dont_have")
        ph = self._peer(peer)
        if not ph.has(piece):
            return
        if ph.all:  # a seed that lost one piece becomes a regular peer
            ph.all = False
            self.seeds -= 1
            ph.bits = bytearray(b"\xff" * self.nbytes)
            spare = self.nbytes * 8 - self.num_pieces
            if spare:
                ph.bits[-1] &= (0xFF << spare) & 0xFF
            self._bulk(ph.bits, +1)
        ph.bits[piece >> 3] &= ~(0x80 >> (piece & 7)) & 0xFF
        ph.count -= 1
        self.counts[piece] -= 1
        self._on_change(piece)

    def have_all(self, peer: Hashable) -> None:
        ph = self._peer(peer)
        if ph.all:
            return
        self._clear(ph)
        ph.all = True
        ph.count = self.num_pieces
        self.seeds += 1

    def have_none(self, peer: Hashable) -> None:
        self._clear(self._peer(peer))

    def remove(self, peer: Hashable) -> None:
        ph = self.peers.pop(peer, None)
        if ph is not None:
            self._clear(ph)
