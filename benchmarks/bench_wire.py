"""Micro-benchmark: parse 16 KiB piece messages through PeerConnection.receive_data / next_event.

Run: ``.venv/bin/python benchmarks/bench_wire.py [--mib 1024] [--chunk 65536] [--buffered]``

The stream is built once (a few MiB of piece messages) and fed repeatedly in ``--chunk``-sized reads, as a socket
would deliver it; each round's requests are registered first so every block is solicited. ``--buffered`` uses the
zero-copy ``get_buffer``/``buffer_updated`` path instead of ``receive_data``. Prints MB/s of payload delivered.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shoal.config import Settings
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire.connection import PeerConnection
from shoal.wire.handshake import Reserved, encode_handshake, make_peer_id

BLOCK = 16 * 1024
PIECE_LENGTH = 1024 * 1024
BLOCKS_PER_PIECE = PIECE_LENGTH // BLOCK


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024, help="payload to push through, in MiB")
    parser.add_argument("--chunk", type=int, default=65536, help="bytes per simulated socket read")
    parser.add_argument("--round-pieces", type=int, default=4, help="pieces per round (stream built once)")
    parser.add_argument("--buffered", action="store_true", help="use get_buffer/buffer_updated")
    args = parser.parse_args()

    total_pieces = args.mib * 1024 * 1024 // PIECE_LENGTH
    rng = random.Random(1)
    info_hash = bytes(20)
    settings = Settings(max_outstanding_requests=BLOCKS_PER_PIECE * args.round_pieces + 1)
    conn = PeerConnection(
        info_hash,
        make_peer_id(rng),
        initiator=True,
        num_pieces=total_pieces,
        settings=settings,
        piece_length=PIECE_LENGTH,
        total_length=total_pieces * PIECE_LENGTH,
    )
    conn.initiate()
    conn.receive_data(encode_handshake(info_hash, make_peer_id(rng), Reserved.make()), now=0.0)
    assert isinstance(conn.next_event(), ev.Handshaken)
    conn.receive_data(m.Unchoke().encode(), now=0.0)
    assert isinstance(conn.next_event(), ev.PeerUnchoked)

    block = rng.randbytes(BLOCK)
    round_pieces = args.round_pieces
    stream = b"".join(
        m.Piece(p, o, block).encode() for p in range(round_pieces) for o in range(0, PIECE_LENGTH, BLOCK)
    )
    chunks = [stream[i : i + args.chunk] for i in range(0, len(stream), args.chunk)]
    rounds = total_pieces // round_pieces
    received = 0
    next_event = conn.next_event
    t0 = time.perf_counter()
    c0 = time.process_time()
    for _r in range(rounds):
        for p in range(round_pieces):
            for o in range(0, PIECE_LENGTH, BLOCK):
                conn.request(p, o, BLOCK)
        for chunk in chunks:
            if args.buffered:
                view = conn.get_buffer(len(chunk))
                view[: len(chunk)] = chunk
                del view
                conn.buffer_updated(len(chunk), 0.0)
            else:
                conn.receive_data(chunk, 0.0)
            while (event := next_event()) is not None:
                received += len(event.data)  # type: ignore[attr-defined]
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    mb = received / 1e6
    mode = "get_buffer" if args.buffered else "receive_data"
    print(
        f"{mode}: {mb:.0f} MB of 16 KiB blocks in {wall:.2f} s wall, {cpu:.2f} s cpu:"
        f" {mb / wall:.0f} MB/s wall, {mb / cpu:.0f} MB/s per cpu-second"
        f" ({received // BLOCK / cpu:.0f} blocks per cpu-second), chunk {args.chunk}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
