"""MemoryStorage: the :class:`~shoal.storage.backend.Storage` protocol in memory, deterministic, with faults.

For unit tests and the deterministic simulator (no threads, so a seeded run replays exactly). Fault knobs
(plain attributes, change them at any time, the ``test_disk`` idea from libtorrent's simulations):

- ``space_left``: bytes that may still be newly stored (``None`` = unlimited); past it writes raise
  :class:`~shoal.errors.DiskFullError` and store nothing. Set it higher (or ``None``) to "free space".
- ``corrupt_reads``: pieces whose reads come back with one byte flipped (the data stays intact).
- ``fail_reads`` / ``fail_writes``: every read / write raises :class:`~shoal.errors.StorageError` (EIO).
- ``missing``: file indices that ``file_stats`` reports missing and reads refuse.

``files`` holds one ``bytearray`` per file (pad files stay empty); ``mtimes`` a counter bumped on each write,
standing in for modification times. ``writes`` counts write calls (to show batching).
"""

from __future__ import annotations

from collections.abc import Sequence

from shoal.errors import DiskFullError, StorageError
from shoal.storage.backend import FileStat, piece_digest
from shoal.storage.layout import Layout, Span

Buffer = bytes | bytearray | memoryview


class MemoryStorage:
    """In-memory storage with fault injection. See the module docstring."""

    def __init__(self, layout: Layout, *, space_left: int | None = None) -> None:
        self.layout = layout
        self.files: list[bytearray] = [bytearray() for _ in layout.files]
        self.written: list[bool] = [False] * len(layout.files)
        self.mtimes: list[int] = [0] * len(layout.files)
        self.space_left = space_left
        self.corrupt_reads: set[int] = set()
        self.fail_reads = False
        self.fail_writes = False
        self.missing: set[int] = set()
        self.writes = 0
        self.file_priorities: list[int] = [1] * len(layout.files)
        self.opened = False
        self._tick = 0

    def _write(self, spans: list[Span], data: Buffer) -> None:
        if self.fail_writes:
            raise StorageError("write: input/output error (injected)")
        view = memoryview(data).cast("B")
        needed = 0
        for s in spans:
            if not s.is_pad and not self.written[s.file_index]:
                needed += self.layout.files[s.file_index].length
        if self.space_left is not None and needed > self.space_left:
            raise DiskFullError(
                f"write: no space left on device ({needed} bytes needed, {self.space_left} left)"
            )
        if self.space_left is not None:
            self.space_left -= needed
        self.writes += 1
        for s in spans:
            if s.is_pad:
                continue
            f = self.files[s.file_index]
            if not self.written[s.file_index]:
                f.extend(bytes(self.layout.files[s.file_index].length))
                self.written[s.file_index] = True
            f[s.file_offset : s.file_offset + s.length] = view[s.data_offset : s.data_offset + s.length]
            self._tick += 1
            self.mtimes[s.file_index] = self._tick

    def _read(self, piece: int, spans: list[Span], size: int) -> bytearray:
        if self.fail_reads:
            raise StorageError("read: input/output error (injected)")
        buf = bytearray(size)
        for s in spans:
            if s.is_pad:
                continue
            if s.file_index in self.missing or not self.written[s.file_index]:
                raise StorageError(f"read {'/'.join(self.layout.files[s.file_index].path)}: file is missing")
            buf[s.data_offset : s.data_offset + s.length] = self.files[s.file_index][
                s.file_offset : s.file_offset + s.length
            ]
        if piece in self.corrupt_reads and size:
            buf[0] ^= 0xFF
        return buf

    async def open(self) -> None:
        self.opened = True
        for i, f in enumerate(self.layout.files):
            if f.length == 0 and not f.is_pad:
                self.written[i] = True

    async def read_block(self, piece: int, offset: int, length: int) -> bytes:
        return bytes(self._read(piece, self.layout.spans(piece, offset, length), length))

    async def read_piece(self, piece: int) -> bytes:
        return bytes(self._read(piece, self.layout.spans(piece), self.layout.piece_size(piece)))

    async def write_block(self, piece: int, offset: int, data: Buffer) -> None:
        self._write(self.layout.spans(piece, offset, len(data)), data)

    async def write_piece(self, piece: int, data: Buffer) -> None:
        if len(data) != self.layout.piece_size(piece):
            raise ValueError(f"piece {piece} data is {len(data)} bytes, not {self.layout.piece_size(piece)}")
        self._write(self.layout.spans(piece), data)

    async def hash_and_write_piece(
        self, piece: int, data: Buffer, expected: bytes, algo: str = "sha1"
    ) -> bool:
        if len(data) != self.layout.piece_size(piece):
            raise ValueError(f"piece {piece} data is {len(data)} bytes, not {self.layout.piece_size(piece)}")
        if piece_digest(self.layout, piece, data, algo) != expected:
            return False
        await self.write_piece(piece, data)
        return True

    async def hash_piece(self, piece: int, algo: str = "sha1") -> bytes:
        return piece_digest(self.layout, piece, await self.read_piece(piece), algo)

    async def file_stats(self) -> list[FileStat | None]:
        out: list[FileStat | None] = []
        for i, f in enumerate(self.layout.files):
            if f.is_pad or i in self.missing or not self.written[i]:
                out.append(None)
            else:
                out.append(FileStat(len(self.files[i]), self.mtimes[i]))
        return out

    async def set_file_priorities(self, priorities: Sequence[int]) -> None:
        if len(priorities) != len(self.layout.files):
            raise ValueError(f"{len(priorities)} file priorities for {len(self.layout.files)} files")
        self.file_priorities = list(priorities)

    async def close(self) -> None:
        self.opened = False

    async def delete(self) -> None:
        self.files = [bytearray() for _ in self.layout.files]
        self.written = [False] * len(self.layout.files)
