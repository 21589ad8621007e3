"""Micro-benchmark: the event-loop thread's Python cost per block of a download, without sockets or a seeder.

Why: on loopback the download of issue 7's cases 1 and 3 is paced by Shoal's event-loop thread (its socket's
receive queue sits full: ``benchmarks.receive_queue``), so its CPU per GiB is what to cut, and on this shared
2-core machine a whole download measures it only to +-5-10 %. This drives the real parts of that thread's work,
one read at a time, in one process: a :class:`~shoal.wire.connection.PeerConnection` (``get_buffer`` /
``buffer_updated``, the piece batches, its request ledger), the engine's :class:`DownloadMixin` (``on_blocks``,
``fill``: the picker, the request tracker, the request encoding) and :class:`~shoal.engine.transfer.Transfer`
(the copy into piece buffers, the hand-off of finished pieces and the collection of their results). Left out:
uvloop and the kernel (the socket read itself), the hashing and writing (a storage that reports success at once),
have messages to other peers and progress alerts.

The answers are the peer's: a byte stream of piece messages for the requests in the order they were made, fed in
reads of ``--read-kib`` (256 KiB: a full read of the frame reader at speed), so messages straddle reads as on a
socket. Printed: CPU microseconds per block and CPU seconds per GiB (``time.process_time`` around the loop thread's
calls only: making the answers and copying them into the read buffer, the kernel's part, are left out; best of
``--rounds``);
with ``--baseline-src DIR`` (e.g. a ``git worktree`` of another commit) the same runs from that tree too, the two
taking turns.

Run: ``.venv/bin/python benchmarks/bench_download_path.py [--mib 1024] [--rounds 5] [--baseline-src DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import struct
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

BLOCK = 16 * 1024
PIECE = 1 << 20


class Storage:
    """Reports every piece hashed and written, at once, on the calling thread."""

    def submit_hash_and_write_many(self, items: Any, done: Any) -> None:
        done([True] * len(items))


def measure(mib: int, read_bytes: int) -> float:
    """CPU seconds to download ``mib`` MiB through the loop-thread path."""
    return asyncio.run(_measure(mib, read_bytes))


async def _measure(mib: int, read_bytes: int) -> float:
    from shoal.config import Settings
    from shoal.engine.download import DownloadMixin
    from shoal.engine.transfer import Transfer
    from shoal.policy.bitfield import Bitfield
    from shoal.policy.picker import PiecePicker
    from shoal.policy.requests import RequestTracker
    from shoal.wire import events as ev
    from shoal.wire import messages as m
    from shoal.wire.connection import PeerConnection
    from shoal.wire.handshake import Reserved, encode_handshake, make_peer_id

    pieces = mib * (1 << 20) // PIECE
    settings = Settings()
    rng = random.Random(1)
    info_hash = bytes(20)
    conn = PeerConnection(
        info_hash,
        make_peer_id(rng),
        initiator=True,
        num_pieces=pieces,
        settings=settings,
        piece_length=PIECE,
        total_length=pieces * PIECE,
    )
    conn.block_batches = True
    conn.initiate()
    conn.receive_data(encode_handshake(info_hash, make_peer_id(rng), Reserved.make()), now=0.0)
    conn.receive_data(
        m.Bitfield(Bitfield(pieces, full=True).to_bytes()).encode() + m.Unchoke().encode(), now=0.0
    )
    while conn.next_event() is not None:
        pass
    conn.send(m.Interested())
    conn.data_to_send()

    task = SimpleNamespace(
        counters=collections.Counter(),
        paused=False,
        state=SimpleNamespace(value="downloading"),
        rates=SimpleNamespace(take_down=lambda n, now: True),
        transfer=None,
        retry_epoch=0,
        on_pieces_passed=lambda indices: None,
        resume_reading_if_idle=lambda: None,
    )
    picker = PiecePicker(pieces, PIECE, pieces * PIECE, rng=random.Random(1))
    task.transfer = Transfer(task, picker, Storage(), lambda i: bytes(20))  # type: ignore[arg-type]
    answers: collections.deque[tuple[int, int, int]] = collections.deque()

    timeouts = {"request_timeout": settings.request_timeout, "snub_timeout": settings.snub_timeout}
    shared = hasattr(
        conn, "request_ledger"
    )  # False: a tree from before the shared ledger (f808aa0) as baseline

    class Peer:
        tracker = (
            RequestTracker(**timeouts, ledger=conn.request_ledger) if shared else RequestTracker(**timeouts)
        )
        depth = max(settings.min_outstanding_requests, 128)
        reqq = 500  # libtorrent's default
        slow_start = True
        starved = False
        closed = False
        attached = True
        downloaded = 0
        down_window = 0

        def __init__(self) -> None:
            self.conn = conn

        def send_requests(self, blocks: list[Any], now: float | None = None) -> None:
            conn.request_many(blocks, now) if shared else conn.request_many(blocks)
            answers.extend(blocks)
            conn.data_to_send()

        def pause_reading(self) -> None:
            pass

    class Peers(DownloadMixin):
        pass

    peers = Peers()
    peers.task = task  # type: ignore[assignment]
    peers.settings = settings
    clock = time.monotonic
    peers.session = SimpleNamespace(clock=SimpleNamespace(now=clock))  # type: ignore[assignment]
    peer = Peer()
    picker.peer_have_all(peer)
    payload = bytes(BLOCK)
    head = struct.Struct(">IBII").pack
    stream = bytearray()
    cpu = time.process_time
    idle = 0
    spent = 0.0  # the loop thread's work only: building the peer's answers and the socket's copy are left out
    c0 = cpu()
    peers.fill(peer)  # type: ignore[arg-type]
    spent += cpu() - c0
    while not picker.is_finished:
        while len(stream) < read_bytes and answers:  # the peer's answers, in the order asked
            piece, offset, length = answers.popleft()
            stream += head(9 + length, m.PIECE, piece, offset)
            stream += payload[:length]
        if not stream:
            idle += 1
            if idle > 1000:  # nothing asked and nothing left to collect: a bug, not a slow machine
                raise RuntimeError(f"the download stalled with {picker.num_have} of {pieces} pieces")
            c0 = cpu()
            await asyncio.sleep(0)  # the results of the last writes come through the loop
            spent += cpu() - c0
            continue
        idle = 0
        c0 = cpu()
        view = conn.get_buffer(-1)
        spent += cpu() - c0
        n = min(read_bytes, len(stream), len(view))
        view[:n] = stream[:n]  # the kernel's copy
        del view
        del stream[:n]
        c0 = cpu()
        conn.buffer_updated(n, clock())
        while (event := conn.next_event()) is not None:
            if type(event) is ev.BlocksReceived:
                peers.on_blocks(peer, event.data, event.blocks)  # type: ignore[arg-type]
        conn.data_to_send()
        spent += cpu() - c0
    return spent


def run_in(src: str, mib: int, read_bytes: int) -> float:
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run(
        [sys.executable, __file__, "--one", str(mib), str(read_bytes)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: float = json.loads(out.stdout)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--read-kib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline-src", help="a tree's src folder to compare with (taking turns)")
    ap.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return 0
    trees = {"this tree": os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")}
    if args.baseline_src:
        trees["baseline"] = args.baseline_src
    seconds: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, src in trees.items():
            seconds[name].append(run_in(src, args.mib, args.read_kib * 1024))
    blocks = args.mib * (1 << 20) // BLOCK
    print(f"{args.mib} MiB in 1 MiB pieces, reads of {args.read_kib} KiB, best of {args.rounds}:")
    for name, values in seconds.items():
        best = min(values)
        print(
            f"  {name:9s} {best / blocks * 1e6:5.2f} us per block, {best * 1024 / args.mib:.3f} CPU-s per GiB"
            f" (runs: {' / '.join(f'{v:.3f}' for v in values)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
