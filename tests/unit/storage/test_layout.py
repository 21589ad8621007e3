"""Layout: piece/block -> file spans, pad files, empty files, priorities."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import MetainfoError
from shoal.storage.layout import Layout, Span
from shoal.types import BlockRef


def test_single_file() -> None:
    lay = Layout.from_files([(("a",), 100, False)], 32, block_size=16)
    assert lay.num_pieces == 4 and lay.total_length == 100
    assert lay.piece_size(3) == 4
    assert lay.blocks_in_piece(0) == 2 and lay.blocks_in_piece(3) == 1
    assert lay.block_ref(3, 0) == BlockRef(3, 0, 4)
    assert lay.spans(1) == [Span(0, 32, 32, False, 0)]
    with pytest.raises(IndexError):
        lay.piece_size(4)
    with pytest.raises(IndexError):
        lay.spans(3, 0, 5)


def test_multi_file_spans_cross_boundaries_and_skip_empty_files() -> None:
    files = [(("a",), 10, False), (("empty",), 0, False), (("b",), 5, False), (("c",), 30, False)]
    lay = Layout.from_files(files, 16, block_size=8)
    assert lay.num_pieces == 3
    assert lay.spans(0) == [Span(0, 0, 10, False, 0), Span(2, 0, 5, False, 10), Span(3, 0, 1, False, 15)]
    assert lay.spans(0, 8, 4) == [Span(0, 8, 2, False, 0), Span(2, 0, 2, False, 2)]
    assert lay.spans(2) == [Span(3, 17, 13, False, 0)]
    assert lay.file_piece_range(1) == range(0)
    assert lay.file_piece_range(3) == range(0, 3)
    assert lay.piece_files(0) == [0, 2, 3]


def test_pad_files_priorities_and_pad_blocks() -> None:
    files = [(("a",), 20, False), ((".pad", "12"), 12, True), (("b",), 40, False), (("c",), 8, False)]
    lay = Layout.from_files(files, 32, block_size=4)
    # piece 0: a + pad; piece 1: b; piece 2: b tail + c
    assert lay.pad_blocks() == [(0, 5), (0, 6), (0, 7)]
    assert lay.piece_priorities([1, 1, 1, 1]) == [1, 1, 1]
    assert lay.piece_priorities([0, 7, 1, 0]) == [0, 1, 1]
    assert lay.piece_priorities([1, 0, 0, 0]) == [1, 0, 0]
    assert lay.piece_priorities([0, 0, 0, 3]) == [0, 0, 3]
    with pytest.raises(ValueError):
        lay.piece_priorities([1])


def test_pad_block_partly_pad_is_not_a_pad_block() -> None:
    lay = Layout.from_files([(("a",), 6, False), (("p",), 10, True)], 16, block_size=4)
    assert lay.pad_blocks() == [(0, 2), (0, 3)]


def test_bad_geometry() -> None:
    with pytest.raises(MetainfoError):
        Layout.from_files([(("a",), 1, False)], 0)
    with pytest.raises(MetainfoError):
        Layout.from_files([(("a",), -1, False)], 16)


@given(st.lists(st.integers(0, 50), min_size=1, max_size=8), st.integers(1, 40))
def test_spans_cover_every_byte_once(lengths: list[int], piece_length: int) -> None:
    lay = Layout.from_files([((str(i),), n, False) for i, n in enumerate(lengths)], piece_length)
    seen = []
    for piece in range(lay.num_pieces):
        pos = 0
        for s in lay.spans(piece):
            assert s.data_offset == pos and s.length > 0
            f = lay.files[s.file_index]
            assert s.file_offset >= 0 and s.file_offset + s.length <= f.length
            seen.extend((s.file_index, s.file_offset + k) for k in range(s.length))
            pos += s.length
        assert pos == lay.piece_size(piece)
    assert seen == [(i, k) for i, n in enumerate(lengths) for k in range(n)]
