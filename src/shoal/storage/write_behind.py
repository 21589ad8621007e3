"""Write-behind: downloaded data does not pile up in the page cache; the last ``window`` bytes written stay there.

Why: a download writes every byte once and (for a verified piece) has already hashed it from its own buffer, so
keeping it cached only helps a peer that asks for a recent piece soon. Growing the page cache is not free: on the
2-core VM of docs/PERFORMANCE.md, which hands freed memory back to its host at once, writing 1 GiB into a new file
cost 1.4-3.5 s of system time (faulting fresh memory in), against 0.35-0.42 s when each MiB written is handed to
writeback at once and dropped once 64 MiB newer data is written (8 alternated runs, ``pwrite`` of 128 KiB); the
cache then grew by 64 MiB instead of 1 GiB. A machine with less memory than the download keeps its other programs'
cache, too.

How (no system call beyond the standard library): ``posix_fadvise(POSIX_FADV_DONTNEED)`` on a range first starts
writeback of its dirty pages, then drops those of its pages that are clean. So each written span gets one such call
at once (writeback starts; nothing is dropped, the pages are dirty) and a second once ``window`` bytes have been
written after it (by then written back: dropped). A page still under writeback then is simply kept. Advice never
fails a write: an ``OSError`` from it is ignored.

:class:`WriteBehind` is the bookkeeping alone (which spans are now old enough), with no I/O; the storage calls
:func:`advise_dontneed` on what it returns. It is shared by a storage's worker threads, so it has a lock.
"""

from __future__ import annotations

import os
import threading
from collections import deque

_FADVISE = getattr(os, "posix_fadvise", None)
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)

DEFAULT_WINDOW = 64 << 20
"""Bytes of the most recently written data left in the page cache (``Settings.disk_write_behind``)."""


def write_behind_works() -> bool:
    """Whether this platform has ``posix_fadvise`` (Linux, the BSDs; not macOS or Windows)."""
    return _FADVISE is not None


def advise_dontneed(fd: int, offset: int, length: int) -> None:
    """Start writeback of ``[offset, offset + length)`` and drop its clean pages; never raises."""
    if _FADVISE is None or length <= 0:
        return
    try:
        _FADVISE(fd, offset, length, _DONTNEED)
    except OSError:
        pass


class WriteBehind:
    """Spans written, oldest first, until ``window`` newer bytes have followed them."""

    __slots__ = ("_lock", "_spans", "_total", "window")

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 0:
            raise ValueError(f"write-behind window {window} must not be negative")
        self.window = window
        self._lock = threading.Lock()
        # (file index, offset, length); made at the first write (a seeding torrent never writes, and an empty
        # deque is ~600 bytes: issue 7 case 6)
        self._spans: deque[tuple[int, int, int]] | None = None
        self._total = 0

    @property
    def held(self) -> int:
        """Bytes written and not yet returned as old."""
        return self._total

    def written(self, file_index: int, offset: int, length: int) -> list[tuple[int, int, int]]:
        """Record a span just written; return the spans that now have ``window`` newer bytes after them."""
        if length <= 0:
            return []
        old: list[tuple[int, int, int]] = []
        with self._lock:
            spans = self._spans
            if spans is None:
                spans = self._spans = deque()
            spans.append((file_index, offset, length))
            self._total += length
            while spans and self._total - spans[0][2] >= self.window:
                span = spans.popleft()
                self._total -= span[2]
                old.append(span)
        return old
