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


_ORPHAN_SCRIPT = """
import os, time
from shoal.storage import hasher

def opener():
    def read_into(view, offset):
        time.sleep(0.05)
        view[:] = bytes(len(view))
    return hasher.Reader(read_into)

space = hasher.PieceSpace(16384, 16384 * 2000, v1=True, v2=False)
runs = hasher.plan_runs(range(2000), 16384, run_bytes=16384)
print(os.getpid(), flush=True)
hasher.hash_pieces(space, opener, runs, 2, fork=True)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in (
                "Z",
                "X",
            )  # exited, not yet reaped by its new parent
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    """kill -9 of ``shoal create`` mid-hash: its workers notice at their next run and leave (no orphan hashing a
    100 GiB folder for minutes)."""
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", _ORPHAN_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        children: list[int] = []
        deadline = time.monotonic() + 20
        while len(children) < 2 and time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except FileNotFoundError:
                pytest.skip("this kernel does not list a task's children")
            time.sleep(0.02)
        assert len(children) == 2, "the workers did not start"
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not all(_gone(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_gone(c) for c in children), "a worker kept hashing after its parent was killed"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
