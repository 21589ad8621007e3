"""Write-behind: the bookkeeping alone, and FileStorage's page-cache advice around its writes (fadvise recorded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoal.config import Settings
from shoal.storage import write_behind
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout
from shoal.storage.write_behind import WriteBehind

PL = 32


def payload(n: int) -> bytes:
    return bytes((i * 11 + 5) % 251 for i in range(n))


def test_a_span_is_old_once_a_window_of_newer_bytes_follows_it() -> None:
    wb = WriteBehind(100)
    assert wb.written(0, 0, 40) == []
    assert wb.written(0, 40, 40) == []
    assert wb.written(1, 0, 59) == []  # 99 bytes after the first span: not yet
    assert wb.written(1, 59, 1) == [(0, 0, 40)]  # 100 after it
    assert wb.held == 100
    assert wb.written(2, 0, 300) == [
        (0, 40, 40),
        (1, 0, 59),
        (1, 59, 1),
    ]  # one big span pushes out all before it
    assert wb.held == 300
    assert wb.written(2, 300, 0) == []  # nothing written: nothing recorded


def test_the_window_is_not_negative() -> None:
    with pytest.raises(ValueError):
        WriteBehind(-1)


def test_advice_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(fd: int, offset: int, length: int, advice: int) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(write_behind, "_FADVISE", refuse)
    write_behind.advise_dontneed(5, 0, 10)  # no exception


def test_the_default_keeps_64_mib_cached() -> None:
    assert Settings().disk_write_behind == write_behind.DEFAULT_WINDOW == 64 << 20


class Advice:
    """Records posix_fadvise calls as (file name, offset, length)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        self.calls.append((os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), offset, length))


@pytest.fixture
def advice(monkeypatch: pytest.MonkeyPatch) -> Advice:
    if not write_behind.write_behind_works() or not os.path.isdir("/proc/self/fd"):
        pytest.skip("posix_fadvise and /proc/self/fd are Linux's")
    rec = Advice()
    monkeypatch.setattr(write_behind, "_FADVISE", rec)
    return rec


async def test_each_span_starts_writeback_at_once_and_is_dropped_a_window_later(
    tmp_path: Path, advice: Advice
) -> None:
    lay = Layout.from_files([(("a",), 3 * PL, False), (("b",), 2 * PL, False)], PL, block_size=16)
    data = payload(lay.total_length)
    st = FileStorage(lay, tmp_path / "dl", write_behind=2 * PL, disk_threads=1)
    await st.open()
    for piece in range(lay.num_pieces):
        await st.write_piece(piece, data[piece * PL : (piece + 1) * PL])
    assert advice.calls == [
        ("a", 0, PL),  # piece 0: writeback
        ("a", PL, PL),  # piece 1
        ("a", 2 * PL, PL),  # piece 2, then piece 0 has 2 pieces after it: dropped
        ("a", 0, PL),
        ("b", 0, PL),  # piece 3 (file b)
        ("a", PL, PL),
        ("b", PL, PL),
        ("a", 2 * PL, PL),
    ]
    # the data is all there, read back through the storage and from the files
    assert b"".join([await st.read_piece(p) for p in range(lay.num_pieces)]) == data
    assert (tmp_path / "dl" / "a").read_bytes() + (tmp_path / "dl" / "b").read_bytes() == data
    await st.close()


async def test_a_piece_across_files_advises_each_files_span(tmp_path: Path, advice: Advice) -> None:
    lay = Layout.from_files([(("a",), 20, False), (("b",), 44, False)], PL, block_size=16)
    data = payload(64)
    st = FileStorage(lay, tmp_path / "dl", write_behind=1 << 20)
    await st.open()
    await st.write_piece(0, data[:PL])
    assert advice.calls == [("a", 0, 20), ("b", 0, 12)]  # nothing old yet: a window of 1 MiB
    await st.close()


async def test_zero_turns_write_behind_off(tmp_path: Path, advice: Advice) -> None:
    lay = Layout.from_files([(("a",), 4 * PL, False)], PL, block_size=16)
    data = payload(lay.total_length)
    st = FileStorage(lay, tmp_path / "dl", write_behind=0)
    await st.open()
    for piece in range(lay.num_pieces):
        await st.write_piece(piece, data[piece * PL : (piece + 1) * PL])
    assert advice.calls == []
    assert (tmp_path / "dl" / "a").read_bytes() == data
    await st.close()


async def test_a_real_kernel_takes_the_advice_and_keeps_the_data(tmp_path: Path) -> None:
    """No recording: real posix_fadvise on real files (where the platform has it); every byte reads back."""
    pl = 64 << 10
    lay = Layout.from_files([(("big",), 40 * pl, False)], pl, block_size=16 << 10)
    data = os.urandom(lay.total_length)
    st = FileStorage(lay, tmp_path / "dl", write_behind=4 * pl)
    await st.open()
    for piece in reversed(range(lay.num_pieces)):  # any order
        await st.write_piece(piece, data[piece * pl : (piece + 1) * pl])
    assert b"".join([await st.read_piece(p) for p in range(lay.num_pieces)]) == data
    await st.close()
    assert (tmp_path / "dl" / "big").read_bytes() == data
