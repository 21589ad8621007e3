"""Micro-benchmark: would scatter reads pay? The receiving side of 1 GiB of piece messages, two ways.

* ``framed`` (what Shoal does): ``recv_into`` a 256 KiB buffer, parse each piece message's header, copy its 16 KiB
  block into the piece buffer;
* ``scatter`` (the idea): ``recvmsg_into`` with the next 16 messages laid out as iovecs, 13-byte header slots
  alternating with the block's place in the piece buffer, so the kernel writes each block where it belongs and
  nothing is copied in user space. It is the best case for the idea: headers are not checked and there is no
  fallback for a stream that is not exactly the blocks asked for, both of which real code would need.

A forked sender writes the messages over a ``socketpair``; the receiver's CPU (user+sys, ``getrusage``) is
printed per round for each way, taking turns. Run: ``.venv/bin/python benchmarks/bench_scatter_reads.py
[--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import struct
import time

BLOCK = 16 << 10
PIECE = 1 << 20
PIECES = 1024
POOL = 17  # piece buffers in use at once, as in a real download
PER_READ = 16  # messages laid out per recvmsg_into
HEADER = struct.Struct(">IBII")  # length, id (7: piece), index, begin


def send_all(sock: socket.socket) -> None:
    block = os.urandom(BLOCK)
    piece = b"".join(HEADER.pack(9 + BLOCK, 7, 0, off) + block for off in range(0, PIECE, BLOCK))
    for _ in range(PIECES):
        sock.sendall(piece)
    sock.close()


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def receive_framed(sock: socket.socket, pool: list[memoryview]) -> int:
    buf = bytearray(256 << 10)
    view = memoryview(buf)
    have = 0
    done = 0
    while done < PIECES:
        n = sock.recv_into(view[have:])
        if not n:
            break
        have += n
        pos = 0
        while have - pos >= 13:
            length, _, _, offset = HEADER.unpack_from(buf, pos)
            end = pos + 4 + length
            if end > have:
                break
            pool[done % POOL][offset : offset + BLOCK] = view[pos + 13 : end]
            if offset + BLOCK == PIECE:
                done += 1
            pos = end
        if pos:
            view[: have - pos] = view[pos:have]
            have -= pos
    return done


def receive_scatter(sock: socket.socket, pool: list[memoryview]) -> int:
    headers = [memoryview(bytearray(13)) for _ in range(PER_READ)]
    done = 0
    offset = 0
    iovecs: list[memoryview] = []
    while done < PIECES:
        if not iovecs:
            target = pool[done % POOL]
            for k in range(PER_READ):
                at = offset + k * BLOCK
                if at >= PIECE:
                    break
                iovecs += (headers[k], target[at : at + BLOCK])
        n = sock.recvmsg_into(iovecs)[0]
        if not n:
            break
        while n:  # drop the filled iovecs, trim a partly filled one
            first = iovecs[0]
            if n >= len(first):
                n -= len(first)
                iovecs.pop(0)
            else:
                iovecs[0] = first[n:]
                n = 0
        if not iovecs:
            offset += PER_READ * BLOCK
            if offset >= PIECE:
                offset = 0
                done += 1
    return done


def run(scatter: bool) -> tuple[int, float, float]:
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        b.close()
        send_all(a)
        os._exit(0)
    a.close()
    pool = [memoryview(bytearray(PIECE)) for _ in range(POOL)]
    c0, t0 = cpu(), time.perf_counter()
    pieces = (receive_scatter if scatter else receive_framed)(b, pool)
    c1, t1 = cpu(), time.perf_counter()
    os.waitpid(pid, 0)
    b.close()
    return pieces, c1 - c0, t1 - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for r in range(args.rounds):
        for scatter in (False, True):
            pieces, spent, wall = run(scatter)
            name = "scatter" if scatter else "framed"
            print(f"round {r + 1} {name:8s} {pieces} pieces: receiver {spent:.3f} CPU-s, {wall:.3f} s wall")


if __name__ == "__main__":
    main()
