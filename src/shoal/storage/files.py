"""FileStorage: a torrent's files under one root folder, with all disk I/O and hashing in worker threads.

- Every target path is checked to stay inside ``root``: components may not be empty, ``.``, ``..``, absolute or
  contain a separator or NUL; each parent folder is resolved and must lie inside the resolved root (a planted
  symlink pointing out is refused); the file itself is opened with ``O_NOFOLLOW``.
- Files are created lazily on the first write, with all their blocks allocated at once (``fallocate``:
  :mod:`shoal.storage.preallocate`); sparse (``ftruncate`` to their final size) where that is refused, with
  ``preallocate=False``, for part files and for :meth:`FileStorage.set_unwanted_files`. Empty files and their
  folders are created by :meth:`FileStorage.open`. Pad files (BEP 47) never touch the disk: they read as zeros and
  writes to them are dropped.
- I/O uses ``os.pread``/``os.preadv``/``os.pwrite`` on cached descriptors (a bounded LRU with reference counts, so
  a descriptor in use by a worker is never closed under it).
- Buffered writes go out ``write_chunk`` bytes (128 KiB) per ``pwrite`` (direct ones 1 MiB). Measured on the
  2-core VM of docs/PERFORMANCE.md (ext4), writing 1 GiB into a new file from one thread took 0.2-0.6 s of system time in 128 KiB writes but
  0.2-1.8 s (about half the runs over 0.8 s) in 1 MiB writes, the extra all in the copy into the page cache
  (``copy_folio_from_iter_atomic``; not proven why: a large write is given large folios); a whole 1 GiB download
  spent 0.6-0.75 s in the kernel with 128 KiB writes against 2.3-3.1 s with 1 MiB writes (5 runs each,
  alternated). A write costs the worker a GIL hand-back per chunk, so chunks are not made smaller than needed.
- One thread writes to a file at a time (a lock per file, held for a span), except direct writes to a file whose
  blocks are all allocated: :mod:`shoal.storage.span_writer`.
- Written data does not pile up in the page cache. The aligned middle of each span (all of a piece, in a single-
  file torrent) is written with ``O_DIRECT`` through a bounce buffer (:mod:`shoal.storage.direct_io`;
  ``Settings.disk_direct_writes``); what is written buffered is handed to writeback at once and dropped from the
  cache once ``write_behind`` newer bytes (64 MiB) have been written (:mod:`shoal.storage.write_behind`;
  ``Settings.disk_write_behind``, 0 keeps it cached).
- Work runs on an executor (default: one shared ``ThreadPoolExecutor`` of ``disk_threads`` workers); the event
  loop never blocks. ``hashlib`` releases the GIL, so hashing runs in parallel with the loop.
- ``ENOSPC``/``EDQUOT`` -> :class:`~shoal.errors.DiskFullError`; other ``OSError`` -> :class:`StorageError`.
- Unwanted files (priority 0, via ``file_priorities=`` or :meth:`FileStorage.set_file_priorities`) are not
  created: their bytes that share a piece with a wanted file go to a part file (:mod:`shoal.storage.part_files`;
  reads, hashing and ``file_stats`` use it). An unwanted file that already exists on disk is used as is. A part
  file moves into its file when that becomes wanted (while no read or write of the file is under way:
  :meth:`FdCache.holding <shoal.storage.fd_cache.FdCache.holding>`), and at :meth:`FileStorage.open` for the
  files wanted now that an earlier session had parked.

Use: ``st = FileStorage(layout, root); await st.open(); ok = await st.hash_and_write_piece(i, data, sha1)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from shoal.errors import StorageError, UnsafePathError
from shoal.storage.backend import FileStat, piece_digest
from shoal.storage.fd_cache import FdCache, FileHeld
from shoal.storage.hasher import PieceSpace, hash_run_pooled
from shoal.storage.layout import Layout, Span
from shoal.storage.part_files import NO_FILES, PARTS_DIR, default_parts_key, move_part_into, parked_files
from shoal.storage.preallocate import allocate, fully_allocated
from shoal.storage.span_writer import SpanWriter, map_os_error
from shoal.storage.write_behind import DEFAULT_WINDOW
from shoal.storage.write_runs import Job, WriteQueue, hash_and_write, run_place

logger = logging.getLogger(__name__)

T = TypeVar("T")
Buffer = bytes | bytearray | memoryview

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)

WRITE_CHUNK = 128 * 1024
"""Bytes per ``pwrite`` (see the module docstring for why not whole pieces); ``Settings.disk_write_chunk``."""

_shared_executor: ThreadPoolExecutor | None = None
_shared_lock = threading.Lock()


def shared_executor(workers: int = 4) -> ThreadPoolExecutor:
    """The process-wide disk thread pool (created on first use)."""
    global _shared_executor
    with _shared_lock:
        if _shared_executor is None:
            _shared_executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shoal-disk")
        return _shared_executor


def check_component(part: str) -> None:
    if (
        not part
        or part in (".", "..")
        or "/" in part
        or "\\" in part
        or "\x00" in part
        or os.path.isabs(part)
        or (len(part) >= 2 and part[1] == ":")
    ):
        raise UnsafePathError(f"unsafe path component {part!r}")


class FileStorage:
    """Real files under ``root``. See the module docstring."""

    def __init__(
        self,
        layout: Layout,
        root: str | os.PathLike[str],
        *,
        executor: Executor | None = None,
        max_open_files: int = 64,
        disk_threads: int = 4,
        file_priorities: Sequence[int] | None = None,
        parts_key: str | None = None,
        write_chunk: int = WRITE_CHUNK,
        write_behind: int = DEFAULT_WINDOW,
        direct_writes: bool = True,
        preallocate: bool = True,
    ) -> None:
        self.layout = layout
        self._preallocate = preallocate
        self._unwanted = NO_FILES  # files never preallocated (set_unwanted_files)
        self._root_arg = Path(root)
        self._root = Path(os.path.abspath(root))
        self._real_root: str | None = None  # resolved on a worker thread (open, or the first path check)
        self._executor = executor if executor is not None else shared_executor(disk_threads)
        self._fds = FdCache(max_open_files, self._open)
        self._paths: list[Path] = []
        for f in layout.files:
            for part in f.path:
                check_component(part)
            self._paths.append(self._root.joinpath(*f.path))
        self._part_dir = self._root / PARTS_DIR / (parts_key or default_parts_key(layout))
        self._parked = self._parked_from(file_priorities)
        self._writer = SpanWriter(
            self._fds,
            self._paths,
            write_chunk=write_chunk,
            write_behind=write_behind,
            direct_writes=direct_writes,
            max_open_files=max_open_files,
        )
        # handed-over pieces, made at the first (an idle seeding torrent has none); neighbours go out as one write
        self._waiting: WriteQueue | None = None

    def _parked_from(self, priorities: Sequence[int] | None) -> frozenset[int]:
        return parked_files(self.layout, priorities)

    def part_path(self, file_index: int) -> Path:
        return self._part_dir / f"{file_index}.part"

    def _path_for(self, index: int) -> Path:
        """Where a file's bytes live: its own path, or its part file while unwanted and not on disk."""
        if index in self._parked and not os.path.lexists(self._paths[index]):
            return self.part_path(index)
        return self._paths[index]

    @property
    def root(self) -> Path:
        return self._root

    def path_of(self, file_index: int) -> Path:
        return self._paths[file_index]

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- path safety ---------------------------------------------------------------------------------------

    def _inside(self, real: str) -> bool:
        root = self._real_root
        if root is None:
            root = self._real_root = os.path.realpath(self._root)
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def _check_parent(self, index: int, create: bool) -> None:
        self._check_parent_of(self._paths[index], create)

    def _check_parent_of(self, path: Path, create: bool) -> None:
        parent = path.parent
        if create:
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError as exc:
                raise StorageError(f"create folder {parent}: a file is in the way") from exc
            except OSError as exc:
                raise map_os_error(exc, f"create folder {parent}") from exc
        if parent == self._root and self._real_root is not None:
            return  # the folder itself, resolved once: a file right in it cannot leave it by its parent
        real = os.path.realpath(parent)
        if not self._inside(real):
            raise UnsafePathError(f"path {path} leaves the download folder {self._root} (via {real})")

    def _open(self, index: int, writable: bool, *, own_path: bool = False) -> int:
        """A descriptor of file ``index`` where its bytes live (its part file while parked), or with ``own_path``
        of the file itself (a part file moving in)."""
        path = self._paths[index] if own_path else self._path_for(index)
        self._check_parent_of(path, create=writable)
        flags = _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
        flags |= (os.O_RDWR | os.O_CREAT) if writable else os.O_RDONLY
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePathError(f"path {path} is a symlink; refusing to follow it") from exc
            if exc.errno == errno.ENOENT and not writable:
                raise StorageError(f"read {path}: file is missing") from exc
            raise map_os_error(exc, f"open {path}") from exc
        if writable:
            try:
                st = os.fstat(fd)
                want = self.layout.files[index].length
                real = own_path or index not in self._parked  # a part file stays sparse: mostly never written
                if st.st_size < want and self._preallocate and real and index not in self._unwanted:
                    whole = allocate(fd, want)
                elif st.st_size < want:
                    os.ftruncate(fd, want)
                    whole = False
                else:
                    whole = real and fully_allocated(st)
                if whole:
                    self._writer.allocated.add(index)  # its direct writes need no lock of ours
            except OSError as exc:
                os.close(fd)
                raise map_os_error(exc, f"resize {path}") from exc
        return fd

    def open_for_reading(self, file_index: int) -> int:
        """A new read-only descriptor of a file (its part file while parked), with every path check of the other
        reads: no symlink followed, no parent outside the folder. Blocking; the caller closes it (the forked
        re-check of :mod:`shoal.storage.fork_check`)."""
        return self._open(file_index, writable=False)

    def _open_sync(self) -> None:
        try:
            self._root.mkdir(0o777, True, True)
        except OSError as exc:
            raise map_os_error(exc, f"create folder {self._root}") from exc
        self._real_root = os.path.realpath(self._root)
        for i, f in enumerate(self.layout.files):
            if f.is_pad:
                continue
            make = f.length == 0 and i not in self._parked
            if make or self._paths[i].parent != self._root:  # the root itself was resolved just above
                self._check_parent(i, create=make)
            if make and not os.path.lexists(self._paths[i]):
                fd = self._open(i, writable=True)
                os.close(fd)
        if os.path.isdir(self._part_dir):  # part files of an earlier session whose files are wanted now
            for i, f in enumerate(self.layout.files):
                if not f.is_pad and i not in self._parked:
                    self._unpark(i)
            self._remove_part_dirs()

    def _remove_part_dirs(self) -> None:
        for d in (self._part_dir, self._part_dir.parent):
            with contextlib.suppress(OSError):
                d.rmdir()  # only when empty

    async def open(self) -> None:
        """Create the root, folders of empty files and the empty files; check that every path stays inside."""
        await self._run(self._open_sync)  # one worker-thread hop (a session may open a thousand of these)

    # --- span I/O (worker threads) -------------------------------------------------------------------------

    def _write_spans(self, spans: list[Span], data: Buffer) -> None:
        self._writer.write_spans(spans, memoryview(data).cast("B"))

    def _read_bytes(self, spans: list[Span], size: int) -> bytes:
        """Like :meth:`_read_spans` but returns ``bytes``; a range inside one file is read without a copy."""
        if len(spans) == 1 and not spans[0].is_pad:
            s = spans[0]
            fd, cached = self._fds.acquire(s.file_index, False)
            try:
                data = os.pread(fd, size, s.file_offset)
            except OSError as exc:
                raise map_os_error(exc, f"read {self._paths[s.file_index]}") from exc
            finally:
                self._fds.release(s.file_index, fd, cached)
            if len(data) == size:
                return data
        return bytes(self._read_spans(spans, size))

    def _read_spans(self, spans: list[Span], size: int) -> bytearray:
        buf = bytearray(size)
        self._read_spans_into(memoryview(buf), spans, fresh=True)
        return buf

    def read_into(self, view: memoryview, offset: int) -> None:
        """Fill ``view`` with the torrent's bytes at ``offset`` of the piece space, pads as zeros. Blocking: for
        worker threads (:meth:`hash_run`); :class:`StorageError` for a missing or short file."""
        self._read_spans_into(view, self.layout.spans_at(offset, len(view)), fresh=False)

    async def hash_run(self, space: PieceSpace, first: int, end: int) -> tuple[list[bytes], list[bytes]]:
        """Digests of pieces ``[first, end)``, read into a reused buffer and hashed in a worker thread (the fast path
        of :func:`shoal.storage.check.recheck`; see :func:`shoal.storage.hasher.hash_run_pooled`)."""
        return await self._run(hash_run_pooled, space, self.read_into, first, end)

    def _read_spans_into(self, view: memoryview, spans: list[Span], *, fresh: bool) -> None:
        for s in spans:
            if s.is_pad:
                if not fresh:
                    view[s.data_offset : s.data_offset + s.length] = bytes(s.length)
                continue
            fd, cached = self._fds.acquire(s.file_index, False)
            try:
                target = view[s.data_offset : s.data_offset + s.length]
                off = s.file_offset
                got = 0
                while got < s.length:
                    n = os.preadv(fd, [target[got:]], off + got)
                    if n == 0:
                        raise StorageError(
                            f"read {self._paths[s.file_index]}: short read at {off + got}, "
                            f"file shorter than {s.file_offset + s.length}"
                        )
                    got += n
            except OSError as exc:
                raise map_os_error(exc, f"read {self._paths[s.file_index]}") from exc
            finally:
                self._fds.release(s.file_index, fd, cached)

    def _hash_write(self, piece: int, data: Buffer, expected: bytes, algo: str) -> bool:
        if piece_digest(self.layout, piece, data, algo) != expected:
            return False
        self._write_spans(self.layout.spans(piece), data)
        return True

    def _hash_read(self, piece: int, algo: str) -> bytes:
        data = self._read_spans(self.layout.spans(piece), self.layout.piece_size(piece))
        return piece_digest(self.layout, piece, data, algo)

    def stat_files(self) -> list[FileStat | None]:
        """:meth:`file_stats`, blocking (for the forked re-check, which runs before any thread)."""
        out: list[FileStat | None] = []
        for i, f in enumerate(self.layout.files):
            if f.is_pad:
                out.append(None)
                continue
            try:
                st = os.stat(self._path_for(i), follow_symlinks=False)
            except OSError:
                out.append(None)
                continue
            out.append(FileStat(st.st_size, st.st_mtime_ns))
        return out

    def _close_fds(self) -> None:
        self._writer.close()
        self._fds.close_all()

    def _delete(self) -> None:
        self._close_fds()
        for i, f in enumerate(self.layout.files):
            if f.is_pad:
                continue
            try:
                self._check_parent(i, create=False)
                os.unlink(self._paths[i])
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise map_os_error(exc, f"delete {self._paths[i]}") from exc
            try:
                os.unlink(self.part_path(i))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise map_os_error(exc, f"delete {self.part_path(i)}") from exc
        self._remove_part_dirs()

    # --- Storage API ---------------------------------------------------------------------------------------

    async def read_block(self, piece: int, offset: int, length: int) -> bytes:
        spans = self.layout.spans(piece, offset, length)
        return await self._run(self._read_bytes, spans, length)

    def read_piece_nowait(self, piece: int, into: bytearray | None = None) -> bytearray | None:
        """The whole piece read on the calling thread if that cannot block: it lies in one file that is already
        open and all of it is in the page cache (``preadv2`` with ``RWF_NOWAIT``). None otherwise (the caller then
        uses :meth:`read_piece` on the worker threads). Saves the thread hop when serving hot data. ``into``: a
        buffer of exactly the piece's size to read into (reused by the caller), else a new one is made."""
        return self.read_nowait(piece, 0, self.layout.piece_size(piece), into)

    def read_nowait(
        self, piece: int, offset: int, length: int, into: bytearray | None = None
    ) -> bytearray | None:
        """Like :meth:`read_piece_nowait` for ``length`` bytes at ``offset`` in ``piece`` (one block to serve)."""
        flag = getattr(os, "RWF_NOWAIT", 0)
        spans = self.layout.spans(piece, offset, length)
        if not flag or len(spans) != 1 or spans[0].is_pad:
            return None
        s = spans[0]
        fds = self._fds
        with fds.lock:
            if s.file_index not in fds.entries:
                return None  # opening a file may block
        try:
            fd, cached = fds.acquire(s.file_index, False, wait=False)
        except FileHeld:
            return None  # its part file is moving in: waiting would block
        buf = into if into is not None and len(into) == s.length else bytearray(s.length)
        try:
            n = os.preadv(fd, [buf], s.file_offset, flag)
        except OSError:  # EAGAIN (not all cached), EOPNOTSUPP (file system), anything: take the slow path
            return None
        finally:
            fds.release(s.file_index, fd, cached)
        return buf if n == s.length else None

    async def read_piece(self, piece: int) -> bytes:
        spans = self.layout.spans(piece)
        return await self._run(self._read_bytes, spans, self.layout.piece_size(piece))

    async def write_block(self, piece: int, offset: int, data: Buffer) -> None:
        spans = self.layout.spans(piece, offset, len(data))
        await self._run(self._write_spans, spans, data)

    async def write_piece(self, piece: int, data: Buffer) -> None:
        if len(data) != self.layout.piece_size(piece):
            raise ValueError(f"piece {piece} data is {len(data)} bytes, not {self.layout.piece_size(piece)}")
        await self._run(self._write_spans, self.layout.spans(piece), data)

    async def hash_and_write_piece(
        self, piece: int, data: Buffer, expected: bytes, algo: str = "sha1"
    ) -> bool:
        if len(data) != self.layout.piece_size(piece):
            raise ValueError(f"piece {piece} data is {len(data)} bytes, not {self.layout.piece_size(piece)}")
        return await self._run(self._hash_write, piece, data, expected, algo)

    def submit_hash_and_write_many(
        self,
        items: Sequence[tuple[int, Buffer, bytes]],
        done: Callable[[list[bool | BaseException]], None],
        algo: str = "sha1",
    ) -> None:
        """:meth:`hash_and_write_piece` for each ``(piece, data, expected)``, without a coroutine: one job on the
        worker threads, which calls ``done`` there once, with a result per piece in order: True/False (hash
        matched and written / mismatch) or the exception. For a caller that collects the results itself
        (``engine.transfer``) and wants neither a task nor a loop round trip per piece; several small pieces in
        one job are one hand-off to a worker and one wake-up of the loop. Pieces waiting together that lie next
        to each other in a file are written as one (:mod:`shoal.storage.write_runs`)."""
        for piece, data, _ in items:
            if len(data) != self.layout.piece_size(piece):
                raise ValueError(
                    f"piece {piece} data is {len(data)} bytes, not {self.layout.piece_size(piece)}"
                )
        waiting = self._waiting
        if waiting is None:
            waiting = self._waiting = WriteQueue()
        job = Job(items, done, algo, run_place(self.layout, self._writer.takes_direct, items))
        waiting.put(job)
        try:
            self._executor.submit(self._write_next, waiting)
        except BaseException:  # a shut-down executor: the caller reports the job failed, so it must not run
            waiting.discard(job)
            raise

    def _write_next(self, waiting: WriteQueue) -> None:
        """(Worker thread) the next run of handed-over jobs (:func:`shoal.storage.write_runs.hash_and_write`)."""
        hash_and_write(
            waiting.take_run(),
            lambda piece, data, algo: piece_digest(self.layout, piece, data, algo),
            lambda place, views: self._writer.write_run(place.file_index, views, place.offset),
            lambda piece, data: self._write_spans(self.layout.spans(piece), data),
        )

    async def hash_piece(self, piece: int, algo: str = "sha1") -> bytes:
        return await self._run(self._hash_read, piece, algo)

    def _reprioritize(self, parked: frozenset[int]) -> None:
        """(Worker thread) park and unpark files. The files that change are held meanwhile: reads and writes of
        theirs already under way finish first, new ones wait, so none reads a part file half moved or writes into
        one already copied (the direct descriptors first: opening one takes a plain one)."""
        changed = self._parked ^ parked
        with self._writer.holding(changed), self._fds.holding(changed):
            for i in changed:
                self._writer.forget(i)
                self._fds.forget(i)
            leaving = sorted(changed - parked)
            self._parked = parked | frozenset(leaving)  # each stays parked until its part file has moved
            for i in leaving:
                self._unpark(i)
                self._parked = self._parked - {i}
        if not parked:
            self._remove_part_dirs()

    def _unpark(self, index: int) -> None:
        """Move what a part file holds into the real file (now wanted), then remove the part file. The caller
        holds the file's descriptors, so this opens its own."""
        try:
            move_part_into(
                self.part_path(index), lambda: self._open(index, True, own_path=True), self._paths[index]
            )
        except StorageError:
            self._writer.forget(
                index
            )  # the real file it allocated is gone again: what it knew of it goes too
            raise

    def set_unwanted_files(self, files: Iterable[int]) -> None:
        """Files the user does not want: created real and sparse if a piece they share with a wanted file is written,
        never preallocated (selecting one small file of a torrent must not reserve its big neighbours' space).
        Unlike :meth:`set_file_priorities` nothing is parked in part files."""
        self._unwanted = frozenset(files)

    async def set_file_priorities(self, priorities: Sequence[int]) -> None:
        """Files at priority 0 are not created: bytes of theirs that share a piece with a wanted file go to a part
        file under ``root/.shoal.parts/``; when such a file becomes wanted its part file is moved into it."""
        await self._run(self._reprioritize, self._parked_from(priorities))

    async def file_stats(self) -> list[FileStat | None]:
        return await self._run(self.stat_files)

    async def close(self) -> None:
        await self._run(self._close_fds)

    async def delete(self) -> None:
        await self._run(self._delete)
