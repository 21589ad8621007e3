"""Make a .torrent from a file or folder, hashing on every core.

``create_torrent(path, ...)`` is the library entry point behind ``shoal create``. The layout and the encoding are
decided by the pure :mod:`shoal.codec.metainfo_create`; this module only reads and hashes.

How it is fast: the piece space is cut into chunks of whole pieces (about 8 MiB each). The main thread loads each
chunk once: a chunk inside one file (nearly all of them) is memory-mapped and hashed straight from the page cache,
without copying (the page faults are taken by the workers, in parallel); a chunk that spans files or padding is read with ``os.preadv`` into a
pooled, reused buffer. A thread pool with one worker per core hashes the loaded chunks: SHA-1 per piece (v1);
SHA-256 per 16 KiB block plus each piece's merkle subtree (v2). A hybrid chunk is two tasks, so SHA-1 and SHA-256
run on two cores at once over the same bytes; the SHA-1 task takes the GIL about once per piece, so the SHA-256
task's 64 short calls per MiB rarely wait for it. ``hashlib`` releases the
GIL for buffers of 2 KiB and more, so the workers really run in parallel; the main thread only collects results.

Reproducible: files are taken in sorted order, symlinks and special files are skipped, and no creation date is
written unless one is given.
"""

from __future__ import annotations

import bisect
import hashlib
import mmap
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal import __version__
from shoal.codec import merkle
from shoal.codec.metainfo_create import (
    FileHashes,
    LayoutEntry,
    Version,
    auto_piece_length,
    build_torrent,
    check_piece_length,
    plan_layout,
)
from shoal.codec.paths import check_unique, sanitize_component
from shoal.errors import ConfigError, ShoalError, StorageError

CHUNK_TARGET = 8 * 1024 * 1024
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class _Segment:
    offset: int  # in the piece space
    length: int
    path: Path | None  # None: pad (zeros)


@dataclass(frozen=True, slots=True)
class _ChunkResult:
    first_piece: int
    v1: list[bytes]
    v2: list[bytes]  # per piece: its merkle subtree hash (width = blocks per piece)
    small_roots: dict[int, bytes]  # piece -> root of a file that fits in that piece


def scan(path: Path) -> tuple[str, list[tuple[tuple[str, ...], int, Path]], bool]:
    """The torrent name, its files as (relative path, length, absolute path), and whether it is a single file."""
    if not path.exists():
        raise ConfigError(f"path {str(path)!r} does not exist")
    name = sanitize_component(path.resolve().name)
    if path.is_file():
        return name, [((name,), path.stat().st_size, path)], True
    files: list[tuple[tuple[str, ...], int, Path]] = []
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames.sort()
        for fn in sorted(filenames):
            full = Path(dirpath, fn)
            if full.is_symlink() or not full.is_file():
                continue
            rel = full.relative_to(path).parts
            files.append((tuple(sanitize_component(c) for c in rel), full.stat().st_size, full))
    if not files:
        raise ConfigError(f"folder {str(path)!r} has no files")
    check_unique((name, *rel) for rel, _, _ in files)  # names that sanitise (or case-fold) to the same path
    return name, files, False


def create_torrent(
    path: str | os.PathLike[str],
    *,
    version: Version = "v1",
    trackers: Sequence[str] | Sequence[Sequence[str]] = (),
    web_seeds: Sequence[str] = (),
    piece_length: int | None = None,
    private: bool = False,
    comment: str | None = None,
    source: str | None = None,
    created_by: str | None = f"Shoal {__version__}",
    creation_date: int | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
) -> bytes:
    """Hash ``path`` and return the bencoded torrent. ``trackers`` is a flat list (one tier each) or a list of tiers."""
    if version not in ("v1", "v2", "hybrid"):
        raise ConfigError(f"unknown torrent version {version!r}")
    if threads is not None and threads < 1:
        raise ConfigError(f"hashing threads {threads} must be at least 1")
    name, found, single = scan(Path(path))
    total = sum(length for _, length, _ in found)
    if total == 0:
        raise ConfigError(f"{str(path)!r} holds no data (all files are empty)")
    pl = piece_length or auto_piece_length(total)
    check_piece_length(pl)
    by_path = {rel: full for rel, _, full in found}
    rel_files = [(rel if not single else (), length) for rel, length, _ in found]
    layout = plan_layout(rel_files, pl, version, single)
    segments = [
        _Segment(e.offset, e.length, None if e.pad else by_path[(name,) if single else e.path])
        for e in layout
        if e.length
    ]
    space = layout[-1].offset + layout[-1].length
    results = _hash_all(segments, space, pl, version, threads or os.cpu_count() or 1, progress)
    pieces_v1 = b"".join(h for r in results for h in r.v1) if version != "v2" else None
    v2_hashes = _file_hashes(layout, results, pl) if version != "v1" else None
    tiers = [[t] if isinstance(t, str) else list(t) for t in trackers]
    return build_torrent(
        name=name,
        layout=layout,
        piece_length=pl,
        version=version,
        single=single,
        pieces_v1=pieces_v1,
        v2_hashes=v2_hashes,
        trackers=tiers,
        web_seeds=web_seeds,
        private=private,
        comment=comment,
        source=source,
        created_by=created_by,
        creation_date=creation_date,
    )


def _file_hashes(layout: Sequence[LayoutEntry], results: list[_ChunkResult], pl: int) -> list[FileHashes]:
    per_piece = [h for r in results for h in r.v2]
    small = {p: root for r in results for p, root in r.small_roots.items()}
    out: list[FileHashes] = []
    for e in layout:
        if e.pad:
            continue
        if e.length == 0:
            out.append(FileHashes(None))
        elif e.length <= pl:
            out.append(FileHashes(small[e.offset // pl]))
        else:
            first, end = e.offset // pl, (e.offset + e.length - 1) // pl + 1
            layer = per_piece[first:end]
            out.append(FileHashes(merkle.root_from_layer(layer, pl), b"".join(layer)))
    return out


def _chunks(space: int, pl: int) -> Iterator[tuple[int, int]]:
    """(first piece, byte length) of each chunk of whole pieces."""
    per_chunk = max(1, CHUNK_TARGET // pl)
    num_pieces = -(-space // pl)
    for first in range(0, num_pieces, per_chunk):
        start = first * pl
        yield first, min(space, start + per_chunk * pl) - start


class _Loaded:
    """One chunk's bytes, mapped from a file or read into a pooled buffer; closed when its last hash task ends."""

    def __init__(self, view: memoryview, tasks: int, mm: mmap.mmap | None, buf: bytearray | None) -> None:
        self.view = view
        self.tasks = tasks
        self.mm = mm
        self.buf = buf

    def close(self, free: list[bytearray]) -> None:
        self.view.release()
        if self.mm is not None:
            try:
                self.mm.close()
            except BufferError:  # a slice is still referenced somewhere; the mapping goes with it
                pass
        if self.buf is not None:
            free.append(self.buf)


def _hash_all(
    segments: list[_Segment], space: int, pl: int, version: Version, threads: int, progress: Progress | None
) -> list[_ChunkResult]:
    """The main thread maps or reads each chunk once; the pool hashes it. A hybrid chunk gets two tasks, SHA-1 and
    SHA-256, that run on different cores at once: the SHA-1 task holds the GIL only ~once per piece, so the
    SHA-256 task's many short calls rarely wait for it."""
    real = _RealFiles(segments)
    kinds = ("v1", "v2") if version == "hybrid" else (version,)
    buf_size = max(1, CHUNK_TARGET // pl) * pl
    free: list[bytearray] = []
    loaded: dict[int, _Loaded] = {}
    v1: dict[int, list[bytes]] = {}
    v2: dict[int, tuple[list[bytes], dict[int, bytes]]] = {}
    done_bytes = 0
    it = iter(list(_chunks(space, pl)))
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shoal-hash")
    pending: dict[Future[Any], tuple[int, str]] = {}
    try:
        while True:
            while len(loaded) < threads + 1:
                nxt = next(it, None)
                if nxt is None:
                    break
                first, length = nxt
                chunk = _load(segments, first * pl, length, len(kinds), free, buf_size)
                loaded[first] = chunk
                for kind in kinds:
                    if kind == "v1":
                        fut: Future[Any] = pool.submit(_hash_v1, chunk.view, pl)
                    else:
                        fut = pool.submit(_hash_v2, chunk.view, first, pl, real)
                    pending[fut] = (first, kind)
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                first, kind = pending.pop(fut)
                if kind == "v1":
                    v1[first] = fut.result()
                else:
                    v2[first] = fut.result()
                chunk = loaded[first]
                chunk.tasks -= 1
                if chunk.tasks == 0:
                    done_bytes += len(chunk.view)
                    chunk.close(free)
                    del loaded[first]
                    if progress is not None:
                        progress(done_bytes, space)
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)
        for chunk in loaded.values():
            chunk.close(free)
    return [
        _ChunkResult(first, v1.get(first, []), *v2.get(first, ([], {})))
        for first in sorted(set(v1) | set(v2))
    ]


def _load(
    segments: list[_Segment], start: int, length: int, tasks: int, free: list[bytearray], buf_size: int
) -> _Loaded:
    try:
        whole = _single_file(segments, start, start + length)
        if whole is not None:  # the common case: map the file and hash the page cache in place (no copy)
            mm, skew = _map(whole, start - whole.offset, length)
            return _Loaded(memoryview(mm)[skew : skew + length], tasks, mm, None)
        buf = free.pop() if free else bytearray(buf_size)
        view = memoryview(buf)[:length]
        _read_into(view, start, segments)
        return _Loaded(view, tasks, None, buf)
    except OSError as exc:
        raise StorageError(f"cannot read data: {exc.strerror or exc}") from None


def _read_into(view: memoryview, start: int, segments: list[_Segment]) -> None:
    end = start + len(view)
    lo, hi = 0, len(segments)
    while lo < hi:  # first segment that ends after start
        mid = (lo + hi) // 2
        if segments[mid].offset + segments[mid].length <= start:
            lo = mid + 1
        else:
            hi = mid
    filled = 0
    for seg in segments[lo:]:
        if seg.offset >= end:
            break
        a = max(start, seg.offset)
        b = min(end, seg.offset + seg.length)
        part = view[a - start : b - start]
        if seg.path is None:
            part[:] = bytes(len(part))
        else:
            _pread_exact(seg.path, part, a - seg.offset)
        filled += b - a
    if filled != len(view):  # gaps are impossible in a plan; keep the check cheap and explicit
        raise ShoalError(f"internal error: chunk at {start} filled {filled} of {len(view)} bytes")


def _pread_exact(path: Path, part: memoryview, file_offset: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        got = 0
        while got < len(part):
            n = os.preadv(fd, [part[got:]], file_offset + got)
            if n == 0:
                raise StorageError(f"file {str(path)!r} shrank while hashing")
            got += n
    finally:
        os.close(fd)


def _single_file(segments: list[_Segment], start: int, end: int) -> _Segment | None:
    """The segment if one real file covers all of [start, end)."""
    i = bisect.bisect_right(segments, start, key=lambda seg: seg.offset) - 1
    if i >= 0:
        seg = segments[i]
        if seg.path is not None and seg.offset <= start and end <= seg.offset + seg.length:
            return seg
    return None


def _map(seg: _Segment, file_offset: int, length: int) -> tuple[mmap.mmap, int]:
    """A read-only mapping holding ``length`` bytes of the file at ``file_offset``, and where in it they start."""
    assert seg.path is not None
    fd = os.open(seg.path, os.O_RDONLY)
    try:
        if os.fstat(fd).st_size < file_offset + length:  # a shorter file would SIGBUS on access
            raise StorageError(f"file {str(seg.path)!r} shrank while hashing")
        skew = file_offset % mmap.ALLOCATIONGRANULARITY
        # no MAP_POPULATE: the page faults then happen in the hashing workers, in parallel, instead of in the
        # main thread (A/B here: 2.8-3.0 vs 1.8-2.4 GB/s for v1)
        mm = mmap.mmap(
            fd, length + skew, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=file_offset - skew
        )
    finally:
        os.close(fd)
    return mm, skew


class _RealFiles:
    """The segments that are files (not pads), with their start offsets for bisection."""

    def __init__(self, segments: list[_Segment]) -> None:
        self.segments = [seg for seg in segments if seg.path is not None]
        self.starts = [seg.offset for seg in self.segments]

    def at(self, offset: int) -> _Segment | None:
        k = bisect.bisect_right(self.starts, offset) - 1
        if k >= 0 and offset < self.segments[k].offset + self.segments[k].length:
            return self.segments[k]
        return None


def _hash_v1(view: memoryview, pl: int) -> list[bytes]:
    sha1 = hashlib.sha1
    return [sha1(view[i : i + pl]).digest() for i in range(0, len(view), pl)]


def _hash_v2(view: memoryview, first: int, pl: int, real: _RealFiles) -> tuple[list[bytes], dict[int, bytes]]:
    """Per piece: the merkle subtree over its 16 KiB leaves (pad excluded), and the root of each file that fits in
    one piece (its ``pieces root`` is not a piece-layer entry)."""
    v2: list[bytes] = []
    small: dict[int, bytes] = {}
    per_piece = pl // merkle.BLOCK_SIZE
    start = first * pl
    for i in range(-(-len(view) // pl)):
        a = start + i * pl
        seg = real.at(a)
        if seg is None:  # a piece made only of padding cannot occur in a plan; stay total anyway
            v2.append(merkle.pad_hash(per_piece.bit_length() - 1))
            continue
        file_end = seg.offset + seg.length
        leaves = merkle.block_hashes(view[i * pl : i * pl + min(file_end - a, pl)])
        v2.append(merkle.merkle_root(leaves, per_piece))
        if seg.offset == a and file_end <= a + pl:
            small[first + i] = merkle.merkle_root(leaves)
    return v2, small
