"""Benchmark: a full re-check of data against its torrent, Shoal against libtorrent, in the same run.

Usage::

    .venv/bin/python benchmarks/bench_check.py [--size-mib 1024] [--rounds 3] [--workdir /tmp/bench-check]

Makes one file of ``--size-mib`` MiB of random bytes, a v1 and a hybrid torrent of it (``shoal create``, 1 MiB
pieces), reads the file once so the page cache is warm, then runs in turn (interleaved, ``--rounds`` times; each
tool's best wall time and lowest CPU time count):

* ``shoal check TORRENT DATA`` as users run it (the console script);
* ``shoal seed TORRENT DATA --time 0``: the engine's own start-up check (the session starts, hashes every piece,
  reports "verified" and stops);
* the Session API (``benchmarks/shoal_runner.py seed --exit-when-ready``: a session adds the torrent with
  ``force_recheck`` and stops once it seeds), re-checking in a helper process that hashes from memory maps (the
  default, :mod:`shoal.storage.check_helper`) and in the session's threads (``recheck_in_helper=false``);
* libtorrent 2 adding the same torrent with the data in place (no resume data, so it checks every piece), timed
  from process start to exit after ``torrent_checked_alert``; once with its default ``hashing_threads`` (1) and
  once with 2, one per core.

Every tool is its own process, start-up included; CPU is user+sys from ``wait4``. A tool that finds a piece bad
fails the benchmark. For the hybrid torrent Shoal verifies the SHA-1 piece hashes (they cover every byte);
libtorrent verifies SHA-1 and SHA-256.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_create import PIECE, child_env, shoal_command, timed, write_random

LT_CHECK = """
import sys, time, libtorrent as lt
torrent, save, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = {"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
            "enable_natpmp": False, "alert_mask": lt.alert_category.status | lt.alert_category.error}
if threads:
    settings["hashing_threads"] = threads
ses = lt.session(settings)
p = lt.add_torrent_params()
p.ti = lt.torrent_info(torrent)
p.save_path = save
h = ses.add_torrent(p)
deadline = time.monotonic() + 300
done = False
while not done and time.monotonic() < deadline:
    ses.wait_for_alert(1000)
    done = any(isinstance(a, lt.torrent_checked_alert) for a in ses.pop_alerts())
st = h.status()
print(f"{st.num_pieces} of {p.ti.num_pieces()} pieces ok", flush=True)
sys.exit(0 if done and st.num_pieces == p.ti.num_pieces() else 1)
"""


def commands(data: Path, torrents: dict[str, Path]) -> dict[str, list[str]]:
    shoal = shoal_command()
    py = sys.executable
    out: dict[str, list[str]] = {}
    for kind, t in torrents.items():
        out[f"shoal check {kind}"] = [*shoal, "check", str(t), str(data), "-q"]
        out[f"shoal seed {kind} (start-up check)"] = [
            *shoal, "seed", str(t), str(data), "--port", "0", "--bind", "127.0.0.1", "--time", "0", "-q",
        ]  # fmt: skip
        for how, extra in (("helper process", []), ("threads", ["--set", "recheck_in_helper=false"])):
            out[f"Session API {kind} ({how})"] = [
                py, "-m", "benchmarks.shoal_runner", "seed", str(t), str(data.parent), "--exit-when-ready", *extra,
            ]  # fmt: skip
        for threads in (0, 2):
            label = f"libtorrent {kind}" + (" hashing_threads=2" if threads else "")
            out[label] = [py, "-W", "ignore", "-c", LT_CHECK, str(t), str(data.parent), str(threads)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench-check"))
    args = ap.parse_args()
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        data = work / "data.bin"
        write_random(data, args.size_mib)
        size = data.stat().st_size
        torrents = {}
        for kind in ("v1", "hybrid"):
            t = work / f"{kind}.torrent"
            subprocess.run(
                [*shoal_command(), "create", str(data), f"--{kind}", "-q", "--piece-size", str(PIECE), "-o", str(t)],
                check=True, stdout=subprocess.DEVNULL, env=child_env(), timeout=600,
            )  # fmt: skip
            torrents[kind] = t
        with data.open("rb") as f:  # warm the page cache
            while f.read(16 << 20):
                pass
        cmds = commands(data, torrents)
        for cmd in cmds.values():  # warm-up round (bytecode caches, shared libraries), not counted
            timed(cmd)
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, cmd in cmds.items():
                wall, used = timed(cmd)
                best[name] = min(best.get(name, float("inf")), wall)
                cpu[name] = min(cpu.get(name, float("inf")), used)
        print(f"{size >> 20} MiB, 1 MiB pieces, warm cache, best of {args.rounds}, {os.cpu_count()} cores")
        print(f"shoal runs as: {' '.join(shoal_command())}\n")
        print("| tool | seconds | GB/s | CPU s |")
        print("|---|---|---|---|")
        for name, t in best.items():
            print(f"| {name} | {t:.3f} | {size / t / 1e9:.2f} | {cpu[name]:.2f} |")
        print()
        for kind in torrents:
            lt = min(best[f"libtorrent {kind}"], best[f"libtorrent {kind} hashing_threads=2"])
            for who in (
                f"shoal check {kind}",
                f"shoal seed {kind} (start-up check)",
                f"Session API {kind} (helper process)",
                f"Session API {kind} (threads)",
            ):
                print(f"{who} / best libtorrent {kind}: {lt / best[who]:.2f}x faster")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
