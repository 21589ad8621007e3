"""Writing a verified piece's spans into their files (worker threads): the aligned middle of each span with
``O_DIRECT`` (:mod:`shoal.storage.direct_io`), the rest buffered with write-behind
(:mod:`shoal.storage.write_behind`), one writer per file at a time where the kernel would take turns anyway.
:class:`shoal.storage.files.FileStorage` owns the files and the descriptor cache; this is its write path.

One writer per file at a time, for spans of :data:`LOCKED_SPAN_MIN` and more (:meth:`SpanWriter._lock_for`).
ext4 serialises buffered writes to a file on its inode lock, and direct writes that allocate blocks too, and
threads that meet there spin on it (``rwsem_spin_on_owner`` was 12 % of a 1 GiB download's CPU with 4 disk
threads); waiting on a lock of ours sleeps instead, and hashing on the other threads goes on in parallel.
Direct writes to a file whose blocks are all allocated (:mod:`shoal.storage.preallocate`: the files a download
creates) are overwrites, which the kernel runs side by side, so they take no lock. Smaller spans are written
without it: the lock is held across the GIL hand-offs of the write (each ``pwrite`` gives the GIL up and has
to win it back from a busy event loop), so with small pieces the writers queued behind one that waited for the
GIL. A 1 GiB download in 32 KiB pieces from libtorrent took 12.7-14.3 s with the lock and 9.2-11.3 s without
it (2 cores; docs/PERFORMANCE.md); ``benchmarks/bench_disk_writes.py --compare lock``: 32 KiB pieces 1.31x the
wall time with the lock, 256 KiB 1.08x, 512 KiB 1.33x, 1 MiB 0.87x.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from shoal.errors import DiskFullError, StorageError
from shoal.storage.direct_io import (
    aligned_part,
    direct_io_works,
    reopen_direct,
    write_direct,
    write_direct_run,
)
from shoal.storage.fd_cache import FdCache
from shoal.storage.layout import Span
from shoal.storage.write_behind import WriteBehind, advise_dontneed, write_behind_works

logger = logging.getLogger(__name__)


LOCKED_SPAN_MIN = 1 << 20  # spans at least this long are written under their file's writer lock
_UNLOCKED = contextlib.nullcontext()


def map_os_error(exc: OSError, what: str) -> StorageError:
    """One OSError -> the storage error tree (one-line message naming the operation and path)."""
    msg = f"{what}: {exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(msg)
    return StorageError(msg)


class SpanWriter:
    """The write path of one storage: ``write_spans`` runs on worker threads, several at once."""

    def __init__(
        self,
        fds: FdCache,
        paths: Sequence[Path],
        *,
        write_chunk: int,
        write_behind: int,
        direct_writes: bool,
        max_open_files: int,
    ) -> None:
        if write_chunk <= 0:
            raise ValueError(f"write_chunk {write_chunk} must be positive")
        self._fds = fds
        self._paths = paths
        self._write_chunk = write_chunk
        # written data leaves the page cache once this many newer bytes follow it (0: it stays)
        self._behind = WriteBehind(write_behind) if write_behind > 0 and write_behind_works() else None
        # the aligned middle of a span goes out with O_DIRECT through a second descriptor per file
        self._direct_fds = (
            FdCache(max_open_files, self._open_direct) if direct_writes and direct_io_works() else None
        )
        self._no_direct: set[int] = set()  # files whose filesystem refused O_DIRECT
        self.locks: dict[int, threading.Lock] = {}  # file index -> its writer's lock (long spans only)
        # files with every block allocated (storage/preallocate.py): their direct writes are overwrites, which the
        # kernel runs side by side, so they take no lock of ours (the file's owner adds to it when it opens one)
        self.allocated: set[int] = set()

    def write_spans(self, spans: list[Span], view: memoryview) -> None:
        """Write ``view`` (a piece) into its spans; pad spans are dropped."""
        for s in spans:
            if s.is_pad:
                continue
            index = s.file_index
            direct = self._direct_ok(index)
            lock = self._lock_for(index, s.length, direct)
            pos = s.data_offset
            off = s.file_offset
            head, n = aligned_part(off, s.length) if direct else (0, 0)
            with lock:
                middle = view[pos + head : pos + head + n]
                if n and self._write_direct(index, write_direct, middle, off + head) == n:
                    buffered = [(0, head), (head + n, s.length - head - n)]  # the ends of the span
                else:  # no aligned middle, or direct writes refused: the whole span
                    buffered = [(0, s.length)]
                for a, length in buffered:
                    if length:
                        self._write_buffered(index, view[pos + a : pos + a + length], off + a)
            if self._behind is not None:  # only what went buffered is in the page cache
                old: list[tuple[int, int, int]] = []
                for a, length in buffered:
                    old += self._behind.written(index, off + a, length)
                self._drop_behind(old)

    def _lock_for(
        self, index: int, length: int, direct: bool
    ) -> threading.Lock | contextlib.nullcontext[None]:
        """The lock a write of ``length`` bytes to file ``index`` holds: its file's writer lock for a long write,
        unless it goes out direct to a file with every block allocated; else none."""
        if length < LOCKED_SPAN_MIN or (direct and index in self.allocated):
            return _UNLOCKED
        return self.locks.get(index) or self.locks.setdefault(index, threading.Lock())

    def takes_direct(self, index: int) -> bool:
        """Whether file ``index`` is written with ``O_DIRECT`` (until its filesystem refuses)."""
        return self._direct_ok(index)

    def write_run(self, index: int, views: list[memoryview], file_offset: int) -> bool:
        """Write ``views`` (aligned pieces, next to each other in file ``index`` from ``file_offset``) as one direct
        write (:mod:`shoal.storage.write_runs`). False, with nothing written, when the file takes no direct
        writes; the caller then writes the pieces one by one. What a short write leaves goes out buffered."""
        if not self._direct_ok(index):
            return False
        with self._lock_for(index, sum(len(v) for v in views), direct=True):
            written = self._write_direct(index, write_direct_run, views, file_offset)
            if not written and not self._direct_ok(index):
                return False  # refused: the caller writes the pieces one by one
            at = 0
            for v in views:  # the rest of a short write
                if at + len(v) > written:
                    skip = max(0, written - at)
                    self._write_buffered(index, v[skip:], file_offset + at + skip)
                at += len(v)
        return True

    def holding(self, indices: Collection[int]) -> contextlib.AbstractContextManager[None]:
        """Hold the direct descriptors of files ``indices`` (:meth:`FdCache.holding`) while they move."""
        if self._direct_fds is None:
            return contextlib.nullcontext()
        return self._direct_fds.holding(indices)

    def forget(self, index: int) -> None:
        """The file moved (a part file became the real one, or back): its direct descriptor goes, and what was known
        of its blocks."""
        self.allocated.discard(index)
        if self._direct_fds is not None:
            self._direct_fds.forget(index)

    def close(self) -> None:
        if self._direct_fds is not None:
            self._direct_fds.close_all()

    def _direct_ok(self, index: int) -> bool:
        return self._direct_fds is not None and index not in self._no_direct

    def _write_buffered(self, index: int, data: memoryview, off: int) -> None:
        step = self._write_chunk
        fd, cached = self._fds.acquire(index, True)
        try:
            pos, end = 0, len(data)
            while pos < end:
                n = os.pwrite(fd, data[pos : min(pos + step, end)], off + pos)
                if n <= 0:
                    raise StorageError(f"write {self._paths[index]}: no progress at {off + pos}")
                pos += n
            if self._behind is not None:
                advise_dontneed(fd, off, end)  # writeback starts now
        except OSError as exc:
            raise map_os_error(exc, f"write {self._paths[index]}") from exc
        finally:
            self._fds.release(index, fd, cached)

    def _write_direct(self, index: int, write: Callable[..., int], *args: Any) -> int:
        """Run ``write(fd, *args)`` (aligned data out through ``fd``) on file ``index``'s O_DIRECT descriptor;
        return the bytes written. Fewer than asked: the caller writes the rest buffered (on EINVAL this file's
        filesystem refused O_DIRECT: not tried again for it)."""
        assert self._direct_fds is not None
        try:
            fd, cached = self._direct_fds.acquire(index, True)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise map_os_error(exc, f"write {self._paths[index]}") from exc
            self._refused(index, exc)
            return 0
        try:
            return write(fd, *args)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise map_os_error(exc, f"write {self._paths[index]}") from exc
            self._refused(index, exc)
            return 0
        finally:
            self._direct_fds.release(index, fd, cached)

    def _refused(self, index: int, exc: OSError) -> None:
        self._no_direct.add(index)
        logger.debug("no direct writes to %s: %s", self._paths[index], exc)

    def _open_direct(self, index: int, writable: bool) -> int:
        fd, cached = self._fds.acquire(index, True)  # creates and sizes the file as for any write
        try:
            return reopen_direct(fd)
        finally:
            self._fds.release(index, fd, cached)

    def _drop_behind(self, spans: list[tuple[int, int, int]]) -> None:
        """Drop old written spans from the page cache (their writeback started when they were written)."""
        for index, offset, length in spans:
            try:
                fd, cached = self._fds.acquire(index, False)
            except (OSError, StorageError):  # gone or moved: nothing to drop
                continue
            try:
                advise_dontneed(fd, offset, length)
            finally:
                self._fds.release(index, fd, cached)
