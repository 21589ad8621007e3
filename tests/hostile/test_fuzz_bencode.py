"""Hostile bencode (cases 1-5, 9): only BencodeError comes out, and memory stays bounded for big inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import HOSTILE, mutate, peak_memory
from shoal.codec import bencode
from shoal.errors import BencodeError

values = st.recursive(
    st.integers(min_value=-(2**63), max_value=2**64) | st.binary(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.binary(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


def _all_readers(data: bytes) -> None:
    for strict in (True, False):
        try:
            value = bencode.decode(data, strict=strict, max_depth=32)
        except BencodeError:
            continue
        if strict:
            assert bencode.encode(value) == data  # strict means canonical
    for fn in (
        lambda: bencode.decode_prefix(data, strict=False),
        lambda: bencode.value_end(data),
        lambda: bencode.raw_value(data, b"info"),
    ):
        try:
            fn()
        except BencodeError:
            pass


@HOSTILE
@given(st.binary(max_size=512))
def test_random_bytes_only_bencode_error(data: bytes) -> None:
    _all_readers(data)


@HOSTILE
@given(values, st.data())
def test_mutated_valid_bencode_only_bencode_error(value: object, data: st.DataObject) -> None:
    _all_readers(mutate(bencode.encode(value), data.draw))


@HOSTILE
@given(values, st.data())
def test_mutated_torrent_shaped_dict_raw_value(value: object, data: st.DataObject) -> None:
    raw = bencode.encode({b"announce": b"http://t/a", b"info": value})
    assert bencode.raw_value(raw, b"info") == bencode.encode(value)
    _all_readers(mutate(raw, data.draw))


BIG_HOSTILE = {
    # case 1: deep nesting, a million levels, also unterminated
    "deep_list": b"l" * 100_000 + b"e" * 100_000,
    "deep_dict_value": b"d1:a" * 100_000 + b"i0e" + b"e" * 100_000,
    "deep_unterminated": b"l" * 1_000_000,
    # case 2: length prefixes that must not be allocated
    "len_2_64": b"18446744073709551615:foobar",
    "len_99999999999": b"99999999999:x",
    "len_negative": b"-1:",
    "len_leading_zero": b"06:foobar",
    "len_truncated": b"5:ab",
    "len_20_digits_in_list": b"l" + b"99999999999999999999:" + b"e",
    # case 3: integers
    "int_5000_digits": b"i" + b"9" * 5000 + b"e",
    "int_million_digits": b"i" + b"1" * 1_000_000 + b"e",
    "int_unterminated_huge": b"i" + b"1" * 1_000_000,
    # 4 MB string claiming one byte more than there is
    "string_one_short": b"4194305:" + b"x" * 4_194_304,
}


@pytest.mark.parametrize("name", sorted(BIG_HOSTILE))
def test_big_hostile_input_is_rejected_with_bounded_memory(name: str) -> None:
    data = BIG_HOSTILE[name]
    with pytest.raises(BencodeError):
        bencode.decode(data)
    with pytest.raises(BencodeError):
        bencode.decode(data, strict=False)
    # no allocation proportional to a declared size: at most a few copies of the input itself
    assert peak_memory(lambda: bencode.decode(data, strict=False)) < 4 * len(data) + 1_000_000


def test_fuzz_finding_raw_value_with_non_string_key() -> None:
    """atheris found ``raw_value(b"dlee", ...)`` raising ValueError from ``bytes.index`` (fixed in bencode.py)."""
    for data in (b"dlee", b"dli1ee1:ai0ee", b"di1e1:ae", b"d", b"d1:ai0e"):
        with pytest.raises(BencodeError):
            bencode.raw_value(data, b"info")


def test_token_bomb_over_the_cap_is_refused_before_any_value_is_built() -> None:
    """Case 5: a document of tiny values (two bytes per empty list, ~30x that in Python objects) is counted by the
    structure scan first; over ``max_tokens`` it is refused with no decoded value ever built."""
    data = b"l" + b"le" * 200_000 + b"e"
    with pytest.raises(BencodeError, match="max_tokens"):
        bencode.decode(data, max_tokens=100_000)
    assert peak_memory(lambda: bencode.decode(data, max_tokens=100_000, strict=False)) < len(data) + 1_000_000


def test_token_bomb_under_the_cap_costs_bounded_memory_per_value() -> None:
    """Under the cap, a decoded value costs a bounded number of bytes, so the default cap (libtorrent's 3,000,000)
    bounds the worst document: at most ``DEFAULT_MAX_TOKENS`` times this, ~200 MB, whatever its byte size."""
    tokens = 200_000
    data = b"l" + b"le" * tokens + b"e"
    assert len(bencode.decode(data)) == tokens
    assert peak_memory(lambda: bencode.decode(data)) < 72 * tokens
