"""Disk full (case 49b): a 1 MiB tmpfs fills up; FileStorage raises DiskFullError, never a bare OSError, no
verified piece is claimed without its data, and writing works again once space is freed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from peers import require_binary, require_root
from shoal.errors import DiskFullError
from shoal.storage.check import recheck
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout

PL = 64 * 1024


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    require_root("mounting a tmpfs")
    mount = require_binary("mount")
    umount = require_binary("umount")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run([mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True, timeout=30)
    try:
        yield mnt
    finally:
        subprocess.run([umount, "-l", str(mnt)], check=False, timeout=30)


async def test_disk_full_raises_and_recovers(small_fs: Path) -> None:
    size = 4 * 1024 * 1024  # 4x the file system
    lay = Layout.from_files([(("big.bin",), size, False), (("small.bin",), 1000, False)], PL)
    data = bytes(range(256)) * (PL // 256)
    hashes = [hashlib.sha1(data).digest()] * (lay.num_pieces - 1)
    last = data[: lay.piece_size(lay.num_pieces - 1)]
    hashes.append(hashlib.sha1(last).digest())
    st = FileStorage(lay, small_fs / "dl")
    await st.open()
    written: list[int] = []
    with pytest.raises(DiskFullError) as info:
        for piece in range(lay.num_pieces - 1):
            assert await st.hash_and_write_piece(piece, data, hashes[piece])
            written.append(piece)
    assert "no space left" in str(info.value).lower()
    assert 0 < len(written) < lay.num_pieces - 1
    # what was reported written is really there; the failed piece does not verify
    good = await recheck(st, hashes, only=[*written, len(written)])
    assert list(good) == written
    # free space: drop the big file's tail and write the small one
    await st.close()
    (small_fs / "dl" / "big.bin").unlink()
    shutil.rmtree(small_fs / "dl", ignore_errors=True)
    st2 = FileStorage(lay, small_fs / "dl")
    await st2.open()
    assert await st2.hash_and_write_piece(lay.num_pieces - 1, last, hashes[-1])
    assert await st2.hash_piece(lay.num_pieces - 1) == hashes[-1]
    await st2.close()
