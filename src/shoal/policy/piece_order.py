"""The order in which the picker starts new pieces: buckets keyed by (priority desc, availability asc).

A piece's key is :func:`order_key` ``(priority, availability)``; smaller keys come first. Each bucket is a plain
list with each piece's position remembered, so adding and removing one piece is O(1) (swap with the last) and
``keys`` (sorted, only non-empty buckets) is short: one per distinct (priority, availability) pair.

After a bulk change (a bitfield moved thousands of counts) the owner sets ``dirty``; while dirty, ``add`` and
``remove`` do nothing and the owner calls :meth:`PieceOrder.rebuild` (O(pieces)) before the next pick.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

PRIO_SHIFT = 24
AVAIL_MASK = (1 << PRIO_SHIFT) - 1
MAX_PRIORITY = 7


def order_key(priority: int, availability: int) -> int:
    return ((MAX_PRIORITY - priority) << PRIO_SHIFT) | min(availability, AVAIL_MASK)


def key_availability(key: int) -> int:
    return key & AVAIL_MASK


class PieceOrder:
    """Buckets of startable pieces. See the module docstring."""

    __slots__ = ("_key", "_pos", "buckets", "dirty", "keys")

    def __init__(self, num_pieces: int) -> None:
        self._key = [-1] * num_pieces
        self._pos = [0] * num_pieces
        self.buckets: dict[int, list[int]] = {}
        self.keys: list[int] = []
        self.dirty = True

    def key_of(self, piece: int) -> int:
        """The piece's key, or -1 when it is not in a bucket (or the order is dirty)."""
        return -1 if self.dirty else self._key[piece]

    def add(self, piece: int, key: int) -> None:
        if self.dirty:
            return
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = []
            bisect.insort(self.keys, key)
        self._key[piece] = key
        self._pos[piece] = len(bucket)
        bucket.append(piece)

    def remove(self, piece: int) -> None:
        key = self._key[piece]
        if key < 0 or self.dirty:
            return
        bucket = self.buckets[key]
        pos = self._pos[piece]
        last = bucket.pop()
        if last != piece:
            bucket[pos] = last
            self._pos[last] = pos
        self._key[piece] = -1
        if not bucket:
            del self.buckets[key]
            del self.keys[bisect.bisect_left(self.keys, key)]

    def rebuild(self, entries: Iterable[tuple[int, int]]) -> None:
        """Replace everything with ``(piece, key)`` entries and clear ``dirty``."""
        buckets: dict[int, list[int]] = {}
        keys = [-1] * len(self._key)
        pos = self._pos
        for piece, key in entries:
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = []
            keys[piece] = key
            pos[piece] = len(bucket)
            bucket.append(piece)
        self._key = keys
        self.buckets = buckets
        self.keys = sorted(buckets)
        self.dirty = False
