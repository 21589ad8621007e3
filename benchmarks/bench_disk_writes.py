"""Micro-benchmark: FileStorage writing 1 GiB of verified pieces (1 MiB, or ``--piece-kib``) into one new file from 4
disk threads, as it does against one thing turned off:

* ``--compare lock`` (default): without its per-file write lock (one writer per file at a time), so every thread
  is in ``pwrite`` at once, meeting on ext4's inode lock;
* ``--compare write-behind``: with ``write_behind=0``, so the written data stays in the page cache (see
  ``src/shoal/storage/write_behind.py``);
* ``--compare direct``: with ``direct_writes=False``, so every piece is written buffered (with write-behind)
  instead of its aligned part with ``O_DIRECT`` (``src/shoal/storage/direct_io.py``). The piece is written from a
  page-aligned buffer, as a download's piece buffers are;
* ``--compare preallocate``: with ``preallocate=False``, so the file is sparse and its direct writes allocate
  blocks, one writer at a time (``src/shoal/storage/preallocate.py``).

Run: ``.venv/bin/python benchmarks/bench_disk_writes.py [--compare lock|write-behind|direct|preallocate] [--mib 1024]
[--piece-kib 1024] [--rounds 6] [--workdir /tmp/bench-writes]``

The two variants take turns in a shuffled order; each round writes a fresh file (what a download does) and deletes it. Prints each
round's wall and CPU seconds (user+sys of this process) and the medians' ratio. On a VM that hands freed memory
back to its host, a round whose page cache lands on memory the host must fault in again costs several times more
system time than one that does not; read the medians, not one round.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from types import TracebackType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shoal.storage.direct_io import aligned_buffer
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None


class _NoLocks(dict[int, object]):
    def get(self, key: int, default: object = None) -> object:  # type: ignore[override]
        return _NoLock()


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cached_mib() -> int:
    """The page cache's size (``Cached`` in /proc/meminfo), 0 where there is none."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("Cached:"):
                    return int(line.split()[1]) >> 10
    except OSError:
        pass
    return 0


async def one_round(
    workdir: Path, mib: int, compare: str, as_is: bool, data: memoryview, digest: bytes
) -> tuple[float, float]:
    piece = len(data)
    pieces = mib * (1 << 20) // piece
    lay = Layout.from_files([(("f.bin",), pieces * piece, False)], piece)
    if compare == "write-behind" and not as_is:
        st = FileStorage(lay, workdir, disk_threads=4, write_behind=0)
    elif compare == "direct" and not as_is:
        st = FileStorage(lay, workdir, disk_threads=4, direct_writes=False)
    elif compare == "preallocate" and not as_is:
        st = FileStorage(lay, workdir, disk_threads=4, preallocate=False)
    else:
        st = FileStorage(lay, workdir, disk_threads=4)
    if compare == "lock" and not as_is:
        st._writer.locks = _NoLocks()  # type: ignore[assignment]
    await st.open()
    m0, c0, t0 = cached_mib(), cpu(), time.perf_counter()
    window = 16  # at most 16 pieces waiting for hash+write (the download path's queue of 1 MiB pieces)
    pending: set[asyncio.Future[bool]] = set()
    for p in range(pieces):
        if len(pending) >= window:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            assert all(f.result() for f in done)
        pending.add(asyncio.ensure_future(st.hash_and_write_piece(p, data, digest)))
    for f in asyncio.as_completed(pending):
        assert await f
    wall, used = time.perf_counter() - t0, cpu() - c0
    grown = cached_mib() - m0
    await st.close()
    os.unlink(workdir / "f.bin")
    print(f"  page cache grew {grown} MiB")
    return wall, used


async def main_async(args: argparse.Namespace) -> int:
    args.workdir.mkdir(parents=True, exist_ok=True)
    piece = args.piece_kib * 1024
    data = memoryview(aligned_buffer(piece))
    data[:] = os.urandom(piece)
    digest = hashlib.sha1(data).digest()
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    order = [True, False] * args.rounds
    random.Random(7).shuffle(order)  # not a fixed pattern: slow rounds came in a period of 4 GiB written here
    name = {True: f"with {args.compare}", False: f"without {args.compare}"}
    for r, as_is in enumerate(order):
        wall, used = await one_round(args.workdir, args.mib, args.compare, as_is, data, digest)
        runs[as_is].append((wall, used))
        print(f"round {r + 1} {name[as_is]}: wall {wall:.2f} s, CPU {used:.2f} s")
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()
    }
    for k in (True, False):
        print(f"median {name[k]}: wall {med[k][0]:.2f} s, CPU {med[k][1]:.2f} s")
    best = {k: min(c for _, c in v) for k, v in runs.items()}
    print(f"lowest CPU: {name[True]} {best[True]:.2f} s, {name[False]} {best[False]:.2f} s")
    print(
        f"ratio with/without {args.compare}: wall {med[True][0] / med[False][0]:.2f}x, "
        f"CPU {med[True][1] / med[False][1]:.2f}x"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--compare",
        choices=["lock", "write-behind", "direct", "preallocate"],
        default="lock",
        help="what to turn off",
    )
    ap.add_argument("--mib", type=int, default=1024, help="MiB to write per round")
    ap.add_argument("--piece-kib", type=int, default=1024, help="piece size in KiB")
    ap.add_argument("--rounds", type=int, default=6, help="rounds per variant (they alternate)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench-writes"))
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
