"""Direct writes: which part of a span goes direct, the real O_DIRECT path on tmp_path, and every way it falls back
to buffered writes (refused on open, refused on a write, no space, turned off) without losing a byte."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from shoal.config import Settings
from shoal.errors import DiskFullError
from shoal.storage import direct_io, span_writer
from shoal.storage.direct_io import ALIGN, aligned_part
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout

PL = 64 << 10

needs_direct = pytest.mark.skipif(
    not direct_io.direct_io_works(), reason="O_DIRECT and /proc/self/fd are Linux's"
)


def takes_direct(folder: Path) -> bool:
    """Whether the filesystem of ``folder`` accepts O_DIRECT (tmpfs on older kernels does not)."""
    probe = folder / ".direct-probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | direct_io.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    probe.unlink()
    return True


def test_the_aligned_middle_of_a_span() -> None:
    assert aligned_part(0, 3 * ALIGN) == (0, 3 * ALIGN)
    assert aligned_part(0, 3 * ALIGN + 10) == (0, 3 * ALIGN)  # a file's last piece: the tail goes buffered
    assert aligned_part(100, 3 * ALIGN) == (ALIGN - 100, 2 * ALIGN)  # head up to the next boundary
    assert aligned_part(100, 50) == (50, 0)  # all inside one block
    assert aligned_part(ALIGN, 0) == (0, 0)


def test_direct_writes_are_on_by_default() -> None:
    assert Settings().disk_direct_writes is True


class Recorder:
    """Wraps direct_io.write_direct in span_writer: (file name, offset, length) of each call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: OSError | None = None) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.fail = fail
        real = direct_io.write_direct

        def record(fd: int, data: memoryview, off: int) -> int:
            self.calls.append((os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), off, len(data)))
            if self.fail is not None:
                raise self.fail
            return real(fd, data, off)

        monkeypatch.setattr(span_writer, "write_direct", record)


def pieces_of(lay: Layout, data: bytes) -> list[bytes]:
    return [data[p * PL : p * PL + lay.piece_size(p)] for p in range(lay.num_pieces)]


async def write_single_file(tmp_path: Path, size: int, **storage: Any) -> bytes:
    """Write every piece of a one-file torrent of ``size`` bytes into ``tmp_path/dl/f``; return the data."""
    lay = Layout.from_files([(("f",), size, False)], PL, block_size=16 << 10)
    data = os.urandom(size)
    st = FileStorage(lay, tmp_path / "dl", **storage)
    await st.open()
    for piece, chunk in enumerate(pieces_of(lay, data)):
        await st.write_piece(piece, chunk)
    await st.close()
    return data


@needs_direct
async def test_aligned_pieces_go_direct_and_a_files_tail_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not takes_direct(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} refuses O_DIRECT")
    rec = Recorder(monkeypatch)
    lay = Layout.from_files([(("big.bin",), 3 * PL + 100, False)], PL, block_size=16 << 10)
    data = os.urandom(lay.total_length)
    st = FileStorage(lay, tmp_path / "dl")
    await st.open()
    for piece, chunk in reversed(list(enumerate(pieces_of(lay, data)))):
        await st.write_piece(piece, chunk)
    assert sorted(rec.calls) == [("big.bin", p * PL, PL) for p in range(3)]  # the 100-byte piece: buffered
    assert b"".join([await st.read_piece(p) for p in range(lay.num_pieces)]) == data
    await st.close()
    assert (tmp_path / "dl" / "big.bin").read_bytes() == data


@needs_direct
async def test_files_that_do_not_start_on_a_block_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multi-file torrent without pad files: each span's head and tail are buffered, its middle direct."""
    if not takes_direct(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} refuses O_DIRECT")
    rec = Recorder(monkeypatch)
    lay = Layout.from_files(
        [(("t", "a"), 5000, False), (("t", "b"), 2 * PL, False), (("t", "c"), 7, False)],
        PL,
        block_size=16 << 10,
    )
    data = os.urandom(lay.total_length)
    st = FileStorage(lay, tmp_path / "dl")
    await st.open()
    for piece, chunk in enumerate(pieces_of(lay, data)):
        await st.write_piece(piece, chunk)
    assert ("a", 0, 4096) in rec.calls  # a: 4096 direct, 904 buffered
    assert all(off % ALIGN == 0 and length % ALIGN == 0 for _, off, length in rec.calls)
    got = b"".join((tmp_path / "dl" / "t" / name).read_bytes() for name in ("a", "b", "c"))
    assert got == data
    await st.close()


@needs_direct
async def test_a_filesystem_that_refuses_o_direct_gets_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opens: list[int] = []

    def refuse(fd: int) -> int:
        opens.append(fd)
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(span_writer, "reopen_direct", refuse)
    data = await write_single_file(tmp_path, 4 * PL)
    assert len(opens) == 1  # tried once for the file, then not again
    assert (tmp_path / "dl" / "f").read_bytes() == data


@needs_direct
async def test_a_write_refused_with_einval_is_done_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder(monkeypatch, fail=OSError(errno.EINVAL, "Invalid argument"))
    data = await write_single_file(tmp_path, 3 * PL)
    if takes_direct(tmp_path):
        assert len(rec.calls) == 1  # the first refusal turns direct writes off for the file
    assert (tmp_path / "dl" / "f").read_bytes() == data


@needs_direct
async def test_no_space_on_a_direct_write_is_a_disk_full_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not takes_direct(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} refuses O_DIRECT")
    Recorder(monkeypatch, fail=OSError(errno.ENOSPC, "No space left on device"))
    lay = Layout.from_files([(("f",), 2 * PL, False)], PL, block_size=16 << 10)
    st = FileStorage(lay, tmp_path / "dl")
    await st.open()
    with pytest.raises(DiskFullError, match="No space left"):
        await st.write_piece(0, os.urandom(PL))
    await st.close()


async def test_turned_off_nothing_goes_direct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(span_writer, "write_direct", lambda fd, data, off: calls.append(off) or 0)
    data = await write_single_file(tmp_path, 2 * PL, direct_writes=False)
    assert calls == []
    assert (tmp_path / "dl" / "f").read_bytes() == data


@needs_direct
async def test_a_file_moved_out_of_its_part_file_gets_its_direct_writes(tmp_path: Path) -> None:
    """The direct descriptor follows the file: written while unwanted (part file), then wanted (real file)."""
    lay = Layout.from_files([(("a",), 2 * PL, False), (("b",), 2 * PL, False)], PL, block_size=16 << 10)
    data = os.urandom(lay.total_length)
    chunks = pieces_of(lay, data)
    st = FileStorage(lay, tmp_path / "dl", file_priorities=[0, 1])
    await st.open()
    await st.write_piece(
        0, chunks[0]
    )  # a is unwanted: its bytes go to its part file (a direct descriptor of it)
    assert not (tmp_path / "dl" / "a").exists()
    await st.set_file_priorities([1, 1])  # the part file moves into a
    await st.write_piece(1, chunks[1])
    await st.write_piece(2, chunks[2])
    await st.write_piece(3, chunks[3])
    assert b"".join([await st.read_piece(p) for p in range(4)]) == data
    await st.close()
    assert (tmp_path / "dl" / "a").read_bytes() == data[: 2 * PL]
    assert (tmp_path / "dl" / "b").read_bytes() == data[2 * PL :]


def test_a_piece_sized_buffer_is_page_aligned_and_zeroed() -> None:
    buf = direct_io.aligned_buffer(PL)
    assert len(buf) == PL and bytes(buf) == bytes(PL)
    assert direct_io.is_aligned(memoryview(buf))
    assert direct_io.is_aligned(memoryview(buf)[ALIGN:])  # a span starting on a block of the piece
    assert not direct_io.is_aligned(memoryview(buf)[100:])
    assert not direct_io.is_aligned(memoryview(bytes(PL)))  # read-only: never written from
    assert not direct_io.is_aligned(memoryview(b""))
    small = direct_io.aligned_buffer(100)  # a tiny piece: a plain bytearray, bounced if ever direct
    assert isinstance(small, bytearray) and len(small) == 100


@needs_direct
def test_aligned_memory_is_written_without_the_bounce_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not takes_direct(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} refuses O_DIRECT")
    bounced: list[int] = []
    real_bounce = direct_io.bounce

    def counting_bounce() -> memoryview:
        bounced.append(1)
        return real_bounce()

    monkeypatch.setattr(direct_io, "bounce", counting_bounce)
    data = os.urandom(3 * direct_io.CHUNK)
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | direct_io.O_DIRECT, 0o600)
    try:
        piece = direct_io.aligned_buffer(len(data))
        piece[:] = data
        assert direct_io.write_direct(fd, memoryview(piece), 0) == len(data)
        assert bounced == []
        unaligned = memoryview(bytearray(b"x" + data[: 2 * ALIGN]))[
            1:
        ]  # malloc's 16-byte alignment, plus one
        assert direct_io.write_direct(fd, unaligned, len(data)) == 2 * ALIGN
        assert bounced == [1]
    finally:
        os.close(fd)
    assert path.read_bytes() == data + data[: 2 * ALIGN]


@needs_direct
def test_piece_buffers_are_private_anonymous_memory() -> None:
    """Counted in RssAnon like a bytearray (the benchmarks' heap figure), not as shared memory."""

    def rss(field: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field))

    before = rss("RssShmem:")
    buf = direct_io.aligned_buffer(64 << 20)
    buf[:] = b"\x01" * len(buf)
    assert rss("RssShmem:") - before < 16 << 10  # KiB: the 64 MiB did not land in shared memory
    del buf
