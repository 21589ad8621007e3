from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.codec import bencode
from shoal.errors import BencodeError

values = st.recursive(
    st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.binary(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(values)
def test_round_trip(value: object) -> None:
    data = bencode.encode(value)
    assert bencode.decode(data) == value
    assert bencode.value_end(data) == len(data)


@given(st.binary(max_size=200))
def test_garbage_only_raises_bencode_error(data: bytes) -> None:
    try:
        bencode.decode(data)
    except BencodeError:
        pass


def test_unsorted_keys_need_lenient_mode() -> None:
    data = b"d1:bi1e1:ai2ee"
    with pytest.raises(BencodeError):
        bencode.decode(data)
    assert bencode.decode(data, strict=False) == {b"b": 1, b"a": 2}


def test_raw_value_keeps_original_bytes() -> None:
    data = b"d8:announce3:xyz4:infod1:bi1e1:ai2ee1:zi0ee"
    assert bencode.raw_value(data, b"info") == b"d1:bi1e1:ai2ee"
    assert bencode.raw_value(data, b"missing") is None


def test_decode_prefix_returns_offset_of_trailing_payload() -> None:
    assert bencode.decode_prefix(b"d8:msg_typei1eeRAW") == ({b"msg_type": 1}, 15)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"i1",
        b"ie",
        b"i01e",
        b"i-0e",
        b"3:ab",
        b"d1:ae",
        b"di1ei2ee",
        b"x",
        b"e",
        b"le1",
        b"d1:a1:b1:a1:be",
    ],
)
def test_malformed(bad: bytes) -> None:
    with pytest.raises(BencodeError):
        bencode.decode(bad, strict=False)


def test_depth_limit_one_past() -> None:
    ok = b"l" * 64 + b"e" * 64
    assert bencode.decode(ok, max_depth=64) is not None
    with pytest.raises(BencodeError, match="max depth 64"):
        bencode.decode(b"l" + ok + b"e", max_depth=64)


def test_size_limit_one_past() -> None:
    data = b"5:hello"
    assert bencode.decode(data, max_size=7) == b"hello"
    with pytest.raises(BencodeError, match="exceeds max size 6"):
        bencode.decode(data, max_size=6)


def test_token_limit_one_past() -> None:
    data = b"l" + b"le" * 9 + b"e"  # ten values: the outer list and nine empty ones
    assert len(bencode.decode(data, max_tokens=10)) == 9
    with pytest.raises(BencodeError, match="max_tokens 9"):
        bencode.decode(data, max_tokens=9)


@given(values)
def test_plain_encoder_writes_the_same_bytes(value: object) -> None:
    from shoal.codec import bencode_plain

    assert bencode_plain.encode(value) == bencode.encode(value)


def test_plain_encoder_text_keys_raw_values_and_refusals() -> None:
    from shoal.codec import bencode_plain

    value = {"b": "\u00e9", b"a": [True, (1, 2)]}
    assert bencode_plain.encode(value) == bencode.encode(value)
    inner = bencode_plain.Encoded(bencode.encode({b"x": 1}))
    assert bencode_plain.encode({b"info": inner}) == bencode.encode({b"info": {b"x": 1}})
    with pytest.raises(BencodeError, match="duplicate"):
        bencode_plain.encode({b"k": 1, "k": 2})
    with pytest.raises(BencodeError, match="key"):
        bencode_plain.encode({1: 2})
    with pytest.raises(BencodeError, match="float"):
        bencode_plain.encode(1.5)
