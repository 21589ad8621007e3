"""Run one libtorrent peer in its own process and report JSON lines on stdout (for CPU/RSS per process).

Command line (build it with ``libtorrent_peer.runner_command``)::

    python lt_runner.py get  TORRENT SAVE_DIR [--listen IP] [--peer IP:PORT ...] [--timeout S]
    python lt_runner.py seed TORRENT DATA_PARENT [--listen IP] [--peer IP:PORT ...] [--seed-mode] [--timeout S]
    python lt_runner.py many TORRENT_DIR DATA_PARENT [--listen IP]   # seed every *.torrent in TORRENT_DIR

Options for scale tests: ``--connections-limit N`` (libtorrent's default is 200) and ``--unchoke-slots N``
(-1: unchoke every interested peer).

Lines printed (one JSON object each, flushed):

* ``{"event": "listening", "port": P}``          once the torrent is added (a seeder: once its data is checked);
* ``{"event": "complete", "seconds": T, ...}``    a downloader finished (T from adding the torrent); then it exits 0;
* ``{"event": "ready", "seconds": T, "count": N}`` ``many``: all N torrents checked and seeding, T from start;
* ``{"event": "exit", "stats": {...}, "cpu_user": .., "cpu_sys": .., "max_rss_kib": ..}`` just before exiting.

A seeder runs until SIGTERM/SIGINT or ``--timeout``; a downloader exits 2 on timeout.
Runs as a plain script: it imports only ``libtorrent_peer`` from its own folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from libtorrent_peer import LtSession


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def vm_hwm_kib() -> int:
    try:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["get", "seed", "many"])
    ap.add_argument("torrent", type=Path)
    ap.add_argument("save", type=Path)
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--seed-mode", action="store_true")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--connections-limit", type=int, default=0)
    ap.add_argument("--unchoke-slots", type=int, default=0)
    args = ap.parse_args()
    t_start = time.monotonic()
    extra: dict[str, Any] = {}
    if args.connections_limit:
        extra["connections_limit"] = args.connections_limit
    if args.unchoke_slots:
        extra["unchoke_slots_limit"] = args.unchoke_slots

    stopping = False

    def on_signal(_sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rc = 0
    sess = LtSession(args.listen, settings=extra)
    stats: dict[str, Any] = {}
    try:
        t0 = time.monotonic()
        if args.mode == "many":
            return run_many(sess, args, t_start, lambda: stopping)
        h = sess.add(args.torrent, args.save, seed=args.mode == "seed", seed_mode=args.seed_mode)
        for p in args.peer:
            ip, _, port = p.rpartition(":")
            sess.connect(h, ip.strip("[]"), int(port))
        emit({"event": "listening", "port": sess.port})
        deadline = t0 + args.timeout
        while not stopping:
            if args.mode == "get" and h.status().is_seeding:
                sess.flush(
                    h, timeout=max(1.0, deadline - time.monotonic())
                )  # complete = written, not only hashed
                stats = sess.stats(h)
                emit({"event": "complete", "seconds": time.monotonic() - t0, **stats})
                break
            if time.monotonic() > deadline:
                rc = 2 if args.mode == "get" else 0
                break
            sess.pump(0.05)
        stats = sess.stats(h)
    finally:
        sess.close()
    emit_exit(sess, stats)
    return rc


def emit_exit(sess: LtSession, stats: dict[str, Any]) -> None:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    emit(
        {
            "event": "exit",
            "stats": stats,
            "cpu_user": ru.ru_utime,
            "cpu_sys": ru.ru_stime,
            "max_rss_kib": max(ru.ru_maxrss, vm_hwm_kib()),
            "errors": sess.errors[-5:],
        }
    )


def run_many(sess: LtSession, args: argparse.Namespace, t_start: float, stopping: Any) -> int:
    """Add every torrent in ``args.torrent`` (a folder) as a seed; report when all are seeding; idle."""
    handles = []
    for path in sorted(args.torrent.glob("*.torrent")):
        handles.append(sess.add(path, args.save, seed=False))
    emit({"event": "listening", "port": sess.port})
    deadline = time.monotonic() + args.timeout
    while not all(h.status().is_seeding for h in handles):
        if time.monotonic() > deadline or stopping():
            emit({"event": "exit", "stats": {"seeding": sum(h.status().is_seeding for h in handles)}})
            return 2
        sess.pump(0.1)
    emit({"event": "ready", "seconds": time.monotonic() - t_start, "count": len(handles)})
    while not stopping() and time.monotonic() < deadline:
        sess.pump(0.2)
    emit_exit(sess, {"count": len(handles)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
