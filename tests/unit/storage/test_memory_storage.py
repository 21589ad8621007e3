"""MemoryStorage: same contract as FileStorage, plus injected faults."""

from __future__ import annotations

import hashlib

import pytest

from shoal.errors import DiskFullError, StorageError
from shoal.storage.layout import Layout
from shoal.storage.memory import MemoryStorage

PL = 16


def lay() -> Layout:
    return Layout.from_files(
        [(("a",), 10, False), (("p",), 6, True), (("e",), 0, False), (("b",), 20, False)], PL, block_size=8
    )


async def test_roundtrip_pad_reads_zero() -> None:
    st = MemoryStorage(lay())
    await st.open()
    piece0 = b"0123456789" + bytes(6)
    assert await st.hash_and_write_piece(0, piece0, hashlib.sha1(piece0).digest())
    assert not await st.hash_and_write_piece(1, b"x" * 16, b"\0" * 20)
    await st.write_block(1, 0, b"abcdefgh")
    await st.write_block(1, 8, b"ijklmnop")
    await st.write_piece(2, b"qrst")
    assert await st.read_piece(0) == piece0
    assert await st.read_block(1, 4, 8) == b"efghijkl"
    assert bytes(st.files[3]) == b"abcdefghijklmnopqrst"
    assert st.files[1] == bytearray()
    stats = await st.file_stats()
    assert stats[1] is None and stats[2] is not None and stats[2].size == 0
    assert await st.hash_piece(2) == hashlib.sha1(b"qrst").digest()


async def test_disk_full_then_space_freed() -> None:
    st = MemoryStorage(lay(), space_left=15)
    await st.open()
    await st.write_piece(0, b"x" * 16)  # file a: 10 bytes
    with pytest.raises(DiskFullError):
        await st.write_block(1, 0, b"y" * 8)  # file b needs 20 bytes
    assert not st.written[3]
    st.space_left = None
    await st.write_block(1, 0, b"y" * 8)
    assert st.written[3]


async def test_injected_faults() -> None:
    st = MemoryStorage(lay())
    await st.open()
    await st.write_piece(0, b"z" * 16)
    st.corrupt_reads.add(0)
    assert await st.read_piece(0) != b"z" * 10 + bytes(6)
    st.corrupt_reads.clear()
    st.fail_reads = True
    with pytest.raises(StorageError):
        await st.read_piece(0)
    st.fail_reads = False
    st.fail_writes = True
    with pytest.raises(StorageError):
        await st.write_piece(0, b"z" * 16)
    with pytest.raises(StorageError):
        await st.read_piece(1)  # file b never written
