"""Downloaders in turn against the same libtorrent seeders, each run's transfer phase and CPU on one line.

Usage::

    .venv/bin/python -m benchmarks.pair_transfer [--seeders 1] [--order "shoal lt shoal lt"] [--fresh]
        [--delay 1.0] [--workdir /tmp/shoal-bench] [--shoal-src A=PATH ...]

For alternated A/B checks outside the harness (cases 1 and 3). ``--seeders`` libtorrent seeders (traced every 10 ms)
serve the 1 GiB content of ``WORKDIR/content`` (made by ``shoal bench download``); the downloaders of ``--order`` run
one after another: ``lt`` (libtorrent, ``lt_runner.py get``) or ``shoal`` (``shoal get``); ``shoal@A`` runs Shoal
from the source tree given as ``--shoal-src A=PATH`` (a ``git worktree``'s ``src``, through ``PYTHONPATH``). The
seeders live through all the runs, as in the harness, unless ``--fresh`` starts them anew for each run and waits
``--delay`` seconds before the downloader starts (the phase of libtorrent's once-a-second tick then repeats from
run to run). Each line: the downloader's wall time and CPU (``wait4``), its event-loop (main) thread's CPU and the
time that thread waited for a CPU (``schedstat``), the transfer phase from the seeders' traces
(:mod:`benchmarks.transfer_phase`), the seeders' CPU during the run, and how often the downloader's receive queue
was a megabyte or more deep (:mod:`benchmarks.receive_queue`: then the downloader, not the seeders, set the pace).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_transfer import child_env, seed_trace, shoal_cmd, start_lt_seeder
from benchmarks.common import Measured, MeasuredProcess, mb_s, scratch_dir, single_file_content
from benchmarks.receive_queue import ReceiveQueueSampler, summary
from benchmarks.transfer_phase import read_trace, transfer_seconds
from interop.harness.libtorrent_peer import runner_command


@dataclass
class Run:
    kind: str
    measured: Measured
    main_run: float
    main_wait: float
    seeders_cpu: float
    receive_queue: str
    seconds: float | None = None


class MainThread:
    """Samples the ``schedstat`` of a process's main thread (run and wait nanoseconds) until it exits."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/task/{pid}/schedstat")
        self.run = self.wait = 0.0
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            try:
                run, wait, _ = self.path.read_text().split()
            except (OSError, ValueError):
                return
            self.run, self.wait = int(run) / 1e9, int(wait) / 1e9
            time.sleep(0.01)

    def join(self) -> None:
        self._thread.join(5)


def downloader_command(kind: str, torrent: Path, out: Path, ports: list[int]) -> list[str]:
    peers = [("127.0.0.1", p) for p in ports]
    if kind == "lt":
        return runner_command("get", torrent, out, peers=peers, timeout=300)
    cmd = shoal_cmd(
        "get", str(torrent), "-o", str(out), "--no-seed", "--quiet", "--bind", "127.0.0.1", "--port", "0"
    )
    for ip, port in peers:
        cmd += ["--peer", f"{ip}:{port}"]
    return cmd


def main() -> int:
    ap = argparse.ArgumentParser(prog="pair_transfer")
    ap.add_argument("--seeders", type=int, default=1)
    ap.add_argument("--order", default="shoal lt shoal lt shoal lt")
    ap.add_argument("--fresh", action="store_true", help="start the seeders anew for each run")
    ap.add_argument(
        "--delay", type=float, default=1.0, help="seconds from the seeders' start to the download's"
    )
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/shoal-bench"))
    ap.add_argument("--shoal-src", action="append", default=[], metavar="NAME=PATH")
    args = ap.parse_args()
    sources = dict(item.split("=", 1) for item in args.shoal_src)
    bc = single_file_content(args.workdir, 1 << 30)
    logdir = args.workdir / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    seeders: list[MeasuredProcess] = []
    ports: list[int] = []

    def start_seeders() -> None:
        for n in range(args.seeders):
            mp, port = start_lt_seeder(bc, logdir, n, traced=True)
            seeders.append(mp)
            ports.append(port)
        time.sleep(args.delay)

    def stop_seeders() -> list[list[dict[str, object]]]:
        for mp in seeders:
            mp.stop()
        traces = [read_trace(seed_trace(logdir, n)) for n in range(len(seeders))]
        seeders.clear()
        ports.clear()
        return traces

    runs: list[Run] = []
    traces: list[list[dict[str, object]]] = []
    try:
        if not args.fresh:
            start_seeders()
        for kind in args.order.split():
            if args.fresh:
                start_seeders()
            name, _, src = kind.partition("@")
            env = child_env()
            if src:
                env["PYTHONPATH"] = sources[src]
            cpu0 = sum(mp.cpu_now() for mp in seeders)
            with scratch_dir(args.workdir / "pair-out") as out:
                cmd = downloader_command(name, bc.torrent.path, out, ports)
                with MeasuredProcess(kind, cmd, log_path=logdir / "pair-get.log", env=env) as dl:
                    main_thread = MainThread(dl.pid)
                    queues = ReceiveQueueSampler(ports)
                    m = dl.wait(400)
                    main_thread.join()
                    queued = queues.stop()
            seeders_cpu = sum(mp.cpu_now() for mp in seeders) - cpu0
            run = Run(kind, m, main_thread.run, main_thread.wait, seeders_cpu, summary(queued))
            if args.fresh:
                run.seconds = transfer_seconds(
                    stop_seeders(), "up", bc.size, start=m.started_at, end=m.ended_at
                )
            runs.append(run)
            time.sleep(0.3)
    finally:
        if seeders:
            traces = stop_seeders()
    for run in runs:
        if run.seconds is None and traces:
            m = run.measured
            run.seconds = transfer_seconds(traces, "up", bc.size, start=m.started_at, end=m.ended_at)
        rate = f"{mb_s(bc.size, run.seconds):5.0f} MB/s" if run.seconds else "    - MB/s"
        print(
            f"{run.kind:10s} wall {run.measured.wall:.2f} s, CPU {run.measured.cpu:.2f} s (main thread ran "
            f"{run.main_run:.2f}, waited {run.main_wait:.2f}); transfer {run.seconds or 0:.3f} s = {rate}; "
            f"seeders {run.seeders_cpu:.2f} CPU-s; {run.receive_queue}"
            + (f"; exited {run.measured.returncode}" if run.measured.returncode else ""),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
