"""Hash runs of pieces in forked worker processes: the work of :func:`shoal.storage.hasher.hash_in_threads`,
without one GIL shared by the workers.

Why: a v2 or hybrid torrent needs one ``sha256`` call per 16 KiB leaf, so two threads take and give back the GIL
~130 times per MiB and often wait for each other. Measured here (256 MiB in one process, best of 8, per GiB): v2
0.61 s with two threads against 0.48 s with two processes; hybrid 0.86 against 0.79 s; v1 the same.

When: only where forking is safe: on Linux, in a process that runs a single thread (a command-line tool before it
starts any; never inside a running engine, which has an event loop and worker threads). :func:`fork_is_safe`
says so; otherwise the caller uses threads.

How: the plan, the runs and the reader are inherited by ``fork``. The run numbers are written into a pipe up front
(4 bytes each) and its write end closed; each worker reads the next number (a 4-byte read from a pipe is atomic)
until the pipe is empty, so no lock exists that a dying worker could keep. An anonymous shared memory map holds each
worker's byte count (progress), a stop flag, each worker's error text, and a result slot per piece (v1 20 bytes,
v2 32 bytes, a "done" byte). A child always leaves with ``os._exit``, so it never runs the parent's clean-up code,
and it stops at its next run once its parent is gone (killed outright: nobody set the stop flag).

The calling process does not hash: it reports progress and reaps the children (each through a pidfd, so it wakes
the moment the last one ends). Workers hash in place from memory maps where the reader offers them
(:class:`~shoal.storage.hasher.Reader` ``view_at``), and a file that shrinks under a map kills the worker that
touches the lost page with SIGBUS; that becomes a one-line :class:`StorageError` here, not a dead ``shoal
create``. The map is why forked hashing is fast: on the 2-core AMD VM of docs/PERFORMANCE.md, copying the page
cache into a buffer (``preadv``) cost as much as SHA-1 itself (46 % of the profile, 0.6 s of system time per
GiB), and ``shoal create`` of 1 GiB went from 0.64-0.75 s to 0.39-0.42 s in alternated runs.
"""

from __future__ import annotations

import mmap
import os
import select
import signal
import struct
import sys
import time

from shoal.errors import ShoalError, StorageError
from shoal.storage.hasher import HashBuffer, OpenReader, PieceSpace, Progress, buffer_size, hash_run

MAX_RUNS = 16000  # run numbers (4 bytes each) that fit in a pipe's default 64 KiB buffer
ERROR_BYTES = 512
_Q = struct.Struct("<q")
_RUN = struct.Struct("<I")


def fork_is_safe() -> bool:
    """True on Linux when this process runs a single thread (so no lock is held by a thread the child lacks)."""
    if sys.platform != "linux" or not hasattr(os, "fork"):
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


class _Shared:
    """The shared map and where things are in it."""

    def __init__(self, workers: int, num_pieces: int) -> None:
        self.workers = workers
        self.stop = 0
        self.done = 8
        self.errors = self.done + 8 * workers
        self.v1 = self.errors + ERROR_BYTES * workers
        self.v2 = self.v1 + 20 * num_pieces
        self.flags = self.v2 + 32 * num_pieces
        self.map = mmap.mmap(-1, self.flags + num_pieces)  # anonymous, MAP_SHARED: one memory for all workers

    def done_bytes(self) -> int:
        return sum(struct.unpack_from(f"<{self.workers}q", self.map, self.done))

    def fail(self, k: int, exc: BaseException) -> None:
        kind = "storage" if isinstance(exc, StorageError) else type(exc).__name__
        text = f"{kind}:{exc}".encode(errors="replace")[: ERROR_BYTES - 2]
        at = self.errors + ERROR_BYTES * k
        self.map[at : at + 2 + len(text)] = struct.pack("<H", len(text)) + text
        _Q.pack_into(self.map, self.stop, 1)

    def error(self) -> ShoalError | None:
        for k in range(self.workers):
            at = self.errors + ERROR_BYTES * k
            (length,) = struct.unpack_from("<H", self.map, at)
            if length:
                kind, _, message = self.map[at + 2 : at + 2 + length].decode(errors="replace").partition(":")
                return (
                    StorageError(message) if kind == "storage" else ShoalError(f"hashing failed: {message}")
                )
        return None


def hash_in_processes(
    space: PieceSpace,
    open_reader: OpenReader,
    runs: list[tuple[int, int]],
    workers: int,
    progress: Progress | None = None,
) -> tuple[list[bytes | None], list[bytes | None]]:
    """Like :func:`shoal.storage.hasher.hash_in_threads`, in ``workers`` forked processes.

    Call only when :func:`fork_is_safe` and for at most :data:`MAX_RUNS` runs. A worker's read failure is raised
    here as :class:`StorageError`, a worker killed by SIGBUS (a mapped file shrank) as :class:`StorageError` too,
    anything else as :class:`ShoalError`.
    """
    if len(runs) > MAX_RUNS:
        raise ValueError(f"{len(runs)} runs exceed {MAX_RUNS}")
    shared = _Shared(workers, space.num_pieces)
    total = sum(min(b * space.piece_length, space.size) - a * space.piece_length for a, b in runs)
    queue_r, queue_w = os.pipe()
    children: dict[int, int] = {}  # pid -> its pidfd (-1 where pidfd_open is missing)
    try:
        os.write(queue_w, b"".join(_RUN.pack(i) for i in range(len(runs))))
        os.close(queue_w)
        queue_w = -1
        parent = os.getpid()
        for k in range(workers):
            pid = os.fork()
            if pid == 0:  # the child: work, then leave at once, whatever happened
                try:
                    _work(space, open_reader, runs, shared, queue_r, k, parent)
                finally:
                    os._exit(0)
            children[pid] = _pidfd(pid)
        statuses = _wait_all(children, shared, total, progress)
        error = shared.error()
        if error is not None:
            raise error
        for status in statuses:
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGBUS:
                raise StorageError("a file changed while it was hashed (it shrank under its memory map)")
        if any(os.waitstatus_to_exitcode(status) != 0 for status in statuses):
            raise ShoalError("hashing failed: a worker process was killed")
        return _results(space, shared)
    finally:
        for pid, fd in children.items():  # an exception (or Ctrl-C) here: stop the children, then reap them
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            if fd >= 0:
                os.close(fd)
        os.close(queue_r)
        if queue_w >= 0:
            os.close(queue_w)
        shared.map.close()


def _pidfd(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return -1


def _wait_all(children: dict[int, int], shared: _Shared, total: int, progress: Progress | None) -> list[int]:
    """Reap every child (removing it from ``children``, its pidfd closed); their wait statuses. Meanwhile
    ``progress`` is called about ten times a second; a child that fails stops the others at once (its error is
    in the shared map), so nobody waits for their runs."""
    statuses: list[int] = []
    while children:
        fds = [fd for fd in children.values() if fd >= 0]
        if fds and len(fds) == len(children):
            select.select(fds, [], [], 0.1)  # a pidfd turns readable when its process ends
        else:
            time.sleep(0.02)
        for pid, fd in list(children.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses.append(status)
                del children[pid]
                if fd >= 0:
                    os.close(fd)
                if status != 0:
                    _Q.pack_into(shared.map, shared.stop, 1)
        if progress is not None:
            progress(shared.done_bytes(), total)
    return statuses


def _work(
    space: PieceSpace,
    open_reader: OpenReader,
    runs: list[tuple[int, int]],
    shared: _Shared,
    queue: int,
    k: int,
    parent: int,
) -> None:
    pl = space.piece_length
    shm = shared.map
    done = 0
    try:
        reader = open_reader()
        try:
            hb = HashBuffer(buffer_size(space))
            # a parent killed outright (SIGKILL, SIGTERM) cannot stop its workers: they stop at the next run
            while not _Q.unpack_from(shm, shared.stop)[0] and os.getppid() == parent:
                raw = os.read(queue, _RUN.size)
                if not raw:  # every run is taken
                    break
                first, end = runs[_RUN.unpack(raw)[0]]
                v1, v2 = hash_run(space, reader.read_into, hb, first, end, reader.view_at)
                if v1:
                    shm[shared.v1 + 20 * first : shared.v1 + 20 * end] = b"".join(v1)
                if v2:
                    shm[shared.v2 + 32 * first : shared.v2 + 32 * end] = b"".join(v2)
                shm[shared.flags + first : shared.flags + end] = b"\x01" * (end - first)
                done += min(end * pl, space.size) - first * pl
                _Q.pack_into(shm, shared.done + 8 * k, done)
        finally:
            reader.close()
    except BaseException as exc:
        shared.fail(k, exc)


def _results(space: PieceSpace, shared: _Shared) -> tuple[list[bytes | None], list[bytes | None]]:
    n = space.num_pieces
    shm = shared.map
    flags = shm[shared.flags : shared.flags + n]
    raw1 = shm[shared.v1 : shared.v1 + 20 * n] if space.v1 else b""
    raw2 = shm[shared.v2 : shared.v2 + 32 * n] if space.v2 else b""
    v1: list[bytes | None] = [None] * n
    v2: list[bytes | None] = [None] * n
    for i in range(n):
        if flags[i]:
            if space.v1:
                v1[i] = raw1[20 * i : 20 * i + 20]
            if space.v2:
                v2[i] = raw2[32 * i : 32 * i + 32]
    return v1, v2
