"""Hash runs of whole pieces on every core, each worker in its own small buffer: the engine behind ``shoal create``,
``shoal check`` and the start-up check of ``shoal seed``.

Threads read, forked workers map. A thread (an engine's re-checks) reads 256 KiB at a time with ``os.preadv`` into a
buffer of its own that stays in its core's cache, and hashes it there (twice for a hybrid torrent: SHA-1 and the 16
KiB SHA-256 leaves of the same hot bytes): a memory map in the engine's process would turn a file cut short under it
into a SIGBUS that kills the whole engine. A forked worker (:mod:`shoal.storage.hash_fork`: ``shoal create``, and
``shoal check`` / ``shoal seed`` through :mod:`shoal.storage.fork_check`) hashes in place from a read-only map of
its file where the reader offers one (:class:`Reader` ``view_at``): a SIGBUS kills only that worker. Which is faster
depends on the machine: an earlier trial on another boot (hybrid, one 16 KiB leaf at a time for both hashes) was
9-16 % slower from a map in the two-worker run (page faults, cold memory); on the AMD VM of docs/PERFORMANCE.md,
copying the page cache cost as much as SHA-1 itself (``_copy_to_iter`` 46 % of the profile) and mapping took ``shoal
create`` of 1 GiB from 0.64-0.75 s to 0.38-0.42 s, level with mktorrent -t 2 (hybrid 1.11 -> 0.83 s).

* :class:`PieceSpace` says what to hash: piece length, size of the piece space, which digests (v1 SHA-1 per piece,
  v2 merkle subtree per piece) and, for v2, where the files start (a v2 piece never spans two files).
* :func:`hash_run` hashes pieces ``[first, end)`` through a ``read_into(view, offset)`` callable that fills a view
  with the piece space's bytes (pads as zeros). It is synchronous and runs in a worker thread.
* :func:`plan_runs` cuts a sorted list of pieces into runs of consecutive pieces of about :data:`RUN_BYTES`;
  :func:`split_tail` cuts the last few finer, so the workers finish together.
* :func:`hash_in_threads` runs :func:`hash_run` over runs on ``threads`` threads (the creator); the engine's
  asynchronous re-check drives :func:`hash_run` on its own executor (:mod:`shoal.storage.check`).

v2 digests follow :func:`shoal.storage.backend.piece_digest`: for a piece of a file larger than one piece, the
root of its subtree of ``piece_length / 16 KiB`` leaves (the piece-layer entry, zero leaves past the file's end);
for a file of at most one piece, the file's ``pieces root``.

``hashlib`` releases the GIL for every call on 2 KiB or more, so the workers really run in parallel.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Sequence

from shoal.codec import merkle

BUFFER_BYTES = 256 << 10  # per worker, stays in L2: whole pieces when they fit, else a part of one
RUN_BYTES = 4 << 20  # what a worker takes at a time: small enough that no core idles long at the end
TAIL_RUN_BYTES = 1 << 20  # the last TAIL_RUNS runs per worker are cut to this size (see split_tail)
TAIL_RUNS = 2
LEAF = merkle.BLOCK_SIZE

ReadInto = Callable[[memoryview, int], None]
ViewAt = Callable[[int, int], "memoryview | None"]
Progress = Callable[[int, int], None]


def _nothing() -> None:
    pass


class Reader:
    """One worker's way to the piece space, made by the caller's ``open_reader()`` in each worker: ``read_into``
    fills a view with the bytes at an offset (pads as zeros); ``view_at``, if any, shows a range in place (a view
    of a mapped file, or None where it cannot) and is used only by forked workers (:mod:`shoal.storage.hash_fork`),
    where a file that shrinks under its map kills a worker process, not the caller; ``close`` lets go of files."""

    __slots__ = ("close", "read_into", "view_at")

    def __init__(
        self, read_into: ReadInto, close: Callable[[], None] = _nothing, view_at: ViewAt | None = None
    ) -> None:
        self.read_into = read_into
        self.close = close
        self.view_at = view_at


OpenReader = Callable[[], Reader]


class PieceSpace:
    """What to hash. ``files`` are the (offset, length) of the non-empty real files, sorted (needed for v2)."""

    __slots__ = ("_ends", "_starts", "num_pieces", "piece_length", "size", "v1", "v2")

    def __init__(
        self, piece_length: int, size: int, *, v1: bool, v2: bool, files: Sequence[tuple[int, int]] = ()
    ) -> None:
        if piece_length < 1 or (v2 and (piece_length < LEAF or piece_length & (piece_length - 1))):
            raise ValueError(f"piece length {piece_length} is not a power of two >= {LEAF} (v2)")
        self.piece_length = piece_length
        self.size = size
        self.num_pieces = -(-size // piece_length)
        self.v1 = v1
        self.v2 = v2
        self._starts = [a for a, _ in files]
        self._ends = [a + n for a, n in files]

    def piece_bytes(self, piece: int) -> int:
        start = piece * self.piece_length
        return min(self.piece_length, self.size - start)

    def v2_extent(self, piece: int) -> tuple[int, bool]:
        """(bytes of file data in the piece, whether the file fits in one piece); (0, False) for a pad piece."""
        start = piece * self.piece_length
        k = bisect.bisect_right(self._starts, start) - 1
        if k < 0 or start >= self._ends[k]:
            return 0, False
        end = self._ends[k]
        return min(self.piece_length, end - start), end - self._starts[k] <= self.piece_length


def plan_runs(
    pieces: Sequence[int], piece_length: int, run_bytes: int | None = None
) -> list[tuple[int, int]]:
    """Runs ``(first, end)`` of consecutive pieces from sorted ``pieces``, each at most ``run_bytes`` (default
    :data:`RUN_BYTES`) or one piece."""
    per_run = max(1, (run_bytes or RUN_BYTES) // piece_length)
    runs: list[tuple[int, int]] = []
    i, n = 0, len(pieces)
    while i < n:
        first = pieces[i]
        j = i + 1
        while j < n and j - i < per_run and pieces[j] == first + (j - i):
            j += 1
        runs.append((first, first + (j - i)))
        i = j
    return runs


def split_tail(runs: list[tuple[int, int]], piece_length: int, workers: int) -> list[tuple[int, int]]:
    """``runs`` with the last :data:`TAIL_RUNS` per worker cut into runs of about :data:`TAIL_RUN_BYTES` (at least
    one piece): the worker that takes the last whole run no longer keeps the others waiting up to a run's time
    (4 MiB of a hybrid torrent: ~6 ms on one core)."""
    k = min(len(runs), TAIL_RUNS * workers)
    if k == 0:
        return runs
    per_run = max(1, TAIL_RUN_BYTES // piece_length)
    tail = [(a, min(end, a + per_run)) for first, end in runs[-k:] for a in range(first, end, per_run)]
    return runs[:-k] + tail


def coarsen_runs(runs: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """``runs`` with neighbours that touch merged, pairwise and repeatedly, until at most ``limit`` remain (or none
    touch): a 100 GiB file has 25,600 runs of 4 MiB; hashing in processes hands out at most ``limit``."""
    while len(runs) > limit:
        merged: list[tuple[int, int]] = []
        i = 0
        while i < len(runs):
            first, end = runs[i]
            if i + 1 < len(runs) and runs[i + 1][0] == end:
                merged.append((first, runs[i + 1][1]))
                i += 2
            else:
                merged.append((first, end))
                i += 1
        if len(merged) == len(runs):
            break
        runs = merged
    return runs


def buffer_size(space: PieceSpace, limit: int | None = None) -> int:
    """A worker's buffer: ``limit`` (default :data:`BUFFER_BYTES`; whole pieces, or a 16 KiB multiple of a bigger
    piece), never more than the piece space needs."""
    return min(limit or BUFFER_BYTES, space.num_pieces * space.piece_length)


class HashBuffer:
    """A worker's buffer, with its views cut once: one per 16 KiB leaf, so hashing v2 leaves holds the GIL as
    briefly as possible between two ``sha256`` calls (the other worker is waiting for it)."""

    __slots__ = ("buf", "leaves", "view")

    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)
        self.leaves = [self.view[i : i + LEAF] for i in range(0, size, LEAF)]

    def __len__(self) -> int:
        return len(self.buf)

    def leaf_views(self, a: int, n: int) -> list[memoryview]:
        """The 16 KiB leaves of bytes ``[a, a + n)`` (``a`` a multiple of 16 KiB); the last may be short."""
        k, full = a // LEAF, n // LEAF
        views = self.leaves[k : k + full]
        if n % LEAF:
            views.append(self.view[a + full * LEAF : a + n])
        return views


def hash_run(
    space: PieceSpace,
    read_into: ReadInto,
    hb: HashBuffer,
    first: int,
    end: int,
    view_at: ViewAt | None = None,
) -> tuple[list[bytes], list[bytes]]:
    """v1 and v2 digests of pieces ``[first, end)`` (each list empty when that kind is off). With ``view_at``, a
    piece it can show in place (inside one mapped file) is hashed there, without a copy; the rest is read."""
    pl = space.piece_length
    v1: list[bytes] = []
    v2: list[bytes] = []
    if view_at is not None or pl > len(
        hb
    ):  # piece by piece: in place where it can be, else a buffer at a time
        for piece in range(first, end):
            mapped = None if view_at is None else view_at(piece * pl, space.piece_bytes(piece))
            if mapped is None:
                d1, d2 = _hash_piece_read(space, read_into, hb, piece)
            else:
                d1, d2 = _hash_piece_mapped(space, mapped, piece)
            if d1 is not None:
                v1.append(d1)
            if d2 is not None:
                v2.append(d2)
        return v1, v2
    per_read = len(hb) // pl
    view = hb.view
    sha1 = hashlib.sha1
    for block_first in range(first, end, per_read):
        block_end = min(end, block_first + per_read)
        start = block_first * pl
        length = min(block_end * pl, space.size) - start
        read_into(view[:length], start)
        if space.v1:
            v1 += [sha1(view[a : min(a + pl, length)]).digest() for a in range(0, length, pl)]
        if space.v2:
            v2 += [
                _v2_digest(space, hb.leaf_views, p, (p - block_first) * pl)
                for p in range(block_first, block_end)
            ]
    return v1, v2


def _v2_digest(
    space: PieceSpace, leaf_views: Callable[[int, int], list[memoryview]], piece: int, a: int
) -> bytes:
    real, small = space.v2_extent(piece)
    sha256 = hashlib.sha256
    return _v2_root(space, [sha256(v).digest() for v in leaf_views(a, real)] if real else [], small)


def _v2_root(space: PieceSpace, leaves: list[bytes], small: bool) -> bytes:
    """A piece's v2 digest from its leaf hashes: the file's pieces root for a file of at most one piece
    (``small``), else the root of the piece's subtree (zero leaves past the file's end); a pad piece (no leaves)
    is the root of a subtree of zeros."""
    width = space.piece_length // LEAF
    if not leaves:
        return merkle.pad_hash(width.bit_length() - 1)
    return merkle.merkle_root(leaves) if small else merkle.merkle_root(leaves, width)


def _hash_piece_mapped(space: PieceSpace, data: memoryview, piece: int) -> tuple[bytes | None, bytes | None]:
    """One piece hashed in place (a view of a mapped file): SHA-1 over it, and for v2 the 16 KiB leaves of each
    :data:`BUFFER_BYTES` part right after SHA-1 read that part (it is still in the core's cache)."""
    if not space.v2:
        return hashlib.sha1(data).digest(), None
    h1 = hashlib.sha1() if space.v1 else None
    real, small = space.v2_extent(piece)
    sha256 = hashlib.sha256
    leaves: list[bytes] = []
    for off in range(0, len(data), BUFFER_BYTES):
        part = data[off : off + BUFFER_BYTES]
        if h1 is not None:
            h1.update(part)
        stop = min(len(part), real - off)
        if stop <= 0:
            continue
        # slices of a view cut at the file's end stop there by themselves: no min() per leaf
        data_part = part[:stop]
        leaves += [sha256(data_part[i : i + LEAF]).digest() for i in range(0, stop, LEAF)]
    return (h1.digest() if h1 is not None else None), _v2_root(space, leaves, small)


def _hash_piece_read(
    space: PieceSpace, read_into: ReadInto, hb: HashBuffer, piece: int
) -> tuple[bytes | None, bytes | None]:
    """One piece read into the buffer and hashed, a buffer at a time (the buffer is a multiple of 16 KiB)."""
    pl = space.piece_length
    start = piece * pl
    length = space.piece_bytes(piece)
    h1 = hashlib.sha1() if space.v1 else None
    real, small = space.v2_extent(piece) if space.v2 else (0, False)
    sha256 = hashlib.sha256
    leaves: list[bytes] = []
    size = len(hb)
    for off in range(0, length, size):
        n = min(size, length - off)
        read_into(hb.view[:n], start + off)
        if h1 is not None:
            h1.update(hb.view[:n])
        if off < real:
            leaves += [sha256(v).digest() for v in hb.leaf_views(0, min(n, real - off))]
    d2 = _v2_root(space, leaves, small) if space.v2 else None
    return (h1.digest() if h1 is not None else None), d2


_POOL: list[HashBuffer] = []  # spare buffers for hash_run_pooled; list pop/append are atomic under the GIL
POOL_SIZE = 4
# threads on an executor: fewer system calls and GIL takes per byte beat staying in L2 (paired runs of a 1 GiB
# check: 1 MiB 0.453-0.475 s against 256 KiB 0.507 s)
POOLED_BUFFER_BYTES = 1 << 20


def hash_run_pooled(
    space: PieceSpace, read_into: ReadInto, first: int, end: int
) -> tuple[list[bytes], list[bytes]]:
    """:func:`hash_run` with a buffer taken, in the worker thread, from a small process-wide pool: however many
    re-checks wait for the executor, only the threads that run hold a buffer (at most :data:`POOL_SIZE` are kept
    between runs)."""
    size = buffer_size(space, POOLED_BUFFER_BYTES)
    try:
        hb = _POOL.pop()
    except IndexError:
        hb = HashBuffer(size)
    if len(hb) != size:  # a small piece space (or a changed BUFFER_BYTES): a buffer of its own
        hb = HashBuffer(size)
    try:
        return hash_run(space, read_into, hb, first, end)
    finally:
        if len(_POOL) < POOL_SIZE and len(hb) == POOLED_BUFFER_BYTES:
            _POOL.append(hb)


class _Shared:
    """What the worker threads of :func:`hash_in_threads` share: the run queue, results, progress, the error."""

    def __init__(self, runs: list[tuple[int, int]], n: int) -> None:
        self.runs = iter(runs)  # next() on a list iterator is atomic under the GIL
        self.v1: list[bytes | None] = [None] * n
        self.v2: list[bytes | None] = [None] * n
        self.done: list[int] = []
        self.error: BaseException | None = None
        self.stop = False


def hash_pieces(
    space: PieceSpace,
    open_reader: OpenReader,
    runs: list[tuple[int, int]],
    workers: int,
    progress: Progress | None = None,
    *,
    fork: bool | None = None,
) -> tuple[list[bytes | None], list[bytes | None]]:
    """Hash ``runs`` on ``workers`` cores: in forked processes where that is safe (``fork=None``: decide; see
    :mod:`shoal.storage.hash_fork`), else in threads; one worker or one run: in this thread."""
    workers = max(1, min(workers, len(runs)))
    if workers > 1:
        from shoal.storage import hash_fork

        runs = split_tail(runs, space.piece_length, workers)
        if fork is None:
            fork = hash_fork.fork_is_safe()
        if fork:
            runs = coarsen_runs(runs, hash_fork.MAX_RUNS)
            if len(runs) <= hash_fork.MAX_RUNS:
                return hash_fork.hash_in_processes(space, open_reader, runs, workers, progress)
    return hash_in_threads(space, open_reader, runs, workers, progress)


def hash_in_threads(
    space: PieceSpace,
    open_reader: OpenReader,
    runs: list[tuple[int, int]],
    threads: int,
    progress: Progress | None = None,
) -> tuple[list[bytes | None], list[bytes | None]]:
    """Hash ``runs`` on ``threads`` threads; per piece its v1 and v2 digest (None where not hashed).

    ``open_reader()`` is called once in each thread and returns that thread's :class:`Reader`. The first
    exception of any worker stops the others and is raised here. ``progress(done_bytes, total_bytes)`` is called
    from this thread about ten times a second.
    """
    shared = _Shared(runs, space.num_pieces)
    total = sum(min(b * space.piece_length, space.size) - a * space.piece_length for a, b in runs)
    n = max(1, min(threads, len(runs)))
    shared.done = [0] * n
    if n == 1:  # no thread to start
        _work(space, open_reader, shared, 0, progress, total)
        if shared.error is not None:
            raise shared.error
        return shared.v1, shared.v2
    import threading  # not loaded by `shoal create`, which forks processes

    workers = [
        threading.Thread(
            target=_work, args=(space, open_reader, shared, k), name=f"shoal-hash-{k}", daemon=True
        )
        for k in range(n)
    ]
    for w in workers:
        w.start()
    try:
        for w in workers:
            while w.is_alive():
                w.join(0.1 if progress is not None else None)
                if progress is not None:
                    progress(sum(shared.done), total)
    finally:
        shared.stop = True
        for w in workers:
            w.join()
    if shared.error is not None:
        raise shared.error
    return shared.v1, shared.v2


def _work(
    space: PieceSpace,
    open_reader: OpenReader,
    shared: _Shared,
    k: int,
    progress: Progress | None = None,
    total: int = 0,
) -> None:
    try:
        reader = open_reader()
        try:
            hb = HashBuffer(buffer_size(space))
            pl = space.piece_length
            while not shared.stop:
                run = next(shared.runs, None)
                if run is None:
                    break
                first, end = run
                v1, v2 = hash_run(space, reader.read_into, hb, first, end)
                shared.v1[first : first + len(v1)] = v1
                shared.v2[first : first + len(v2)] = v2
                shared.done[k] += min(end * pl, space.size) - first * pl
                if progress is not None:
                    progress(shared.done[k], total)
        finally:
            reader.close()
    except BaseException as exc:  # handed to the caller's thread
        if shared.error is None:
            shared.error = exc
        shared.stop = True
        if progress is not None:  # the calling thread itself: raise where it happened
            raise
