"""FileStorage on tmp_path: confinement, sparse and empty files, spans across files, pad files, errors
(preallocation: test_preallocate.py)."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest

from shoal.errors import DiskFullError, StorageError, UnsafePathError
from shoal.storage import part_files, span_writer
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout

PL = 32


def payload(n: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(n))


def multi_layout() -> Layout:
    return Layout.from_files(
        [
            (("t", "a.bin"), 10, False),
            (("t", "empty"), 0, False),
            (("t", "sub", "b.bin"), 50, False),
            (("t", ".pad", "4"), 4, True),
            (("t", "c.bin"), 20, False),
        ],
        PL,
        block_size=16,
    )


def content(layout: Layout) -> bytes:
    data = bytearray(payload(layout.total_length))
    for f in layout.files:
        if f.is_pad:
            data[f.offset : f.offset + f.length] = bytes(f.length)
    return bytes(data)


async def test_roundtrip_multi_file(tmp_path: Path) -> None:
    lay = multi_layout()
    data = content(lay)
    st = FileStorage(lay, tmp_path / "dl", max_open_files=2)
    await st.open()
    assert (tmp_path / "dl/t/empty").is_file() and (tmp_path / "dl/t/empty").stat().st_size == 0
    assert not (tmp_path / "dl/t/a.bin").exists()  # created lazily
    for piece in range(lay.num_pieces):
        chunk = data[piece * PL : piece * PL + lay.piece_size(piece)]
        assert await st.hash_and_write_piece(piece, chunk, hashlib.sha1(chunk).digest())
    assert (tmp_path / "dl/t/a.bin").read_bytes() == data[0:10]
    assert (tmp_path / "dl/t/sub/b.bin").read_bytes() == data[10:60]
    assert (tmp_path / "dl/t/c.bin").read_bytes() == data[64:84]
    assert not (tmp_path / "dl/t/.pad").exists()  # pad never on disk
    for piece in range(lay.num_pieces):
        chunk = data[piece * PL : piece * PL + lay.piece_size(piece)]
        assert await st.read_piece(piece) == chunk
        assert await st.hash_piece(piece) == hashlib.sha1(chunk).digest()
    assert await st.read_block(0, 8, 16) == data[8:24]
    stats = await st.file_stats()
    assert [s is None for s in stats] == [False, False, False, True, False]
    await st.close()


async def test_block_writes_and_wrong_hash_not_written(tmp_path: Path) -> None:
    lay = Layout.from_files([(("f",), 40, False)], PL, block_size=16)
    st = FileStorage(lay, tmp_path)
    await st.open()
    assert not await st.hash_and_write_piece(0, b"x" * PL, b"\0" * 20)
    assert not (tmp_path / "f").exists()
    await st.write_block(1, 0, b"z" * 8)
    await st.write_block(0, 16, b"y" * 16)
    assert (tmp_path / "f").read_bytes() == bytes(16) + b"y" * 16 + b"z" * 8
    with pytest.raises(ValueError):
        await st.write_piece(0, b"short")
    await st.close()


async def test_files_are_sparse_without_preallocation(tmp_path: Path) -> None:
    size = 64 * 1024 * 1024
    lay = Layout.from_files([(("big",), size, False)], 1024 * 1024)
    st = FileStorage(lay, tmp_path, preallocate=False)
    await st.open()
    await st.write_block(63, 0, b"q" * 16384)
    s = (tmp_path / "big").stat()
    assert s.st_size == size
    assert s.st_blocks * 512 < size // 4
    await st.close()


@pytest.mark.parametrize(
    "path",
    [("..", "x"), ("a", "..", "..", "x"), ("/etc", "passwd"), ("a/b",), ("",), (".",), ("a\0b",), ("C:x",)],
)
def test_unsafe_components_refused(tmp_path: Path, path: tuple[str, ...]) -> None:
    with pytest.raises(UnsafePathError):
        FileStorage(Layout.from_files([(path, 10, False)], PL), tmp_path)


async def test_planted_symlink_dir_pointing_out_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "d").symlink_to(outside, target_is_directory=True)
    lay = Layout.from_files([(("d", "f"), 10, False)], PL)
    st = FileStorage(lay, root)
    with pytest.raises(UnsafePathError):
        await st.open()  # found up front
    with pytest.raises(UnsafePathError):
        await st.write_piece(0, b"0123456789")  # and again at write time
    assert list(outside.iterdir()) == []


async def test_planted_symlink_file_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (root / "f").symlink_to(victim)
    st = FileStorage(Layout.from_files([(("f",), 4, False)], PL), root)
    await st.open()
    with pytest.raises(UnsafePathError):
        await st.write_piece(0, b"evil")
    assert victim.read_bytes() == b"keep"


async def test_symlink_inside_root_is_allowed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "link").symlink_to(root / "real", target_is_directory=True)
    st = FileStorage(Layout.from_files([(("link", "f"), 4, False)], PL), root)
    await st.open()
    await st.write_piece(0, b"good")
    assert (root / "real" / "f").read_bytes() == b"good"


async def test_missing_file_read_is_storage_error(tmp_path: Path) -> None:
    st = FileStorage(Layout.from_files([(("f",), 4, False)], PL), tmp_path)
    await st.open()
    with pytest.raises(StorageError):
        await st.read_piece(0)


async def test_short_file_read_is_storage_error(tmp_path: Path) -> None:
    st = FileStorage(Layout.from_files([(("f",), 40, False)], PL), tmp_path)
    await st.open()
    await st.write_piece(1, b"x" * 8)
    await st.close()
    os.truncate(tmp_path / "f", 20)
    with pytest.raises(StorageError):
        await st.read_piece(0)


async def test_fd_cache_bounded(tmp_path: Path) -> None:
    files = [((f"f{i}",), 16, False) for i in range(10)]
    lay = Layout.from_files(files, 16, block_size=16)
    st = FileStorage(lay, tmp_path, max_open_files=3)
    await st.open()
    before = len(os.listdir("/proc/self/fd"))
    for piece in range(10):
        await st.write_piece(piece, bytes([piece]) * 16)
    assert len(os.listdir("/proc/self/fd")) <= before + 3
    await st.close()
    assert len(os.listdir("/proc/self/fd")) <= before
    for piece in range(10):
        assert (tmp_path / f"f{piece}").read_bytes() == bytes([piece]) * 16


async def test_delete(tmp_path: Path) -> None:
    lay = multi_layout()
    st = FileStorage(lay, tmp_path)
    await st.open()
    await st.write_piece(0, content(lay)[:PL])
    await st.delete()
    assert not (tmp_path / "t" / "a.bin").exists()
    assert not (tmp_path / "t" / "empty").exists()


async def test_unwanted_files_are_not_created_and_move_in_when_wanted(tmp_path: Path) -> None:
    lay = multi_layout()  # a.bin 0-10, empty, b.bin 10-60, pad 60-64, c.bin 64-84; pieces of 32
    data = content(lay)
    prios = [1, 0, 0, 1, 1]  # b.bin and the empty file unwanted
    st = FileStorage(lay, tmp_path, file_priorities=prios)
    await st.open()
    assert not (tmp_path / "t" / "empty").exists()
    for piece in (0, 2):  # piece 0 spans a.bin and b.bin (b.bin alone fills piece 1); piece 2 is c.bin
        chunk = data[piece * PL : piece * PL + lay.piece_size(piece)]
        assert await st.hash_and_write_piece(piece, chunk, hashlib.sha1(chunk).digest())
    assert not (tmp_path / "t" / "sub" / "b.bin").exists()
    assert st.part_path(2).exists()
    assert st.part_path(2).resolve().is_relative_to(tmp_path.resolve())
    # reads, hashes and stats see the part file
    assert await st.read_piece(0) == data[:PL]
    assert await st.hash_piece(2) == hashlib.sha1(data[2 * PL :]).digest()
    stats = await st.file_stats()
    assert stats[2] is not None and stats[2].size == 50
    # b.bin becomes wanted: the part file moves into it
    await st.set_file_priorities([1, 1, 1, 1, 1])
    assert not st.part_path(2).exists()
    b = (tmp_path / "t" / "sub" / "b.bin").read_bytes()
    assert b == data[10:32] + bytes(28)  # what piece 0 put there; piece 1 not downloaded yet
    chunk = data[PL : 2 * PL]
    assert await st.hash_and_write_piece(1, chunk, hashlib.sha1(chunk).digest())
    assert (tmp_path / "t" / "sub" / "b.bin").read_bytes() == data[10:60]
    await st.close()
    await st.delete()
    assert not (tmp_path / ".shoal.parts").exists()


async def test_unwanted_file_already_on_disk_is_used(tmp_path: Path) -> None:
    lay = Layout.from_files([(("a",), 16, False), (("b",), 16, False)], 32, block_size=16)
    (tmp_path / "b").write_bytes(b"B" * 16)
    st = FileStorage(lay, tmp_path, file_priorities=[1, 0])
    await st.open()
    assert await st.read_block(0, 16, 16) == b"B" * 16
    await st.write_piece(0, b"A" * 16 + b"C" * 16)
    assert (tmp_path / "b").read_bytes() == b"C" * 16
    assert not st.part_path(1).exists()
    await st.close()


async def test_writes_in_small_chunks_land_whole(tmp_path: Path) -> None:
    """``write_chunk`` splits each span into several pwrites (7 bytes here, so spans end mid-chunk)."""
    lay = multi_layout()
    data = content(lay)
    st = FileStorage(lay, tmp_path / "dl", write_chunk=7)
    await st.open()
    for piece in range(lay.num_pieces):
        await st.write_piece(piece, data[piece * PL : piece * PL + lay.piece_size(piece)])
    assert (tmp_path / "dl/t/sub/b.bin").read_bytes() == data[10:60]
    assert (tmp_path / "dl/t/c.bin").read_bytes() == data[64:84]
    await st.close()
    with pytest.raises(ValueError):
        FileStorage(lay, tmp_path / "x", write_chunk=0)


async def test_submit_hash_and_write_many_reports_in_the_worker(tmp_path: Path) -> None:
    lay = Layout.from_files([(("f",), 40, False)], PL, block_size=16)
    st = FileStorage(lay, tmp_path / "dl")
    await st.open()
    loop = asyncio.get_running_loop()
    results: list[tuple[object, bool]] = []
    done = asyncio.Event()

    def report(batch: list[object]) -> None:  # called on a worker thread, once per job
        results.append((batch, threading.current_thread() is threading.main_thread()))
        if len(results) == 2:
            loop.call_soon_threadsafe(done.set)

    good = payload(PL)
    # one job of two pieces (the second has the wrong hash: not written), then one of one
    st.submit_hash_and_write_many([(0, good, hashlib.sha1(good).digest()), (1, b"z" * 8, b"\0" * 20)], report)
    st.submit_hash_and_write_many([(1, b"z" * 8, hashlib.sha1(b"z" * 8).digest())], report)
    await asyncio.wait_for(done.wait(), 10)
    assert sorted(r for r, _ in results) == [[True], [True, False]]  # type: ignore[type-var]
    assert not any(on_main for _, on_main in results)
    assert (tmp_path / "dl" / "f").read_bytes() == good + b"z" * 8
    with pytest.raises(ValueError):
        st.submit_hash_and_write_many([(0, b"short", b"")], report)
    await st.close()


async def test_submit_hash_and_write_many_hands_over_errors(tmp_path: Path) -> None:
    lay = Layout.from_files([(("f",), 40, False)], PL, block_size=16)
    st = FileStorage(lay, tmp_path)
    await st.open()
    (tmp_path / "f").mkdir()  # the file's place is taken by a folder: the write fails in the worker
    loop = asyncio.get_running_loop()
    got: asyncio.Future[object] = loop.create_future()
    good = payload(PL)
    st.submit_hash_and_write_many(
        [(0, good, hashlib.sha1(good).digest())], lambda r: loop.call_soon_threadsafe(got.set_result, r)
    )
    (result,) = await asyncio.wait_for(got, 10)  # type: ignore[misc]
    assert isinstance(result, StorageError)
    await st.close()


async def test_concurrent_piece_writes_to_one_file_land_whole(tmp_path: Path) -> None:
    # four disk threads hash and write pieces of one file at once; the per-file write lock lets one write at a time
    lay = Layout.from_files([(("f",), 64 * PL - 5, False)], PL, block_size=16)
    data = payload(lay.total_length)
    st = FileStorage(lay, tmp_path / "dl", disk_threads=4, write_chunk=8)
    await st.open()
    pieces = [data[p * PL : p * PL + lay.piece_size(p)] for p in range(lay.num_pieces)]
    oks = await asyncio.gather(
        *(st.hash_and_write_piece(p, chunk, hashlib.sha1(chunk).digest()) for p, chunk in enumerate(pieces))
    )
    assert all(oks)
    assert (tmp_path / "dl" / "f").read_bytes() == data
    await st.close()


async def test_a_write_to_one_file_does_not_wait_for_another_files_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(span_writer, "LOCKED_SPAN_MIN", 1)  # every span is written under its file's lock
    lay = Layout.from_files([(("a",), PL, False), (("b",), PL, False)], PL, block_size=16)
    # sparse files: a preallocated one takes direct writes side by side, without the lock (test_preallocate.py)
    st = FileStorage(lay, tmp_path / "dl", disk_threads=2, preallocate=False)
    await st.open()
    await st.write_piece(0, payload(PL))  # file a has its lock now
    with st._writer.locks[0]:  # a writer of file a is mid-write
        await asyncio.wait_for(st.write_piece(1, payload(PL)), 10)  # file b is written all the same
        again = asyncio.ensure_future(st.write_piece(0, payload(PL)))
        await asyncio.sleep(0.2)
        assert not again.done()  # a second writer of file a waits for the first
    await asyncio.wait_for(again, 10)
    assert (tmp_path / "dl" / "b").read_bytes() == payload(PL)
    await st.close()


async def test_short_spans_are_written_without_their_files_lock(tmp_path: Path) -> None:
    """Spans under LOCKED_SPAN_MIN skip the writer lock: it was held across the GIL hand-offs of each write, and
    with small pieces the writers queued behind one another (a 32 KiB-piece download ran 1.3x slower)."""
    lay = Layout.from_files([(("a",), 2 * PL, False)], PL, block_size=16)
    st = FileStorage(lay, tmp_path / "dl", disk_threads=2)
    await st.open()
    lock = st._writer.locks.setdefault(0, threading.Lock())
    with lock:  # a long span's writer holds file a's lock
        await asyncio.wait_for(st.write_piece(1, payload(PL)), 10)  # a short one does not wait for it
    assert (tmp_path / "dl" / "a").read_bytes()[PL:] == payload(PL)
    await st.close()


# --- part files moving into their files: never under a read or write of that file, and at open ---

PARKED_B = [1, 0, 0, 1, 1]  # a.bin, empty, sub/b.bin, pad, c.bin: b.bin unwanted


async def write_piece_0(st: FileStorage, data: bytes) -> None:
    chunk = data[:PL]  # a.bin 0-10 and b.bin 10-32
    assert await st.hash_and_write_piece(0, chunk, hashlib.sha1(chunk).digest())


async def test_a_part_file_moves_only_after_the_write_under_way(tmp_path: Path) -> None:
    lay = multi_layout()
    data = content(lay)
    st = FileStorage(lay, tmp_path, file_priorities=PARKED_B, direct_writes=False, write_behind=0)
    await st.open()
    await write_piece_0(st, data)
    b = tmp_path / "t" / "sub" / "b.bin"
    assert st.part_path(2).exists() and not b.exists()
    assert st.read_nowait(0, 16, 16) == data[16:32]  # from the part file, in the page cache

    fd, cached = st._fds.acquire(2, True)  # a disk thread in the middle of a write to the part file
    moving = asyncio.ensure_future(st.set_file_priorities([1] * 5))
    await asyncio.sleep(0.3)
    assert not moving.done()  # it waits for the write
    assert not b.exists() and st.part_path(2).exists()
    assert st.read_nowait(0, 16, 16) is None  # the event loop's read does not wait for the move
    os.pwrite(fd, b"ZZZZ", 40 - 10)  # the write lands (b.bin's bytes 30-34: file offset 40 of the torrent)
    st._fds.release(2, fd, cached)
    await asyncio.wait_for(moving, 5)

    assert not st.part_path(2).exists()
    assert not (tmp_path / ".shoal.parts").exists()  # nothing parked any more
    assert b.read_bytes()[:22] == data[10:32]
    assert b.read_bytes()[30:34] == b"ZZZZ"  # the write under way was moved too
    assert await st.read_block(0, 16, 16) == data[16:32]  # reads go to b.bin now
    await st.close()


async def parked_session(root: Path) -> bytes:
    """A first session that wrote piece 0 with b.bin unwanted (b.bin's share in its part file); the content."""
    lay = multi_layout()
    data = content(lay)
    first = FileStorage(lay, root, file_priorities=PARKED_B)
    await first.open()
    await write_piece_0(first, data)
    await first.close()
    assert first.part_path(2).exists()
    return data


async def test_open_moves_in_the_part_files_of_files_wanted_now(tmp_path: Path) -> None:
    data = await parked_session(tmp_path)
    lay = multi_layout()
    again = FileStorage(lay, tmp_path)  # every file wanted in the next session
    await again.open()
    assert (tmp_path / "t" / "sub" / "b.bin").read_bytes()[:22] == data[10:32]
    assert not (tmp_path / ".shoal.parts").exists()
    assert await again.hash_piece(0) == hashlib.sha1(data[:PL]).digest()
    await again.close()


async def test_open_keeps_the_part_files_of_files_still_unwanted(tmp_path: Path) -> None:
    data = await parked_session(tmp_path)
    lay = multi_layout()
    again = FileStorage(lay, tmp_path, file_priorities=PARKED_B)
    await again.open()
    assert again.part_path(2).exists() and not (tmp_path / "t" / "sub" / "b.bin").exists()
    assert await again.hash_piece(0) == hashlib.sha1(data[:PL]).digest()  # read from the part file
    await again.close()


async def test_a_part_file_that_cannot_move_keeps_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lay = multi_layout()
    data = content(lay)
    st = FileStorage(lay, tmp_path, file_priorities=PARKED_B)
    await st.open()
    await write_piece_0(st, data)

    def full(src: int, dst: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(part_files, "copy_written", full)
    with pytest.raises(DiskFullError, match="No space left"):
        await st.set_file_priorities([1] * 5)
    assert st.part_path(2).exists() and not (tmp_path / "t" / "sub" / "b.bin").exists()
    assert await st.read_block(0, 16, 16) == data[16:32]  # still read from the part file
    assert 2 not in st._writer.allocated  # the part file's writes take the lock again
    monkeypatch.undo()
    await st.set_file_priorities([1] * 5)  # space again: the next try moves it
    assert (tmp_path / "t" / "sub" / "b.bin").read_bytes()[:22] == data[10:32]
    await st.close()
