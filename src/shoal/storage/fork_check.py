"""A full re-check in forked worker processes, hashing from memory maps: the fast start of ``shoal check`` and
``shoal seed``, before their event loop starts any thread.

:func:`recheck_forked` gives the same answer as :func:`shoal.storage.check.recheck` (the pieces whose SHA-1
matches; pieces of missing or short files are skipped unread), or None where it cannot be used: forking is not
safe in this process (it runs threads), the torrent has no v1 hashes, or a worker failed: a read error, a refused
path, a file cut short under its map (the caller then runs the threaded re-check, which marks just the unreadable
pieces missing and reports a refused path as it always has). Files are opened through
:meth:`~shoal.storage.files.FileStorage.open_for_reading`, so the path rules of every other read hold.

Why: a thread may not hash from a memory map (a file cut short under it is a SIGBUS that ends the whole process);
a forked worker may (:mod:`shoal.storage.hash_fork`). Where copying the page cache is slow, as on the AMD VM of
docs/PERFORMANCE.md, that is most of what a re-check costs besides SHA-1 itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from shoal.errors import ShoalError
from shoal.policy.bitfield import Bitfield
from shoal.storage import hash_fork, hasher
from shoal.storage.check import piece_space, split_hashes, unreadable_pieces
from shoal.storage.files import FileStorage
from shoal.storage.piece_reader import Segment, open_reader


def recheck_forked(
    storage: FileStorage,
    piece_hashes: bytes | None,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Bitfield | None:
    """The verified pieces of ``storage`` against the v1 ``pieces`` string, hashed in forked processes; None
    where this cannot be used (see the module docstring). ``progress(done_pieces, total_pieces)``. Blocking."""
    layout = storage.layout
    n = layout.num_pieces
    if piece_hashes is None or n == 0 or not hash_fork.fork_is_safe():
        return None
    hashes = split_hashes(piece_hashes, n)
    skip = unreadable_pieces(layout, storage.stat_files())
    todo = [p for p in range(n) if not skip[p]]
    result = Bitfield(n)
    if not todo:
        return result
    segments = [
        Segment(f.offset, f.length, None if f.is_pad else i) for i, f in enumerate(layout.files) if f.length
    ]
    names = [str(storage.path_of(i)) for i in range(len(layout.files))]
    space = piece_space(layout, "sha1")
    runs = hasher.plan_runs(todo, layout.piece_length)

    def open_file(file: int) -> int:
        return storage.open_for_reading(file)

    def step(done: int, total: int) -> None:
        if progress is not None and total:
            progress(len(todo) * done // total, len(todo))

    try:
        v1, _ = hasher.hash_pieces(
            space,
            lambda: open_reader(segments, open_file, names),
            runs,
            workers or os.cpu_count() or 1,
            step,
            fork=True,
        )
    except ShoalError:  # a read failed, a path was refused, a worker died: the threaded re-check says what
        return None
    for piece in todo:
        if v1[piece] is not None and v1[piece] == hashes[piece]:
            result.add(piece)
    return result
