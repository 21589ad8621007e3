"""Pure geometry of a torrent's data: pieces and blocks mapped onto files (sans-IO).

A torrent's payload is the concatenation of its files in order. :class:`Layout` is built from a plain list of
:class:`FileEntry` (path components, length, ``is_pad``) plus the piece length, so it does not depend on the
metainfo model; ``Layout.from_files([(("dir", "a.bin"), 1000, False), ...], piece_length)`` is the usual way.

API (names are stable):

- ``Layout(files, piece_length)`` / ``Layout.from_files(tuples, piece_length)`` / ``Layout.from_info(info)``
  (``info`` is a :class:`shoal.codec.metainfo.InfoDict`)
- ``num_pieces``, ``total_length``, ``piece_length``, ``files`` (tuple of :class:`FileEntry`, with ``offset``)
- ``piece_size(i)``; ``blocks_in_piece(i)``; ``block_ref(i, b)`` -> :class:`~shoal.types.BlockRef`
- ``spans(piece, offset=0, length=None)`` -> list of :class:`Span` ``(file_index, file_offset, length,
  is_pad, data_offset)``; ``data_offset`` is where the span starts inside the requested range. Empty files
  never appear in spans. Pad spans mean "zeros, never on disk".
- ``file_piece_range(file_index)`` -> ``range`` of pieces touching the file (empty for empty files)
- ``piece_files(i)`` -> indices of the non-empty files a piece touches
- ``piece_priorities(file_priorities)`` -> per-piece priority: the max over the non-pad files it touches, so a
  piece spanning a wanted and an unwanted file is downloaded; a piece touching only pad data gets 0
- ``pad_blocks()`` -> ``(piece, block)`` pairs lying wholly inside pad files: never requested, always zeros

Block size is :data:`shoal.types.BLOCK_SIZE` (16 KiB) unless given; the last block of a piece may be shorter.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Protocol

from shoal.errors import MetainfoError
from shoal.records import record
from shoal.types import BLOCK_SIZE, BlockRef


class _InfoFile(Protocol):
    @property
    def path(self) -> tuple[str, ...]: ...
    @property
    def length(self) -> int: ...
    @property
    def is_pad(self) -> bool: ...
    @property
    def symlink(self) -> tuple[str, ...] | None: ...


class _Info(Protocol):
    @property
    def piece_length(self) -> int: ...
    @property
    def files(self) -> Sequence[_InfoFile]: ...


@record
class FileEntry:
    """One file of the torrent; ``offset`` is its start in the concatenated payload."""

    path: tuple[str, ...]
    length: int
    is_pad: bool = False
    offset: int = 0


@record
class Span:
    """A contiguous part of a byte range that lies in one file."""

    file_index: int
    file_offset: int
    length: int
    is_pad: bool
    data_offset: int


class Layout:
    """Pieces, blocks and files of one torrent. Immutable after construction."""

    __slots__ = ("_nonempty", "_starts", "block_size", "files", "num_pieces", "piece_length", "total_length")

    def __init__(
        self, files: Sequence[FileEntry], piece_length: int, *, block_size: int = BLOCK_SIZE
    ) -> None:
        if piece_length <= 0:
            raise MetainfoError(f"piece length {piece_length} must be positive")
        if block_size <= 0:
            raise MetainfoError(f"block size {block_size} must be positive")
        placed: list[FileEntry] = []
        offset = 0
        for entry in files:
            if entry.length < 0:
                raise MetainfoError(f"file length {entry.length} is negative")
            placed.append(FileEntry(tuple(entry.path), entry.length, entry.is_pad, offset))
            offset += entry.length
        self.files: tuple[FileEntry, ...] = tuple(placed)
        self.piece_length = piece_length
        self.block_size = block_size
        self.total_length = offset
        self.num_pieces = (offset + piece_length - 1) // piece_length
        # Non-empty files only, for bisecting offsets to files.
        self._nonempty: list[int] = [i for i, f in enumerate(self.files) if f.length > 0]
        self._starts: list[int] = [self.files[i].offset for i in self._nonempty]

    @classmethod
    def from_files(
        cls,
        files: Iterable[tuple[Sequence[str], int, bool]],
        piece_length: int,
        *,
        block_size: int = BLOCK_SIZE,
    ) -> Layout:
        """Build from ``(path components, length, is_pad)`` tuples."""
        return cls([FileEntry(tuple(p), n, pad) for p, n, pad in files], piece_length, block_size=block_size)

    @classmethod
    def from_info(cls, info: _Info, *, block_size: int = BLOCK_SIZE) -> Layout:
        """Build from a :class:`shoal.codec.metainfo.InfoDict` (duck-typed). BEP 47 symlink entries are never
        created on disk: they are treated like empty pad entries."""
        entries = [
            FileEntry(tuple(f.path), f.length, f.is_pad or (f.symlink is not None and f.length == 0))
            for f in info.files
        ]
        return cls(entries, info.piece_length, block_size=block_size)

    @classmethod
    def for_torrent(cls, info: _Info, data_name: str | None = None) -> Layout:
        """How the engine lays a torrent out under its save path: ``data_name`` (if given) replaces the name of
        the top file or folder (``shoal seed TORRENT DATA``: the data may have been renamed)."""
        files = []
        for f in info.files:
            path = tuple(f.path)
            if data_name and not f.is_pad and path:
                path = (data_name, *path[1:])
            files.append((path, f.length, f.is_pad))
        return cls.from_files(files, info.piece_length)

    # --- pieces and blocks -------------------------------------------------------------------------------

    def _check_piece(self, piece: int) -> None:
        if not 0 <= piece < self.num_pieces:
            raise IndexError(f"piece {piece} out of range 0..{self.num_pieces - 1}")

    def piece_size(self, piece: int) -> int:
        self._check_piece(piece)
        if piece == self.num_pieces - 1:
            return self.total_length - piece * self.piece_length
        return self.piece_length

    def blocks_in_piece(self, piece: int) -> int:
        return (self.piece_size(piece) + self.block_size - 1) // self.block_size

    def block_ref(self, piece: int, block: int) -> BlockRef:
        size = self.piece_size(piece)
        start = block * self.block_size
        if not 0 <= start < size:
            raise IndexError(f"block {block} out of range for piece {piece}")
        return BlockRef(piece, start, min(self.block_size, size - start))

    # --- spans ---------------------------------------------------------------------------------------------

    def spans(self, piece: int, offset: int = 0, length: int | None = None) -> list[Span]:
        """The file spans covering ``length`` bytes at ``offset`` inside ``piece`` (whole piece by default)."""
        size = self.piece_size(piece)
        if length is None:
            length = size - offset
        if offset < 0 or length < 0 or offset + length > size:
            raise IndexError(f"range {offset}+{length} outside piece {piece} of size {size}")
        return self.spans_at(piece * self.piece_length + offset, length)

    def spans_at(self, start: int, length: int) -> list[Span]:
        """The file spans covering ``length`` bytes at absolute payload offset ``start``."""
        out: list[Span] = []
        if length == 0:
            return out
        k = bisect.bisect_right(self._starts, start) - 1
        pos = start
        end = start + length
        while pos < end:
            fi = self._nonempty[k]
            f = self.files[fi]
            n = min(end, f.offset + f.length) - pos
            out.append(Span(fi, pos - f.offset, n, f.is_pad, pos - start))
            pos += n
            k += 1
        return out

    # --- files <-> pieces ------------------------------------------------------------------------------

    def file_piece_range(self, file_index: int) -> range:
        f = self.files[file_index]
        if f.length == 0:
            return range(0)
        return range(f.offset // self.piece_length, (f.offset + f.length - 1) // self.piece_length + 1)

    def piece_files(self, piece: int) -> list[int]:
        start = piece * self.piece_length
        return [s.file_index for s in self.spans_at(start, self.piece_size(piece))]

    def piece_priorities(self, file_priorities: Sequence[int]) -> list[int]:
        """Per-piece priority: the max priority of the non-pad files it touches (0 = don't download)."""
        if len(file_priorities) != len(self.files):
            raise ValueError(f"{len(file_priorities)} file priorities for {len(self.files)} files")
        prio = [0] * self.num_pieces
        for fi, f in enumerate(self.files):
            p = file_priorities[fi]
            if f.is_pad or p <= 0:
                continue
            for piece in self.file_piece_range(fi):
                if prio[piece] < p:
                    prio[piece] = p
        return prio

    def pad_blocks(self) -> list[tuple[int, int]]:
        """``(piece, block)`` pairs lying wholly inside pad files."""
        out: list[tuple[int, int]] = []
        bs = self.block_size
        pl = self.piece_length
        for f in self.files:
            if not f.is_pad or f.length == 0:
                continue
            first = f.offset // pl
            last = (f.offset + f.length - 1) // pl
            for piece in range(first, last + 1):
                pstart = piece * pl
                lo = max(f.offset, pstart) - pstart
                hi = min(f.offset + f.length, pstart + self.piece_size(piece)) - pstart
                size = self.piece_size(piece)
                b0 = (lo + bs - 1) // bs
                for b in range(b0, (size + bs - 1) // bs):
                    bstart = b * bs
                    bend = min(bstart + bs, size)
                    if bend > hi:
                        break
                    out.append((piece, b))
        return out
