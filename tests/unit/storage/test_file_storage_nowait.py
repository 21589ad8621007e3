"""FileStorage.read_piece_nowait: a page-cache read on the calling thread, or None when it could block."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoal.storage import files as files_mod
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout

PL = 32


def payload(n: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(n))


async def test_nowait_reads_an_open_cached_piece(tmp_path: Path) -> None:
    lay = Layout.from_files([(("one.bin",), 3 * PL, False)], PL, block_size=16)
    data = payload(3 * PL)
    st = FileStorage(lay, tmp_path, max_open_files=2)
    await st.open()
    try:
        for piece in range(3):
            await st.write_piece(piece, data[piece * PL : (piece + 1) * PL])
        assert await st.read_piece(0) == data[:PL]  # the file is open now
        for piece in range(3):
            got = st.read_piece_nowait(piece)
            if got is None:  # the file system may not support RWF_NOWAIT: the caller takes the slow path
                continue
            assert bytes(got) == data[piece * PL : (piece + 1) * PL]
    finally:
        await st.close()


async def test_nowait_never_opens_a_file(tmp_path: Path) -> None:
    lay = Layout.from_files([(("one.bin",), 2 * PL, False)], PL, block_size=16)
    (tmp_path / "one.bin").write_bytes(payload(2 * PL))
    st = FileStorage(lay, tmp_path, max_open_files=2)
    await st.open()
    try:
        assert st.read_piece_nowait(1) is None
    finally:
        await st.close()


async def test_nowait_none_for_a_piece_across_files(tmp_path: Path) -> None:
    lay = Layout.from_files([(("a.bin",), 20, False), (("b.bin",), 44, False)], PL, block_size=16)
    data = payload(64)
    st = FileStorage(lay, tmp_path, max_open_files=4)
    await st.open()
    try:
        await st.write_piece(0, data[:PL])
        assert await st.read_piece(0) == data[:PL]
        assert st.read_piece_nowait(0) is None  # two files: the worker threads read it
    finally:
        await st.close()


async def test_nowait_none_without_rwf_nowait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lay = Layout.from_files([(("one.bin",), PL, False)], PL, block_size=16)
    st = FileStorage(lay, tmp_path, max_open_files=2)
    await st.open()
    try:
        await st.write_piece(0, payload(PL))
        assert await st.read_piece(0) == payload(PL)
        monkeypatch.delattr(files_mod.os, "RWF_NOWAIT", raising=False)
        assert not hasattr(os, "RWF_NOWAIT")
        assert st.read_piece_nowait(0) is None
    finally:
        await st.close()
