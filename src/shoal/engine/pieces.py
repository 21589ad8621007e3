"""Whole pieces assembled in memory, and the smart-ban record of who sent which block.

A piece being downloaded lives in one preallocated ``bytearray``; each arriving block is copied in once (pad
blocks stay zero). When the picker says the last block landed, the whole piece goes to a worker thread for its hash
and a single write, never block by block.

Smart ban: when a piece fails its hash, the SHA-1 of each block and the peer that sent it are remembered. When
the piece later passes, any peer whose remembered block differs from the good one sent corrupt data. A peer that
was the only contributor to a failed piece is guilty at once.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Hashable, Sequence

from shoal.storage.direct_io import aligned_buffer
from shoal.types import BLOCK_SIZE


class PieceBuffer:
    """One piece being assembled."""

    __slots__ = ("data", "epoch", "index", "length", "view")

    def __init__(self, index: int, length: int, data: bytearray | mmap.mmap | None = None) -> None:
        self.index = index
        self.length = length
        self.epoch = 0  # the torrent's retry_epoch when its write was started (see Transfer._piece_written)
        # page-aligned when large: the verified piece is then written with O_DIRECT straight from here
        self.data = aligned_buffer(length) if data is None else data
        self.view = memoryview(self.data)  # blocks are copied in through it (no slice copies)

    def put(self, offset: int, data: bytes | memoryview) -> None:
        self.data[offset : offset + len(data)] = data


def block_hashes(data: bytes | bytearray | mmap.mmap, block_size: int = BLOCK_SIZE) -> list[bytes]:
    view = memoryview(data)
    return [hashlib.sha1(view[i : i + block_size]).digest() for i in range(0, len(data), block_size)]


class SmartBan:
    """Remembers block hashes of failed pieces to find who sent the bad blocks."""

    def __init__(self, max_pieces: int = 256) -> None:
        self._failed: dict[int, list[tuple[Hashable | None, bytes]]] = {}
        self._max = max_pieces

    def record_failure(
        self, index: int, senders: Sequence[Hashable | None], hashes: Sequence[bytes]
    ) -> set[Hashable]:
        """Record a failed piece; returns the peers guilty for sure (the sole contributor, if only one)."""
        if len(self._failed) >= self._max and index not in self._failed:
            self._failed.pop(next(iter(self._failed)))
        self._failed[index] = list(zip(senders, hashes, strict=False))
        who = {s for s in senders if s is not None}
        return who if len(who) == 1 else set()

    def record_success(self, index: int, hashes: Sequence[bytes]) -> set[Hashable]:
        """A piece passed: the peers whose earlier blocks differ from the good ones are guilty."""
        old = self._failed.pop(index, None)
        if old is None:
            return set()
        return {
            sender
            for (sender, bad), good in zip(old, hashes, strict=False)
            if sender is not None and bad != good
        }

    def pending(self, index: int) -> bool:
        return index in self._failed

    def forget_peer(self, peer: Hashable) -> None:
        for entries in self._failed.values():
            for i, (sender, h) in enumerate(entries):
                if sender is peer:
                    entries[i] = (None, h)
