"""Fuzz target: the SQLite resume file (``ResumeStore``) holding arbitrary bytes (case 50b).

The input becomes the whole database file (a real checkpoint is in the seed corpus, so mutations keep most of the
SQLite structure). Opening and loading may only raise ``ResumeError``; an unreadable database is moved aside.
Checked on top: ``load`` returns None or a state whose trusted pieces were all claimed in the file, never a piece
of a file that is now missing or shorter (a claim is a hint, never the truth), and a fresh save/load round trip
works afterwards.

Run: ``.venv/bin/python fuzz/fuzz_resume.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/resume``
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from shoal.errors import ResumeError
from shoal.policy.bitfield import Bitfield
from shoal.storage.backend import FileStat
from shoal.storage.layout import Layout
from shoal.storage.resume import ResumeStore
from shoal.testing.fuzzing import run

INFO_HASH = b"R" * 20
LAYOUT = Layout.from_files([(("a",), 40000, False), (("b",), 30000, False), (("c",), 0, False)], 16384)
FULL = [FileStat(40000, 1), FileStat(30000, 2), FileStat(0, 3)]
# file b is now shorter than the torrent says: no piece touching it may be trusted
SHORT_B = [FileStat(40000, 1), FileStat(100, 2), FileStat(0, 3)]
B_PIECES = set(LAYOUT.file_piece_range(1))
logging.getLogger("shoal.storage.resume").setLevel(logging.CRITICAL)
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None  # tmpfs: no disk syncs per input
SMOKE_RUNS = 300  # slower than the others (a database per input): fewer runs in the CI smoke


def TestOneInput(data: bytes) -> None:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        path = Path(tmp) / "resume.sqlite"
        path.write_bytes(data)
        try:
            store = ResumeStore(path, busy_timeout=0.1)
        except ResumeError:
            return
        try:
            for stats in (FULL, SHORT_B):
                state = store.load(INFO_HASH, LAYOUT, stats)
                if state is None:
                    continue
                assert all(0 <= p < LAYOUT.num_pieces for p in state.have)
                assert all(0 <= p < LAYOUT.num_pieces for p in state.recheck)
                if stats is SHORT_B:
                    assert not (set(state.have) | set(state.recheck)) & B_PIECES, (
                        "trusted a piece of a short file"
                    )
            have = Bitfield(LAYOUT.num_pieces)
            have.add(0)
            try:
                store.save(INFO_HASH, have, LAYOUT.piece_length, FULL)
            except ResumeError:
                return
            again = store.load(INFO_HASH, LAYOUT, FULL)
            assert again is not None and list(again.have) == [0]
        finally:
            store.close()


if __name__ == "__main__":
    run(TestOneInput)
