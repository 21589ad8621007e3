"""The helper process of a running engine's re-check (``python -m shoal.storage.hash_helper PARENT_PID``; started
by :mod:`shoal.storage.check_helper`, which says why and how).

It reads one bencoded job from stdin: the piece space (``piece_length``, ``size``), its ``files`` as ``[offset,
length, slot]`` rows (slot: an index into ``fds``, :data:`PAD` for zeros, :data:`CLOSED` for a file no job piece
touches), the inherited descriptors ``fds``, file ``names`` for messages, the ``runs`` to hash and ``workers``. It
forks that many workers that hash from read-only memory maps (:mod:`shoal.storage.hash_fork`), writes ``p DONE``
lines (pieces) while they work, then ``d`` and, for each piece of the runs in order, a byte (1: hashed) and its
SHA-1 (20 bytes); on failure one ``e MESSAGE`` line and exit status 1. It imports no more than hashing needs (no
asyncio): starting it is most of what a small re-check would cost.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import IO

from shoal.codec.bencode import decode
from shoal.errors import ShoalError
from shoal.storage import hasher
from shoal.storage.piece_reader import Segment, open_reader

PAD = -1  # a segment of zeros
CLOSED = -2  # a file no checked piece touches (or one that is missing or short): not opened, never read
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the thread that started us ends (or its process), and stop now if it has already."""
    if sys.platform == "linux":
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)


def _hash_job(job: dict[bytes, object], out: IO[bytes]) -> None:
    pl = _int(job[b"piece_length"])
    size = _int(job[b"size"])
    files = _rows(job[b"files"])
    fds = [_int(fd) for fd in _list(job[b"fds"])]
    names = [os.fsdecode(_bytes(name)) for name in _list(job[b"names"])]
    runs = [(a, b) for a, b in _rows(job[b"runs"])]
    by_file = {k: fds[slot] for k, (_, _, slot) in enumerate(files) if slot >= 0}
    segments = [
        Segment(offset, length, None if slot == PAD else k) for k, (offset, length, slot) in enumerate(files)
    ]
    space = hasher.PieceSpace(
        pl,
        size,
        v1=True,
        v2=False,
        files=[(offset, length) for offset, length, slot in files if slot != PAD],
    )

    def open_file(k: int) -> int:
        if k not in by_file:
            raise ShoalError(f"{names[k]} was not handed over")
        return os.dup(by_file[k])

    def step(done: int, total: int) -> None:
        out.write(b"p %d\n" % (done * sum(b - a for a, b in runs) // total if total else 0))
        out.flush()

    v1, _ = hasher.hash_pieces(
        space,
        lambda: open_reader(segments, open_file, names),
        runs,
        max(2, _int(job[b"workers"])),
        step,
        fork=True,
    )
    result = bytearray(b"d\n")
    for a, b in runs:
        for piece in range(a, b):
            digest = v1[piece]
            result += b"\x00" * 21 if digest is None else b"\x01" + digest
    out.write(result)
    out.flush()


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise ShoalError("malformed job")
    return value


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise ShoalError("malformed job")
    return value


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ShoalError("malformed job")
    return value


def _rows(value: object) -> list[Sequence[int]]:
    return [[_int(x) for x in _list(row)] for row in _list(value)]


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    _die_with_parent(int(args[0]))
    out = sys.stdout.buffer
    try:
        job = decode(sys.stdin.buffer.read())
        if not isinstance(job, dict):
            raise ShoalError("malformed job")
        _hash_job(job, out)
    except (ShoalError, ValueError, OSError) as exc:
        out.write(b"e " + str(exc).encode("utf-8", "replace")[:200].replace(b"\n", b" ") + b"\n")
        out.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
