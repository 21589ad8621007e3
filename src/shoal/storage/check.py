"""Hash pieces already on disk: a full recheck (``shoal check``, ``shoal seed``) or a partial one after resume.

``await recheck(storage, piece_hashes)`` -> :class:`~shoal.policy.bitfield.Bitfield` of pieces whose SHA-1
matches. ``piece_hashes`` is the v1 ``pieces`` string (20 bytes per piece, as in ``InfoDict.piece_hashes_v1``) or
a sequence of digests. ``only`` limits the check to some pieces (e.g. ``ResumeState.recheck``). Pieces touching
a missing or short file are skipped without reading. Hashing runs in the storage's worker threads, so the cores
hash in parallel; a read error marks that piece missing, it does not abort the check. ``progress(done, total)``
is called as pieces are done.

A :class:`~shoal.storage.files.FileStorage` (anything with ``hash_run``) is checked in runs of ~4 MiB of
consecutive pieces, each read with ``preadv`` into a worker's own reused buffer and hashed there, the way
``shoal create`` hashes (:mod:`shoal.storage.hasher`): one thread hop per run, no new buffer per piece, data hashed
while it is in the core's cache. Other storages go piece by piece, ``concurrency`` pieces in flight.

``algo="v2"`` checks BEP 52 piece-layer hashes (see ``shoal.storage.backend.piece_digest``);
``expected_hashes(metainfo)`` picks the hashes and algorithm for a torrent (v1 SHA-1 when present, else v2).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from shoal.errors import DiskFullError, StorageError
from shoal.policy.bitfield import Bitfield
from shoal.storage.backend import FileStat, Storage
from shoal.storage.hasher import PieceSpace, plan_runs
from shoal.storage.layout import Layout

HASH_LEN = {"sha1": 20, "sha256": 32, "v2": 32}
_CORES = (
    os.cpu_count() or 1
)  # read once: each call reads /sys (40 us; a session starting 1,000 torrents asked 1,000 times)


class _InfoLike(Protocol):
    @property
    def has_v1(self) -> bool: ...
    @property
    def piece_hashes_v1(self) -> bytes | None: ...
    @property
    def num_pieces(self) -> int: ...


class _MetainfoLike(Protocol):
    @property
    def info(self) -> _InfoLike: ...
    def v2_piece_hash(self, piece: int) -> bytes | None: ...


def expected_hashes(metainfo: _MetainfoLike) -> tuple[list[bytes | None], str]:
    """``(per-piece expected digests, algo)`` for a :class:`shoal.codec.metainfo.Metainfo`: v1 SHA-1 when the
    torrent has v1 hashes (v1 and hybrid), else the v2 piece-layer hashes."""
    info = metainfo.info
    if info.has_v1 and info.piece_hashes_v1 is not None:
        return list(split_hashes(info.piece_hashes_v1, info.num_pieces)), "sha1"
    return [metainfo.v2_piece_hash(i) for i in range(info.num_pieces)], "v2"


def split_hashes(
    piece_hashes: bytes | Sequence[bytes | None], num_pieces: int, algo: str = "sha1"
) -> list[bytes | None]:
    if isinstance(piece_hashes, bytes | bytearray | memoryview):
        raw = bytes(piece_hashes)
        n = HASH_LEN.get(algo, 20)
        if len(raw) != n * num_pieces:
            raise ValueError(f"pieces string of {len(raw)} bytes for {num_pieces} pieces")
        return [raw[i * n : (i + 1) * n] for i in range(num_pieces)]
    hashes = list(piece_hashes)
    if len(hashes) != num_pieces:
        raise ValueError(f"{len(hashes)} piece hashes for {num_pieces} pieces")
    return hashes


def unreadable_pieces(layout: Layout, stats: Sequence[FileStat | None]) -> bytearray:
    """Per piece, 1 where one of its files is missing or shorter than the torrent says (not worth reading)."""
    skip = bytearray(layout.num_pieces)
    for i, f in enumerate(layout.files):
        st = stats[i]
        if not f.is_pad and f.length > 0 and (st is None or st.size < f.length):
            for piece in layout.file_piece_range(i):
                skip[piece] = 1
    return skip


def pieces_to_check(
    layout: Layout,
    hashes: Sequence[bytes | None],
    stats: Sequence[FileStat | None],
    only: Iterable[int] | None = None,
) -> list[int]:
    """The pieces a re-check reads, in order: all (or ``only`` those) that have a hash to check against and no
    missing or short file. A piece number outside the torrent is a ValueError."""
    n = layout.num_pieces
    skip = unreadable_pieces(layout, stats)
    todo: list[int] = []
    for piece in range(n) if only is None else sorted(set(only)):
        if not 0 <= piece < n:
            raise ValueError(f"piece {piece} out of range 0..{n - 1}")
        if hashes[piece] is not None and not skip[piece]:  # None: nothing to check against
            todo.append(piece)
    return todo


def piece_space(layout: Layout, algo: str) -> PieceSpace:
    """What :mod:`shoal.storage.hasher` hashes for ``algo`` (``sha1``: v1 pieces, ``v2``: piece-layer hashes)."""
    files = [(f.offset, f.length) for f in layout.files if not f.is_pad and f.length]
    return PieceSpace(
        layout.piece_length, layout.total_length, v1=algo == "sha1", v2=algo == "v2", files=files
    )


async def recheck(
    storage: Storage,
    piece_hashes: bytes | Sequence[bytes | None],
    *,
    only: Iterable[int] | None = None,
    concurrency: int = 4,
    progress: Callable[[int, int], None] | None = None,
    algo: str = "sha1",
) -> Bitfield:
    """Hash pieces from ``storage``; return the ones that verify. See the module docstring."""
    layout = storage.layout
    n = layout.num_pieces
    hashes = split_hashes(piece_hashes, n, algo)
    result = Bitfield(n)
    todo = pieces_to_check(layout, hashes, await storage.file_stats(), only)
    total = len(todo)
    if algo in ("sha1", "v2") and hasattr(storage, "hash_run"):
        await _recheck_runs(storage, todo, hashes, result, concurrency, progress, algo)
        return result
    done = 0
    it = iter(todo)

    async def worker() -> None:
        nonlocal done
        for piece in it:
            try:
                if await storage.hash_piece(piece, algo) == hashes[piece]:
                    result.add(piece)
            except DiskFullError:
                raise
            except StorageError:
                pass
            done += 1
            if progress is not None:
                progress(done, total)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return result


async def _recheck_runs(
    storage: Any,
    todo: list[int],
    hashes: list[bytes | None],
    result: Bitfield,
    concurrency: int,
    progress: Callable[[int, int], None] | None,
    algo: str,
) -> None:
    """The fast path for storages with ``hash_run`` (:class:`~shoal.storage.files.FileStorage`): runs of ~4 MiB
    of consecutive pieces, each read into a reused buffer (taken in the worker thread, so waiting re-checks hold
    none) and hashed there (:mod:`shoal.storage.hasher`), one run per thread hop instead of one piece. ``concurrency`` runs are in
    flight (at most one per core, plus one so no core waits for the loop between two runs). A run that fails to
    read is checked again piece by piece, so one bad piece does not mark its neighbours missing."""
    layout = storage.layout
    space = piece_space(layout, algo)
    planned = plan_runs(todo, layout.piece_length)
    runs = iter(planned)
    done = 0
    total = len(todo)

    async def worker() -> None:
        nonlocal done
        for first, end in runs:
            try:
                v1, v2 = await storage.hash_run(space, first, end)
                digests = v1 if algo == "sha1" else v2
            except DiskFullError:
                raise
            except StorageError:
                digests = []
                for piece in range(first, end):
                    try:
                        digests.append(await storage.hash_piece(piece, algo))
                    except StorageError:
                        digests.append(b"")
            for piece, digest in zip(range(first, end), digests, strict=True):
                if digest == hashes[piece]:
                    result.add(piece)
            done += end - first
            if progress is not None:
                progress(done, total)

    workers = max(1, min(concurrency, _CORES + 1, len(planned)))
    if workers == 1:
        # a small torrent: one run, no tasks to make (a session may check a thousand at start-up)
        await worker()
        return
    await asyncio.gather(*(worker() for _ in range(workers)))
