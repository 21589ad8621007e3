"""Case 5's active phase, measured finely: Shoal seeding to 500 idle and 100 active connections (bench_scale's load).

Usage::

    .venv/bin/python -m benchmarks.profile_connections [time|spy|perf] [--workdir /tmp/shoal-bench] [--window 8]

Starts ``benchmarks.shoal_runner seed`` with case 5's settings, opens the idle then the active connections, waits
3 s, then over ``--window`` seconds prints the seeder's CPU per served block and per active connection, read from
every thread's ``/proc/PID/task/TID/schedstat`` (nanoseconds; ``shoal bench idle`` reads clock ticks of 10 ms).
``spy``: the window under ``py-spy record --gil`` -> WORKDIR/connections-spy.txt (raw); ``perf``: under
``perf record -g`` -> WORKDIR/connections.perf. Set PYTHONPATH to a worktree's src to measure another commit, and
alternate the sides of an A/B under ``flock /tmp/shoal-heavy.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from benchmarks import bench_scale as scale
from benchmarks.bench_create import child_env
from benchmarks.common import MeasuredProcess, single_file_content


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` (scheduler statistics, in nanoseconds)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total / 1e9


def profiler(mode: str, pid: int, workdir: Path, window: float) -> list[str] | None:
    if mode == "spy":
        spy = Path(sys.executable).parent / "py-spy"
        out = workdir / "connections-spy.txt"
        seconds = str(max(1, round(window)))
        return [
            str(spy),
            "record",
            "--gil",
            "-r",
            "1000",
            "-f",
            "raw",
            "-o",
            str(out),
            "-p",
            str(pid),
            "-d",
            seconds,
        ]
    if mode == "perf":
        out = workdir / "connections.perf"
        return [
            "perf",
            "record",
            "-F",
            "999",
            "-g",
            "-p",
            str(pid),
            "-o",
            str(out),
            "--",
            "sleep",
            str(window),
        ]
    return None


def main() -> int:
    ap = argparse.ArgumentParser(prog="profile_connections")
    ap.add_argument("mode", nargs="?", choices=["time", "spy", "perf"], default="time")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/shoal-bench"))
    ap.add_argument("--window", type=float, default=8.0)
    args = ap.parse_args()
    bc = single_file_content(args.workdir, 64 << 20)
    logdir = args.workdir / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    cmd = scale.peer_command(scale.SHOAL, "seed", bc.torrent.path, bc.data.parent)
    log = logdir / "profile-connections.log"
    with MeasuredProcess("shoal seeder", cmd, log_path=log, env=child_env()) as mp:
        port = int(mp.wait_event("listening", timeout=60)["port"])
        mp.wait_event("ready", timeout=120)
        time.sleep(1)
        load = scale.Load(port, bytes.fromhex(bc.torrent.info_hash))
        load.num_pieces, load.piece_length = bc.torrent.num_pieces, bc.torrent.piece_length

        async def drive() -> None:
            try:
                await scale.open_connections(load, scale.IDLE, 0, active=False)
                await scale.open_connections(load, scale.ACTIVE, scale.IDLE, active=True)
                await asyncio.sleep(3)
                cpu0, blocks0 = cpu_seconds(mp.pid), load.blocks
                prof = profiler(args.mode, mp.pid, args.workdir, args.window)
                if prof is None:
                    await asyncio.sleep(args.window)
                else:
                    p = await asyncio.create_subprocess_exec(
                        *prof, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
                    )
                    await p.wait()
                cpu, blocks = cpu_seconds(mp.pid) - cpu0, load.blocks - blocks0
                print(
                    f"{cpu / args.window / scale.ACTIVE * 1e3:.3f} ms/s per active connection, "
                    f"{cpu / max(blocks, 1) * 1e6:.1f} us per served block ({blocks} blocks, {load.unchoked} "
                    f"of {scale.ACTIVE} active unchoked)"
                )
            finally:
                await scale.close_load(load)

        asyncio.run(drive())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
