"""ResumeCheckpoints: a running torrent saves its verified pieces when a checkpoint is due, one save at a time, and
a save that fails leaves the torrent running."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any

import pytest

from shoal.config import Settings
from shoal.engine import checking
from shoal.engine.checking import ResumeCheckpoints
from shoal.errors import ResumeError


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t


class FakeTask:
    def __init__(self, every_pieces: int = 4, every_seconds: float = 30.0) -> None:
        self.settings = Settings(
            resume_checkpoint_pieces=every_pieces, resume_checkpoint_interval=every_seconds
        )
        self.session = SimpleNamespace(clock=FakeClock())
        self.counters: collections.Counter[str] = collections.Counter()
        self.name = "fake"
        self.resume_store: Any = object()
        self.tasks: list[asyncio.Task[Any]] = []

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    async def settle(self) -> None:
        await asyncio.wait_for(asyncio.gather(*self.tasks), timeout=5)


@pytest.fixture
def saves(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every save_resume call, by task; a task whose ``fail_save`` is set raises ResumeError."""
    calls: list[Any] = []

    async def fake_save(task: Any) -> None:
        calls.append(task)
        if getattr(task, "fail_save", False):
            raise ResumeError("disk full")

    monkeypatch.setattr(checking, "save_resume", fake_save)
    return calls


async def test_saves_after_enough_pieces_or_enough_time(saves: list[Any]) -> None:
    task = FakeTask(every_pieces=4, every_seconds=30.0)
    cp = ResumeCheckpoints(task)  # type: ignore[arg-type]
    cp.pieces_verified([0, 1, 2])
    cp.checkpoint()
    assert task.tasks == []  # three pieces, no time passed: not due
    cp.pieces_verified([3])
    cp.checkpoint()
    await task.settle()
    assert len(saves) == 1 and task.counters["checkpoints"] == 1 and not cp.dirty
    cp.pieces_verified([7])
    cp.checkpoint()
    assert len(task.tasks) == 1  # one piece since: not due
    task.session.clock.t += 31
    cp.checkpoint()
    await task.settle()
    assert len(saves) == 2 and task.counters["checkpoints"] == 2


async def test_forced_checkpoint_saves_at_once_and_nothing_to_save_is_no_save(saves: list[Any]) -> None:
    task = FakeTask(every_pieces=64)
    cp = ResumeCheckpoints(task)  # type: ignore[arg-type]
    cp.checkpoint(force=True)
    assert task.tasks == []  # nothing verified since the last save
    cp.pieces_verified([5])
    cp.checkpoint(force=True)
    await task.settle()
    assert len(saves) == 1


async def test_one_save_at_a_time(saves: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    gate = asyncio.Event()

    async def slow_save(task: Any) -> None:
        saves.append(task)
        await gate.wait()

    monkeypatch.setattr(checking, "save_resume", slow_save)
    task = FakeTask(every_pieces=1)
    cp = ResumeCheckpoints(task)  # type: ignore[arg-type]
    cp.pieces_verified([0])
    cp.checkpoint()
    await asyncio.sleep(0)
    cp.pieces_verified([1])
    cp.checkpoint(force=True)  # the first save is still running: this one waits for a later checkpoint
    assert len(task.tasks) == 1 and cp.dirty == {1}
    gate.set()
    await task.settle()
    cp.checkpoint()
    await task.settle()
    assert len(saves) == 2


async def test_a_failed_save_is_logged_and_the_torrent_goes_on(
    saves: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    task = FakeTask(every_pieces=1)
    task.fail_save = True  # type: ignore[attr-defined]
    cp = ResumeCheckpoints(task)  # type: ignore[arg-type]
    cp.pieces_verified([0])
    cp.checkpoint()
    await task.settle()  # no exception escapes the save task
    assert task.counters["checkpoints"] == 0
    assert "cannot save resume data: disk full" in caplog.text
    cp.pieces_verified([1])
    task.fail_save = False  # type: ignore[attr-defined]
    cp.checkpoint()
    await task.settle()
    assert task.counters["checkpoints"] == 1
