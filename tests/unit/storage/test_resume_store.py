"""ResumeStore: atomic checkpoints, validation against file sizes and mtimes; recheck; Checkpointer."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shoal.policy.bitfield import Bitfield
from shoal.storage.backend import FileStat
from shoal.storage.check import recheck
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout
from shoal.storage.memory import MemoryStorage
from shoal.storage.resume import Checkpointer, ResumeStore

PL = 32
IH = b"\x11" * 20


def layout() -> Layout:
    return Layout.from_files(
        [(("a",), 40, False), (("e",), 0, False), (("b",), 50, False), (("c",), 30, False)], PL, block_size=16
    )


def data_for(lay: Layout) -> bytes:
    return bytes((i * 13 + 5) % 256 for i in range(lay.total_length))


async def written_storage(root: Path, pieces: list[int]) -> tuple[FileStorage, bytes]:
    lay = layout()
    data = data_for(lay)
    st = FileStorage(lay, root)
    await st.open()
    for p in pieces:
        await st.write_piece(p, data[p * PL : p * PL + lay.piece_size(p)])
    return st, data


def hashes(lay: Layout, data: bytes) -> bytes:
    return b"".join(
        hashlib.sha1(data[p * PL : p * PL + lay.piece_size(p)]).digest() for p in range(lay.num_pieces)
    )


async def test_save_and_load_unchanged(tmp_path: Path) -> None:
    st, _ = await written_storage(tmp_path / "d", [0, 1, 2, 3])
    store = ResumeStore(tmp_path / "resume.db")
    have = Bitfield.from_string("xxxx")
    assert store.save(IH, have, PL, await st.file_stats(), extra=b"e") == 1
    assert store.save(IH, have, PL, await st.file_stats(), extra=b"e2") == 2
    state = store.load(IH, st.layout, await st.file_stats())
    assert state is not None
    assert state.have == have and state.recheck == [] and state.dropped == 0
    assert state.extra == b"e2" and state.generation == 2
    assert store.load(b"\x22" * 20, st.layout, await st.file_stats()) is None
    store.close()


async def test_truncated_file_drops_its_pieces(tmp_path: Path) -> None:
    st, _ = await written_storage(tmp_path / "d", [0, 1, 2, 3])
    store = ResumeStore(tmp_path / "resume.db")
    store.save(IH, Bitfield.from_string("xxxx"), PL, await st.file_stats())
    await st.close()
    os.truncate(tmp_path / "d" / "c", 10)  # c spans pieces 2 and 3
    state = store.load(IH, st.layout, await st.file_stats())
    assert state is not None
    assert state.have == Bitfield.from_string("xx  ")
    assert state.dropped == 2


async def test_missing_file_drops_its_pieces(tmp_path: Path) -> None:
    st, _ = await written_storage(tmp_path / "d", [0, 1, 2, 3])
    store = ResumeStore(tmp_path / "resume.db")
    store.save(IH, Bitfield.from_string("xxxx"), PL, await st.file_stats())
    (tmp_path / "d" / "a").unlink()  # a: pieces 0, 1
    state = store.load(IH, st.layout, await st.file_stats())
    assert state is not None
    assert state.have == Bitfield.from_string("  xx") and state.dropped == 2


async def test_touched_file_sends_pieces_to_recheck_and_recheck_decides(tmp_path: Path) -> None:
    st, data = await written_storage(tmp_path / "d", [0, 1, 2, 3])
    lay = st.layout
    store = ResumeStore(tmp_path / "resume.db")
    store.save(IH, Bitfield.from_string("xxxx"), PL, await st.file_stats())
    await st.close()
    # same size, new content and mtime in file b (pieces 1, 2)
    with open(tmp_path / "d" / "b", "r+b") as f:
        f.seek(30)
        f.write(b"\xff")  # piece 2 (payload offset 70)
    s = os.stat(tmp_path / "d" / "b")
    os.utime(tmp_path / "d" / "b", ns=(s.st_atime_ns, s.st_mtime_ns + 10**9))
    state = store.load(IH, lay, await st.file_stats())
    assert state is not None
    assert state.have == Bitfield.from_string("x  x") and state.recheck == [1, 2]
    good = await recheck(st, hashes(lay, data), only=state.recheck)
    assert list(good) == [1]


async def test_other_geometry_and_garbage_blob_ignored(tmp_path: Path) -> None:
    st, _ = await written_storage(tmp_path / "d", [0])
    store = ResumeStore(tmp_path / "resume.db")
    store.save(IH, Bitfield.from_string("x"), PL, [None])
    assert store.load(IH, st.layout, await st.file_stats()) is None


def test_corrupt_database_moved_aside(tmp_path: Path) -> None:
    db = tmp_path / "resume.db"
    db.write_bytes(b"this is not sqlite" * 100)
    store = ResumeStore(db)
    assert (tmp_path / "resume.db.corrupt").exists()
    lay = layout()
    assert store.load(IH, lay, [None] * 4) is None
    store.save(IH, Bitfield(lay.num_pieces), PL, [None] * 4)
    store.close()


async def test_full_recheck_file_and_memory(tmp_path: Path) -> None:
    st, data = await written_storage(tmp_path / "d", [0, 2, 3])
    lay = st.layout
    seen: list[tuple[int, int]] = []
    bf = await recheck(st, hashes(lay, data), progress=lambda d, t: seen.append((d, t)))
    # piece 1 was never written: zeros in sparse files do not match
    assert bf == Bitfield.from_string("x xx")
    assert seen[-1] == (4, 4)
    mem = MemoryStorage(lay)
    await mem.open()
    for p in (1, 3):
        await mem.write_piece(p, data[p * PL : p * PL + lay.piece_size(p)])
    # files a and b partially missing: pieces touching a never-written file are skipped
    assert await recheck(mem, hashes(lay, data)) == Bitfield.from_string(" x x")
    mem.corrupt_reads.add(3)
    assert await recheck(mem, hashes(lay, data)) == Bitfield.from_string(" x  ")


def test_checkpointer() -> None:
    cp = Checkpointer(every_pieces=3, every_seconds=10.0, now=0.0)
    assert not cp.due(100.0)  # nothing new
    cp.piece_verified()
    assert not cp.due(5.0)
    assert cp.due(10.0)
    cp.piece_verified(2)
    assert cp.due(5.0)
    cp.done(5.0)
    assert not cp.due(6.0)


_values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
)


def test_fuzzed_rows_never_crash_load(tmp_path: Path) -> None:
    """Resume loading parses untrusted data (case 9): any row gives None or a valid state, never a crash."""
    db = tmp_path / "fuzz.db"
    store = ResumeStore(db)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    lay = layout()
    stats = [FileStat(40, 1), FileStat(0, 1), FileStat(50, 1), FileStat(30, 1)]

    @settings(max_examples=100, deadline=None)
    @given(
        st.tuples(
            st.one_of(st.just(4), _values),
            st.one_of(st.just(32), _values),
            st.one_of(st.binary(min_size=1, max_size=1), _values),
            _values,
            _values,
        ),
        st.lists(
            st.tuples(
                st.one_of(st.integers(0, 4), _values),
                st.one_of(st.sampled_from([0, 30, 40, 50]), _values),
                st.one_of(st.just(1), _values),
            ),
            max_size=6,
        ),
    )
    def check(row: tuple[object, ...], files: list[tuple[object, ...]]) -> None:
        con.execute("DELETE FROM torrent")
        con.execute("DELETE FROM file")
        try:
            con.execute(
                "INSERT INTO torrent(info_hash, num_pieces, piece_length, have, extra, generation)"
                " VALUES (?,?,?,?,?,?)",
                (IH, *row),
            )
        except sqlite3.IntegrityError:
            assume(False)
        for f in files:
            try:
                con.execute(
                    "INSERT OR REPLACE INTO file(info_hash, idx, size, mtime_ns) VALUES (?,?,?,?)", (IH, *f)
                )
            except sqlite3.IntegrityError:
                pass
        state = store.load(IH, lay, stats)
        if state is not None:
            assert state.have.num_pieces == lay.num_pieces
            assert all(0 <= p < lay.num_pieces for p in state.recheck)

    try:
        check()
    finally:
        con.close()
        store.close()


async def test_piece_shared_with_unwanted_file_survives_resume(tmp_path: Path) -> None:
    lay = layout()  # a 0-40, e, b 40-90, c 90-120; pieces of 32
    data = data_for(lay)
    st = FileStorage(lay, tmp_path / "d", file_priorities=[1, 1, 0, 1])
    await st.open()
    for p in (0, 1):  # piece 1 (32-64) spans a and the unwanted b
        await st.write_piece(p, data[p * PL : p * PL + PL])
    assert not (tmp_path / "d" / "b").exists()
    store = ResumeStore(tmp_path / "resume.db")
    store.save(IH, Bitfield.from_string("xx  "), PL, await st.file_stats())
    await st.close()
    st2 = FileStorage(lay, tmp_path / "d", file_priorities=[1, 1, 0, 1])
    await st2.open()
    state = store.load(IH, lay, await st2.file_stats())
    assert state is not None and state.have == Bitfield.from_string("xx  ") and not state.recheck
    assert list(await recheck(st2, hashes(lay, data), only=[0, 1])) == [0, 1]
    store.close()
