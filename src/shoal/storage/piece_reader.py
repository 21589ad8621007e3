"""A hash worker's way into the piece space: the files laid end to end (pads as zeros), read into a buffer or
shown in place from a read-only memory map (:class:`shoal.storage.hasher.Reader`).

``shoal create`` reads the files it scanned; ``shoal check`` and ``shoal seed`` read a torrent's files through
:meth:`shoal.storage.files.FileStorage.open_for_reading` (the same path checks as every other read: no symlink
followed, nothing outside the folder). Which file a segment is and how it is opened is the caller's: a segment
names a file by number, and ``open_file(number)`` gives a descriptor.

Maps are made a window of :data:`MAP_WINDOW` at a time, only by forked workers (:mod:`shoal.storage.hash_fork`):
a file cut short under a map kills the worker that touches the lost page with SIGBUS, never the engine.
"""

from __future__ import annotations

import bisect
import mmap
import os
from collections.abc import Callable, Sequence

from shoal.errors import ShoalError, StorageError
from shoal.storage import hasher

MAP_WINDOW = (
    4 << 20
)  # a worker maps this much of a file at a time (the pages it touched leave its RSS with it)

OpenFile = Callable[[int], int]


class Segment:
    """File number ``file`` (None: a pad, read as zeros) at ``offset`` in the piece space, ``length`` bytes."""

    __slots__ = ("file", "length", "offset")

    def __init__(self, offset: int, length: int, file: int | None) -> None:
        self.offset = offset
        self.length = length
        self.file = file


def open_reader(segments: Sequence[Segment], open_file: OpenFile, names: Sequence[str]) -> hasher.Reader:
    """A :class:`~shoal.storage.hasher.Reader` over ``segments`` (sorted, non-empty, covering the piece space);
    ``names[file]`` is what an error message calls a file."""
    reader = SegmentReader(segments, open_file, names)
    return hasher.Reader(reader.read_into, reader.close, reader.view_at)


class SegmentReader:
    """One worker's reads of the piece space: ``os.preadv`` straight into its buffer, or a view of a map. It
    keeps the last file it read open (a run rarely leaves its file)."""

    def __init__(self, segments: Sequence[Segment], open_file: OpenFile, names: Sequence[str]) -> None:
        self.segments = segments
        self.starts = [seg.offset for seg in segments]
        self.open_file = open_file
        self.names = names
        self.file: int | None = None
        self.fd = -1
        self._map: mmap.mmap | None = None
        self._map_view = memoryview(b"")
        self._map_at = -1  # piece-space offset of the map's first byte

    def close(self) -> None:
        self._unmap()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            self.file = None

    def _fd_for(self, file: int) -> int:
        if file != self.file:
            self.close()
            self.fd = self.open_file(file)
            self.file = file
            if hasattr(os, "posix_fadvise"):  # a larger read-ahead when the data is not in the page cache
                os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        return self.fd

    def view_at(self, offset: int, length: int) -> memoryview | None:
        """The piece-space bytes ``[offset, offset + length)`` in place, from a read-only map of a window of their
        file; None when they are not all in one real file (pads, a piece across files: read instead)."""
        at = offset - self._map_at
        if self._map is not None and at >= 0 and at + length <= len(self._map_view):
            return self._map_view[at : at + length]
        i = bisect.bisect_right(self.starts, offset) - 1
        seg = self.segments[i] if i >= 0 else None
        if seg is None or seg.file is None or offset + length > seg.offset + seg.length or length == 0:
            return None
        self._unmap()
        start = (offset - seg.offset) // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
        size = min(seg.length - start, max(MAP_WINDOW, offset - seg.offset + length - start))
        try:
            fd = self._fd_for(seg.file)
            if os.fstat(fd).st_size < start + size:
                raise StorageError(f"file {self.names[seg.file]!r} shrank while hashing")
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ, offset=start)
        except OSError as exc:
            raise StorageError(f"cannot map data: {exc.strerror or exc}") from None
        if hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_SEQUENTIAL)
        self._map_view = memoryview(self._map)
        self._map_at = seg.offset + start
        return self.view_at(offset, length)

    def _unmap(self) -> None:
        if self._map is None:
            return
        self._map_view.release()
        self._map_view = memoryview(b"")
        try:
            self._map.close()
        except BufferError:  # a caller still holds a view: the map goes when that view does
            pass
        self._map = None
        self._map_at = -1

    def read_into(self, view: memoryview, offset: int) -> None:
        end = offset + len(view)
        i = bisect.bisect_right(self.starts, offset) - 1
        pos = offset
        try:
            while pos < end:
                seg = self.segments[i]
                stop = min(end, seg.offset + seg.length)
                part = view[pos - offset : stop - offset]
                if seg.file is None:
                    part[:] = bytes(len(part))
                else:
                    fd = self._fd_for(seg.file)
                    got, at = 0, pos - seg.offset
                    while got < len(part):
                        n = os.preadv(fd, [part[got:]], at + got)
                        if n == 0:
                            raise StorageError(f"file {self.names[seg.file]!r} shrank while hashing")
                        got += n
                pos = stop
                i += 1
        except OSError as exc:
            raise StorageError(f"cannot read data: {exc.strerror or exc}") from None
        except IndexError:  # the plan covers the whole piece space; a gap is a bug
            raise ShoalError(f"internal error: no file at piece-space offset {pos}") from None
