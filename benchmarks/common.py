"""Shared plumbing for the benchmarks: measured subprocesses, cached content, result tables.

Every peer under test runs as its own process so its CPU time (user+sys from ``wait4``) and peak RSS
(``ru_maxrss`` from ``wait4``, i.e. VmHWM, which includes file pages a peer maps, as libtorrent 2.x does; plus a
sampled peak of ``RssAnon``, the heap) belong to it alone. Every process is started in its own process group and
killed in ``finally``; every wait has a deadline.

The harness of the interop tests (``tests/interop/harness``) supplies the reference peers (``benchmarks/__init__``
puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop.harness import content, proc

logger = logging.getLogger("benchmarks")

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20


def parse_size(text: str) -> int:
    """'1G', '256M', '512k', '1048576' -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not m:
        raise ValueError(f"size {text!r} is not like 256M or 1G")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def human_size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


# -- measured processes --------------------------------------------------------------------------------------
def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Measured:
    """What one process cost: wall seconds from start to exit, CPU seconds, peak RSS; and when it started and ended
    by the wall clock (``time.time()``, to line up with other processes' traces)."""

    label: str
    wall: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0
    cpu_user: float = 0.0
    cpu_sys: float = 0.0
    peak_rss_kib: int = 0
    peak_anon_kib: int = 0
    returncode: int | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_sys

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.lines:
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    out.append(obj)
        return out


class MeasuredProcess:
    """A child process whose stdout lines are collected, RssAnon sampled, and rusage read with ``wait4``.

    Use as a context manager: leaving the block stops the process group (SIGTERM, then SIGKILL) and reaps it.
    """

    def __init__(self, label: str, cmd: Sequence[str], *, log_path: Path, env: dict[str, str] | None = None):
        self.result = Measured(label, started_at=time.time())
        self.log_path = log_path
        self._t0 = time.monotonic()
        self.p = proc.start(cmd, log_path=log_path, stdout=subprocess.PIPE, env=env)
        self._lines_cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for raw in self.p.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._lines_cv:
                self.result.lines.append(line)
                self._lines_cv.notify_all()

    @property
    def pid(self) -> int:
        return self.p.pid

    def sample(self) -> None:
        if self.result.returncode is None:
            anon = _status_kib(self.p.pid, "RssAnon:")
            self.result.peak_anon_kib = max(self.result.peak_anon_kib, anon)

    def rss_kib(self) -> int:
        return _status_kib(self.p.pid, "VmRSS:")

    def anon_kib(self) -> int:
        return _status_kib(self.p.pid, "RssAnon:")

    def cpu_now(self) -> float:
        """CPU seconds (user+sys) used so far, from /proc/PID/stat."""
        try:
            fields = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def wait_line(self, predicate: Any, *, timeout: float, what: str) -> str:
        """Wait for a stdout line matching ``predicate(line)``; raises TimeoutError/RuntimeError otherwise."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            with self._lines_cv:
                lines = self.result.lines[seen:]
                seen = len(self.result.lines)
            for line in lines:
                if predicate(line):
                    return str(line)
            self.sample()
            if self._poll_exit():
                with self._lines_cv:
                    rest = self.result.lines[seen:]
                for line in rest:
                    if predicate(line):
                        return str(line)
                raise RuntimeError(
                    f"{self.result.label} exited ({self.result.returncode}) before {what}: "
                    f"{proc.tail(self.log_path, 800)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.result.label}: no {what} within {timeout:g}s")
            with self._lines_cv:
                self._lines_cv.wait(0.05)

    def wait_event(self, event: str, *, timeout: float) -> dict[str, Any]:
        line = self.wait_line(lambda s: f'"event": "{event}"' in s, timeout=timeout, what=f"{event!r} event")
        return dict(json.loads(line))

    def _poll_exit(self) -> bool:
        if self.result.returncode is not None:
            return True
        pid, status, ru = os.wait4(self.p.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.result.wall = time.monotonic() - self._t0
        self.result.ended_at = time.time()
        self.result.returncode = os.waitstatus_to_exitcode(status)
        self.p.returncode = self.result.returncode
        self.result.cpu_user, self.result.cpu_sys = ru.ru_utime, ru.ru_stime
        self.result.peak_rss_kib = int(ru.ru_maxrss)
        return True

    def wait(self, timeout: float) -> Measured:
        """Wait for the process to exit by itself (TimeoutError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not self._poll_exit():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.result.label} still running after {timeout:g}s")
            self.sample()
            time.sleep(0.05)
        self._reader.join(5)
        return self.result

    def stop(self, timeout: float = 10.0) -> Measured:
        """SIGTERM the process group, SIGKILL after ``timeout``; returns the measurement."""
        if not self._poll_exit():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.wait(timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.p.pid, signal.SIGKILL)
                self.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.p.pid, signal.SIGKILL)
        self._reader.join(5)
        if self.p.stdout is not None:
            self.p.stdout.close()
        return self.result

    def __enter__(self) -> MeasuredProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- content -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchContent:
    data: Path  # the single file
    torrent: content.TorrentFile
    size: int


def single_file_content(workdir: Path, size: int, piece_length: int = MIB) -> BenchContent:
    """A random single file of ``size`` bytes and its v1 torrent, cached in ``workdir/content``."""
    base = workdir / "content"
    data = base / f"bench-{size}.bin"
    tpath = base / f"bench-{size}-{piece_length}.torrent"
    if not data.exists() or data.stat().st_size != size:
        logger.info("making %s of random data at %s", human_size(size), data)
        content.write_random(data, size, seed=size)
        tpath.unlink(missing_ok=True)
    if tpath.exists():
        import libtorrent as lt

        ti = lt.torrent_info(str(tpath))
        t = content.TorrentFile(
            path=tpath,
            info_hash=str(ti.info_hashes().v1),
            info_hash_v2="",
            name=ti.name(),
            piece_length=ti.piece_length(),
            num_pieces=ti.num_pieces(),
            total_size=ti.total_size(),
        )
    else:
        logger.info("hashing %s", data)
        t = content.make_torrent(data, tpath, piece_length=piece_length)
    return BenchContent(data=data, torrent=t, size=size)


@contextlib.contextmanager
def scratch_dir(path: Path) -> Iterator[Path]:
    """A folder that is emptied before use and removed afterwards."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- tables --------------------------------------------------------------------------------------------------
@dataclass
class Row:
    who: str
    mb_s: float | None
    cpu_s: float | None
    rss_mib: float | None
    anon_mib: float | None = None
    note: str = ""
    transfer_mb_s: float | None = None
    """MB/s of the transfer phase alone (benchmarks/transfer_phase.py); a column of its own when a row has it."""


@dataclass
class Table:
    title: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    columns: tuple[str, str, str, str] = ("MB/s", "CPU s", "peak RSS MiB", "peak anon MiB")

    def ratio_row(self, numerator: str, denominator: str, label: str = "") -> Row | None:
        a = next((r for r in self.rows if r.who == numerator), None)
        b = next((r for r in self.rows if r.who == denominator), None)
        if a is None or b is None:
            return None

        def div(x: float | None, y: float | None) -> float | None:
            return None if x is None or y is None or y == 0 else x / y

        return Row(
            label or f"ratio {numerator}/{denominator}",
            div(a.mb_s, b.mb_s),
            div(a.cpu_s, b.cpu_s),
            div(a.rss_mib, b.rss_mib),
            div(a.anon_mib, b.anon_mib),
            transfer_mb_s=div(a.transfer_mb_s, b.transfer_mb_s),
        )

    def render(self, markdown: bool = False) -> str:
        transfer = any(r.transfer_mb_s is not None for r in self.rows)
        head = ("", self.columns[0], *(["transfer MB/s"] if transfer else []), *self.columns[1:], "note")

        def cell(v: float | None, ratio: bool) -> str:
            if v is None:
                return "-"
            return f"{v:.2f}x" if ratio else (f"{v:.0f}" if v >= 100 else f"{v:.1f}")

        body = []
        for r in self.rows:
            ratio = r.who.startswith("ratio ")
            body.append(
                (
                    r.who,
                    cell(r.mb_s, ratio),
                    *([cell(r.transfer_mb_s, ratio)] if transfer else []),
                    cell(r.cpu_s, ratio),
                    cell(r.rss_mib, ratio),
                    cell(r.anon_mib, ratio),
                    r.note,
                )
            )
        if markdown:
            lines = [f"**{self.title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(row) + " |" for row in body]
        else:
            widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
            last = len(widths) - 1  # the note
            fmt = "  ".join(f"{{:<{w}}}" if i in (0, last) else f"{{:>{w}}}" for i, w in enumerate(widths))
            lines = [self.title, fmt.format(*head).rstrip()]
            lines += [fmt.format(*row).rstrip() for row in body]
        if markdown and self.notes:
            lines.append("")
        lines += [f"{'- ' if markdown else '  '}{n}" for n in self.notes]
        return "\n".join(lines)


def mib(kib: int) -> float:
    return kib / 1024


def mb_s(size: int, seconds: float) -> float:
    return size / 1e6 / seconds if seconds > 0 else 0.0


def machine_line() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    total = 0
    with contextlib.suppress(OSError, ValueError):
        total = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return f"{os.cpu_count()} cores ({cpu}), {total} MiB RAM, Python {sys.version.split()[0]}, {os.uname().release}"
