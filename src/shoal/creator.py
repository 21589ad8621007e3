"""Make a .torrent from a file or folder, hashing on every core.

``create_torrent(path, ...)`` is the library entry point behind ``shoal create``. The layout and the encoding are
decided by the pure :mod:`shoal.codec.metainfo_create`; this module only reads and hashes.

How it is fast (:mod:`shoal.storage.hasher`): one worker per core takes runs of ~4 MiB of whole pieces in turn and
hashes them: SHA-1 per piece (v1), SHA-256 per 16 KiB leaf plus each piece's merkle subtree (v2), both on the
same hot bytes for a hybrid torrent. The workers are forked processes when this process runs a single thread
(``shoal create``: no GIL shared between workers, :mod:`shoal.storage.hash_fork`); they hash each piece that lies in
one file in place, from a read-only memory map (:mod:`shoal.storage.piece_reader`), and read the others with
``os.preadv`` into a buffer of their own. Otherwise the workers are threads (``hashlib`` releases the GIL for every
call on 2 KiB or more) and always read. The runs are small, so both cores stay busy to the last byte.

Reproducible: files are taken in sorted order, symlinks and special files are skipped, and no creation date is
written unless one is given.
"""

from __future__ import annotations

import hashlib
import os

from shoal import __version__
from shoal.codec import merkle
from shoal.codec.metainfo_create import (
    FileHashes,
    auto_piece_length,
    build_torrent_and_info,
    check_piece_length,
    plan_layout,
)
from shoal.codec.paths import check_unique, sanitize_component
from shoal.errors import ConfigError, ShoalError
from shoal.storage import hasher
from shoal.storage.piece_reader import Segment, open_reader

TYPE_CHECKING = False  # typing is not loaded at run time: `shoal create` is a one-shot command
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shoal.codec.metainfo_create import LayoutEntry, Version

    Progress = Callable[[int, int], None]


class CreatedTorrent:
    """What :func:`create` made: the .torrent bytes, its info-hashes (v1 SHA-1, v2 SHA-256; None when that kind is
    absent) and its piece geometry."""

    __slots__ = ("data", "info_hash_v1", "info_hash_v2", "num_pieces", "piece_length")

    def __init__(
        self,
        data: bytes,
        info_hash_v1: bytes | None,
        info_hash_v2: bytes | None,
        num_pieces: int,
        piece_length: int,
    ) -> None:
        self.data = data
        self.info_hash_v1 = info_hash_v1
        self.info_hash_v2 = info_hash_v2
        self.num_pieces = num_pieces
        self.piece_length = piece_length


def torrent_name(path: str | os.PathLike[str]) -> str:
    """The name a torrent of ``path`` gets (its last component, sanitised), without walking a folder. (Paths are
    strings here, not ``pathlib``: ``shoal create`` starts ~2.5 ms sooner without loading it.)"""
    if not os.path.exists(path):
        raise ConfigError(f"path {os.fspath(path)!r} does not exist")
    return sanitize_component(os.path.basename(os.path.realpath(path)))


def scan(path: str | os.PathLike[str]) -> tuple[str, list[tuple[tuple[str, ...], int, str]], bool]:
    """The torrent name, its files as (relative path, length, full path), and whether it is a single file."""
    root = os.fspath(path)
    name = torrent_name(root)
    if os.path.isfile(root):
        return name, [((name,), os.stat(root).st_size, root)], True
    files: list[tuple[tuple[str, ...], int, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        below = os.path.relpath(dirpath, root)
        parts = () if below == os.curdir else tuple(below.split(os.sep))
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            rel = (*parts, fn)
            files.append((tuple(sanitize_component(c) for c in rel), os.stat(full).st_size, full))
    if not files:
        raise ConfigError(f"folder {root!r} has no files")
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
    """Hash ``path`` and return the bencoded torrent. ``trackers`` is a flat list (one tier each) or a list of tiers.
    ``progress(done_bytes, total_bytes)`` is called from the calling thread while hashing."""
    return create(
        path,
        version=version,
        trackers=trackers,
        web_seeds=web_seeds,
        piece_length=piece_length,
        private=private,
        comment=comment,
        source=source,
        created_by=created_by,
        creation_date=creation_date,
        threads=threads,
        progress=progress,
    ).data


def create(
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
) -> CreatedTorrent:
    """Like :func:`create_torrent`, also giving the info-hashes and piece count."""
    if version not in ("v1", "v2", "hybrid"):
        raise ConfigError(f"unknown torrent version {version!r}")
    if threads is not None and threads < 1:
        raise ConfigError(f"hashing threads {threads} must be at least 1")
    name, found, single = scan(path)
    total = sum(length for _, length, _ in found)
    if total == 0:
        raise ConfigError(f"{str(path)!r} holds no data (all files are empty)")
    pl = piece_length or auto_piece_length(total)
    check_piece_length(pl)
    by_path = {rel: full for rel, _, full in found}
    rel_files = [(rel if not single else (), length) for rel, length, _ in found]
    layout = plan_layout(rel_files, pl, version, single)
    paths: list[str] = []
    segments: list[Segment] = []
    for e in layout:
        if e.length:
            segments.append(Segment(e.offset, e.length, None if e.pad else len(paths)))
            if not e.pad:
                paths.append(by_path[(name,) if single else e.path])
    space = layout[-1].offset + layout[-1].length
    v1, v2 = _hash_all(segments, paths, space, pl, version, threads or os.cpu_count() or 1, progress)
    pieces_v1 = b"".join(v1) if version != "v2" else None  # type: ignore[arg-type]
    v2_hashes = _file_hashes(layout, v2, pl) if version != "v1" else None
    tiers = [[t] if isinstance(t, str) else list(t) for t in trackers]
    data, info = build_torrent_and_info(
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
    return CreatedTorrent(
        data,
        hashlib.sha1(info).digest() if version != "v2" else None,
        hashlib.sha256(info).digest() if version != "v1" else None,
        -(-space // pl),
        pl,
    )


def _file_hashes(layout: Sequence[LayoutEntry], v2: list[bytes | None], pl: int) -> list[FileHashes]:
    """Per real file its pieces root and piece layer, from the per-piece v2 digests (which, for a file of at most
    one piece, are already its root)."""
    out: list[FileHashes] = []
    for e in layout:
        if e.pad:
            continue
        if e.length == 0:
            out.append(FileHashes(None))
            continue
        first, end = e.offset // pl, (e.offset + e.length - 1) // pl + 1
        digests = v2[first:end]
        if None in digests:  # every piece was hashed; this is a bug, not bad input
            raise ShoalError(f"internal error: v2 pieces of {'/'.join(e.path)!r} not hashed")
        layer: list[bytes] = digests  # type: ignore[assignment]
        if e.length <= pl:
            out.append(FileHashes(layer[0]))
        else:
            out.append(FileHashes(merkle.root_from_layer(layer, pl), b"".join(layer)))
    return out


def _hash_all(
    segments: list[Segment],
    paths: list[str],
    space: int,
    pl: int,
    version: Version,
    threads: int,
    progress: Progress | None,
) -> tuple[list[bytes | None], list[bytes | None]]:
    files = [(seg.offset, seg.length) for seg in segments if seg.file is not None]
    plan = hasher.PieceSpace(pl, space, v1=version != "v2", v2=version != "v1", files=files)
    runs = hasher.plan_runs(range(plan.num_pieces), pl)

    def open_file(file: int) -> int:
        return os.open(paths[file], os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    return hasher.hash_pieces(plan, lambda: open_reader(segments, open_file, paths), runs, threads, progress)
