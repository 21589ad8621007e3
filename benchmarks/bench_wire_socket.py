"""Wire ceiling over real loopback TCP: a sender process writes 16 KiB piece messages; an asyncio
``BufferedProtocol`` receives straight into a PeerConnection (``get_buffer``/``buffer_updated``) and drains the
events, dropping the data (no hashing, no disk). This is the upper bound the engine can reach with this core.

Run: ``.venv/bin/python benchmarks/bench_wire_socket.py [--mib 1024]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import socket
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
INFO_HASH = bytes(20)


def sender(port: int, total_blocks: int) -> None:
    rng = random.Random(2)
    block = rng.randbytes(BLOCK)
    batch = 64
    frames = b"".join(m.Piece(0, i * BLOCK, block).encode() for i in range(batch))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(encode_handshake(INFO_HASH, make_peer_id(rng), Reserved.make()) + m.Unchoke().encode())
        for _ in range(total_blocks // batch):
            sock.sendall(frames)


class Receiver(asyncio.BufferedProtocol):
    def __init__(self, conn: PeerConnection, done: asyncio.Future[int]) -> None:
        self.conn = conn
        self.done = done
        self.received = 0
        self.loop = asyncio.get_running_loop()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.conn.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        conn = self.conn
        conn.buffer_updated(nbytes, self.loop.time())
        n = 0
        while (event := conn.next_event()) is not None:
            if type(event) is ev.BlockReceived:
                n += len(event.data)
                # keep the ledger full: ask again for the block that just came (the sender loops over 64 offsets)
                conn.request(event.piece, event.offset, BLOCK)
            elif type(event) is ev.PeerUnchoked:
                for i in range(64):
                    conn.request(0, i * BLOCK, BLOCK)
            elif isinstance(event, ev.ProtocolViolation):
                raise RuntimeError(event.message)
        self.received += n

    def eof_received(self) -> bool:
        if not self.done.done():
            self.done.set_result(self.received)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.received)


async def run(total_blocks: int) -> tuple[int, float, float]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    conn = PeerConnection(
        INFO_HASH,
        make_peer_id(random.Random(1)),
        initiator=True,
        num_pieces=1,
        settings=Settings(max_outstanding_requests=64),
        piece_length=64 * BLOCK,
        total_length=64 * BLOCK,
        now=loop.time(),
    )
    conn.initiate()

    def factory() -> Receiver:
        return Receiver(conn, done)

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proc = multiprocessing.get_context("spawn").Process(target=sender, args=(port, total_blocks))
    t0, c0 = time.perf_counter(), time.process_time()
    proc.start()
    received = await asyncio.wait_for(done, 600)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    proc.join(30)
    server.close()
    return received, wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args()
    received, wall, cpu = asyncio.run(run(args.mib * 1024 * 1024 // BLOCK))
    mb = received / 1e6
    print(f"loopback: {mb:.0f} MB in {wall:.2f} s wall ({mb / wall:.0f} MB/s), receiver {cpu:.2f} cpu-s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
