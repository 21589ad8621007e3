"""The upload read cache: whole pieces, LRU by bytes, and evicted buffers reused only once no view holds them."""

from __future__ import annotations

import collections
from types import SimpleNamespace
from typing import Any

from shoal.engine.transfer import Transfer, unshared

PIECE = 64 * 1024


class Picker:
    piece_length = PIECE

    def piece_size(self, piece: int) -> int:
        return PIECE if piece < 9 else 1000  # piece 9: a short last piece


class PageCacheStorage:
    """Every piece is "in the page cache": filled with its index, into the buffer offered when there is one."""

    def __init__(self) -> None:
        self.offered: list[bytearray | None] = []

    def read_piece_nowait(self, piece: int, into: bytearray | None = None) -> bytearray:
        self.offered.append(into)
        size = Picker().piece_size(piece)
        buf = into if into is not None and len(into) == size else bytearray(size)
        buf[:] = bytes([piece]) * size
        return buf


def make(storage: Any, cache: int = 2 * PIECE) -> Transfer:
    task = SimpleNamespace(counters=collections.Counter())
    tr = Transfer(task, Picker(), storage, lambda i: b"", read_cache_bytes=cache, read_buffer_spares=1)  # type: ignore[arg-type]
    return tr


def test_unshared_sees_live_views() -> None:
    buf = bytearray(b"abc")
    view = memoryview(buf)[1:]
    assert not unshared(buf)
    view.release()
    assert unshared(buf) and buf == b"abc"
    assert unshared(bytearray())


async def test_evicted_buffers_are_reused_only_when_no_view_is_left() -> None:
    storage = PageCacheStorage()
    tr = make(storage)
    a = tr.read_piece(0).result()
    tr.read_piece(1).result()
    view = memoryview(a)[:16]  # a block of piece 0 still queued for sending
    tr.read_piece(2).result()  # evicts piece 0 (cache of two pieces): its buffer becomes a spare
    assert tr.cached_piece(0) is None
    tr.read_piece(3).result()  # piece 0's buffer is still viewed: not offered, a new one is made
    assert storage.offered[-1] is None  # (and piece 1's, evicted now, is dropped: one spare at most)
    assert bytes(view) == bytes([0]) * 16  # the queued block still holds piece 0's bytes
    view.release()
    d = tr.read_piece(4).result()
    assert d is a and bytes(d[:4]) == bytes([4]) * 4  # now reused, and filled with piece 4
    assert tr.read_piece(9).result() == bytes([9]) * 1000  # short pieces get their own buffer


async def test_the_cache_holds_at_least_two_pieces() -> None:
    assert make(PageCacheStorage(), cache=1).cache_bytes == 2 * PIECE
