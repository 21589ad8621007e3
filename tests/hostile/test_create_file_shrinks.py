"""A file cut short while ``shoal create`` hashes it from a memory map: the worker that touches the lost pages
dies of SIGBUS, and the caller gets a one-line StorageError, not a dead process (hash_fork's workers map files;
the caller only waits)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from shoal.creator import create_torrent
from shoal.errors import StorageError
from shoal.storage import hash_fork, hasher, piece_reader

KiB = 1024


def test_a_file_truncated_under_its_map_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_fresh_process: Callable[[], None]
) -> None:
    if not hash_fork.fork_is_safe():
        in_fresh_process()
        return
    monkeypatch.setattr(hasher, "RUN_BYTES", 256 * KiB)
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(4096 * KiB))
    real_view_at = piece_reader.SegmentReader.view_at

    def view_then_truncate(self: piece_reader.SegmentReader, offset: int, length: int) -> memoryview | None:
        view = real_view_at(self, offset, length)
        if view is not None:
            os.truncate(path, 0)  # the map stays; its pages are gone: touching them raises SIGBUS
        return view

    monkeypatch.setattr(piece_reader.SegmentReader, "view_at", view_then_truncate)
    # the worker that truncated dies of SIGBUS; the other may see the short file first, before it maps
    with pytest.raises(StorageError, match=r"changed while it was hashed|shrank while hashing") as err:
        create_torrent(path, piece_length=64 * KiB)
    assert "\n" not in str(err.value)


def test_a_worker_killed_by_sigbus_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_fresh_process: Callable[[], None]
) -> None:
    if not hash_fork.fork_is_safe():
        in_fresh_process()
        return
    monkeypatch.setattr(hasher, "RUN_BYTES", 256 * KiB)
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(1024 * KiB))

    def die(self: piece_reader.SegmentReader, offset: int, length: int) -> memoryview | None:
        os.kill(os.getpid(), signal.SIGBUS)  # what touching a page cut from a mapped file does
        return None

    monkeypatch.setattr(piece_reader.SegmentReader, "view_at", die)
    with pytest.raises(StorageError, match="a file changed while it was hashed"):
        create_torrent(path, piece_length=64 * KiB)


def test_hashing_from_maps_gives_the_digests_of_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_fresh_process: Callable[[], None]
) -> None:
    """Maps in windows smaller than a file (and pieces across window edges) hash as reading does."""
    if not hash_fork.fork_is_safe():
        in_fresh_process()
        return
    monkeypatch.setattr(hasher, "RUN_BYTES", 128 * KiB)
    (tmp_path / "t").mkdir()
    for name, size in (("a", 1000 * KiB + 5), ("b", 3), ("c", 700 * KiB)):
        (tmp_path / "t" / name).write_bytes(os.urandom(size))
    real_view_at = piece_reader.SegmentReader.view_at
    in_place = tmp_path / "in-place"

    def counted(self: piece_reader.SegmentReader, offset: int, length: int) -> memoryview | None:
        view = real_view_at(self, offset, length)
        if view is not None:
            with open(in_place, "a") as f:  # the workers are other processes
                f.write(".")
        return view

    monkeypatch.setattr(piece_reader.SegmentReader, "view_at", counted)
    results = {}
    for window in (1 << 30, 192 * KiB):
        monkeypatch.setattr(piece_reader, "MAP_WINDOW", window)
        for version in ("v1", "hybrid"):
            results[window, version] = create_torrent(tmp_path / "t", piece_length=64 * KiB, version=version)
    monkeypatch.setattr(piece_reader.SegmentReader, "view_at", lambda self, offset, length: None)
    for version in ("v1", "hybrid"):
        read = create_torrent(tmp_path / "t", piece_length=64 * KiB, version=version)
        assert results[1 << 30, version] == read
        assert results[192 * KiB, version] == read
