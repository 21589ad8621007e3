"""The engine's re-check in a helper process (storage/check_helper.py) gives what the threaded one gives, and
stands aside (None: the caller re-checks in threads) wherever it cannot be used or the helper fails; cancelled, it
leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recheck_data import PL, damage, four_files
from shoal.storage import check_helper
from shoal.storage.check import recheck
from shoal.storage.files import FileStorage


@pytest.fixture(autouse=True)
def _any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_helper, "HELPER_MIN_BYTES", 0)
    monkeypatch.setattr(check_helper, "_CORES", max(2, os.cpu_count() or 1))


@pytest.mark.parametrize("big", [5 * PL + 100, 10 << 20])
async def test_the_helper_agrees_with_the_threaded_recheck(tmp_path: Path, big: int) -> None:
    layout, hashes = four_files(tmp_path, big)
    storage = FileStorage(layout, tmp_path)
    whole = await check_helper.recheck_in_helper(storage, hashes)
    assert whole is not None and whole.count == layout.num_pieces
    damage(tmp_path)
    steps: list[tuple[int, int]] = []
    helped = await check_helper.recheck_in_helper(storage, hashes, progress=lambda d, t: steps.append((d, t)))
    threaded = await recheck(storage, hashes)
    some = await check_helper.recheck_in_helper(storage, hashes, only=[0, 2, 3, layout.num_pieces - 1])
    await storage.close()
    assert helped is not None and list(helped) == list(threaded)
    assert 2 not in set(helped) and 0 in set(helped)
    assert some is not None and set(some) == {0, 3} & set(threaded)
    assert all(0 <= done <= total for done, total in steps)
    assert steps or big < 4 << 20  # a job of one run may end before its first progress line


async def test_small_rechecks_stay_in_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_helper, "HELPER_MIN_BYTES", 64 << 20)
    layout, hashes = four_files(tmp_path)
    storage = FileStorage(layout, tmp_path)

    def no_stat() -> None:
        raise AssertionError("a small re-check should be turned away before any I/O")

    monkeypatch.setattr(storage, "file_stats", no_stat)
    assert await check_helper.recheck_in_helper(storage, hashes) is None
    assert await check_helper.recheck_in_helper(storage, hashes, only=[0, 1]) is None


@pytest.mark.parametrize(
    "script",
    [
        "import sys; sys.exit(3)",  # fails
        "import os, signal; os.kill(os.getpid(), signal.SIGBUS)",  # killed (a file cut short under a map)
        "import sys; sys.stdin.read(); sys.stdout.write('d\\n'); sys.stdout.flush()",  # a short answer
        "import sys; sys.stdin.read(); sys.stdout.write('e no such thing\\n'); sys.stdout.flush()",
    ],
)
async def test_a_helper_that_fails_gives_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str
) -> None:
    monkeypatch.setattr(check_helper, "helper_command", lambda parent: [sys.executable, "-c", script])
    layout, hashes = four_files(tmp_path)
    storage = FileStorage(layout, tmp_path)
    assert await check_helper.recheck_in_helper(storage, hashes) is None
    await storage.close()


async def test_too_many_files_to_hand_over_gives_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check_helper, "MAX_FILES", 3)  # the torrent has four files with data
    layout, hashes = four_files(tmp_path)
    storage = FileStorage(layout, tmp_path)
    assert await check_helper.recheck_in_helper(storage, hashes) is None
    assert (
        await check_helper.recheck_in_helper(storage, hashes, only=[0, 1]) is not None
    )  # those touch one file
    await storage.close()


async def test_no_interpreter_to_start_gives_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_helper, "helper_command", lambda parent: [str(tmp_path / "no-such-python")])
    layout, hashes = four_files(tmp_path)
    storage = FileStorage(layout, tmp_path)
    assert await check_helper.recheck_in_helper(storage, hashes) is None
    await storage.close()


async def test_a_file_cut_short_after_it_was_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine saw the full size and handed the file over; it shrinks before the helper maps it: the helper
    fails (a short read or a SIGBUS in a worker), and the threaded re-check then says which pieces are gone."""
    layout, hashes = four_files(tmp_path, 10 << 20)
    target = tmp_path / "t" / "a"
    code = (
        f"import os, sys; os.truncate({str(target)!r}, 3 << 20); "
        "from shoal.storage.hash_helper import main; sys.exit(main(sys.argv[1:]))"
    )
    monkeypatch.setattr(
        check_helper, "helper_command", lambda parent: [sys.executable, "-c", code, str(parent)]
    )
    storage = FileStorage(layout, tmp_path)
    assert await check_helper.recheck_in_helper(storage, hashes) is None
    threaded = await recheck(storage, hashes)
    await storage.close()
    assert not set(threaded) & set(layout.file_piece_range(0))


async def test_a_symlinked_file_is_not_read_through(tmp_path: Path) -> None:
    layout, hashes = four_files(tmp_path, 10 << 20)
    outside = tmp_path / "outside"
    (tmp_path / "t" / "a").rename(outside)
    (tmp_path / "t" / "a").symlink_to(outside)
    storage = FileStorage(layout, tmp_path)
    helped = await check_helper.recheck_in_helper(storage, hashes)
    threaded = await recheck(storage, hashes)
    await storage.close()
    assert helped is None or list(helped) == list(threaded)
    assert not set(threaded) & set(layout.file_piece_range(0))


def _helpers_of(parent: int) -> list[int]:
    """Live processes started as the helper for ``parent`` (the helper and its forked workers)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z" and b"shoal-test-helper" in argv and str(parent).encode() in argv:
            found.append(int(name))
    return found


def _wait_gone(parent: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _helpers_of(parent)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# A helper whose workers hash slowly (a pause before each run), marked so the test can find it in /proc.
SLOW_HELPER = (
    "import sys, time; from shoal.storage import hash_fork, hash_helper; run = hash_fork.hash_run\n"
    "def slow(*a, **k):\n    time.sleep(0.2)\n    return run(*a, **k)\n"
    "hash_fork.hash_run = slow; sys.exit(hash_helper.main(sys.argv[2:]))"
)


async def test_cancelling_the_recheck_stops_the_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        check_helper,
        "helper_command",
        lambda parent: [sys.executable, "-c", SLOW_HELPER, "shoal-test-helper", str(parent)],
    )
    layout, hashes = four_files(tmp_path, 10 << 20)
    storage = FileStorage(layout, tmp_path)
    started = asyncio.Event()
    task = asyncio.ensure_future(
        check_helper.recheck_in_helper(storage, hashes, progress=lambda d, t: started.set())
    )
    await asyncio.wait_for(started.wait(), 20)
    assert _helpers_of(os.getpid())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    left = await asyncio.to_thread(_wait_gone, os.getpid())
    await storage.close()
    assert not left, f"helper processes left: {left}"


PARENT = """
import asyncio, sys
from pathlib import Path
from shoal.storage import check_helper
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout
check_helper.HELPER_MIN_BYTES = 0
check_helper._CORES = 2
slow = sys.argv[1]
check_helper.helper_command = lambda parent: [sys.executable, "-c", slow, "shoal-test-helper", str(parent)]
root, size = Path(sys.argv[2]), int(sys.argv[3])
layout = Layout.from_files([(("big",), size, False)], 32 << 10)
async def main():
    storage = FileStorage(layout, root)
    def started(done, total):
        print("started", flush=True)
    await check_helper.recheck_in_helper(storage, bytes(20 * layout.num_pieces), progress=started)
asyncio.run(main())
"""


def test_the_helper_and_its_workers_die_with_the_engine(tmp_path: Path) -> None:
    size = 16 << 20
    with open(tmp_path / "big", "wb") as f:
        f.truncate(size)
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT, SLOW_HELPER, str(tmp_path), str(size)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"  # the helper's workers are hashing
        assert _helpers_of(proc.pid)
        proc.send_signal(signal.SIGKILL)  # the engine is killed outright: nobody cancels anything
        proc.wait(10)
        left = _wait_gone(proc.pid)
        assert not left, f"helper processes left after the engine died: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _helpers_of(proc.pid):
            os.kill(pid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()
