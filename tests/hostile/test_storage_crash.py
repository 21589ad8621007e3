"""kill -9 while resume data and pieces are being written (case 50a, storage level).

1. A child process saves checkpoints in a tight loop and is SIGKILLed at varying moments: the database is always
   exactly one whole checkpoint (torrent row and file rows from the same generation), never a mix.
2. A child downloads (writes verified pieces through FileStorage, checkpointing every few pieces) and is
   SIGKILLed: on restart, load + recheck of the suspect pieces loses no piece of the last checkpoint and
   trusts no piece whose data is not on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shoal.policy.bitfield import Bitfield
from shoal.storage.check import recheck
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout
from shoal.storage.resume import ResumeStore

SRC = Path(__file__).resolve().parents[2] / "src"
IH = b"\x42" * 20

SAVER = textwrap.dedent(
    """
    import sys
    from shoal.policy.bitfield import Bitfield
    from shoal.storage.backend import FileStat
    from shoal.storage.resume import ResumeStore
    store = ResumeStore(sys.argv[1])
    n = 4096
    g = 0
    while True:
        g += 1
        k = g % n
        have = Bitfield.from_indices(n, range(k))
        stats = [FileStat(g, g)] * 50
        store.save(bytes([0x42]) * 20, have, 16384, stats, extra=str(g).encode())
        if g == 3:
            print("ready", flush=True)
    """
)

DOWNLOADER = textwrap.dedent(
    """
    import asyncio, hashlib, sys
    from shoal.policy.bitfield import Bitfield
    from shoal.storage.files import FileStorage
    from shoal.storage.layout import Layout
    from shoal.storage.resume import ResumeStore

    PL = 16384
    def piece_data(i):
        return hashlib.sha256(str(i).encode()).digest() * (PL // 32)

    async def main():
        lay = Layout.from_files([(("a",), 40 * PL + 5, False), (("b",), 24 * PL, False)], PL)
        st = FileStorage(lay, sys.argv[2])
        await st.open()
        store = ResumeStore(sys.argv[1])
        have = Bitfield(lay.num_pieces)
        order = [(i * 37) % lay.num_pieces for i in range(lay.num_pieces)]
        for count, i in enumerate(order, 1):
            data = piece_data(i)[: lay.piece_size(i)]
            assert await st.hash_and_write_piece(i, data, hashlib.sha1(data).digest())
            have.add(i)
            if count % 5 == 0:
                store.save(bytes([0x42]) * 20, have, PL, await st.file_stats())
                if count == 10:
                    print("ready", flush=True)
        print("done", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the child prints within a second; pytest-timeout bounds this
    assert line.strip() == "ready", line


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.13, 0.31])
def test_kill_mid_checkpoint_leaves_one_whole_generation(tmp_path: Path, delay: float) -> None:
    db = tmp_path / "resume.db"
    proc = _spawn(SAVER, str(db))
    try:
        _wait_ready(proc)
        if delay:
            # not a timing assertion: only varies where in the loop the kill lands
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
    finally:
        _kill(proc)
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT generation, extra, have, num_pieces FROM torrent").fetchall()
        assert len(rows) == 1
        gen, extra, blob, n = rows[0]
        assert int(extra) == gen
        assert Bitfield.from_bytes(blob, n).count == gen % n
        files = con.execute("SELECT size, mtime_ns FROM file WHERE info_hash=?", (IH,)).fetchall()
        assert len(files) == 50 and set(files) == {(gen, gen)}
    finally:
        con.close()
    store = ResumeStore(db)  # reopens cleanly after the crash
    store.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("delay", [0.0, 0.2])
def test_kill_mid_download_loses_no_checkpointed_piece(tmp_path: Path, delay: float) -> None:
    db, root = tmp_path / "resume.db", tmp_path / "dl"
    proc = _spawn(DOWNLOADER, str(db), str(root))
    try:
        _wait_ready(proc)
        try:
            proc.wait(timeout=delay or 0.001)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _kill(proc)

    async def restart() -> None:
        pl = 16384
        lay = Layout.from_files([(("a",), 40 * pl + 5, False), (("b",), 24 * pl, False)], pl)

        def piece_data(i: int) -> bytes:
            return (hashlib.sha256(str(i).encode()).digest() * (pl // 32))[: lay.piece_size(i)]

        hashes = [hashlib.sha1(piece_data(i)).digest() for i in range(lay.num_pieces)]
        st = FileStorage(lay, root)
        await st.open()
        store = ResumeStore(db)
        con = sqlite3.connect(db)
        blob, n = con.execute("SELECT have, num_pieces FROM torrent").fetchone()
        con.close()
        checkpoint = Bitfield.from_bytes(blob, n)
        state = store.load(IH, lay, await st.file_stats())
        assert state is not None
        rechecked = await recheck(st, hashes, only=state.recheck)
        trusted = set(state.have) | set(rechecked)
        assert set(checkpoint) == trusted  # nothing lost, nothing extra
        full = await recheck(st, hashes)
        assert trusted <= set(full)  # everything trusted really verifies
        store.close()
        await st.close()

    asyncio.run(restart())
