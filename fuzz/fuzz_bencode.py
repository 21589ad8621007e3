"""Fuzz target: bencode (``shoal.codec.bencode``): decode strict and lenient, decode_prefix, value_end, raw_value.

Only ``BencodeError`` may come out. Properties checked on top:

* a strict decode that succeeds is canonical: ``encode(decode(data)) == data``;
* ``value_end`` agrees with ``decode`` about where the value ends;
* ``raw_value(data, b"info")`` returns a slice of ``data`` that is itself one whole value.

Run: ``.venv/bin/python fuzz/fuzz_bencode.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/bencode``
"""

from __future__ import annotations

from shoal.codec import bencode
from shoal.errors import BencodeError
from shoal.testing.fuzzing import run

MAX_DEPTH = 16


def _strict(data: bytes) -> None:
    try:
        value = bencode.decode(data, max_depth=MAX_DEPTH)
    except BencodeError:
        return
    assert bencode.encode(value) == data, "strict decode accepted a non-canonical encoding"
    assert bencode.value_end(data, max_depth=MAX_DEPTH) == len(data)


def _lenient(data: bytes) -> None:
    try:
        bencode.decode(data, max_depth=MAX_DEPTH, strict=False)
    except BencodeError:
        return
    assert bencode.value_end(data, max_depth=MAX_DEPTH) == len(data)


def _prefix(data: bytes) -> None:
    try:
        _, end = bencode.decode_prefix(data, max_depth=MAX_DEPTH, strict=False)
    except BencodeError:
        return
    assert 0 < end <= len(data)


def _raw(data: bytes) -> None:
    try:
        raw = bencode.raw_value(data, b"info", max_depth=MAX_DEPTH)
    except BencodeError:
        return
    if raw is not None:
        assert raw in data
        assert bencode.value_end(raw, max_depth=MAX_DEPTH) == len(raw)


def TestOneInput(data: bytes) -> None:
    _strict(data)
    _lenient(data)
    _prefix(data)
    _raw(data)


if __name__ == "__main__":
    run(TestOneInput)
