"""Direct writes: a verified piece goes from memory to the disk without passing through the page cache (Linux
``O_DIRECT``), where its span of the file is aligned; the rest is written as before (buffered, with write-behind).

Why: a download writes every byte once, after hashing it from its own buffer. A buffered ``pwrite`` copies it into
page-cache pages (new memory for each GiB, which on the VM of docs/PERFORMANCE.md the host has to fault in again)
and writeback then has to be started; ``O_DIRECT`` hands the buffer to the device instead. Measured there, 1 GiB
into a new file from one thread (3 alternated runs each): buffered 128 KiB writes with write-behind 0.34-0.44 s of
system time, ``O_DIRECT`` 1 MiB writes from an aligned buffer 0.10-0.15 s (``O_DIRECT`` 128 KiB writes: 0.44-0.46 s,
hence 1 MiB). In a whole download the buffered path was ~0.9 s of the downloader's CPU (perf: ``pwrite`` 0.71 s,
``fadvise`` 0.21 s).

How:

* ``O_DIRECT`` wants the buffer, the file offset and the length aligned to the device's block; :data:`ALIGN`
  (4 KiB) is enough for every common device. A download's piece buffers come from :func:`aligned_buffer` (an
  anonymous memory map: page-aligned), so a span whose place in the piece is aligned too is written straight from
  the piece. Any other buffer (a ``bytearray``'s bytes start 16 bytes into its allocation) is copied a chunk at a
  time into a bounce buffer of the worker thread's own and written from there; that copy was 1 GiB of memmove
  per GiB downloaded, ~6 % of a download's CPU in perf on the 2-core Xeon VM of docs/PERFORMANCE.md.
* Only the aligned middle of a span is written direct: the bytes before its first block boundary (a piece that
  starts mid-block in a file of a multi-file torrent) and after its last (a file's end) are written buffered.
  Those never share a page with a direct write of the same span; where a neighbouring piece's direct write
  meets a buffered page, the kernel writes that page back first.
* The descriptor for direct writes is opened again from the storage's own descriptor through ``/proc/self/fd``:
  the same file, with no second path lookup. A filesystem that refuses ``O_DIRECT`` (``EINVAL`` on open or on a
  write: tmpfs on older kernels, some FUSE filesystems) or a system without ``/proc`` turns it off for that file;
  the write is then done buffered. Reads are unchanged (the kernel keeps cached pages and direct writes coherent).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import threading

O_DIRECT = getattr(os, "O_DIRECT", 0)
ALIGN = 4096
CHUNK = 1 << 20  # bytes per direct pwrite (and the size of a thread's bounce buffer)

_local = threading.local()


def direct_io_works() -> bool:
    """Whether this platform has ``O_DIRECT`` (Linux; without ``/proc``, each file falls back on its first write)."""
    return bool(O_DIRECT) and sys.platform.startswith("linux")


def aligned_part(file_offset: int, length: int) -> tuple[int, int]:
    """``(head, n)``: of a span of ``length`` bytes at ``file_offset``, the first ``head`` bytes (up to the next
    :data:`ALIGN` boundary) are written buffered, the next ``n`` (whole blocks) direct, the rest buffered."""
    head = min(length, -file_offset % ALIGN)
    n = (length - head) // ALIGN * ALIGN
    return head, n


def reopen_direct(fd: int) -> int:
    """A new descriptor of the file behind ``fd``, for direct writes; ``OSError`` where that is refused."""
    return os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | O_DIRECT | getattr(os, "O_CLOEXEC", 0))


def bounce() -> memoryview:
    """This thread's page-aligned buffer of :data:`CHUNK` bytes (made on first use, kept for the thread's life)."""
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        _local.map = aligned_buffer(CHUNK)
        view = _local.view = memoryview(_local.map)
    return view


ALIGNED_MIN = 64 * 1024  # smaller buffers stay bytearrays: a memory map each would cost more than the copy


_PRIVATE = getattr(mmap, "MAP_PRIVATE", None)
_ANONYMOUS = getattr(mmap, "MAP_ANONYMOUS", None)


def aligned_buffer(length: int) -> bytearray | mmap.mmap:
    """A zeroed, writable buffer of ``length`` bytes for a piece; page-aligned (an anonymous memory map) when it is
    at least :data:`ALIGNED_MIN` long, so :func:`write_direct` writes it without a copy. The map is private where
    the platform says so (POSIX): process memory like a ``bytearray``'s, counted as anonymous memory (RssAnon),
    not shared with a forked child."""
    if length < ALIGNED_MIN:
        return bytearray(length)
    if _PRIVATE is not None and _ANONYMOUS is not None:
        return mmap.mmap(-1, length, flags=_PRIVATE | _ANONYMOUS)
    return mmap.mmap(-1, length)


def is_aligned(data: memoryview) -> bool:
    """Whether ``data`` starts at an :data:`ALIGN` boundary in memory (a read-only buffer counts as not)."""
    if data.readonly or not data.c_contiguous:
        return False
    try:
        address = ctypes.addressof(ctypes.c_char.from_buffer(data))
    except (TypeError, ValueError):  # empty, or not a buffer ctypes takes
        return False
    return address % ALIGN == 0


def write_direct(fd: int, data: memoryview, file_offset: int) -> int:
    """Write ``data`` (a multiple of :data:`ALIGN` long) at ``file_offset`` through ``fd`` (opened with
    ``O_DIRECT``); return the bytes written, which is fewer only after a short write that left the rest
    unaligned. ``OSError`` is the caller's (``EINVAL``: this file takes no direct writes). Aligned memory is
    written as it is; anything else goes through the thread's bounce buffer."""
    done = 0
    total = len(data)
    buf = None if is_aligned(data) else bounce()
    while done < total:
        n = min(CHUNK, total - done)
        chunk = data[done : done + n]
        if buf is not None:
            buf[:n] = chunk
            chunk = buf[:n]
        w = os.pwrite(fd, chunk, file_offset + done)
        if w <= 0:
            break
        done += w
        if w % ALIGN:
            break
    return done


def write_direct_run(fd: int, views: list[memoryview], file_offset: int) -> int:
    """Write ``views`` (each aligned in memory and a multiple of :data:`ALIGN` long) one after the other at
    ``file_offset`` through ``fd`` (opened with ``O_DIRECT``) with ``pwritev``, as few calls as the kernel takes;
    return the bytes written, fewer only after a short write that left the rest unaligned. ``OSError`` is the
    caller's, as for :func:`write_direct`."""
    done = 0
    rest = list(views)
    while rest:
        w = os.pwritev(fd, rest, file_offset + done)
        if w <= 0:
            break
        done += w
        while rest and w >= len(rest[0]):
            w -= len(rest[0])
            rest.pop(0)
        if w:
            if w % ALIGN:
                break
            rest[0] = rest[0][w:]
    return done
