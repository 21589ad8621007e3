"""The forked re-check (``shoal check``, ``shoal seed``) gives what the threaded one gives: damaged pieces, missing
and short files, pads, pieces across files; it stands aside where it cannot be used, and the engine trusts the
pieces it verified."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from shoal.errors import UnsafePathError
from shoal.storage import fork_check, hash_fork, hasher, piece_reader
from shoal.storage.check import recheck
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout

KiB = 1024
PL = 32 * KiB


def _torrent(root: Path) -> tuple[Layout, bytes]:
    """Four files and a pad under root/t; piece hashes of the intended data."""
    sizes = {"a": 5 * PL + 100, "b": 3000, "c": 2 * PL + 17, "d": 3 * PL}
    files = [
        (("t", "a"), sizes["a"], False),
        (("t", "b"), sizes["b"], False),
        (("t", ".pad", "1"), PL - (sizes["a"] + sizes["b"]) % PL, True),
        (("t", "c"), sizes["c"], False),
        (("t", "d"), sizes["d"], False),
    ]
    layout = Layout.from_files(files, PL)
    space = b""
    (root / "t").mkdir()
    for path, length, pad in files:
        data = bytes(length) if pad else os.urandom(length)
        if not pad:
            (root.joinpath(*path)).write_bytes(data)
        space += data
    hashes = b"".join(hashlib.sha1(space[i : i + PL]).digest() for i in range(0, len(space), PL))
    return layout, hashes


def _damage(root: Path) -> None:
    a = root / "t" / "a"
    raw = bytearray(a.read_bytes())
    raw[2 * PL + 5] ^= 1  # piece 2 fails
    a.write_bytes(bytes(raw))
    os.truncate(root / "t" / "c", PL)  # short: its pieces are skipped
    (root / "t" / "d").unlink()  # missing


@pytest.mark.parametrize("window", [4 << 20, 48 * KiB])
async def test_forked_recheck_agrees_with_the_threaded_one(
    tmp_path: Path,
    window: int,
    monkeypatch: pytest.MonkeyPatch,
    in_fresh_process: Callable[[], None],
) -> None:
    if not hash_fork.fork_is_safe():
        in_fresh_process()
        return
    monkeypatch.setattr(piece_reader, "MAP_WINDOW", window)
    monkeypatch.setattr(hasher, "RUN_BYTES", 2 * PL)  # several runs, so both workers hash
    layout, hashes = _torrent(tmp_path)
    storage = FileStorage(layout, tmp_path)
    forked = fork_check.recheck_forked(storage, hashes)
    assert forked is not None and forked.count == layout.num_pieces
    _damage(tmp_path)
    steps: list[tuple[int, int]] = []
    forked = fork_check.recheck_forked(storage, hashes, progress=lambda d, t: steps.append((d, t)))
    threaded = await recheck(storage, hashes)
    await storage.close()
    assert forked is not None and list(forked) == list(threaded)
    assert 2 not in set(forked) and 0 in set(forked)
    assert steps and steps[-1][0] == steps[-1][1]


def test_it_stands_aside_where_it_cannot_fork(tmp_path: Path) -> None:
    layout, hashes = _torrent(tmp_path)
    storage = FileStorage(layout, tmp_path)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert fork_check.recheck_forked(storage, hashes) is None  # a thread runs: no fork
    finally:
        stop.set()
        thread.join()
    assert fork_check.recheck_forked(storage, None) is None  # no v1 hashes


async def test_a_symlinked_file_is_not_read_through(
    tmp_path: Path, in_fresh_process: Callable[[], None]
) -> None:
    if not hash_fork.fork_is_safe():
        in_fresh_process()
        return
    layout, hashes = _torrent(tmp_path)
    outside = tmp_path / "outside"
    outside.write_bytes((tmp_path / "t" / "a").read_bytes())
    (tmp_path / "t" / "a").unlink()
    (tmp_path / "t" / "a").symlink_to(outside)
    storage = FileStorage(layout, tmp_path)
    forked = fork_check.recheck_forked(storage, hashes)
    threaded = await recheck(storage, hashes)
    await storage.close()
    assert forked is not None and list(forked) == list(threaded)
    assert not set(forked) & set(layout.file_piece_range(0))  # a's pieces: not verified through the link


def test_a_refused_path_is_left_to_the_threaded_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_fresh_process: Callable[[], None]
) -> None:
    if not hash_fork.fork_is_safe():
        in_fresh_process()
        return
    layout, hashes = _torrent(tmp_path)
    storage = FileStorage(layout, tmp_path)

    def refuse(file_index: int) -> int:
        raise UnsafePathError("path leaves the download folder")

    monkeypatch.setattr(storage, "open_for_reading", refuse)
    assert fork_check.recheck_forked(storage, hashes) is None
