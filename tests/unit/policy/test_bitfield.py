from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import DisconnectReason, LocalProtocolError, PeerProtocolError
from shoal.policy.bitfield import Bitfield, bitfield_size


def test_wire_layout_high_bit_first() -> None:
    bf = Bitfield.from_string("x  x      x")
    assert bf.to_bytes() == b"\x90\x20"
    assert list(bf) == [0, 3, 10] and bf.count == 3 and len(bf) == 11
    assert Bitfield.from_bytes(b"\x90\x20", 11) == bf
    assert bf.to_string() == "x  x      x"


def test_sizes() -> None:
    assert [bitfield_size(n) for n in (0, 1, 8, 9, 16, 17)] == [0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize(("data", "n"), [(b"\xff", 9), (b"\xff\x80\x00", 9), (b"", 1), (b"\x00", 0)])
def test_wrong_length(data: bytes, n: int) -> None:
    with pytest.raises(PeerProtocolError, match="does not match") as info:
        Bitfield.from_bytes(data, n)
    assert info.value.reason is DisconnectReason.BAD_BITFIELD


@pytest.mark.parametrize(("data", "n"), [(b"\xff\xc0", 9), (b"\x01", 7), (b"\x00\x01", 15)])
def test_spare_bits_set(data: bytes, n: int) -> None:
    with pytest.raises(PeerProtocolError, match="spare bits"):
        Bitfield.from_bytes(data, n)


def test_spare_bits_boundary_ok() -> None:
    assert Bitfield.from_bytes(b"\xff\x80", 9).is_full
    assert Bitfield.from_bytes(b"\xff", 8).is_full


def test_add_discard_count() -> None:
    bf = Bitfield(10)
    assert bf.is_empty and bf.add(9) and not bf.add(9) and bf.count == 1 and 9 in bf
    assert bf.discard(9) and not bf.discard(9) and bf.count == 0
    assert 10 not in bf and -1 not in bf and "x" not in bf
    with pytest.raises(LocalProtocolError):
        bf.add(10)
    with pytest.raises(LocalProtocolError):
        Bitfield(-1)


def test_full_and_clear() -> None:
    bf = Bitfield(13, full=True)
    assert bf.is_full and bf.count == 13 and bf.to_bytes() == b"\xff\xf8"
    bf.clear_all()
    assert bf.is_empty and bf.to_bytes() == b"\x00\x00"
    assert Bitfield(0, full=True).is_full


def test_set_operations() -> None:
    a = Bitfield.from_string("xx  x")
    b = Bitfield.from_string(" x xx")
    assert (a - b).to_string() == "x    "
    assert (a & b).to_string() == " x  x"
    assert (a | b).to_string() == "xx xx"
    assert a.inverted().to_string() == "  xx "
    assert list(a.missing()) == [2, 3]
    assert a.has_any_of(b) and not a.has_any_of(Bitfield.from_string("  xx "))
    with pytest.raises(LocalProtocolError):
        _ = a & Bitfield(6)
    c = a.copy()
    c.add(2)
    assert a != c and a == Bitfield.from_string("xx  x")


@given(st.integers(0, 200).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, max(n - 1, 0))))))
def test_round_trip(case: tuple[int, set[int]]) -> None:
    n, indices = case
    indices = {i for i in indices if i < n}
    bf = Bitfield.from_indices(n, indices)
    assert set(bf) == indices and bf.count == len(indices)
    again = Bitfield.from_bytes(bf.to_bytes(), n)
    assert again == bf and again.count == bf.count
    assert set(bf.missing()) == set(range(n)) - indices
