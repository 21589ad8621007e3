"""Shared rendering for get/seed/demo: rich progress rows from TorrentStatus, and the one-line summary.

rich is imported only by the functions that draw (it costs ~4 MiB of memory and ~25 ms of start-up, which a
seeder or a download without a terminal never needs): :func:`make_console` gives a plain writer then.

Torrent names and errors come from the network: they are never read as rich markup (a name like ``[/]x`` made
rich raise MarkupError, and ``[bold]`` vanished from names), neither in printed lines nor in the progress rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from shoal.engine.handle import TorrentStatus

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

T = TypeVar("T")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_rate(n: float) -> str:
    return human_bytes(n) + "/s"


def human_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class PlainConsole:
    """What get/seed print when stdout is no terminal: lines as they are, no rich (no markup, no wrapping)."""

    is_terminal = False

    def print(self, text: str, **_: Any) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def make_console() -> Any:
    """A rich Console without markup for a terminal, else a :class:`PlainConsole`."""
    if not sys.stdout.isatty():
        return PlainConsole()
    from rich.console import Console

    return Console(highlight=False, markup=False)


def make_progress(console: Console) -> Progress:
    from rich.progress import BarColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description:<14}", style="bold", markup=False),  # a torrent's name: never markup
        BarColumn(bar_width=30),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[state]:<12}"),
        TextColumn("↓ {task.fields[down]:>11}"),
        TextColumn("↑ {task.fields[up]:>11}"),
        TextColumn("peers {task.fields[peers]:>3}"),
        TextColumn("ETA {task.fields[eta]}"),
        console=console,
        transient=False,
        refresh_per_second=4,
    )


def row_fields(st: TorrentStatus) -> dict[str, Any]:
    return {
        "completed": st.progress * 1000,
        "state": st.state.value,
        "down": human_rate(st.download_rate),
        "up": human_rate(st.upload_rate),
        "peers": st.peers,
        "eta": human_eta(st.eta),
    }


def add_row(progress: Progress, label: str, st: TorrentStatus) -> TaskID:
    return progress.add_task(label, total=1000, **row_fields(st))


def summary_line(st: TorrentStatus, elapsed: float) -> str:
    rate = st.downloaded / elapsed if elapsed > 0 else 0.0
    done = "complete" if st.is_complete else f"{st.progress * 100:.1f}% done"
    return (
        f"{st.name}: {done}, {human_bytes(st.total_done)} of {human_bytes(st.total_wanted)}; "
        f"downloaded {human_bytes(st.downloaded)} ({human_rate(rate)}), uploaded {human_bytes(st.uploaded)} "
        f"in {elapsed:.1f}s"
    )


def write_stats(path: str | None, st: TorrentStatus, extra: dict[str, Any]) -> None:
    """Write the status and counters as JSON to ``path`` atomically (for scripts, tests and benchmarks)."""
    if not path:
        return
    data = {
        "name": st.name,
        "info_hash": st.info_hash.hex(),
        "state": st.state.value,
        "progress": st.progress,
        "total_wanted": st.total_wanted,
        "total_done": st.total_done,
        "downloaded": st.downloaded,
        "uploaded": st.uploaded,
        "download_rate": st.download_rate,
        "upload_rate": st.upload_rate,
        "peers": st.peers,
        "pieces_have": st.pieces_have,
        "pieces_total": st.pieces_total,
        "error": st.error,
        **extra,
    }
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on uvloop when installed; SIGTERM and SIGINT cancel it so it can stop cleanly."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        loop = runner.get_loop()
        main_task: asyncio.Task[T] | None = None
        interrupted = False

        def _stop() -> None:
            nonlocal interrupted
            interrupted = True
            if main_task is not None:
                main_task.cancel()

        async def _wrapper() -> T:
            nonlocal main_task
            main_task = asyncio.current_task()
            return await make()

        installed = []
        if sys.platform != "win32":
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                    loop.add_signal_handler(sig, _stop)
                    installed.append(sig)
        try:
            return runner.run(_wrapper())
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            for sig in installed:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
