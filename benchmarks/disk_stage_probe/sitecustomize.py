"""A probe of a download's disk stage, loaded by Python at start-up when this folder is first on ``PYTHONPATH``.

    PYTHONPATH=benchmarks/disk_stage_probe:src .venv/bin/python -m shoal get ...   (or profile_download.sh ... disk)

At exit it prints to stderr, for the pieces hashed and written: how long each waited for a disk thread after it was
handed over, how long its hash and its write took (median, 90th percentile, maximum), how many writes carried
several pieces (storage/write_runs.py), and how often and for how long reading from peers was paused (a full
write queue, or a rate limit). It wraps
``FileStorage.submit_hash_and_write_many``, the ``hash_and_write`` and ``piece_digest`` its disk threads call (a
run's hash and write time is shared out over its pieces), and ``PeerTask.pause_reading`` /
``resume_reading`` once ``shoal.engine.session`` is imported; nothing else changes. For measurements only, never a
setting: the wrappers cost a little per piece.
"""

from __future__ import annotations

import atexit
import builtins
import statistics
import sys
import threading
import time
from typing import Any


def _install() -> None:
    from shoal.engine import peer as peer_module
    from shoal.storage import files

    pauses = {"count": 0, "seconds": 0.0}
    paused_at: dict[int, float] = {}
    pause, resume = peer_module.PeerTask.pause_reading, peer_module.PeerTask.resume_reading

    def pause_reading(self: Any) -> None:
        if not self.read_paused:
            pauses["count"] += 1
            paused_at[id(self)] = time.perf_counter()
        pause(self)

    def resume_reading(self: Any) -> None:
        if self.read_paused and id(self) in paused_at:
            pauses["seconds"] += time.perf_counter() - paused_at.pop(id(self))
        resume(self)

    peer_module.PeerTask.pause_reading = pause_reading  # type: ignore[method-assign]
    peer_module.PeerTask.resume_reading = resume_reading  # type: ignore[method-assign]

    handed: dict[int, float] = {}
    timings: list[tuple[float, float, float]] = []  # (wait for a thread, hash, write) per piece
    runs: list[int] = []  # pieces per run written
    hashing = threading.local()
    submit, digest, hash_and_write = (
        files.FileStorage.submit_hash_and_write_many,
        files.piece_digest,
        files.hash_and_write,
    )

    def submit_hash_and_write_many(self: Any, items: Any, done: Any, algo: str = "sha1") -> None:
        now = time.perf_counter()
        for piece, _, _ in items:
            handed[piece] = now
        submit(self, items, done, algo)

    def timed_digest(*args: Any) -> bytes:
        t0 = time.perf_counter()
        try:
            return digest(*args)
        finally:
            hashing.seconds += time.perf_counter() - t0

    def timed_hash_and_write(run: Any, *args: Any) -> None:
        t0 = time.perf_counter()
        hashing.seconds = 0.0
        hash_and_write(run, *args)
        spent = time.perf_counter() - t0
        pieces = [piece for job in run for piece, _, _ in job.items]
        if pieces:  # a call that found the queue empty wrote nothing
            runs.append(len(pieces))
        for piece in pieces:  # a run's hash and write time shared out evenly over its pieces
            n = len(pieces)
            timings.append((t0 - handed.pop(piece, t0), hashing.seconds / n, (spent - hashing.seconds) / n))

    files.FileStorage.submit_hash_and_write_many = submit_hash_and_write_many  # type: ignore[method-assign]
    files.piece_digest = timed_digest  # the names FileStorage's write path calls
    files.hash_and_write = timed_hash_and_write

    def report() -> None:
        def spread(values: list[float]) -> str:
            values = sorted(values)
            p90 = values[int(len(values) * 0.9)]
            return f"median {statistics.median(values) * 1e3:.2f}, p90 {p90 * 1e3:.2f}, max {values[-1] * 1e3:.2f} ms"

        out = [f"disk stage probe: reading paused {pauses['count']} times, {pauses['seconds']:.3f} s in all"]
        if timings:
            out.append(f"  {len(timings)} pieces; wait for a disk thread {spread([t[0] for t in timings])}")
            out.append(f"  hash {spread([t[1] for t in timings])}; write {spread([t[2] for t in timings])}")
            out.append(
                f"  {len(runs)} writes, {sum(1 for n in runs if n > 1)} of several pieces (at most {max(runs)})"
            )
        sys.stderr.write("\n".join(out) + "\n")

    atexit.register(report)


_import = builtins.__import__


def _hook(name: str, *args: Any, **kwargs: Any) -> Any:
    module = _import(name, *args, **kwargs)
    if name == "shoal.engine.session" and builtins.__import__ is _hook:
        builtins.__import__ = _import
        _install()
    return module


builtins.__import__ = _hook
