"""Part files: where :class:`~shoal.storage.files.FileStorage` keeps the bytes of an unwanted file (priority 0) that
share a piece with a wanted one, so the unwanted file itself is never created. They live under
``root/.shoal.parts/<key>/<file index>.part`` (sparse: only the shared pieces are written), and when such a file
becomes wanted, what its part file holds is copied into it and the part file removed."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from shoal.storage.layout import Layout
from shoal.storage.span_writer import map_os_error

PARTS_DIR = ".shoal.parts"
NO_FILES: frozenset[int] = (
    frozenset()
)  # shared: each frozenset() is a new 216-byte object (a thousand torrents)
COPY_CHUNK = 1 << 20


def default_parts_key(layout: Layout) -> str:
    """A short name for this torrent's part files, stable across runs (from the file list)."""
    h = hashlib.sha1()
    for f in layout.files:
        h.update("/".join(f.path).encode("utf-8", "surrogateescape") + b"\0" + str(f.length).encode() + b"\0")
    return h.hexdigest()[:16]


def parked_files(layout: Layout, priorities: Sequence[int] | None) -> frozenset[int]:
    """The files kept in part files for these priorities: those at 0 or below (pad files never are)."""
    if priorities is None:
        return NO_FILES
    if len(priorities) != len(layout.files):
        raise ValueError(f"{len(priorities)} file priorities for {len(layout.files)} files")
    return frozenset(
        i for i, (f, p) in enumerate(zip(layout.files, priorities, strict=True)) if p <= 0 and not f.is_pad
    )


def copy_written(src: int, dst: int) -> None:
    """Copy what was written into the (sparse) file ``src`` to the same offsets of ``dst``, skipping holes where the
    file system tells them (``SEEK_DATA``; else everything is copied). Raises OSError."""
    size = os.fstat(src).st_size
    pos = 0
    while pos < size:
        try:
            pos = os.lseek(src, pos, os.SEEK_DATA)
            end = os.lseek(src, pos, os.SEEK_HOLE)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break  # only holes left
            end = size  # no SEEK_DATA support: copy everything
        while pos < end:
            chunk = os.pread(src, min(end - pos, COPY_CHUNK), pos)
            if not chunk:
                break
            written = 0
            while written < len(chunk):
                written += os.pwrite(dst, memoryview(chunk)[written:], pos + written)
            pos += len(chunk)


def move_part_into(part: Path, open_real: Callable[[], int], real: Path) -> None:
    """Copy what part file ``part`` holds into the descriptor ``open_real()`` gives (the real file, closed here),
    then remove the part file; nothing when there is no part file. :class:`StorageError` on failure, with the part
    file kept and a real file this call created removed again (so the part file still holds the bytes)."""
    try:
        src = os.open(part, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise map_os_error(exc, f"open {part}") from exc
    existed = os.path.lexists(real)
    try:
        fd = open_real()
        try:
            copy_written(src, fd)
        except OSError as exc:
            if not existed:
                with contextlib.suppress(OSError):
                    os.unlink(real)
            raise map_os_error(exc, f"move {part} to {real}") from exc
        finally:
            os.close(fd)
    finally:
        os.close(src)
    try:
        os.unlink(part)
    except OSError as exc:
        raise map_os_error(exc, f"remove {part}") from exc
