"""Would ``sendfile`` make seeding cheaper? The sender's CPU for a file sent as 16 KiB piece messages over loopback.

Usage::

    .venv/bin/python benchmarks/bench_zero_copy.py FILE [--rounds 3]

Two ways to send every 1 MiB piece of FILE (warm in the page cache) as 64 piece messages to a reader thread in
this process (a plain ``recv_into`` loop), each timed by the sending thread's own CPU (``RUSAGE_THREAD``):

* ``copy``: ``preadv`` of the piece into a buffer, then ``sendmsg`` of (header, block view) pairs, 64 buffers a
  call (what Shoal's seeder does: one copy from the page cache, one into the socket);
* ``sendfile``: per block, ``send(header, MSG_MORE)`` and ``os.sendfile`` of the block (no copy on the sending side,
  two system calls per block: a block's header sits between blocks, so a piece cannot be one ``sendfile``).

The rounds alternate the two ways; each line is one send of the whole file.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import struct
import threading
import time

PIECE = 1 << 20
BLOCK = 16384
HEAD = struct.Struct(">IBII")  # length, id 7 (piece), index, begin


def _drain(sock: socket.socket) -> None:
    buf = bytearray(1 << 20)
    while sock.recv_into(buf):
        pass


def send_file(path: str, how: str) -> tuple[float, float, float]:
    """(user, sys, wall) seconds of the sending thread for one send of the whole file."""
    size = os.path.getsize(path) // PIECE * PIECE
    server = socket.create_server(("127.0.0.1", 0))
    reader = socket.create_connection(server.getsockname())
    sender, _ = server.accept()
    server.close()
    drainer = threading.Thread(target=_drain, args=(reader,))
    drainer.start()
    fd = os.open(path, os.O_RDONLY)
    try:
        r0, w0 = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter()
        if how == "copy":
            piece = bytearray(PIECE)
            view = memoryview(piece)
            for p in range(size // PIECE):
                os.preadv(fd, [piece], p * PIECE)
                out: list[bytes | memoryview] = []
                for off in range(0, PIECE, BLOCK):
                    out += [HEAD.pack(9 + BLOCK, 7, p, off), view[off : off + BLOCK]]
                sender.sendmsg(out)  # a blocking socket sends it all
        else:
            sfd = sender.fileno()
            for p in range(size // PIECE):
                for off in range(0, PIECE, BLOCK):
                    sender.send(HEAD.pack(9 + BLOCK, 7, p, off), socket.MSG_MORE)
                    done = 0
                    while done < BLOCK:
                        done += os.sendfile(sfd, fd, p * PIECE + off + done, BLOCK - done)
        r1, w1 = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter()
    finally:
        os.close(fd)
        sender.close()
        drainer.join(60)
        reader.close()
    return r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime, w1 - w0


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench_zero_copy")
    ap.add_argument("file", help="a file of at least 1 MiB, warm in the page cache")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for _ in range(args.rounds):
        for how in ("copy", "sendfile"):
            user, sys_, wall = send_file(args.file, how)
            print(
                f"{how:8s} sender {user + sys_:.3f} CPU-s ({user:.3f} user + {sys_:.3f} sys), {wall:.2f} s wall"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
