"""The pure half of torrent creation: piece size, file layout, and the bencoded result from finished hashes.

``shoal.creator`` reads the files and hashes them on all cores; everything that decides *what* the torrent looks
like lives here, so it can be tested without a disk:

* :func:`auto_piece_length` picks a power of two between 16 KiB and 16 MiB giving at most ~2000 pieces (the range
  mktorrent, libtorrent and qBittorrent aim at).
* :func:`plan_layout` orders the files (sorted by their path components as UTF-8 bytes, the order of a v2 file tree)
  and, for v2 and hybrid torrents of more than one file, adds a BEP 47 pad entry after every file that ends inside
  a piece (the last one too), so each file starts on a piece boundary. That is exactly libtorrent 2.1's layout
  (a folder holding a single file gets no pad there either), so the info dicts come out byte-identical.
* :func:`build_torrent_and_info` assembles the info dict and the top-level dict; without ``creation_date`` the output is a
  pure function of the content and the options (reproducible).
"""

from __future__ import annotations

from shoal.codec.bencode_plain import Encoded, encode
from shoal.codec.merkle import BLOCK_SIZE
from shoal.codec.paths import PAD_DIR
from shoal.errors import ConfigError

# typing and dataclasses stay unloaded here: ``shoal create`` is a one-shot command and start-up time counts
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Literal

    Version = Literal["v1", "v2", "hybrid"]

VERSIONS: tuple[Version, ...] = ("v1", "v2", "hybrid")
MIN_PIECE_LENGTH = BLOCK_SIZE
MAX_AUTO_PIECE_LENGTH = 16 * 1024 * 1024
MAX_PIECE_LENGTH = 256 * 1024 * 1024
TARGET_MAX_PIECES = 2000


def auto_piece_length(total_length: int) -> int:
    """The smallest power of two in [16 KiB, 16 MiB] that keeps the piece count at or below ~2000."""
    length = MIN_PIECE_LENGTH
    while length < MAX_AUTO_PIECE_LENGTH and -(-total_length // length) > TARGET_MAX_PIECES:
        length *= 2
    return length


def check_piece_length(piece_length: int) -> None:
    if (
        piece_length < MIN_PIECE_LENGTH
        or piece_length & (piece_length - 1)
        or piece_length > MAX_PIECE_LENGTH
    ):
        raise ConfigError(f"piece size {piece_length} is not a power of two >= {MIN_PIECE_LENGTH}")


class LayoutEntry:
    """One file or pad in the piece space; ``path`` is relative to the torrent's folder (empty for a single file)."""

    __slots__ = ("length", "offset", "pad", "path")

    def __init__(self, path: tuple[str, ...], length: int, offset: int, pad: bool = False) -> None:
        self.path = path
        self.length = length
        self.offset = offset
        self.pad = pad

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LayoutEntry):
            return NotImplemented
        return (self.path, self.length, self.offset, self.pad) == (
            other.path,
            other.length,
            other.offset,
            other.pad,
        )

    def __hash__(self) -> int:
        return hash((self.path, self.length, self.offset, self.pad))

    def __repr__(self) -> str:
        return f"LayoutEntry({self.path!r}, {self.length}, {self.offset}, pad={self.pad})"


def plan_layout(
    files: Sequence[tuple[tuple[str, ...], int]], piece_length: int, version: Version, single: bool
) -> list[LayoutEntry]:
    """Order ``files`` (path, length) and insert pads for v2/hybrid; offsets are in the piece space."""
    ordered = sorted(files, key=lambda f: tuple(c.encode() for c in f[0]))
    result: list[LayoutEntry] = []
    offset = 0
    for path, length in ordered:
        result.append(LayoutEntry(path, length, offset))
        offset += length
        if version != "v1" and len(ordered) > 1 and offset % piece_length:
            pad = piece_length - offset % piece_length
            result.append(LayoutEntry((PAD_DIR, str(pad)), pad, offset, pad=True))
            offset += pad
    return result


class FileHashes:
    """v2 hashes of one file: ``pieces_root`` (None when empty) and ``piece_layer`` (empty if <= one piece)."""

    __slots__ = ("piece_layer", "pieces_root")

    def __init__(self, pieces_root: bytes | None, piece_layer: bytes = b"") -> None:
        self.pieces_root = pieces_root
        self.piece_layer = piece_layer


def build_torrent_and_info(
    *,
    name: str,
    layout: Sequence[LayoutEntry],
    piece_length: int,
    version: Version,
    single: bool,
    pieces_v1: bytes | None,
    v2_hashes: Sequence[FileHashes] | None,
    trackers: Sequence[Sequence[str]] = (),
    web_seeds: Sequence[str] = (),
    private: bool = False,
    comment: str | None = None,
    source: str | None = None,
    created_by: str | None = None,
    creation_date: int | None = None,
) -> tuple[bytes, bytes]:
    """The bencoded .torrent and its bencoded info dictionary (what the info-hashes are computed over).
    ``v2_hashes`` lines up with the non-pad entries of ``layout``."""
    info: dict[bytes, Any] = {b"name": name.encode(), b"piece length": piece_length}
    if version != "v1":
        info[b"meta version"] = 2
    real = [e for e in layout if not e.pad]
    if version != "v2":
        assert pieces_v1 is not None
        info[b"pieces"] = pieces_v1
        if single:
            info[b"length"] = real[0].length
        else:
            info[b"files"] = [_v1_file(e) for e in layout]
    top: dict[bytes, Any] = {}
    if version != "v1":
        assert v2_hashes is not None and len(v2_hashes) == len(real)
        info[b"file tree"] = _file_tree(name, real, v2_hashes, single)
        layers = {h.pieces_root: h.piece_layer for h in v2_hashes if h.piece_layer and h.pieces_root}
        if layers:
            top[b"piece layers"] = layers
    if private:
        info[b"private"] = 1
    if source:
        info[b"source"] = source.encode()
    tiers = [[t for t in tier if t] for tier in trackers]
    tiers = [t for t in tiers if t]
    if tiers:
        top[b"announce"] = tiers[0][0].encode()
        if len(tiers) > 1 or len(tiers[0]) > 1:
            top[b"announce-list"] = [[t.encode() for t in tier] for tier in tiers]
    if web_seeds:
        top[b"url-list"] = [w.encode() for w in web_seeds] if len(web_seeds) > 1 else web_seeds[0].encode()
    if comment:
        top[b"comment"] = comment.encode()
    if created_by:
        top[b"created by"] = created_by.encode()
    if creation_date is not None:
        top[b"creation date"] = creation_date
    info_bytes = Encoded(encode(info))
    top[b"info"] = info_bytes
    return encode(top), bytes(info_bytes)


def _v1_file(e: LayoutEntry) -> dict[bytes, Any]:
    d: dict[bytes, Any] = {b"length": e.length, b"path": [c.encode() for c in e.path]}
    if e.pad:
        d[b"attr"] = b"p"
    return d


def _file_tree(
    name: str, real: Sequence[LayoutEntry], hashes: Sequence[FileHashes], single: bool
) -> dict[bytes, Any]:
    tree: dict[bytes, Any] = {}
    for entry, h in zip(real, hashes, strict=True):
        props: dict[bytes, Any] = {b"length": entry.length}
        if h.pieces_root is not None:
            props[b"pieces root"] = h.pieces_root
        node = tree
        path = (name,) if single else entry.path
        for comp in path[:-1]:
            node = node.setdefault(comp.encode(), {})
        node[path[-1].encode()] = {b"": props}
    return tree
