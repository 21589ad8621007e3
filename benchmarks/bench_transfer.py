"""Transfer benchmarks over loopback TCP (issue 7 cases 1-3): Shoal against libtorrent in the same run.

Cases:

* ``download``  one libtorrent seeder -> one downloader: libtorrent, then Shoal (``shoal get``);
* ``seed``      one seeder (libtorrent, then Shoal ``shoal seed``) -> one libtorrent downloader;
* ``swarm``     four libtorrent seeders -> one downloader: libtorrent, then Shoal.

A single file (default 1 GiB, ``--size 256M`` for quick runs) with 1 MiB pieces, made once and cached in
``WORKDIR/content``. Peers find each other directly (``--peer``), no tracker. Every peer is a separate process
measured with ``wait4``: MB/s = size / the downloader's wall time from process start to exit (so it includes
start-up, the same for both); CPU s = user+sys of the measured process; peak RSS = its VmHWM (libtorrent maps
files, so its RSS includes page cache of the data it touched); peak anon = sampled RssAnon (heap). Each download is
compared byte for byte with the source. Which peer goes first changes between runs in a shuffled order (see
``run_orders``); the median run per peer is reported. "transfer MB/s" leaves start-up out: it is size / the seconds
the payload took to cross, seen by the libtorrent peer both sides share (the seeders in cases 1 and 3, the
downloader in case 2; benchmarks/transfer_phase.py), median of the runs.

Run: ``shoal bench download [--size 256M] [--runs 3] [--workdir /tmp/shoal-bench]``
or ``python -m benchmarks.bench_transfer download ...``.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import logging
import os
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import (
    BenchContent,
    Measured,
    MeasuredProcess,
    Row,
    Table,
    human_size,
    mb_s,
    mib,
    parse_size,
    scratch_dir,
    single_file_content,
)
from benchmarks.transfer_phase import TRACE_INTERVAL, read_trace, transfer_seconds
from interop.harness import proc
from interop.harness.libtorrent_peer import runner_command

logger = logging.getLogger("benchmarks.transfer")

CASES = ("download", "seed", "swarm")
LT = "libtorrent"
SHOAL = "shoal"
LT_WRITE_MODES = ("write_through",)
"""libtorrent downloading again with each of these ``disk_io_write_mode`` settings, in the same runs: Shoal's
downloads do not keep what they wrote in the page cache (storage/write_behind.py), and these are libtorrent's own
ways not to (``--lt-write-mode``; the plain libtorrent row is its default, enable_os_cache)."""


def lt_kind(mode: str) -> str:
    return f"{LT} ({mode})"


def lt_write_mode(kind: str) -> str | None:
    """The write mode of a libtorrent kind made by :func:`lt_kind` (None: libtorrent's default)."""
    return kind[len(LT) + 2 : -1] if kind.startswith(f"{LT} (") else None


def shoal_available() -> bool:
    return importlib.util.find_spec("shoal.cli.get") is not None


def shoal_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "shoal", *args]


# How the Shoal side runs: "cli" (`shoal get` / `shoal seed`, what users run) or "api" (benchmarks.shoal_runner,
# the Session API in a subprocess); and for "api" the event loop ("auto": uvloop when installed, or "asyncio").
SHOAL_MODE = {"via": "cli", "loop": "auto"}


def shoal_mode_note() -> str:
    if SHOAL_MODE["via"] == "api":
        return f"Shoal ran through the Session API in a subprocess (benchmarks.shoal_runner, loop {SHOAL_MODE['loop']})"
    return "Shoal ran as the CLI: shoal get --no-seed / shoal seed"


def shoal_runner_cmd(mode: str, torrent: Path, save: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.shoal_runner", mode, str(torrent), str(save), *extra]
    return [*cmd, "--loop", SHOAL_MODE["loop"]]


def child_env() -> dict[str, str]:
    """The peers' environment: this one, but Python may keep bytecode caches, as it does for any installed package
    (a sandbox's PYTHONDONTWRITEBYTECODE made every `shoal get` of an editable install recompile Shoal's modules:
    ~0.06-0.1 s of each download's start-up; the libtorrent runner is a small script over the compiled wheel)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def download_timeout(size: int) -> float:
    return 60 + size / 4e6  # 4 MB/s floor: 1 GiB -> ~330 s


# -- peers ---------------------------------------------------------------------------------------------------
def seed_trace(logdir: Path, n: int) -> Path:
    return logdir / f"lt-seed-{n}.trace"


def start_lt_seeder(
    bc: BenchContent, logdir: Path, n: int = 0, *, traced: bool = False
) -> tuple[MeasuredProcess, int]:
    """A libtorrent seeder; ``traced``: it writes its trace to :func:`seed_trace` (cases 1 and 3, where it serves
    both downloaders; never in case 2, where it is one of the peers compared)."""
    cmd = runner_command(
        "seed",
        bc.torrent.path,
        bc.data.parent,
        timeout=3600,
        trace=seed_trace(logdir, n) if traced else None,
        trace_interval=TRACE_INTERVAL,
    )
    mp = MeasuredProcess(f"{LT} seeder {n}", cmd, log_path=logdir / f"lt-seed-{n}.log", env=child_env())
    try:
        ev = mp.wait_event("listening", timeout=60 + bc.size / 200e6)
    except BaseException:
        mp.stop()
        raise
    return mp, int(ev["port"])


def start_shoal_seeder(bc: BenchContent, logdir: Path) -> tuple[MeasuredProcess, int]:
    if SHOAL_MODE["via"] == "api":
        cmd = shoal_runner_cmd("seed", bc.torrent.path, bc.data.parent, "--timeout", "3600")
        mp = MeasuredProcess(f"{SHOAL} seeder", cmd, log_path=logdir / "shoal-seed.log", env=child_env())
        try:
            port = int(mp.wait_event("listening", timeout=30)["port"])
            mp.wait_event("ready", timeout=60 + bc.size / 100e6)
        except BaseException:
            mp.stop()
            raise
        return mp, port
    cmd = shoal_cmd(
        "seed", str(bc.torrent.path), str(bc.data), "--bind", "127.0.0.1", "--port", "0", "--quiet"
    )
    mp = MeasuredProcess(f"{SHOAL} seeder", cmd, log_path=logdir / "shoal-seed.log", env=child_env())
    try:
        # `shoal seed` hashes the data first, then prints "...; seeding on port N".
        line = mp.wait_line(
            lambda text: "seeding on port" in text,
            timeout=60 + bc.size / 100e6,
            what="shoal seed to be seeding",
        )
        m = re.search(r"seeding on port (\d+)", line)
        if m is None:
            raise RuntimeError(f"shoal seed said {line!r}")
        port = int(m.group(1))
    except BaseException:
        mp.stop()
        raise
    return mp, port


def run_downloader(
    kind: str, bc: BenchContent, seeders: list[int], work: Path, logdir: Path, *, trace: Path | None = None
) -> Measured:
    """Download ``bc`` from the seeders' ports with ``kind``; verify it; return the measurement. A libtorrent
    downloader writes its ``--trace`` to ``trace`` if given."""
    peers = [("127.0.0.1", p) for p in seeders]
    with scratch_dir(work / f"dl-{kind}") as out:
        if kind.startswith(LT):
            cmd = runner_command(
                "get",
                bc.torrent.path,
                out,
                peers=peers,
                timeout=download_timeout(bc.size),
                disk_io_write_mode=lt_write_mode(kind),
                trace=trace,
                trace_interval=TRACE_INTERVAL,
            )
        elif SHOAL_MODE["via"] == "api":
            extra = ["--timeout", str(download_timeout(bc.size))]
            for ip, port in peers:
                extra += ["--peer", f"{ip}:{port}"]
            cmd = shoal_runner_cmd("get", bc.torrent.path, out, *extra)
        else:
            cmd = shoal_cmd("get", str(bc.torrent.path), "-o", str(out), "--no-seed", "--quiet")
            cmd += ["--bind", "127.0.0.1", "--port", "0", "--timeout", str(download_timeout(bc.size))]
            for ip, port in peers:
                cmd += ["--peer", f"{ip}:{port}"]
        with MeasuredProcess(
            f"{kind} downloader", cmd, log_path=logdir / f"{kind}-get.log", env=child_env()
        ) as mp:
            m = mp.wait(download_timeout(bc.size) + 30)
        got = out / bc.data.name
        if m.returncode != 0:
            raise RuntimeError(f"{kind} downloader exited {m.returncode}: {last_line(mp.log_path)}")
        if not got.exists() or not filecmp.cmp(bc.data, got, shallow=False):
            raise RuntimeError(f"{kind} downloader's file differs from the source")
        return m


def last_line(path: Path) -> str:
    lines = [line for line in proc.tail(path, 4000).splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else "(no output)"


def run_orders(runs: int, kinds: int = 2) -> list[list[int]]:
    """The order of the ``kinds`` peers in each run: rotations of ``0..kinds-1``, so each peer takes each slot as
    often as the others, in a shuffled order (fixed seed). Not ABBA: on this VM every fourth GiB written landed on
    memory the host had to fault in again (several times the system time of the other rounds,
    benchmarks/bench_disk_writes.py), and an ABBA order put the same peer on those slots every time."""
    orders = [[(r + k) % kinds for k in range(kinds)] for r in range(runs)]
    random.Random(7).shuffle(orders)
    return orders


def spread(runs: list[Measured], size: int, transfer: list[float | None] | None = None) -> str:
    """Every run's MB/s in run order, when there was more than one (and the transfer phase's, if measured)."""
    if len(runs) < 2:
        return ""
    text = "runs: " + " / ".join(f"{mb_s(size, m.wall):.0f}" for m in runs)
    if transfer and any(x is not None for x in transfer):
        text += "; transfer: " + " / ".join("-" if x is None else f"{x:.0f}" for x in transfer)
    return text


def transfer_rate(size: int, seconds: float | None) -> float | None:
    return None if seconds is None or seconds <= 0 else mb_s(size, seconds)


def median_of(values: list[float | None]) -> float | None:
    known = sorted(x for x in values if x is not None)
    return known[(len(known) - 1) // 2] if known else None


def median_run(runs: list[Measured]) -> Measured:
    by_wall = sorted(runs, key=lambda m: m.wall)
    return by_wall[(len(by_wall) - 1) // 2]


def row(
    who: str,
    m: Measured | None,
    size: int,
    *,
    cpu_of: Measured | None = None,
    note: str = "",
    transfer: float | None = None,
) -> Row:
    if m is None:
        return Row(who, None, None, None, None, note)
    c = cpu_of or m
    return Row(
        who,
        mb_s(size, m.wall),
        c.cpu,
        mib(c.peak_rss_kib),
        mib(c.peak_anon_kib),
        note,
        transfer_mb_s=transfer,
    )


# -- cases ---------------------------------------------------------------------------------------------------
def case_download(
    bc: BenchContent,
    work: Path,
    runs: int,
    n_seeders: int = 1,
    shoal: bool = True,
    lt_write_modes: tuple[str, ...] = LT_WRITE_MODES,
) -> Table:
    logdir = work / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    every = [LT, *(lt_kind(m) for m in lt_write_modes), SHOAL]
    kinds = every if shoal and shoal_available() else every[:-1]
    results: dict[str, list[Measured]] = {k: [] for k in kinds}
    failures: dict[str, str] = {}
    seeders: list[MeasuredProcess] = []
    try:
        ports = []
        for i in range(n_seeders):
            mp, port = start_lt_seeder(bc, logdir, i, traced=True)
            seeders.append(mp)
            ports.append(port)
        for r, order in enumerate(run_orders(runs, len(kinds))):
            for kind in (kinds[k] for k in order):
                if kind in failures:
                    continue
                logger.info(
                    "run %d: %s downloading %s from %d seeder(s)", r + 1, kind, human_size(bc.size), n_seeders
                )
                try:
                    m = run_downloader(kind, bc, ports, work, logdir)
                except (RuntimeError, TimeoutError) as exc:
                    failures[kind] = str(exc).splitlines()[0][:200]
                    logger.warning("%s failed: %s", kind, exc)
                    continue
                logger.info("  %.1f MB/s, %.2f CPU s", mb_s(bc.size, m.wall), m.cpu)
                results[kind].append(m)
    finally:
        for mp in seeders:
            mp.stop()
    # the seeders' traces are complete once they have exited: each run's transfer phase is in them
    traces = [read_trace(seed_trace(logdir, i)) for i in range(len(seeders))]
    transfers = {
        kind: [
            transfer_rate(
                bc.size, transfer_seconds(traces, "up", bc.size, start=m.started_at, end=m.ended_at)
            )
            for m in ms
        ]
        for kind, ms in results.items()
    }
    title = (
        f"{'download' if n_seeders == 1 else 'swarm'}: {n_seeders} libtorrent seeder(s) -> 1 downloader, "
        f"{human_size(bc.size)}, {bc.torrent.piece_length >> 20} MiB pieces, loopback TCP, {runs} run(s), median"
    )
    rows = []
    for kind in every:
        who = f"{kind} downloads"
        if kind not in kinds:
            rows.append(Row(who, None, None, None, None, "not run"))
        elif results.get(kind):
            rows.append(
                row(
                    who,
                    median_run(results[kind]),
                    bc.size,
                    note=spread(results[kind], bc.size, transfers[kind]),
                    transfer=median_of(transfers[kind]),
                )
            )
        else:
            rows.append(Row(who, None, None, None, None, f"failed: {failures.get(kind, '?')}"))
    table = Table(
        title,
        rows,
        notes=[
            "CPU s and RSS are the downloader process's (wait4); MB/s over its lifetime; transfer MB/s from the "
            "seeders' first byte to their last for it (their traces), start-up left out"
        ],
    )
    table.notes.append(shoal_mode_note())
    ratio = table.ratio_row(f"{SHOAL} downloads", f"{LT} downloads", "ratio shoal/libtorrent")
    if ratio is not None and ratio.mb_s is not None:
        table.rows.append(ratio)
    for mode in lt_write_modes:
        ratio = table.ratio_row(f"{SHOAL} downloads", f"{lt_kind(mode)} downloads", f"ratio shoal/{mode}")
        if ratio is not None and ratio.mb_s is not None:
            table.rows.append(ratio)
    return table


def case_seed(bc: BenchContent, work: Path, runs: int, shoal: bool = True) -> Table:
    logdir = work / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    kinds = [LT, SHOAL] if shoal and shoal_available() else [LT]
    dl: dict[str, list[Measured]] = {k: [] for k in kinds}
    seed: dict[str, list[Measured]] = {k: [] for k in kinds}
    transfers: dict[str, list[float | None]] = {k: [] for k in kinds}
    floors: list[float] = []  # per run: the libtorrent downloader's own least time (downloader_floor)
    failures: dict[str, str] = {}
    trace = logdir / "lt-get.trace"
    starters: dict[str, Callable[[], tuple[MeasuredProcess, int]]] = {
        LT: lambda: start_lt_seeder(bc, logdir),
        SHOAL: lambda: start_shoal_seeder(bc, logdir),
    }
    for r, order in enumerate(run_orders(runs, len(kinds))):
        for kind in (kinds[k] for k in order):
            if kind in failures:
                continue
            logger.info("run %d: %s seeding %s to libtorrent", r + 1, kind, human_size(bc.size))
            try:
                sp, port = starters[kind]()
                try:
                    m = run_downloader(LT, bc, [port], work, logdir, trace=trace)
                finally:
                    s = sp.stop()
                seconds = transfer_seconds(
                    [read_trace(trace)], "done", bc.size, start=m.started_at, end=m.ended_at
                )
            except (RuntimeError, TimeoutError) as exc:
                failures[kind] = str(exc).splitlines()[0][:200]
                logger.warning("%s failed: %s", kind, exc)
                continue
            logger.info("  %.1f MB/s, seeder %.2f CPU s", mb_s(bc.size, m.wall), s.cpu)
            dl[kind].append(m)
            seed[kind].append(s)
            transfers[kind].append(transfer_rate(bc.size, seconds))
            if seconds is not None:
                floors.append(downloader_floor(m, seconds))
    rows = []
    for kind in [LT, SHOAL]:
        who = f"{kind} seeds"
        if kind not in kinds:
            rows.append(Row(who, None, None, None, None, "not run"))
        elif dl.get(kind):
            i = dl[kind].index(median_run(dl[kind]))
            rows.append(
                row(
                    who,
                    dl[kind][i],
                    bc.size,
                    cpu_of=seed[kind][i],
                    note=spread(dl[kind], bc.size, transfers[kind]),
                    transfer=median_of(transfers[kind]),
                )
            )
        else:
            rows.append(Row(who, None, None, None, None, f"failed: {failures.get(kind, '?')}"))
    table = Table(
        f"seed: 1 seeder -> 1 libtorrent downloader, {human_size(bc.size)}, "
        f"{bc.torrent.piece_length >> 20} MiB pieces, loopback TCP, {runs} run(s), median",
        rows,
        notes=[
            "MB/s is the libtorrent downloader's; CPU s and RSS are the seeder process's over its whole life "
            "(start-up, checking the data, serving); transfer MB/s from the downloader's first payload byte to "
            "its last (its trace), start-up and the wait for its first connection left out"
        ],
    )
    table.notes.append(shoal_mode_note())
    ratio = table.ratio_row(f"{SHOAL} seeds", f"{LT} seeds", "ratio shoal/libtorrent")
    if ratio is not None and ratio.mb_s is not None:
        table.rows.append(ratio)
    if floors and dl.get(LT):
        floor = median_of(list(floors))
        assert floor is not None
        table.notes.append(
            f"ceiling on this machine: the libtorrent downloader alone needs {floor:.2f} s (median; its time "
            f"before the transfer plus its CPU seconds spread over {os.cpu_count() or 1} cores), so no seeder can "
            f"beat libtorrent seeding by more than about {median_run(dl[LT]).wall / floor:.2f}x here"
        )
    return table


def downloader_floor(m: Measured, transfer: float) -> float:
    """The least wall time the downloader of run ``m`` could take with a seeder that cost nothing: its own time
    before the transfer (start-up, connecting), plus all its CPU seconds spread over every core. Its start-up CPU
    (~0.05 s for libtorrent here) is counted in both, so this is a little high and the ceiling it gives a little
    low (~2 % at 1 GiB)."""
    return (m.wall - transfer) + m.cpu / (os.cpu_count() or 1)


def run(
    case: str,
    *,
    size: int,
    runs: int,
    workdir: Path,
    shoal: bool = True,
    shoal_via: str = "cli",
    loop: str = "auto",
    lt_write_modes: tuple[str, ...] = LT_WRITE_MODES,
) -> list[Table]:
    """Run one case; ``shoal=False`` measures only the libtorrent baseline (see ``SHOAL_MODE`` for the rest)."""
    SHOAL_MODE.update(via=shoal_via, loop=loop)
    bc = single_file_content(workdir, size)
    if case == "download":
        return [case_download(bc, workdir, runs, shoal=shoal, lt_write_modes=lt_write_modes)]
    if case == "swarm":
        return [case_download(bc, workdir, runs, n_seeders=4, shoal=shoal, lt_write_modes=lt_write_modes)]
    if case == "seed":
        return [case_seed(bc, workdir, runs, shoal=shoal)]
    raise ValueError(f"unknown case {case!r}; choose from {', '.join(CASES)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="1G", help="data size (default 1G; 256M for a quick run)")
    parser.add_argument("--runs", type=int, default=1, help="repetitions per peer (median reported)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/shoal-bench"), help="content and scratch")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    parser.add_argument(
        "--shoal-via", choices=["cli", "api"], default="cli", help="shoal get/seed or Session API"
    )
    parser.add_argument(
        "--loop", choices=["auto", "asyncio"], default="auto", help="event loop for --shoal-via api"
    )
    parser.add_argument(
        "--lt-write-mode",
        action="append",
        choices=["disable_os_cache", "write_through", "none"],
        default=None,
        help="download/swarm: also run libtorrent with this disk_io_write_mode (default write_through; "
        "repeat for more; none: only libtorrent's default)",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_transfer")
    ap.add_argument("case", choices=CASES)
    add_arguments(ap)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    tables = run(
        args.case,
        size=parse_size(args.size),
        runs=args.runs,
        workdir=args.workdir,
        shoal_via=args.shoal_via,
        loop=args.loop,
        lt_write_modes=tuple(m for m in args.lt_write_mode or LT_WRITE_MODES if m != "none"),
    )
    for t in tables:
        sys.stdout.write(t.render(markdown=args.markdown) + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
