"""Torrent metainfo (BEP 3, 12, 19, 27, 47, 52): a validated, frozen model of a .torrent file.

Public API (names are stable; other areas import them)::

    Metainfo.from_bytes(data, settings=None) -> Metainfo     parse and validate a whole .torrent file
    Metainfo.to_bytes() -> bytes                             re-encode; the info dict keeps its original bytes
    Metainfo.info_hash                                       the 20-byte wire info-hash (v1, else truncated v2)
    Metainfo.info_hash_v1 / info_hash_v2                     SHA-1 / SHA-256 of the raw info dict, or None
    Metainfo.trackers (tiers), web_seeds, comment, created_by, creation_date, piece_layers
    Metainfo.piece_layer(file_index) / v2_piece_hash(piece)  v2 hashes for the storage and wire layers
    InfoDict.from_bytes(raw_info, settings=None, expected_hash=None)   after a BEP 9 metadata fetch
    InfoDict.raw / to_bytes()                                the original info bytes (served over BEP 9)
    InfoDict.name, piece_length, files, real_files, piece_hashes_v1, num_pieces, total_length, content_length,
        private, source, meta_version, has_v1, has_v2, is_hybrid, piece_size(i), piece_hash_v1(i),
        file_index_at(offset), file_piece_range(file_index)
    FileEntry(path, length, offset, pieces_root, attr, symlink)   ``is_pad``, ``is_executable``, ``is_hidden``

Geometry: all files lie in one *piece space*. ``FileEntry.offset`` is the file's byte offset in it. For v1 the
space is the concatenation of the ``files`` list, pad files (BEP 47) included. For v2-only torrents every file
starts on a piece boundary (BEP 52) and Shoal inserts a synthetic pad entry (``attr`` ``"p"``) after every file
that ends inside a piece, last file included, as libtorrent does; hybrids carry their own pad files.
``total_length`` is the length of the piece space (pads included; ``piece_size`` counts them) and
``content_length`` the sum of real files. ``FileEntry.path`` is relative to the download folder and already
sanitised (see ``shoal.codec.paths``): ``(name,)`` for a single-file torrent, ``(name, dir, ..., file)`` for a
multi-file one. A v2 ``file tree`` holding a single file at its root is a single-file torrent (as in libtorrent).
Pad entries have the path ``(name, ".pad", "<length>")``, hold zeros, and are never written to disk or requested
from peers.

Every problem raises ``MetainfoError`` (``UnsafePathError`` for paths) or ``BencodeError``; nothing else escapes.
The info-hashes are computed over the original bytes of the info dictionary, never over a re-encoding, so a
non-canonical torrent gets the same info-hash as in libtorrent.

Modules: ``metainfo`` (this: model, v1, hybrid checks), ``metainfo_fields`` (``FileEntry``, field helpers,
trackers), ``metainfo_v2`` (file tree, piece layers), ``merkle`` (BEP 52 trees), ``metainfo_create`` (layout and
encoding of new torrents; the hashing is ``shoal.creator``), ``paths`` (safe names), ``magnet``.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from shoal.codec import bencode, merkle
from shoal.codec.metainfo_fields import (
    FileEntry,
    get_field,
    get_text,
    opt_int,
    opt_text,
    pad_path,
    parse_attr,
    parse_symlink,
    parse_trackers,
    parse_web_seeds,
    path_limits,
)
from shoal.codec.metainfo_v2 import parse_file_tree, validate_piece_layers
from shoal.codec.paths import PAD_DIR, PathSet, check_path, sanitize_component
from shoal.config import Settings
from shoal.errors import MetainfoError, ShoalError
from shoal.records import record

__all__ = ["PAD_DIR", "FileEntry", "InfoDict", "Metainfo", "splice_info"]


@record
class InfoDict:
    """The validated info dictionary of a torrent."""

    name: str
    piece_length: int
    files: tuple[FileEntry, ...]
    piece_hashes_v1: bytes | None
    num_pieces: int
    total_length: int
    private: bool
    raw: bytes
    meta_version: int = 1
    source: str | None = None
    _offsets: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @property
    def has_v1(self) -> bool:
        return self.piece_hashes_v1 is not None

    @property
    def has_v2(self) -> bool:
        return self.meta_version == 2

    @property
    def is_hybrid(self) -> bool:
        return self.has_v1 and self.has_v2

    @property
    def content_length(self) -> int:
        return sum(f.length for f in self.files if not f.is_pad)

    @property
    def real_files(self) -> tuple[FileEntry, ...]:
        return tuple(f for f in self.files if not f.is_pad)

    @property
    def info_hash_v1(self) -> bytes | None:
        return hashlib.sha1(self.raw).digest() if self.has_v1 else None

    @property
    def info_hash_v2(self) -> bytes | None:
        return hashlib.sha256(self.raw).digest() if self.has_v2 else None

    def piece_size(self, index: int) -> int:
        if not 0 <= index < self.num_pieces:
            raise IndexError(f"piece {index} out of range 0..{self.num_pieces - 1}")
        if index == self.num_pieces - 1:
            return self.total_length - self.piece_length * index
        return self.piece_length

    def piece_hash_v1(self, index: int) -> bytes:
        if self.piece_hashes_v1 is None:
            raise MetainfoError("torrent has no v1 piece hashes")
        self.piece_size(index)
        return self.piece_hashes_v1[20 * index : 20 * index + 20]

    def file_index_at(self, offset: int) -> int:
        """Index in ``files`` of the entry holding byte ``offset`` of the piece space (skips empty files)."""
        offsets = self._offsets or tuple(f.offset for f in self.files)
        i = bisect.bisect_right(offsets, offset) - 1
        while i < len(self.files) - 1 and self.files[i].length == 0:
            i += 1
        return max(i, 0)

    def file_piece_range(self, file_index: int) -> tuple[int, int]:
        """First piece and one past the last piece that hold bytes of the file (equal for empty files)."""
        f = self.files[file_index]
        first = f.offset // self.piece_length
        if f.length == 0:
            return first, first
        return first, (f.offset + f.length - 1) // self.piece_length + 1

    def to_bytes(self) -> bytes:
        return self.raw

    @classmethod
    def from_bytes(
        cls, raw_info: bytes, settings: Settings | None = None, expected_hash: bytes | None = None
    ) -> InfoDict:
        """Parse and validate a raw info dictionary (e.g. assembled from BEP 9 metadata pieces).

        ``expected_hash`` may be a 20-byte v1 or truncated v2 hash, or a 32-byte v2 hash; a mismatch raises.
        """
        s = settings or Settings()
        if len(raw_info) > s.max_metadata_size:
            raise MetainfoError(
                f"info dict of {len(raw_info)} bytes exceeds max_metadata_size {s.max_metadata_size}"
            )
        decoded = bencode.decode(
            raw_info,
            max_depth=s.max_bencode_depth,
            max_size=s.max_metadata_size,
            max_tokens=s.max_bencode_tokens,
            strict=False,
        )
        info = _parse_info(decoded, raw_info, s)
        if expected_hash is not None and not _hash_matches(info, expected_hash):
            raise MetainfoError(f"info dict does not match info-hash {expected_hash.hex()}")
        return info


def _hash_matches(info: InfoDict, expected: bytes) -> bool:
    candidates = []
    if info.info_hash_v1 is not None:
        candidates.append(info.info_hash_v1)
    if info.info_hash_v2 is not None:
        candidates += [info.info_hash_v2, info.info_hash_v2[:20]]
    return expected in candidates


@record
class Metainfo:
    """A whole .torrent file: the info dict plus trackers, web seeds and descriptive fields."""

    info: InfoDict
    info_hash_v1: bytes | None
    info_hash_v2: bytes | None
    trackers: list[list[str]] = field(default_factory=list)
    web_seeds: list[str] = field(default_factory=list)
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None
    piece_layers: Mapping[bytes, bytes] = field(default_factory=dict)

    @property
    def info_hash(self) -> bytes:
        """The info-hash used on the wire and with trackers: v1, else the truncated v2 hash."""
        if self.info_hash_v1 is not None:
            return self.info_hash_v1
        assert self.info_hash_v2 is not None
        return self.info_hash_v2[:20]

    @property
    def name(self) -> str:
        return self.info.name

    def piece_layer(self, file_index: int) -> bytes | None:
        """The piece-layer hashes of a file larger than one piece; its root alone for smaller files; else None."""
        f = self.info.files[file_index]
        if f.pieces_root is None:
            return None
        if f.length <= self.info.piece_length:
            return f.pieces_root
        return self.piece_layers.get(f.pieces_root)

    def v2_piece_hash(self, piece: int) -> bytes | None:
        """The expected v2 hash of a piece (piece-layer entry, or the pieces root of a small file)."""
        info = self.info
        info.piece_size(piece)
        index = info.file_index_at(piece * info.piece_length)
        f = info.files[index]
        if f.is_pad or f.pieces_root is None:
            return None
        layer = self.piece_layer(index)
        if layer is None:
            return None
        if f.length <= info.piece_length:
            return layer
        k = piece - f.offset // info.piece_length
        return layer[32 * k : 32 * k + 32]

    @classmethod
    def from_bytes(cls, data: bytes, settings: Settings | None = None) -> Metainfo:
        s = settings or Settings()
        if len(data) > s.max_torrent_size:
            raise MetainfoError(f"torrent of {len(data)} bytes exceeds max_torrent_size {s.max_torrent_size}")
        top = bencode.decode(
            data,
            max_depth=s.max_bencode_depth,
            max_size=s.max_torrent_size,
            max_tokens=s.max_bencode_tokens,
            strict=False,
        )
        if not isinstance(top, dict):
            raise MetainfoError("torrent is not a dictionary")
        if b"info" not in top:
            raise MetainfoError("torrent has no info dictionary")
        raw = _raw_info(data, top[b"info"], s.max_bencode_depth)
        info = _parse_info(top[b"info"], raw, s)
        layers: dict[bytes, bytes] = {}
        if info.has_v2:
            layers = validate_piece_layers(top.get(b"piece layers"), info.files, info.piece_length)
        return cls(
            info=info,
            info_hash_v1=info.info_hash_v1,
            info_hash_v2=info.info_hash_v2,
            trackers=parse_trackers(top, s),
            web_seeds=parse_web_seeds(top.get(b"url-list"), s),
            comment=opt_text(top, b"comment"),
            created_by=opt_text(top, b"created by"),
            creation_date=opt_int(top, b"creation date"),
            piece_layers=layers,
        )

    def to_bytes(self) -> bytes:
        """Bencode the torrent; the info dict is spliced in as its original bytes."""
        top: dict[bytes, Any] = {}
        if self.trackers:
            top[b"announce"] = self.trackers[0][0].encode()
            if len(self.trackers) > 1 or len(self.trackers[0]) > 1:
                top[b"announce-list"] = [[t.encode() for t in tier] for tier in self.trackers]
        if self.comment is not None:
            top[b"comment"] = self.comment.encode()
        if self.created_by is not None:
            top[b"created by"] = self.created_by.encode()
        if self.creation_date is not None:
            top[b"creation date"] = self.creation_date
        if self.piece_layers:
            top[b"piece layers"] = dict(self.piece_layers)
        if self.web_seeds:
            top[b"url-list"] = (
                self.web_seeds[0].encode()
                if len(self.web_seeds) == 1
                else [w.encode() for w in self.web_seeds]
            )
        return splice_info(top, self.info.raw)


def _raw_info(data: bytes, info: Any, max_depth: int) -> bytes:
    """The original bytes of the top-level ``info`` value (the info-hash is computed over them).

    Walks the top-level keys; for ``info`` it first tries the canonical encoding of the decoded dict: bencode is
    self-delimiting, so if those bytes are what the data holds at that position, they are exactly the value, and the
    pure-Python structure scan of a large info dict is skipped. Non-canonical info dicts take the scan.
    """
    pos = 1
    while pos < len(data) and data[pos] != 0x65:
        key_end = bencode.value_end(data, pos, max_depth=1)
        key = data[data.index(b":", pos) + 1 : key_end]
        if key == b"info":
            canonical = bencode.encode(info)
            if data.startswith(canonical, key_end):
                return canonical
            return data[key_end : bencode.value_end(data, key_end, max_depth=max_depth)]
        pos = bencode.value_end(data, key_end, max_depth=max_depth)
    raise MetainfoError("torrent has no info dictionary")


def splice_info(top: dict[bytes, Any], raw_info: bytes) -> bytes:
    """Encode ``top`` with ``raw_info`` inserted verbatim under the key ``info`` (keys sorted as bytes)."""
    parts = [b"d"]
    for key in sorted([*top, b"info"]):
        parts.append(bencode.encode(key))
        parts.append(raw_info if key == b"info" else bencode.encode(top[key]))
    parts.append(b"e")
    return b"".join(parts)


# ---------------------------------------------------------------- parsing


def _parse_info(info: Any, raw: bytes, s: Settings) -> InfoDict:
    try:
        return _parse_info_checked(info, raw, s)
    except ShoalError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:  # defensive: never leak these
        raise MetainfoError(f"invalid info dictionary: {exc}") from None


def _parse_info_checked(info: Any, raw: bytes, s: Settings) -> InfoDict:
    if not isinstance(info, dict):
        raise MetainfoError("info is not a dictionary")
    piece_length = get_field(info, b"piece length", int)
    if piece_length <= 0:
        raise MetainfoError(f"piece length {piece_length} is not positive")
    if piece_length > s.max_piece_length:
        raise MetainfoError(f"piece length {piece_length} exceeds max_piece_length {s.max_piece_length}")
    meta_version = info.get(b"meta version", 1)
    if meta_version not in (1, 2) or isinstance(meta_version, bool):
        raise MetainfoError(f"unsupported meta version {meta_version!r}")
    has_v2 = meta_version == 2
    has_v1 = b"pieces" in info
    if not has_v1 and not has_v2:
        raise MetainfoError("info has no 'pieces'")
    name = _parse_name(info, raw, has_v1, s)
    private = info.get(b"private") == 1
    source = opt_text(info, b"source")

    v1_files: list[FileEntry] | None = None
    pieces: bytes | None = None
    if has_v1:
        pieces = get_field(info, b"pieces", bytes)
        if len(pieces) % 20:
            raise MetainfoError(f"pieces length {len(pieces)} is not a multiple of 20")
        if len(pieces) // 20 > s.max_piece_count:
            raise MetainfoError(
                f"piece count {len(pieces) // 20} exceeds max_piece_count {s.max_piece_count}"
            )
        v1_files = _parse_v1_files(info, name, s)
    v2_files: list[FileEntry] | None = None
    if has_v2:
        if piece_length < merkle.BLOCK_SIZE or piece_length & (piece_length - 1):
            raise MetainfoError(f"v2 piece length {piece_length} is not a power of two >= 16384")
        v2_files = parse_file_tree(
            info.get(b"file tree"), name, piece_length, s, (b"files" in info) if has_v1 else None
        )
    if v1_files is not None and v2_files is not None:
        _check_hybrid(v1_files, v2_files, piece_length)
        files = [
            FileEntry(f.path, f.length, f.offset, r.pieces_root, f.attr, f.symlink)
            for f, r in zip(v1_files, _expand_pads(v2_files, v1_files), strict=True)
        ]
    else:
        files = v1_files if v1_files is not None else v2_files  # type: ignore[assignment]
    total = files[-1].offset + files[-1].length if files else 0
    if total == 0:
        raise MetainfoError("torrent has no data (total length 0)")
    num_pieces = -(-total // piece_length)
    if num_pieces > s.max_piece_count:
        raise MetainfoError(f"piece count {num_pieces} exceeds max_piece_count {s.max_piece_count}")
    if pieces is not None and len(pieces) // 20 != num_pieces:
        raise MetainfoError(f"torrent has {len(pieces) // 20} piece hashes but its files need {num_pieces}")
    return InfoDict(
        name=name,
        piece_length=piece_length,
        files=tuple(files),
        piece_hashes_v1=pieces,
        num_pieces=num_pieces,
        total_length=total,
        private=private,
        raw=raw,
        meta_version=meta_version,
        source=source,
        _offsets=tuple(f.offset for f in files),
    )


def _parse_name(info: dict[bytes, Any], raw: bytes, has_v1: bool, s: Settings) -> str:
    name = get_text(info, b"name")
    if name == b"":  # libtorrent's choice: the hex info-hash
        return (hashlib.sha1(raw).hexdigest() if has_v1 else hashlib.sha256(raw).hexdigest())[:40]
    return sanitize_component(name, max_name_length=s.max_name_length)


def _parse_v1_files(info: dict[bytes, Any], name: str, s: Settings) -> list[FileEntry]:
    if b"length" in info:
        if b"files" in info:
            raise MetainfoError("info has both 'length' and 'files'")
        length = get_field(info, b"length", int)
        if length < 0:
            raise MetainfoError(f"file length {length} is negative")
        return [FileEntry((name,), length, 0, attr=parse_attr(info))]
    raw_files = get_field(info, b"files", list)
    if not raw_files:
        raise MetainfoError("info has an empty 'files' list")
    if len(raw_files) > s.max_file_count:
        raise MetainfoError(f"file count {len(raw_files)} exceeds max_file_count {s.max_file_count}")
    result: list[FileEntry] = []
    seen = PathSet()
    offset = 0
    for entry in raw_files:
        if not isinstance(entry, dict):
            raise MetainfoError("file entry is not a dictionary")
        length = get_field(entry, b"length", int, "file")
        if length < 0:
            raise MetainfoError(f"file length {length} is negative")
        attr = parse_attr(entry)
        if "p" in attr:
            result.append(FileEntry(pad_path(length, (name,)), length, offset, attr=attr))
        else:
            comps = get_field(entry, b"path.utf-8", list, "file") if b"path.utf-8" in entry else None
            if comps is None:
                comps = get_field(entry, b"path", list, "file")
            if not all(isinstance(c, bytes) for c in comps):
                raise MetainfoError("file path component is not a string")
            path = (name, *check_path(comps, **path_limits(s, 1)))
            seen.add(path)
            result.append(FileEntry(path, length, offset, attr=attr, symlink=parse_symlink(entry, attr, s)))
        offset += length
    return result


def _expand_pads(v2_files: list[FileEntry], v1_files: list[FileEntry]) -> list[FileEntry]:
    """Line up the v2 entries (with their synthetic pads) against the v1 list, by position of real files."""
    real_v2 = iter(f for f in v2_files if not f.is_pad)
    return [f if f.is_pad else next(real_v2) for f in v1_files]


def _check_hybrid(v1: list[FileEntry], v2: list[FileEntry], piece_length: int) -> None:
    for f in v1:
        if f.is_pad and f.length >= piece_length:
            raise MetainfoError(f"hybrid torrent has a pad file of {f.length} bytes, not less than a piece")
    real1 = [f for f in v1 if not f.is_pad]
    real2 = [f for f in v2 if not f.is_pad]
    if len(real1) != len(real2):
        raise MetainfoError(f"hybrid torrent has {len(real1)} v1 files but {len(real2)} v2 files")
    for a, b in zip(real1, real2, strict=True):
        if a.path != b.path or a.length != b.length:
            raise MetainfoError(
                f"hybrid torrent's v1 file {'/'.join(a.path)!r} differs from its v2 file tree"
            )
        if a.length and a.offset % piece_length:
            raise MetainfoError(
                f"hybrid torrent's file {'/'.join(a.path)!r} does not start on a piece boundary"
            )
