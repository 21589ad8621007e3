"""Micro-benchmark: what filling a 1 MiB piece buffer block by block costs, by where the buffer comes from.

A download copies every 16 KiB block into its piece's buffer (``Transfer.on_blocks``). This script times that
copy, for 512 pieces, with four kinds of buffer:

* ``fresh``: a new private anonymous map per piece, so every 4 KiB page faults on its first write;
* ``populate``: the same map with ``MAP_POPULATE``, so the pages are faulted in up front in one call;
* ``reused``: one map used again and again, which is what the transfer's buffer pool does;
* ``bytearray``: a new ``bytearray`` per piece (malloc and a zero fill).

Run: ``.venv/bin/python benchmarks/bench_piece_buffers.py [--pieces 512] [--rounds 3]``. Prints the CPU-seconds
per GiB of this process for each kind and each round. The kinds take turns within a round, so the machine's load
falls on all of them alike. It needs Linux (``MAP_POPULATE``).
"""

from __future__ import annotations

import argparse
import mmap
import os
import time
from collections.abc import Callable

PIECE = 1 << 20
BLOCK = 16 << 10
SOURCE = 256 << 10  # like a receive buffer: the blocks are copied out of the same hot 256 KiB
PRIVATE = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS


def fill(buf: mmap.mmap | bytearray, source: memoryview) -> None:
    for offset in range(0, PIECE, BLOCK):
        at = offset % SOURCE
        buf[offset : offset + BLOCK] = source[at : at + BLOCK]


def per_gib(pieces: int, make: Callable[[], mmap.mmap | bytearray], reuse: bool, source: memoryview) -> float:
    start = time.process_time()
    kept = make() if reuse else None
    for _ in range(pieces):
        buf = kept if kept is not None else make()
        fill(buf, source)
        if kept is None and isinstance(buf, mmap.mmap):
            buf.close()
    return (time.process_time() - start) / (pieces * PIECE) * (1 << 30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--pieces", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    source = memoryview(bytearray(os.urandom(SOURCE)))
    kinds: dict[str, tuple[Callable[[], mmap.mmap | bytearray], bool]] = {
        "fresh": (lambda: mmap.mmap(-1, PIECE, flags=PRIVATE), False),
        "populate": (lambda: mmap.mmap(-1, PIECE, flags=PRIVATE | mmap.MAP_POPULATE), False),
        "reused": (lambda: mmap.mmap(-1, PIECE, flags=PRIVATE), True),
        "bytearray": (lambda: bytearray(PIECE), False),
    }
    for r in range(args.rounds):
        line = ", ".join(
            f"{name} {per_gib(args.pieces, make, reuse, source):.3f}" for name, (make, reuse) in kinds.items()
        )
        print(f"round {r + 1}: CPU-s per GiB: {line}")


if __name__ == "__main__":
    main()
