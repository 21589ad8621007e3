"""A running engine's re-check, hashed from memory maps in a helper process (:mod:`shoal.storage.hash_helper`).

Why: an engine runs threads, so it may neither fork hash workers (:mod:`shoal.storage.hash_fork`) nor map files (a
file cut short under a map is a SIGBUS, and in a thread that ends the engine). Its re-checks read with ``preadv``
instead, and where copying the page cache is slow (the AMD VM of docs/PERFORMANCE.md: 2 GB/s) that costs about as
much as SHA-1 itself. A helper process started fresh (spawned, not forked) runs one thread, so it may do what
``shoal check`` does: fork a worker per core that hashes in place from read-only maps.

How: the engine opens the files itself (:meth:`~shoal.storage.files.FileStorage.open_for_reading`: every path rule
of the other reads, no symlink followed) and hands the descriptors over (``pass_fds``), with the piece space and
the runs as a bencoded job on the helper's stdin. The helper only reads: it writes progress lines and then each
piece's SHA-1 to its stdout, and the engine compares them with the torrent's hashes. It dies with the thread that
started it (``PR_SET_PDEATHSIG``), and its workers stop at their next run once it is gone.

:func:`recheck_in_helper` gives the verified pieces, or None wherever the helper cannot be used or fails: one
core, fewer than :data:`HELPER_MIN_BYTES` to hash (starting an interpreter costs ~50 ms), more than
:data:`MAX_FILES` files to hand over, no interpreter to start, a read error, a file cut short under a map, a helper
killed. The caller then runs the threaded re-check, which reports errors as it always has.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from typing import IO

from shoal.codec.bencode import encode
from shoal.errors import ShoalError
from shoal.policy.bitfield import Bitfield
from shoal.storage import hasher
from shoal.storage.check import pieces_to_check, split_hashes
from shoal.storage.files import FileStorage
from shoal.storage.hash_helper import CLOSED, PAD

HELPER_MIN_BYTES = 64 << 20
MAX_FILES = 64  # descriptors handed to one helper at once (a torrent of more files is checked in threads)
_CORES = os.cpu_count() or 1


def helper_command(parent: int) -> list[str]:
    """How the helper is started (a test may start it some other way)."""
    return [sys.executable, "-m", "shoal.storage.hash_helper", str(parent)]


async def recheck_in_helper(
    storage: FileStorage,
    piece_hashes: bytes,
    *,
    only: Iterable[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Bitfield | None:
    """The pieces of ``storage`` whose SHA-1 matches the v1 ``pieces`` string (``only``: just those pieces), or
    None where the helper cannot be used (see the module docstring). ``progress(done_pieces, total_pieces)``."""
    layout = storage.layout
    n = layout.num_pieces
    if _CORES < 2 or not sys.executable or n == 0:
        return None
    if only is not None:
        only = sorted(set(only))
        if sum(layout.piece_size(p) for p in only if 0 <= p < n) < HELPER_MIN_BYTES:
            return None
    elif layout.total_length < HELPER_MIN_BYTES:
        # decided before any I/O: a session starting a thousand small torrents asks a thousand times
        return None
    hashes = split_hashes(piece_hashes, n)
    todo = pieces_to_check(layout, hashes, await storage.file_stats(), only)
    if sum(layout.piece_size(p) for p in todo) < HELPER_MIN_BYTES:
        return None
    runs = hasher.plan_runs(todo, layout.piece_length)
    job = _Job(storage, runs, len(todo))
    loop = asyncio.get_running_loop()
    if progress is not None:
        job.progress = lambda done: loop.call_soon_threadsafe(progress, done, len(todo))
    try:
        digests = await loop.run_in_executor(None, job.run)
    except asyncio.CancelledError:
        job.stop()
        raise
    if digests is None:
        return None
    result = Bitfield(n)
    for piece, digest in zip(todo, digests, strict=True):
        if digest is not None and digest == hashes[piece]:
            result.add(piece)
    return result


class _Job:
    """One helper run, driven from a worker thread (``run`` blocks until the helper is done)."""

    def __init__(self, storage: FileStorage, runs: list[tuple[int, int]], pieces: int) -> None:
        self.storage = storage
        self.runs = runs
        self.pieces = pieces
        self.progress: Callable[[int], object] | None = None
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def stop(self) -> None:
        """Kill the helper (the re-check was cancelled); ``run`` then returns None."""
        with self._lock:
            self._stopped = True
            if self._proc is not None and self._proc.returncode is None:
                self._proc.kill()

    def run(self) -> list[bytes | None] | None:
        layout = self.storage.layout
        pl = layout.piece_length
        wanted = bytearray(layout.num_pieces)
        for first, end in self.runs:
            wanted[first:end] = b"\x01" * (end - first)
        files: list[list[int]] = []
        names: list[str] = []
        fds: list[int] = []
        try:
            for i, f in enumerate(layout.files):
                if not f.length:
                    continue
                slot = PAD
                if not f.is_pad:
                    first, last = f.offset // pl, (f.offset + f.length - 1) // pl
                    slot = CLOSED
                    if any(wanted[first : last + 1]):
                        if len(fds) == MAX_FILES:
                            return None
                        fds.append(self.storage.open_for_reading(i))
                        slot = len(fds) - 1
                files.append([f.offset, f.length, slot])
                names.append(str(self.storage.path_of(i)))
            job = {
                b"piece_length": pl,
                b"size": layout.total_length,
                b"files": files,
                b"names": [name.encode("utf-8", "surrogateescape") for name in names],
                b"fds": fds,
                b"runs": [list(r) for r in self.runs],
                b"workers": _CORES,
            }
            with self._lock:
                if self._stopped:
                    return None
                self._proc = subprocess.Popen(
                    helper_command(os.getpid()),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    pass_fds=fds,
                )
        except (OSError, ShoalError):
            return None  # a file the threaded re-check reports better, or no interpreter to start
        finally:
            for fd in fds:
                os.close(fd)
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            try:
                proc.stdin.write(encode(job))
                proc.stdin.close()
            except OSError:
                pass  # the helper is gone already: its exit status says so
            digests = self._read_result(proc.stdout)
        finally:
            proc.stdout.close()
            if proc.wait() != 0:
                digests = None
        return None if self._stopped else digests

    def _read_result(self, out: IO[bytes]) -> list[bytes | None] | None:
        while True:
            line = out.readline(100)
            if line.startswith(b"p "):
                if self.progress is not None:
                    self.progress(int(line[2:]))
                continue
            if line != b"d\n":
                return None  # "e message", or nothing: the helper failed (the threaded re-check will say why)
            raw = out.read(21 * self.pieces)
            if len(raw) != 21 * self.pieces:
                return None
            return [raw[i + 1 : i + 21] if raw[i] else None for i in range(0, len(raw), 21)]
