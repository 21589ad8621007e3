"""New files get all their blocks at once (storage/preallocate.py), so direct writes to them take no lock of ours;
where fallocate is missing or refused (no space, no support) the file is sparse, as before; part files stay sparse;
data already in a file is kept."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from shoal.storage import preallocate
from shoal.storage.direct_io import direct_io_works
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout
from shoal.storage.preallocate import allocate, fully_allocated

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fallocate(2) is Linux's")
MIB = 1 << 20


def refusing(err: int) -> Any:
    def fake(fd: int, mode: int, offset: int, length: int) -> int:
        ctypes.set_errno(err)
        return -1

    return fake


@linux_only
def test_allocate_gives_every_block_and_the_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        assert allocate(fd, 8 * MIB)
        st = os.fstat(fd)
        assert st.st_size == 8 * MIB and fully_allocated(st)
        assert os.pread(fd, 4096, 5 * MIB) == bytes(4096)  # reads as zeros, as a sparse file does
    finally:
        os.close(fd)


@pytest.mark.parametrize("err", [errno.EOPNOTSUPP, errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_a_refused_fallocate_leaves_a_sparse_file_of_the_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    monkeypatch.setattr(preallocate, "_fallocate", refusing(err))
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        assert not allocate(fd, 8 * MIB)
        st = os.fstat(fd)
        assert st.st_size == 8 * MIB and not fully_allocated(st)
    finally:
        os.close(fd)


def test_a_file_larger_than_the_free_space_is_left_sparse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fallocate keeps what it got when it runs out of space: it is not even tried, or the disk would be left full."""
    calls: list[int] = []
    monkeypatch.setattr(preallocate, "_fallocate", lambda fd, mode, offset, length: calls.append(length) or 0)
    monkeypatch.setattr(preallocate, "_free_bytes", lambda fd: 8 * MIB - 1)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        assert not allocate(fd, 8 * MIB)
        assert os.fstat(fd).st_size == 8 * MIB and calls == []
    finally:
        os.close(fd)


def test_without_fallocate_the_file_is_sparse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preallocate, "_fallocate", None)  # another OS
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        assert not allocate(fd, MIB)
        assert os.fstat(fd).st_size == MIB
    finally:
        os.close(fd)


@linux_only
def test_allocating_keeps_what_the_file_holds(tmp_path: Path) -> None:
    """A file cut short (an earlier session, a crash): its data is kept, the rest allocated behind it."""
    path = tmp_path / "f"
    path.write_bytes(b"verified" * 1000)
    fd = os.open(path, os.O_RDWR)
    try:
        assert allocate(fd, 4 * MIB)
    finally:
        os.close(fd)
    data = path.read_bytes()
    assert len(data) == 4 * MIB and data.startswith(b"verified" * 1000) and not data[8000:].strip(b"\0")


def one_piece(size: int, piece: int) -> bytes:
    return bytes([piece % 251]) * size


@linux_only
async def test_a_download_preallocates_its_file_and_writes_it_without_our_lock(tmp_path: Path) -> None:
    lay = Layout.from_files([(("big",), 8 * MIB, False)], MIB)
    st = FileStorage(lay, tmp_path)
    await st.open()
    try:
        data = one_piece(MIB, 3)
        assert await st.hash_and_write_piece(3, data, hashlib.sha1(data).digest())  # the first write opens it
        s = (tmp_path / "big").stat()
        assert s.st_size == 8 * MIB and fully_allocated(s)
        assert st._writer.allocated == {0}
        st._writer.locks.clear()
        more = one_piece(MIB, 5)
        assert await st.hash_and_write_piece(5, more, hashlib.sha1(more).digest())
        if direct_io_works():  # a direct 1 MiB write to an allocated file is an overwrite: no lock of ours
            assert 0 not in st._writer.locks
        assert await st.hash_piece(3) == hashlib.sha1(data).digest()
        assert await st.hash_piece(5) == hashlib.sha1(more).digest()
    finally:
        await st.close()


async def test_without_preallocation_long_writes_keep_one_writer_per_file(tmp_path: Path) -> None:
    lay = Layout.from_files([(("big",), 8 * MIB, False)], MIB)
    st = FileStorage(lay, tmp_path, preallocate=False)
    await st.open()
    try:
        data = one_piece(MIB, 1)
        assert await st.hash_and_write_piece(1, data, hashlib.sha1(data).digest())
        assert st._writer.allocated == set()
        assert 0 in st._writer.locks
        assert not fully_allocated((tmp_path / "big").stat())
    finally:
        await st.close()


@linux_only
async def test_a_file_allocated_in_an_earlier_session_counts(tmp_path: Path) -> None:
    lay = Layout.from_files([(("big",), 2 * MIB, False)], MIB)
    (tmp_path / "big").write_bytes(bytes(2 * MIB))  # complete from before: every block written
    st = FileStorage(lay, tmp_path, preallocate=False)
    await st.open()
    try:
        data = one_piece(MIB, 0)
        assert await st.hash_and_write_piece(0, data, hashlib.sha1(data).digest())
        assert st._writer.allocated == {0}
    finally:
        await st.close()


@linux_only
async def test_part_files_stay_sparse(tmp_path: Path) -> None:
    """An unwanted file's part file holds only the pieces it shares with wanted files: never preallocated."""
    pl = 64 << 10
    lay = Layout.from_files([(("wanted",), pl + 100, False), (("unwanted",), 16 * MIB, False)], pl)
    st = FileStorage(lay, tmp_path, file_priorities=[1, 0])
    await st.open()
    try:
        data = one_piece(pl, 1)  # piece 1: the wanted file's tail and the unwanted one's head
        assert await st.hash_and_write_piece(1, data, hashlib.sha1(data).digest())
        part = st.part_path(1)
        assert part.stat().st_size == 16 * MIB
        assert not fully_allocated(part.stat())
        assert not (tmp_path / "unwanted").exists()
        assert 1 not in st._writer.allocated
    finally:
        await st.close()


@linux_only
async def test_unwanted_files_are_not_preallocated(tmp_path: Path) -> None:
    """The engine's file selection (no part files): a piece shared with a wanted file creates the unwanted one, real
    and sparse, so choosing one small file of a torrent does not reserve its big neighbours' space."""
    pl = 64 << 10
    lay = Layout.from_files([(("wanted",), pl + 100, False), (("unwanted",), 16 * MIB, False)], pl)
    st = FileStorage(lay, tmp_path)
    st.set_unwanted_files([1])
    await st.open()
    try:
        data = one_piece(pl, 1)
        assert await st.hash_and_write_piece(1, data, hashlib.sha1(data).digest())
        unwanted = (tmp_path / "unwanted").stat()
        assert unwanted.st_size == 16 * MIB and not fully_allocated(unwanted)
        assert fully_allocated((tmp_path / "wanted").stat())
        assert st._writer.allocated == {0}
    finally:
        await st.close()
