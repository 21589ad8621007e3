"""Benchmark: ``shoal create`` against ``mktorrent -t 2`` and libtorrent's ``create_torrent``, in the same run.

Usage::

    .venv/bin/python benchmarks/bench_create.py [--size-mib 1024] [--rounds 3] [--workdir DIR]

Makes one file of ``--size-mib`` MiB of random bytes in a fresh folder (``--workdir``, else a temporary one),
reads it once so the page cache is warm, runs every tool once (not counted: bytecode caches, shared libraries),
then ``--rounds`` times in turn (interleaved, so background load hits all alike) and keeps each tool's best wall
time and its lowest CPU time (user+sys from ``wait4``). Every tool runs as its own process with 1 MiB pieces, so
start-up costs count the same; Shoal runs as the ``shoal`` console script, as users run it. Prints a Markdown
table with GB/s (10^9 bytes per second) and the ratios the issue asks for.

It also measures the hashing floor in its own process, between the rounds: hashlib's CPU seconds per GiB for the
SHA-1 of each 1 MiB piece (v1) and for that plus the SHA-256 of each 16 KiB leaf (hybrid), over the same file (a
memory map of the warm page cache, as ``shoal create`` reads it). No tool can hash faster than that floor divided
by the cores, so it gives the best ratio against libtorrent this machine allows, printed beside each goal."""

from __future__ import annotations

import argparse
import hashlib
import mmap
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIECE = 1 << 20
LT_SCRIPT = """
import sys, libtorrent as lt
src, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
fs = lt.file_storage()
lt.add_files(fs, src)
flags = lt.create_torrent.v1_only if mode == "v1" else 0
ct = lt.create_torrent(fs, {piece}, flags=flags)
lt.set_piece_hashes(ct, __import__("os").path.dirname(src))
open(out, "wb").write(lt.bencode(ct.generate()))
"""


def shoal_command() -> list[str]:
    """``shoal`` as users run it: the console script next to this Python (else ``python -m shoal``)."""
    script = Path(sys.executable).parent / "shoal"
    return [str(script)] if script.exists() else [sys.executable, "-m", "shoal"]


def commands(data: Path, out: Path) -> dict[str, list[str]]:
    py = sys.executable
    shoal = [*shoal_command(), "create", str(data), "-f", "-q", "--piece-size", str(PIECE), "-o", str(out)]
    lt = [py, "-W", "ignore", "-c", LT_SCRIPT.format(piece=PIECE), str(data), str(out)]
    return {
        "shoal v1": [*shoal, "--v1"],
        "mktorrent -t 2": [
            "mktorrent",
            "-t",
            "2",
            "-l",
            "20",
            "-a",
            "http://127.0.0.1/announce",
            "-o",
            str(out),
            str(data),
        ],
        "libtorrent v1": [*lt, "v1"],
        "shoal hybrid": [*shoal, "--hybrid"],
        "libtorrent hybrid": [*lt, "hybrid"],
        "shoal v2": [*shoal, "--v2"],
    }


def child_env() -> dict[str, str]:
    """The environment for the tools: this one, but Python may keep its bytecode caches (as for any user: pip
    writes them at install time). A sandbox's PYTHONDONTWRITEBYTECODE would make every run recompile Shoal."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def write_random(path: Path, size_mib: int) -> None:
    block = os.urandom(64 << 20)
    with path.open("wb") as f:
        for _ in range(size_mib // 64):
            f.write(block)
        f.write(block[: (size_mib % 64) << 20])


def timed(cmd: list[str], timeout: float = 600) -> tuple[float, float]:
    """Run ``cmd`` to its end: (wall seconds, CPU seconds user+sys from ``wait4``). Raises on a non-zero exit."""
    start = time.perf_counter()
    p = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=child_env()
    )
    try:
        deadline = start + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{cmd[0]} still running after {timeout:g}s")
            time.sleep(0.002)
        wall = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    finally:
        if p.returncode is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        if p.stderr:
            p.stderr.close()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {err.strip()[-500:]}")
    return wall, ru.ru_utime + ru.ru_stime


LEAF = 16 * 1024
FLOOR_BYTES = 256 << 20  # hashed per floor measurement: enough for a steady rate, a fraction of a round


def hashing_floor(data: Path) -> dict[str, float]:
    """hashlib's CPU seconds per GiB on one core, ``v1`` (SHA-1 per piece) and ``hybrid`` (that and SHA-256 per
    16 KiB leaf), over the first :data:`FLOOR_BYTES` of ``data`` through a memory map."""
    with data.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        size = min(FLOOR_BYTES, len(mapped)) // PIECE * PIECE
        v1 = _hash_seconds(mapped, size, leaves=False)
        hybrid = _hash_seconds(mapped, size, leaves=True)
    return {"v1": v1 * (1 << 30) / size, "hybrid": hybrid * (1 << 30) / size}


def _hash_seconds(mapped: mmap.mmap, size: int, *, leaves: bool) -> float:
    """CPU seconds to hash ``mapped[:size]`` as pieces (and their leaves); every view is gone on return."""
    sha1, sha256 = hashlib.sha1, hashlib.sha256
    with memoryview(mapped) as view:
        start = time.process_time()
        for p in range(0, size, PIECE):
            with view[p : p + PIECE] as piece:
                sha1(piece).digest()
                if leaves:
                    for i in range(0, PIECE, LEAF):
                        with piece[i : i + LEAF] as leaf:
                            sha256(leaf).digest()
        return time.process_time() - start


def run_once(cmd: list[str], out: Path) -> tuple[float, float]:
    out.unlink(missing_ok=True)
    return timed(cmd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (emptied, then removed)")
    args = ap.parse_args()
    if args.workdir is not None:
        shutil.rmtree(args.workdir, ignore_errors=True)
        args.workdir.mkdir(parents=True)
    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="shoal-bench-"))
    try:
        data = tmp / "data.bin"
        write_random(data, args.size_mib)
        size = data.stat().st_size
        with data.open("rb") as f:  # warm the page cache
            while f.read(16 << 20):
                pass
        out = tmp / "out.torrent"
        cmds = commands(data, out)
        for cmd in cmds.values():  # warm-up round (bytecode caches, shared libraries), not counted
            run_once(cmd, out)
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        floor = {"v1": float("inf"), "hybrid": float("inf")}
        for _ in range(args.rounds):
            for name, cmd in cmds.items():
                wall, used = run_once(cmd, out)
                best[name] = min(best.get(name, float("inf")), wall)
                cpu[name] = min(cpu.get(name, float("inf")), used)
            for kind, seconds in hashing_floor(data).items():
                floor[kind] = min(floor[kind], seconds)
        rate = {name: size / t / 1e9 for name, t in best.items()}
        cores = os.cpu_count() or 1
        gib = size / (1 << 30)
        # the best wall time any tool could reach: the floor's CPU seconds spread over every core, nothing else
        ceiling = {kind: best[f"libtorrent {kind}"] / (floor[kind] * gib / cores) for kind in floor}
        print(f"{size >> 20} MiB, 1 MiB pieces, warm cache, best of {args.rounds}, {os.cpu_count()} cores")
        print(f"shoal runs as: {' '.join(shoal_command())}\n")
        print("| tool | seconds | GB/s | CPU s |")
        print("|---|---|---|---|")
        for name, t in best.items():
            print(f"| {name} | {t:.3f} | {rate[name]:.2f} | {cpu[name]:.2f} |")
        print()
        print(
            f"hashing floor (hashlib, one core, best of {args.rounds}): v1 {floor['v1']:.2f}, "
            f"hybrid {floor['hybrid']:.2f} CPU-s per GiB\n"
        )
        print(f"shoal v1 / mktorrent -t 2: {rate['shoal v1'] / rate['mktorrent -t 2']:.2f}x (goal >= 1)")
        print(
            f"shoal v1 / libtorrent v1: {rate['shoal v1'] / rate['libtorrent v1']:.2f}x "
            f"(at most {ceiling['v1']:.2f}x on {cores} cores: the floor)"
        )
        print(
            f"shoal hybrid / libtorrent hybrid: {rate['shoal hybrid'] / rate['libtorrent hybrid']:.2f}x (goal >= 2; "
            f"at most {ceiling['hybrid']:.2f}x on {cores} cores: the floor)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
