"""FdCache: descriptors shared by worker threads, and files held out of use while a part file moves."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.storage.fd_cache import FdCache, FileHeld

WAIT = 5.0  # seconds: every wait of these tests is bounded


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[FdCache]:
    def opener(index: int, writable: bool) -> int:
        if index == 9:
            raise OSError(2, "no such file")
        return os.open(tmp_path / f"f{index}", os.O_RDWR | os.O_CREAT)

    c = FdCache(4, opener)
    yield c
    c.close_all()


def in_thread(fn: object) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        fn()  # type: ignore[operator]
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, done


def test_a_hold_waits_for_the_descriptors_in_use_and_keeps_new_users_waiting(cache: FdCache) -> None:
    fd, cached = cache.acquire(1, True)  # a write under way
    held = threading.Event()
    leave = threading.Event()

    def hold() -> None:
        with cache.holding({1}):
            held.set()
            assert leave.wait(WAIT)

    holder, _ = in_thread(hold)
    assert not held.wait(0.2)  # the write is not done
    cache.release(1, fd, cached)
    assert held.wait(WAIT)

    got: list[tuple[int, bool]] = []
    _, used = in_thread(lambda: got.append(cache.acquire(1, False)))
    assert not used.wait(0.2)  # a new user of the held file waits
    with pytest.raises(FileHeld):
        cache.acquire(1, False, wait=False)  # the event loop's reader gives up instead
    other = cache.acquire(2, True, wait=False)  # other files are not held
    cache.release(2, *other)
    leave.set()
    holder.join(WAIT)
    assert used.wait(WAIT)
    cache.release(1, *got[0])


def test_a_hold_counts_descriptors_kept_out_of_the_cache(cache: FdCache) -> None:
    first = cache.acquire(1, False)
    cache.forget(1)  # the cached one is doomed while in use
    second = cache.acquire(1, True)  # a fresh descriptor
    held = threading.Event()

    def hold() -> None:
        with cache.holding({1}):
            held.set()

    holder, _ = in_thread(hold)
    assert not held.wait(0.2)
    cache.release(1, *first)
    assert not held.wait(0.2)
    cache.release(1, *second)
    assert held.wait(WAIT)
    holder.join(WAIT)


def test_a_hold_counts_a_descriptor_opened_beside_one_in_use(cache: FdCache) -> None:
    reading = cache.acquire(1, False)
    writing = cache.acquire(1, True)  # the cached one is read-only and in use: a second one, not cached
    assert writing[1] is False
    held = threading.Event()

    def hold() -> None:
        with cache.holding({1}):
            held.set()

    in_thread(hold)
    cache.release(1, *reading)
    assert not held.wait(0.2)
    cache.release(1, *writing)
    assert held.wait(WAIT)


def test_an_opener_that_fails_leaves_no_user_behind(cache: FdCache) -> None:
    with pytest.raises(OSError):
        cache.acquire(9, True)
    held = threading.Event()

    def hold() -> None:
        with cache.holding({9}):
            held.set()

    in_thread(hold)
    assert held.wait(WAIT)


def test_holding_nothing_waits_for_nothing_and_holds_are_not_nested(cache: FdCache) -> None:
    fd, cached = cache.acquire(1, True)
    with cache.holding(set()):
        pass
    cache.release(1, fd, cached)
    with cache.holding({1}), pytest.raises(RuntimeError), cache.holding({2}):
        pass
    assert cache.held == frozenset()
