"""A bounded LRU of open file descriptors, shared by a storage's worker threads: an entry in use is never closed
under its user (reference counts); one forgotten while in use is closed when its last user releases it.

:meth:`FdCache.holding` takes files out of use for a while (a part file moving into its real file:
:meth:`shoal.storage.files.FileStorage.set_file_priorities`): it waits until every descriptor of theirs handed out
is released, and meanwhile :meth:`FdCache.acquire` of one of them waits (for the event loop it raises
:class:`FileHeld` instead).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator

_NOTHING: frozenset[int] = frozenset()  # shared: each frozenset() is a new 216-byte object


class FileHeld(Exception):
    """:meth:`FdCache.acquire` without waiting, of a file held out of use."""


class FdCache:
    """Bounded LRU of open descriptors; an entry in use (refs > 0) is never closed."""

    # slots, not a __dict__: two caches per torrent (issue 7 case 6)
    __slots__ = ("_changed", "_others", "doomed", "entries", "held", "limit", "lock", "opener")

    def __init__(self, limit: int, opener: Callable[[int, bool], int]) -> None:
        self.opener = opener
        self.limit = max(1, limit)
        self.lock = threading.Lock()
        self.entries: OrderedDict[int, list[int]] = OrderedDict()  # file index -> [fd, writable, refs]
        self.doomed: dict[int, int] = {}  # fd -> refs, forgotten while in use
        self.held: frozenset[int] = _NOTHING  # files out of use (holding)
        # file index -> users not counted by the references of its entry: being opened, or given a descriptor kept
        # out of the cache or doomed (rare; the hot path, a cached descriptor, counts in its entry only)
        self._others: dict[int, int] = {}
        # a held file's last user left, or a hold ended; made by the first hold (a Condition costs ~1 KiB, and a
        # session of a thousand idle torrents has two caches each: issue 7 case 6)
        self._changed: threading.Condition | None = None

    def acquire(self, index: int, writable: bool, wait: bool = True) -> tuple[int, bool]:
        """``(fd, cached)``; pass both back to :meth:`release`. Waits while the file is held; with ``wait=False``
        (the event loop's reads) raises :class:`FileHeld` instead."""
        with self.lock:
            while index in self.held:
                if not wait:
                    raise FileHeld(index)
                assert self._changed is not None  # made by the hold
                self._changed.wait()
            entry = self.entries.get(index)
            if entry is not None and (entry[1] or not writable):
                entry[2] += 1
                self.entries.move_to_end(index)
                return entry[0], True
            self._others[index] = self._others.get(index, 0) + 1  # opening
        try:
            fd = self.opener(index, writable)
        except BaseException:
            with self.lock:
                self._left(index)
            raise
        with self.lock:
            old = self.entries.get(index)
            if old is not None:
                if old[2] > 0:  # a worker still uses the old descriptor: keep ours out of the cache
                    return fd, False  # still counted in _others until released
                os.close(old[0])
            self._left(index)  # counted by its entry from now on
            self.entries[index] = [fd, int(writable), 1]
            self._evict()
        return fd, True

    def release(self, index: int, fd: int, cached: bool) -> None:
        with self.lock:
            if not cached:
                self._left(index)
                os.close(fd)
                return
            entry = self.entries.get(index)
            if entry is not None and entry[0] == fd:
                entry[2] -= 1
                if not entry[2] and index in self.held:
                    self._notify()
            elif fd in self.doomed:
                self._left(index)
                self.doomed[fd] -= 1
                if self.doomed[fd] <= 0:
                    del self.doomed[fd]
                    os.close(fd)
            self._evict()

    def _left(self, index: int) -> None:
        """(Lock held) a user counted in ``_others`` is done with file ``index``."""
        n = self._others[index] - 1
        if n:
            self._others[index] = n
        else:
            del self._others[index]
        if index in self.held:
            self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.notify_all()

    def _in_use(self, index: int) -> bool:
        entry = self.entries.get(index)
        return index in self._others or (entry is not None and entry[2] > 0)

    @contextlib.contextmanager
    def holding(self, indices: Collection[int]) -> Iterator[None]:
        """Take files ``indices`` out of use: wait until every descriptor of theirs handed out is released, keep
        :meth:`acquire` of them waiting meanwhile, and let them go when the block ends. One hold at a time; the
        caller takes no descriptor of these files from this cache while it holds them (it would wait forever)."""
        if not indices:
            yield
            return
        with self.lock:
            if self.held:
                raise RuntimeError("FdCache.holding is not reentrant")
            if self._changed is None:
                self._changed = threading.Condition(self.lock)
            changed = self._changed
            self.held = frozenset(indices)
            try:
                while any(self._in_use(i) for i in self.held):
                    changed.wait()
            except BaseException:
                self.held = _NOTHING
                changed.notify_all()
                raise
        try:
            yield
        finally:
            with self.lock:
                self.held = _NOTHING
                changed.notify_all()

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
                self._others[index] = self._others.get(index, 0) + entry[2]  # its users, counted on

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
