"""The piece hasher behind create and check: threads, forked processes and one thread give the same digests, and a
worker's failure reaches the caller."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable

import pytest

from shoal.codec import merkle
from shoal.errors import StorageError
from shoal.storage import hash_fork, hasher

KiB = 1024


def _reader(data: bytes, fail_at: int | None = None, *, mapped: bool = False) -> hasher.OpenReader:
    """Readers of ``data``; ``mapped``: they also show it in place (as a memory map would), except every third
    piece-sized range, which is read (a piece across two files, say)."""

    def open_reader() -> hasher.Reader:
        def read_into(view: memoryview, offset: int) -> None:
            if fail_at is not None and offset <= fail_at < offset + len(view):
                raise StorageError(f"cannot read data at {fail_at}")
            view[:] = data[offset : offset + len(view)]

        calls = iter(range(1 << 30))

        def view_at(offset: int, length: int) -> memoryview | None:
            if next(calls) % 3 == 2:
                return None
            return memoryview(data)[offset : offset + length]

        return hasher.Reader(read_into, view_at=view_at if mapped else None)

    return open_reader


def _expected(data: bytes, pl: int, files: list[tuple[int, int]]) -> tuple[list[bytes], list[bytes]]:
    v1 = [hashlib.sha1(data[i : i + pl]).digest() for i in range(0, len(data), pl)]
    v2 = []
    for p in range(len(v1)):
        start = p * pl
        a, n = next((a, n) for a, n in files if a <= start < a + n)
        piece = data[start : min(start + pl, a + n)]
        leaves = merkle.block_hashes(piece)
        v2.append(merkle.merkle_root(leaves) if n <= pl else merkle.piece_hash(leaves, pl))
    return v1, v2


@pytest.mark.parametrize("mode", ["inline", "threads", "fork", "fork-mapped"])
@pytest.mark.parametrize("buffer", [16 * KiB, 64 * KiB])
def test_modes_agree_with_hashing_in_memory(
    mode: str, buffer: int, monkeypatch: pytest.MonkeyPatch, in_fresh_process: Callable[[], None]
) -> None:
    if mode.startswith("fork") and not hash_fork.fork_is_safe():
        in_fresh_process()
        return
    monkeypatch.setattr(hasher, "BUFFER_BYTES", buffer)
    pl = 32 * KiB
    rng = random.Random(7)
    # a file of many pieces, one smaller than a piece (its pieces root), a pad, and a last short piece
    files = [(0, 5 * pl + 100), (6 * pl, 3000), (7 * pl, 2 * pl + 17)]
    size = 9 * pl + 17
    data = bytearray(size)
    for a, n in files:
        data[a : a + n] = rng.randbytes(n)
    space = hasher.PieceSpace(pl, size, v1=True, v2=True, files=files)
    runs = hasher.plan_runs(range(space.num_pieces), pl, run_bytes=2 * pl)
    workers = 1 if mode == "inline" else 2
    opener = _reader(bytes(data), mapped=mode == "fork-mapped")
    got = hasher.hash_pieces(space, opener, runs, workers, fork=mode.startswith("fork"))
    assert got == _expected(bytes(data), pl, files)


@pytest.mark.parametrize("fork", [False, True])
def test_a_worker_error_is_raised_to_the_caller(fork: bool, in_fresh_process: Callable[[], None]) -> None:
    if fork and not hash_fork.fork_is_safe():
        in_fresh_process()
        return
    pl = 16 * KiB
    data = os.urandom(40 * pl)
    space = hasher.PieceSpace(pl, len(data), v1=True, v2=False, files=[(0, len(data))])
    runs = hasher.plan_runs(range(space.num_pieces), pl, run_bytes=pl)
    with pytest.raises(StorageError, match="cannot read data at"):
        hasher.hash_pieces(space, _reader(data, fail_at=len(data) - 5), runs, 2, fork=fork)


def test_only_some_pieces() -> None:
    pl = 16 * KiB
    data = os.urandom(10 * pl)
    space = hasher.PieceSpace(pl, len(data), v1=True, v2=False)
    runs = hasher.plan_runs([1, 2, 3, 7, 9], pl, run_bytes=2 * pl)
    assert runs == [(1, 3), (3, 4), (7, 8), (9, 10)]
    v1, v2 = hasher.hash_pieces(space, _reader(data), runs, 2)
    want = _expected(data, pl, [(0, len(data))])[0]
    assert v1 == [want[i] if i in (1, 2, 3, 7, 9) else None for i in range(10)]
    assert v2 == [None] * 10


def test_coarsen_runs_merges_touching_neighbours_pairwise() -> None:
    runs = [(i, i + 1) for i in range(10)]
    assert hasher.coarsen_runs(runs, 10) == runs
    assert hasher.coarsen_runs(runs, 5) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert hasher.coarsen_runs(runs, 3) == [(0, 4), (4, 8), (8, 10)]
    apart = [(0, 1), (2, 3), (4, 5)]
    assert hasher.coarsen_runs(apart, 1) == apart  # nothing touches: left as is (then threads are used)


def test_split_tail_cuts_the_last_runs_of_each_worker_finer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hasher, "TAIL_RUN_BYTES", 2 * KiB)
    runs = [(0, 8), (8, 16), (16, 24), (24, 28)]
    one = hasher.split_tail(runs, KiB, workers=1)  # the last two runs, in runs of 2 pieces
    assert one == [(0, 8), (8, 16), (16, 18), (18, 20), (20, 22), (22, 24), (24, 26), (26, 28)]
    two = hasher.split_tail(runs, KiB, workers=2)  # every run is one of the last two per worker
    assert two == [(a, a + 2) for a in range(0, 28, 2)]
    big = hasher.split_tail(runs, 4 * KiB, workers=1)  # pieces bigger than TAIL_RUN_BYTES: one piece a run
    assert big[-2:] == [(26, 27), (27, 28)]
    assert hasher.split_tail([], KiB, workers=2) == []


def test_more_runs_than_a_pipe_holds_are_coarsened_for_processes(
    monkeypatch: pytest.MonkeyPatch, in_fresh_process: Callable[[], None]
) -> None:
    if not hash_fork.fork_is_safe():
        in_fresh_process()
        return
    monkeypatch.setattr(hash_fork, "MAX_RUNS", 3)
    pl = 16 * KiB
    data = os.urandom(12 * pl)
    space = hasher.PieceSpace(pl, len(data), v1=True, v2=False)
    runs = hasher.plan_runs(range(12), pl, run_bytes=pl)
    v1, _ = hasher.hash_pieces(space, _reader(data), runs, 2, fork=True)
    assert v1 == _expected(data, pl, [(0, len(data))])[0]
