"""Run one libtorrent peer in its own process and report JSON lines on stdout (for CPU/RSS per process).

Command line (build it with ``libtorrent_peer.runner_command``)::

    python lt_runner.py get  TORRENT SAVE_DIR [--listen IP] [--peer IP:PORT ...] [--timeout S]
    python lt_runner.py seed TORRENT DATA_PARENT [--listen IP] [--peer IP:PORT ...] [--seed-mode] [--timeout S]
    python lt_runner.py many TORRENT_DIR DATA_PARENT [--listen IP]   # seed every *.torrent in TORRENT_DIR

Options for scale tests: ``--connections-limit N`` (libtorrent's default is 200) and ``--unchoke-slots N``
(-1: unchoke every interested peer).

Diagnostics for benchmarks: ``--trace FILE`` writes one JSON line every ``--trace-interval`` seconds (default
0.02; the loop then waits for alerts that long instead of 0.05 s) with the wall clock (``time.time()``, to line up
with other processes), the payload bytes downloaded (``done``) and uploaded (``up``) so far and, per peer, its
request queue (``dl_queue``: requests we have out to it; ``ul_queue``: its requests to us), queue bytes, speeds,
buffer sizes and flags; plus one line per phase (``phase``: started, session, added, first-peer, unchoked,
first-payload, seeding, flushed, exiting).

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
    ap.add_argument(
        "--disk-io-write-mode",
        choices=["enable_os_cache", "disable_os_cache", "write_through"],
        default=None,
        help="libtorrent's disk_io_write_mode (default: libtorrent's own, enable_os_cache)",
    )
    ap.add_argument("--trace", type=Path, default=None, help="benchmark diagnostics: JSON lines to this file")
    ap.add_argument("--trace-interval", type=float, default=0.02)
    args = ap.parse_args()
    t_start = time.monotonic()
    trace = Tracer(args.trace, args.trace_interval) if args.trace else None
    extra: dict[str, Any] = {}
    if args.connections_limit:
        extra["connections_limit"] = args.connections_limit
    if args.unchoke_slots:
        extra["unchoke_slots_limit"] = args.unchoke_slots
    if args.disk_io_write_mode:
        import libtorrent as lt

        extra["disk_io_write_mode"] = int(lt.io_buffer_mode_t.names[args.disk_io_write_mode])

    stopping = False

    def on_signal(_sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rc = 0
    sess = LtSession(args.listen, settings=extra)
    if trace:
        trace.phase("session")
    stats: dict[str, Any] = {}
    try:
        t0 = time.monotonic()
        if args.mode == "many":
            return run_many(sess, args, t_start, lambda: stopping)
        h = sess.add(args.torrent, args.save, seed=args.mode == "seed", seed_mode=args.seed_mode)
        for p in args.peer:
            ip, _, port = p.rpartition(":")
            sess.connect(h, ip.strip("[]"), int(port))
        if trace:
            trace.phase("added")
        emit({"event": "listening", "port": sess.port})
        deadline = t0 + args.timeout
        while not stopping:
            if args.mode == "get" and h.status().is_seeding:
                if trace:
                    trace.sample(h)
                    trace.phase("seeding")
                sess.flush(
                    h, timeout=max(1.0, deadline - time.monotonic())
                )  # complete = written, not only hashed
                if trace:
                    trace.phase("flushed")
                stats = sess.stats(h)
                emit({"event": "complete", "seconds": time.monotonic() - t0, **stats})
                break
            if time.monotonic() > deadline:
                rc = 2 if args.mode == "get" else 0
                break
            if trace:
                trace.sample(h)
                sess.pump(trace.interval)
            else:
                sess.pump(0.05)
        stats = sess.stats(h)
    finally:
        if trace:
            trace.phase("exiting")
        sess.close()
    emit_exit(sess, stats)
    if trace:
        trace.close()
    return rc


class Tracer:
    """``--trace``: the torrent's progress and its peers' queues over time, as JSON lines (benchmark-only)."""

    def __init__(self, path: Path, interval: float) -> None:
        self.f = path.open("w")
        self.interval = interval
        self.seen: set[str] = set()
        self.phase("started")

    def phase(self, name: str) -> None:
        self.f.write(json.dumps({"t": time.time(), "phase": name}) + "\n")

    def sample(self, h: Any) -> None:
        st = h.status()
        peers = []
        for p in h.get_peer_info():
            peers.append(
                {
                    "dl_queue": p.download_queue_length,
                    "ul_queue": p.upload_queue_length,
                    "queue_bytes": p.queue_bytes,
                    "down": p.payload_down_speed,
                    "up": p.payload_up_speed,
                    "total_down": p.total_download,
                    "recv_buf": p.receive_buffer_size,
                    "used_recv_buf": p.used_receive_buffer,
                    "send_buf": p.send_buffer_size,
                    "used_send_buf": p.used_send_buffer,
                    "pending_disk": p.pending_disk_bytes,
                    "rtt": p.rtt,
                    "read_state": int(p.read_state),
                    "write_state": int(p.write_state),
                    "flags": int(p.flags),
                    "remote_choked": bool(p.flags & p.remote_choked),
                }
            )
            if "first-peer" not in self.seen:
                self.seen.add("first-peer")
                self.phase("first-peer")
            if not (p.flags & p.remote_choked) and "unchoked" not in self.seen:
                self.seen.add("unchoked")
                self.phase("unchoked")
        done = int(st.total_payload_download)
        if done and "first-payload" not in self.seen:
            self.seen.add("first-payload")
            self.phase("first-payload")
        self.f.write(
            json.dumps(
                {
                    "t": time.time(),
                    "done": done,
                    "up": int(st.total_payload_upload),
                    "wanted": int(st.total_wanted),
                    "peers": peers,
                }
            )
        )
        self.f.write("\n")

    def close(self) -> None:
        self.f.close()


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
    done = 0  # handles[:done] are seeding (it lasts): each poll asks only the others, as shoal_runner does
    while True:
        while done < len(handles) and handles[done].status().is_seeding:
            done += 1
        if done == len(handles):
            break
        if time.monotonic() > deadline or stopping():
            emit({"event": "exit", "stats": {"seeding": sum(h.status().is_seeding for h in handles)}})
            return 2
        sess.pump(0.02)
    emit({"event": "ready", "seconds": time.monotonic() - t_start, "count": len(handles)})
    while not stopping() and time.monotonic() < deadline:
        sess.pump(0.2)
    emit_exit(sess, {"count": len(handles)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
