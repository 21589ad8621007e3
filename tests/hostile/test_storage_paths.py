"""Filesystem confinement (cases 10, 11): nothing is ever written outside the download folder.

A canary folder next to the download folder must stay untouched whatever the torrent's paths say, whatever
symlinks were planted in the download folder beforehand, and when a folder is swapped for a symlink between
opening the storage and writing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoal.errors import ShoalError, UnsafePathError
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout

HOSTILE = [
    ("..", "canary", "x"),
    ("a", "..", "..", "canary", "x"),
    ("/tmp", "x"),
    ("..\\..\\x",),
    ("a/../../canary/x",),
    ("C:\\x",),
    ("x\0y",),
    ("",),
    (".",),
]


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "download"
    canary = tmp_path / "canary"
    root.mkdir()
    canary.mkdir()
    (canary / "keep").write_bytes(b"keep")
    return root, canary


def snapshot(d: Path) -> list[tuple[str, bytes]]:
    return sorted((str(p.relative_to(d)), p.read_bytes()) for p in d.rglob("*") if p.is_file())


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_paths_refused(dirs: tuple[Path, Path], path: tuple[str, ...]) -> None:
    root, canary = dirs
    with pytest.raises(UnsafePathError):
        FileStorage(Layout.from_files([(path, 4, False)], 16), root)
    assert snapshot(canary) == [("keep", b"keep")]


@pytest.mark.parametrize(
    "plant",
    [
        lambda root, canary: (root / "d").symlink_to(canary, target_is_directory=True),
        lambda root, canary: (root / "d").symlink_to(
            Path(os.path.relpath(canary, root)), target_is_directory=True
        ),
        lambda root, canary: (root / "d").mkdir() or (root / "d" / "e").symlink_to(canary),
        lambda root, canary: (
            (root / "d").mkdir()
            or (root / "d" / "e").mkdir()
            or (root / "d" / "e" / "f").symlink_to(canary / "keep")
        ),
    ],
)
async def test_planted_symlinks_never_followed_out(dirs: tuple[Path, Path], plant: object) -> None:
    root, canary = dirs
    plant(root, canary)  # type: ignore[operator]
    lay = Layout.from_files([(("d", "e", "f"), 4, False), (("d", "e", "g"), 0, False)], 16)
    st = FileStorage(lay, root)
    with pytest.raises(ShoalError):
        await st.open()
        await st.write_piece(0, b"evil")
    await st.close()
    assert snapshot(canary) == [("keep", b"keep")]


async def test_folder_swapped_for_symlink_after_open(dirs: tuple[Path, Path]) -> None:
    root, canary = dirs
    lay = Layout.from_files([(("d", "f"), 4, False), (("d", "g"), 4, False)], 4)
    st = FileStorage(lay, root)
    await st.open()
    await st.write_piece(0, b"good")
    await st.close()  # no cached descriptors
    (root / "d" / "f").unlink()
    (root / "d").rmdir()
    (root / "d").symlink_to(canary, target_is_directory=True)
    with pytest.raises(UnsafePathError):
        await st.write_piece(1, b"evil")
    assert snapshot(canary) == [("keep", b"keep")]
