"""Micro-benchmark: the piece picker's Python cost per block along a download's request pipeline.

One peer that has everything; 250 requests kept in flight; each round 8 blocks arrive (``received_blocks``), the
pieces they complete pass (``on_piece_passed``) and 8 new blocks are picked (``pick``), until the torrent is
done. Printed: microseconds per block for each of the three calls, for 1 GiB in 32 KiB pieces (two blocks a
piece: a peer then works on a hundred pieces at once) and in 1 MiB pieces. No reference peer: this measures one
part of Shoal against itself; with ``--baseline-src DIR`` (e.g. ``git worktree add /tmp/base COMMIT``, then
``--baseline-src /tmp/base/src``) the same runs use that tree's picker too, the two taking turns.

Run: ``.venv/bin/python benchmarks/bench_picker.py [--rounds 3] [--baseline-src DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

GIB = 1 << 30
QUEUE = 250
STEP = 8


def measure(piece_length: int) -> dict[str, float]:
    import random

    from shoal.policy.picker import PiecePicker

    n = GIB // piece_length
    picker = PiecePicker(n, piece_length, GIB, rng=random.Random(1))
    peer = object()
    picker.peer_have_all(peer)
    clock = time.perf_counter
    spent = {"pick": 0.0, "received_blocks": 0.0, "on_piece_passed": 0.0}
    t = clock()
    flight = picker.pick(peer, QUEUE)
    spent["pick"] += clock() - t
    blocks = 0
    while flight:
        batch, flight = flight[:STEP], flight[STEP:]
        t = clock()
        results = picker.received_blocks(peer, [(b.piece, b.offset, 0, b.length) for b in batch])
        t2 = clock()
        for b, r in zip(batch, results, strict=True):
            if r.piece_complete:
                picker.on_piece_passed(b.piece)
        t3 = clock()
        flight += picker.pick(peer, len(batch))
        t4 = clock()
        spent["received_blocks"] += t2 - t
        spent["on_piece_passed"] += t3 - t2
        spent["pick"] += t4 - t3
        blocks += len(batch)
    return {k: v / blocks * 1e6 for k, v in spent.items()}


def run_in(src: str | None, piece_length: int) -> dict[str, float]:
    env = dict(os.environ)
    # "this tree" is the one this script is in, not whatever the environment would import
    env["PYTHONPATH"] = (
        src if src is not None else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    )
    out = subprocess.run(
        [sys.executable, __file__, "--one", str(piece_length)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-src", help="a tree's src folder to compare with (taking turns)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return 0
    sides: dict[str, str | None] = {"this tree": None}
    if args.baseline_src:
        sides["baseline"] = args.baseline_src
    for piece_length in (32 << 10, 1 << 20):
        got: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, src in sides.items():
                got[name].append(run_in(src, piece_length))
        print(f"1 GiB in {piece_length >> 10} KiB pieces, us per block (median of {args.rounds}):")
        for name, runs in got.items():
            cells = ", ".join(f"{k} {statistics.median(r[k] for r in runs):.2f}" for k in runs[0])
            print(f"  {name:10s} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
