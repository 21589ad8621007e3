"""A bounded LRU of open file descriptors, shared by a storage's worker threads: an entry in use is never closed
under its user (reference counts); one forgotten while in use is closed when its last user releases it."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable


class FdCache:
    """Bounded LRU of open descriptors; an entry in use (refs > 0) is never closed."""

    def __init__(self, limit: int, opener: Callable[[int, bool], int]) -> None:
        self.opener = opener
        self.limit = max(1, limit)
        self.lock = threading.Lock()
        self.entries: OrderedDict[int, list[int]] = OrderedDict()  # file index -> [fd, writable, refs]
        self.doomed: dict[int, int] = {}  # fd -> refs, forgotten while in use

    def acquire(self, index: int, writable: bool) -> tuple[int, bool]:
        """``(fd, cached)``; pass both back to :meth:`release`."""
        with self.lock:
            entry = self.entries.get(index)
            if entry is not None and (entry[1] or not writable):
                entry[2] += 1
                self.entries.move_to_end(index)
                return entry[0], True
        fd = self.opener(index, writable)
        with self.lock:
            old = self.entries.get(index)
            if old is not None:
                if old[2] > 0:  # a worker still uses the old descriptor: keep ours out of the cache
                    return fd, False
                os.close(old[0])
            self.entries[index] = [fd, int(writable), 1]
            self._evict()
        return fd, True

    def release(self, index: int, fd: int, cached: bool) -> None:
        if not cached:
            os.close(fd)
            return
        with self.lock:
            entry = self.entries.get(index)
            if entry is not None and entry[0] == fd:
                entry[2] -= 1
            elif fd in self.doomed:
                self.doomed[fd] -= 1
                if self.doomed[fd] <= 0:
                    del self.doomed[fd]
                    os.close(fd)
            self._evict()

    def forget(self, index: int) -> None:
        """Drop a file's descriptor from the cache; closed now, or when its last user releases it."""
        with self.lock:
            entry = self.entries.pop(index, None)
            if entry is None:
                return
            if entry[2] <= 0:
                os.close(entry[0])
            else:
                self.doomed[entry[0]] = entry[2]

    def _evict(self) -> None:
        if len(self.entries) <= self.limit:
            return
        for index in list(self.entries):
            if len(self.entries) <= self.limit:
                break
            entry = self.entries[index]
            if entry[2] == 0:
                del self.entries[index]
                os.close(entry[0])

    def close_all(self) -> None:
        with self.lock:
            for entry in self.entries.values():
                try:
                    os.close(entry[0])
                except OSError:
                    pass
            self.entries.clear()
