"""Neighbouring pieces that wait for a disk thread together go out as one direct write (storage/write_runs.py):
which jobs make a run, and the real path on tmp_path: one pwritev, every byte in place, a bad piece left out."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from shoal.errors import DiskFullError
from shoal.storage import direct_io
from shoal.storage.direct_io import aligned_buffer
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout
from shoal.storage.write_runs import MAX_RUN_BYTES, Job, Place, WriteQueue

PL = 64 << 10


def job(name: str, place: Place | None, log: list[str]) -> Job:
    return Job([(0, b"", b"")], lambda results: log.append(name), "sha1", place)


def test_a_run_is_the_oldest_job_and_its_neighbours_in_file_order() -> None:
    q = WriteQueue()
    log: list[str] = []
    q.put(job("b", Place(0, PL, PL), log))  # the oldest
    q.put(job("other file", Place(1, 2 * PL, PL), log))
    q.put(job("c", Place(0, 2 * PL, PL), log))
    q.put(job("gap", Place(0, 4 * PL, PL), log))
    q.put(job("a", Place(0, 0, PL), log))
    q.put(job("no place", None, log))
    for j in q.take_run():
        j.done([])
    assert log == ["a", "b", "c"]  # b, then c after it, then a before it
    runs = []
    while len(q):
        runs.append(len(q.take_run()))
    assert runs == [1, 1, 1]  # nothing else continues another


def test_a_run_stops_at_its_size_and_a_lone_job_is_alone() -> None:
    q = WriteQueue(max_run_bytes=3 * PL)
    log: list[str] = []
    for i in range(6):
        q.put(job(str(i), Place(0, i * PL, PL), log))
    assert len(q.take_run()) == 3 and len(q.take_run()) == 3 and q.take_run() == []
    q.put(job("x", None, log))
    assert len(q.take_run()) == 1
    assert MAX_RUN_BYTES >= 4 * (1 << 20)  # four 1 MiB pieces at least: the disk's sweet spot here


needs_direct = pytest.mark.skipif(
    not direct_io.direct_io_works(), reason="O_DIRECT and /proc/self/fd are Linux's"
)


async def submit_all(
    st: FileStorage, gate: threading.Event, items: list[tuple[int, Any, bytes]]
) -> list[list[object]]:
    """Hand every piece over while the one disk thread is held at ``gate`` (so they wait together), then let it
    go and wait for every callback."""
    loop = asyncio.get_running_loop()
    results: dict[int, list[object]] = {}
    done = asyncio.Event()
    lock = threading.Lock()

    def report(piece: int) -> Any:
        def callback(batch: list[object]) -> None:
            with lock:
                results[piece] = batch
                if len(results) == len(items):
                    loop.call_soon_threadsafe(done.set)

        return callback

    for piece, data, expected in items:
        st.submit_hash_and_write_many([(piece, data, expected)], report(piece))
    gate.set()
    await asyncio.wait_for(done.wait(), 10)
    return [results[piece] for piece, _, _ in items]


def piece_data(i: int) -> Any:
    buf = aligned_buffer(PL)
    buf[:] = bytes([i + 1]) * PL
    return buf


@needs_direct
async def test_neighbours_go_out_as_one_pwritev_and_a_bad_piece_alone(
    tmp_path: Path, monkeypatch: Any
) -> None:
    lay = Layout.from_files([(("f",), 8 * PL, False)], PL, block_size=16 << 10)
    disk = ThreadPoolExecutor(max_workers=1)
    st = FileStorage(lay, tmp_path, executor=disk)
    await st.open()
    calls: list[int] = []
    real = os.pwritev

    def pwritev(fd: int, buffers: Any, offset: int) -> int:
        calls.append(len(buffers))
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "pwritev", pwritev)
    first = [piece_data(i) for i in range(4)]
    # the first four at once: pieces 0-3 as one run (whichever thread takes the oldest first gathers the rest)
    gate = threading.Event()
    disk.submit(gate.wait, 10)
    results = await submit_all(
        st, gate, [(i, first[i], hashlib.sha1(first[i]).digest()) for i in (2, 0, 3, 1)]
    )
    assert results == [[True]] * 4
    assert calls == [4]  # piece 2 came first; 3 follows it, 1 and 0 lead it: one write of four
    # a run with a piece that fails its hash: the others are written one by one, the bad one not at all
    later = [piece_data(i) for i in range(4, 8)]
    items = [(i, later[i - 4], hashlib.sha1(later[i - 4]).digest()) for i in range(4, 8)]
    items[1] = (5, later[1], b"\0" * 20)
    calls.clear()
    gate = threading.Event()
    disk.submit(gate.wait, 10)
    assert await submit_all(st, gate, items) == [[True], [False], [True], [True]]
    assert calls == []  # not one write of the run: each good piece on its own
    content = (tmp_path / "f").read_bytes()
    for i in (0, 1, 2, 3, 4, 6, 7):
        assert content[i * PL : (i + 1) * PL] == bytes([i + 1]) * PL
    assert content[5 * PL : 6 * PL] != bytes([6]) * PL
    await st.close()
    disk.shutdown()


@needs_direct
@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EINVAL])
async def test_a_run_that_fails_fails_its_pieces_or_falls_back(
    tmp_path: Path, monkeypatch: Any, error: int
) -> None:
    """No space: every piece of the run gets the error (the torrent stops, nothing is lost that was verified
    before). A filesystem that refuses O_DIRECT: the pieces are written one by one instead, every byte in place."""
    lay = Layout.from_files([(("f",), 4 * PL, False)], PL, block_size=16 << 10)
    disk = ThreadPoolExecutor(max_workers=1)
    st = FileStorage(lay, tmp_path, executor=disk)
    await st.open()

    def pwritev(fd: int, buffers: Any, offset: int) -> int:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(os, "pwritev", pwritev)
    data = [piece_data(i) for i in range(4)]
    gate = threading.Event()
    disk.submit(gate.wait, 10)
    results = await submit_all(st, gate, [(i, data[i], hashlib.sha1(data[i]).digest()) for i in range(4)])
    if error == errno.ENOSPC:
        assert all(len(r) == 1 and isinstance(r[0], DiskFullError) for r in results), results
    else:
        assert results == [[True]] * 4
        assert (tmp_path / "f").read_bytes() == b"".join(bytes([i + 1]) * PL for i in range(4))
    await st.close()
    disk.shutdown()


async def test_a_hand_over_to_a_stopped_executor_leaves_nothing_behind(tmp_path: Path) -> None:
    """The caller reports a failed hand-over itself; the job must not also be written by a later one."""
    lay = Layout.from_files([(("f",), 4 * PL, False)], PL, block_size=16 << 10)
    disk = ThreadPoolExecutor(max_workers=1)
    st = FileStorage(lay, tmp_path, executor=disk)
    await st.open()
    disk.shutdown()
    data = piece_data(0)
    with pytest.raises(RuntimeError):
        st.submit_hash_and_write_many([(0, data, hashlib.sha1(data).digest())], lambda results: None)
    assert st._waiting is not None and len(st._waiting) == 0
