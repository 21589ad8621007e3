"""Make a .torrent from a file or folder, hashing on every core.

``create_torrent(path, ...)`` is the library entry point behind ``shoal create``. The layout and the encoding are
decided by the pure :mod:`shoal.codec.metainfo_create`; this module only reads and hashes.

How it is fast: the piece space is cut into chunks of whole pieces (about 8 MiB each). A thread pool with one
worker per core takes a chunk at a time. A chunk inside one file (nearly all of them) is memory-mapped with
``MAP_POPULATE`` and hashed straight from the page cache, without copying; a chunk that spans files or padding is
read with ``os.preadv`` into a per-thread, reused buffer. Each piece gets its SHA-1 (v1) and then its SHA-256
block hashes and merkle subtree (v2) back to back, while it is still in the CPU cache. ``hashlib`` releases the
GIL for buffers of 2 KiB and more, so the workers really run in parallel; the main thread only collects results.

Reproducible: files are taken in sorted order, symlinks and special files are skipped, and no creation date is
written unless one is given.
"""

from __future__ import annotations

import bisect
import hashlib
import mmap
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
from shoal.codec.paths import sanitize_component
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


def _hash_all(
    segments: list[_Segment], space: int, pl: int, version: Version, threads: int, progress: Progress | None
) -> list[_ChunkResult]:
    local = threading.local()
    real = _RealFiles(segments)
    buf_size = max(1, CHUNK_TARGET // pl) * pl

    def work(first: int, length: int) -> _ChunkResult:
        start = first * pl
        whole = _single_file(segments, start, start + length)
        if whole is not None:  # the common case: map the file, hash the page cache in place (no copy)
            with _mapped(whole, start - whole.offset, length) as view:
                return _hash_chunk(view, first, start, pl, version, real)
        buf: bytearray | None = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = bytearray(buf_size)
        view = memoryview(buf)[:length]
        _read_into(view, start, segments)
        return _hash_chunk(view, first, start, pl, version, real)

    results: dict[int, _ChunkResult] = {}
    done_bytes = 0
    chunks = list(_chunks(space, pl))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shoal-hash") as pool:
        pending: dict[Future[_ChunkResult], int] = {}
        it = iter(chunks)
        while True:
            while len(pending) < 2 * threads:
                nxt = next(it, None)
                if nxt is None:
                    break
                pending[pool.submit(work, *nxt)] = nxt[1]
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                size = pending.pop(fut)
                try:
                    r = fut.result()
                except OSError as exc:
                    raise StorageError(f"cannot read data: {exc}") from None
                results[r.first_piece] = r
                done_bytes += size
                if progress is not None:
                    progress(done_bytes, space)
    return [results[k] for k in sorted(results)]


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


@contextmanager
def _mapped(seg: _Segment, file_offset: int, length: int) -> Iterator[memoryview]:
    """A read-only view of ``length`` bytes of the file at ``file_offset``, mapped with MAP_POPULATE on Linux."""
    assert seg.path is not None
    fd = os.open(seg.path, os.O_RDONLY)
    try:
        if os.fstat(fd).st_size < file_offset + length:  # a shorter file would SIGBUS on access
            raise StorageError(f"file {str(seg.path)!r} shrank while hashing")
        skew = file_offset % mmap.ALLOCATIONGRANULARITY
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mm = mmap.mmap(fd, length + skew, flags=flags, prot=mmap.PROT_READ, offset=file_offset - skew)
    finally:
        os.close(fd)
    view = memoryview(mm)
    try:
        yield view[skew : skew + length]
    finally:
        view.release()
        try:
            mm.close()
        except BufferError:  # a slice is still referenced somewhere; the mapping goes with it
            pass


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


def _hash_chunk(
    view: memoryview, first: int, start: int, pl: int, version: Version, real: _RealFiles
) -> _ChunkResult:
    """Hash the pieces of one chunk, piece by piece so a piece is still in the CPU cache for its second hash."""
    v1: list[bytes] = []
    v2: list[bytes] = []
    small: dict[int, bytes] = {}
    n = -(-len(view) // pl)
    sha1 = hashlib.sha1
    per_piece = pl // merkle.BLOCK_SIZE
    for i in range(n):
        piece = view[i * pl : (i + 1) * pl]
        if version != "v2":
            v1.append(sha1(piece).digest())
        if version == "v1":
            continue
        a = start + i * pl
        seg = real.at(a)
        if seg is None:  # a piece made only of padding cannot occur in a plan; stay total anyway
            v2.append(merkle.pad_hash(per_piece.bit_length() - 1))
            continue
        file_end = seg.offset + seg.length
        leaves = merkle.block_hashes(piece[: min(file_end, a + pl) - a])
        v2.append(merkle.merkle_root(leaves, per_piece))
        if seg.offset == a and file_end <= a + pl:  # the whole file is in this piece: its root is not a layer
            small[first + i] = merkle.merkle_root(leaves)
    return _ChunkResult(first, v1, v2, small)
