"""The disk seam: the :class:`Storage` protocol the engine talks to, and small shared values.

Implementations: :class:`shoal.storage.files.FileStorage` (real files, I/O and hashing in worker threads) and
:class:`shoal.storage.memory.MemoryStorage` (in memory, deterministic, with fault injection for tests and the
simulator). Every method is async; none blocks the event loop.

Contract (names are stable)::

    await s.open()                                   create folders and empty files; check every path
    await s.read_block(piece, offset, length)        -> bytes (pad ranges read as zeros)
    await s.read_piece(piece)                        -> bytes
    await s.write_block(piece, offset, data)         pad ranges are skipped, never written
    await s.write_piece(piece, data)                 a whole piece in one go (preferred: one thread hop)
    await s.hash_and_write_piece(piece, data, expected, algo="sha1") -> bool      (algo: sha1, sha256, v2)
                                                     hash in a worker; write only if the digest matches
    await s.hash_piece(piece, algo="sha1")           -> digest of the piece as stored
    await s.file_stats()                             -> list[FileStat | None] per file (None: pad or missing)
    await s.set_file_priorities(prios)               priority 0 = unwanted: not created on disk (part file)
    await s.close()                                  release file descriptors
    await s.delete()                                 remove the files this storage created or owns

Optional, found with ``getattr`` by the engine (FileStorage has them; others fall back to the calls above)::

    s.read_piece_nowait(piece)                       -> bytearray | None: only when it cannot block (page cache)
    s.submit_hash_and_write_many(items, done)        hash_and_write_piece for each (piece, data, expected), as
                                                     one job without a coroutine: ``done`` is called once in the
                                                     worker with a True/False or the exception per piece

Errors: :class:`~shoal.errors.DiskFullError` when the device is full, :class:`~shoal.errors.StorageError` for any
other I/O failure (missing file or short read included), :class:`~shoal.errors.UnsafePathError` for a path that
would leave the root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from shoal.codec import merkle
from shoal.records import record
from shoal.storage.layout import Layout


@record
class FileStat:
    """Size and modification time (ns) of one file on disk."""

    size: int
    mtime_ns: int


HASH_ALGOS = ("sha1", "sha256", "v2")


def new_hash(algo: str) -> hashlib._Hash:
    if algo == "sha1":
        return hashlib.sha1()
    if algo == "sha256":
        return hashlib.sha256()
    raise ValueError(f"hash algorithm {algo!r} not one of {HASH_ALGOS}")


def piece_digest(
    layout: Layout, piece: int, data: bytes | bytearray | memoryview, algo: str = "sha1"
) -> bytes:
    """The digest of one piece's bytes.

    ``sha1`` (v1 ``pieces``) and ``sha256`` hash the bytes flat. ``v2`` (BEP 52) is the merkle root over 16 KiB
    SHA-256 leaves of the file data in the piece (pad excluded): the piece-layer entry for a file larger than one
    piece (padded to a full piece of leaves), or the ``pieces root`` for a file of at most one piece. In v2 each
    piece belongs to exactly one file.
    """
    if algo != "v2":
        h = new_hash(algo)
        h.update(data)
        return h.digest()
    start = piece * layout.piece_length
    span = layout.spans_at(start, layout.piece_size(piece))[0]
    f = layout.files[span.file_index]
    real = min(layout.piece_size(piece), f.offset + f.length - start)
    leaves = merkle.block_hashes(memoryview(data)[:real])
    if f.length <= layout.piece_length:
        return merkle.merkle_root(leaves)
    return merkle.piece_hash(leaves, layout.piece_length)


class Storage(Protocol):
    """Where a torrent's pieces live. See the module docstring for the contract."""

    layout: Layout

    async def open(self) -> None: ...

    async def read_block(self, piece: int, offset: int, length: int) -> bytes: ...

    async def read_piece(self, piece: int) -> bytes: ...

    async def write_block(self, piece: int, offset: int, data: bytes | bytearray | memoryview) -> None: ...

    async def write_piece(self, piece: int, data: bytes | bytearray | memoryview) -> None: ...

    async def hash_and_write_piece(
        self, piece: int, data: bytes | bytearray | memoryview, expected: bytes, algo: str = "sha1"
    ) -> bool: ...

    async def hash_piece(self, piece: int, algo: str = "sha1") -> bytes: ...

    async def file_stats(self) -> list[FileStat | None]: ...

    async def set_file_priorities(self, priorities: Sequence[int]) -> None: ...

    async def close(self) -> None: ...

    async def delete(self) -> None: ...
