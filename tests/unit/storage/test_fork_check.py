"""The forked re-check (``shoal check``, ``shoal seed``) gives what the threaded one gives: damaged pieces, missing
and short files, pads, pieces across files; it stands aside where it cannot be used, and the engine trusts the
pieces it verified."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from recheck_data import PL, damage, four_files
from shoal.errors import UnsafePathError
from shoal.storage import fork_check, hash_fork, hasher, piece_reader
from shoal.storage.check import recheck
from shoal.storage.files import FileStorage


@pytest.mark.parametrize("window", [4 << 20, 48 << 10])
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
    layout, hashes = four_files(tmp_path)
    storage = FileStorage(layout, tmp_path)
    forked = fork_check.recheck_forked(storage, hashes)
    assert forked is not None and forked.count == layout.num_pieces
    damage(tmp_path)
    steps: list[tuple[int, int]] = []
    forked = fork_check.recheck_forked(storage, hashes, progress=lambda d, t: steps.append((d, t)))
    threaded = await recheck(storage, hashes)
    await storage.close()
    assert forked is not None and list(forked) == list(threaded)
    assert 2 not in set(forked) and 0 in set(forked)
    assert steps and steps[-1][0] == steps[-1][1]


def test_it_stands_aside_where_it_cannot_fork(tmp_path: Path) -> None:
    layout, hashes = four_files(tmp_path)
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
    layout, hashes = four_files(tmp_path)
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
    layout, hashes = four_files(tmp_path)
    storage = FileStorage(layout, tmp_path)

    def refuse(file_index: int) -> int:
        raise UnsafePathError("path leaves the download folder")

    monkeypatch.setattr(storage, "open_for_reading", refuse)
    assert fork_check.recheck_forked(storage, hashes) is None
