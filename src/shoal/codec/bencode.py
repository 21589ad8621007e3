"""Bencode (BEP 3) through the ``bencode2`` library, with Shoal's limits and error type.

Why bencode2: it is a compiled manylinux wheel (no compiler needed), strict about the format (no leading zeros,
sorted unique keys, no trailing junk), typed, caps nesting depth itself, and decoded large torrents slightly faster
than fastbencode here. Two things neither library offers are done in this module in plain Python:

* ``value_end`` finds where one bencoded value ends without decoding it. It gives the *original bytes* of a
  torrent's info dictionary (the info-hash is computed over them, canonical or not), and splits a ut_metadata
  message into its dictionary and the raw payload that follows it.
* ``decode(..., strict=False)`` accepts dictionaries whose keys are unsorted (real torrents made by old tools
  have them) by decoding with a small lenient reader.

Every failure is a :class:`shoal.errors.BencodeError`; nothing else escapes.
"""

from __future__ import annotations

from typing import Any

import bencode2

from shoal.errors import BencodeError

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_TOKENS = 3_000_000  # values (ints, strings, lists, dicts) in one document; libtorrent's limit
MAX_INT_DIGITS = 64  # integers longer than this are refused (libtorrent: 64-bit only)

Bencodable = int | bytes | str | list[Any] | dict[Any, Any]


def encode(value: Any) -> bytes:
    """Encode ``value`` canonically (keys sorted as raw bytes). ``str`` is encoded as UTF-8."""
    try:
        return bytes(bencode2.bencode(value))
    except (TypeError, ValueError, bencode2.BencodeEncodeError) as exc:
        raise BencodeError(f"cannot bencode value: {exc}") from None


def decode(
    data: bytes | bytearray | memoryview,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    strict: bool = True,
) -> Any:
    """Decode exactly one bencoded value that fills ``data``.

    Byte strings stay ``bytes``; dictionary keys are ``bytes``. With ``strict=False`` dictionaries with unsorted
    keys are accepted (duplicate keys never are).
    """
    raw = bytes(data)
    if len(raw) > max_size:
        raise BencodeError(f"bencoded data of {len(raw)} bytes exceeds max size {max_size}")
    if not raw:
        raise BencodeError("empty bencoded data")
    end = value_end(raw, 0, max_depth=max_depth, max_tokens=max_tokens)
    if end != len(raw):
        raise BencodeError(f"trailing data after bencoded value at offset {end}")
    try:
        return bencode2.bdecode(raw)
    except bencode2.BencodeDecodeError as exc:
        if strict or "not sorted" not in str(exc):
            raise BencodeError(f"invalid bencode: {exc}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # defensive: the library is C
        raise BencodeError(f"invalid bencode: {exc}") from None
    value, _ = _LenientReader(raw, max_depth).read(0, 0)
    return value


def decode_prefix(
    data: bytes | bytearray | memoryview, *, max_depth: int = DEFAULT_MAX_DEPTH, strict: bool = True
) -> tuple[Any, int]:
    """Decode the one value at the start of ``data``; return it and the offset just past it."""
    raw = bytes(data)
    end = value_end(raw, 0, max_depth=max_depth)
    return decode(raw[:end], max_depth=max_depth, strict=strict), end


def value_end(
    data: bytes, start: int = 0, *, max_depth: int = DEFAULT_MAX_DEPTH, max_tokens: int = DEFAULT_MAX_TOKENS
) -> int:
    """Return the offset just past the bencoded value that starts at ``start``, checking its structure.

    Integers and string lengths are checked for form; dictionary key order is not (see ``decode``).
    """
    n = len(data)
    pos = start
    # one [is_dict, expecting_key] pair per open container
    stack: list[list[bool]] = []
    tokens = 0
    while True:
        if pos >= n:
            raise BencodeError(f"truncated bencode at offset {pos}")
        c = data[pos]
        if c == 0x65:  # 'e'
            if not stack:
                raise BencodeError(f"unexpected 'e' at offset {pos}")
            if stack[-1][0] and not stack[-1][1]:
                raise BencodeError(f"dictionary key without value at offset {pos}")
            stack.pop()
            pos += 1
        elif (tokens := tokens + 1) > max_tokens:
            raise BencodeError(f"bencoded data has more than max_tokens {max_tokens} values")
        elif stack and stack[-1][0] and stack[-1][1] and not (0x30 <= c <= 0x39):
            raise BencodeError(f"dictionary key is not a byte string at offset {pos}")
        elif c == 0x69:  # 'i'
            close = data.find(b"e", pos + 1, pos + 2 + MAX_INT_DIGITS)
            if close < 0:
                raise BencodeError(f"unterminated or oversized integer at offset {pos}")
            _check_int(data[pos + 1 : close], pos)
            pos = close + 1
        elif 0x30 <= c <= 0x39:
            colon = data.find(b":", pos, pos + 21)
            if colon < 0:
                raise BencodeError(f"bad string length at offset {pos}")
            digits = data[pos:colon]
            if not digits.isdigit() or (len(digits) > 1 and digits[0] == 0x30):
                raise BencodeError(f"bad string length at offset {pos}")
            length = int(digits)
            pos = colon + 1 + length
            if pos > n:
                raise BencodeError(f"string of {length} bytes runs past the end at offset {colon + 1}")
        elif c == 0x6C or c == 0x64:  # 'l' or 'd'
            if len(stack) >= max_depth:
                raise BencodeError(f"nesting depth exceeds max depth {max_depth}")
            stack.append([c == 0x64, c == 0x64])
            pos += 1
            continue
        else:
            raise BencodeError(f"invalid byte {c:#04x} at offset {pos}")
        # a whole value ended at pos
        if not stack:
            return pos
        if stack[-1][0]:
            stack[-1][1] = not stack[-1][1]


def _check_int(body: bytes, pos: int) -> int:
    if not body or body == b"-" or body == b"-0":
        raise BencodeError(f"invalid integer at offset {pos}")
    digits = body[1:] if body[:1] == b"-" else body
    if not digits.isdigit() or (len(digits) > 1 and digits[0] == 0x30):
        raise BencodeError(f"invalid integer at offset {pos}")
    return int(body)


def raw_value(data: bytes, key: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes | None:
    """Return the original bytes of ``key``'s value in the top-level dictionary of ``data``, or None."""
    if not data.startswith(b"d"):
        raise BencodeError("top-level value is not a dictionary")
    pos = 1
    n = len(data)
    while pos < n and data[pos] != 0x65:
        if not 0x30 <= data[pos] <= 0x39:
            raise BencodeError(f"dictionary key is not a byte string at offset {pos}")
        key_end = value_end(data, pos, max_depth=1)
        colon = data.index(b":", pos)
        this_key = data[colon + 1 : key_end]
        val_end = value_end(data, key_end, max_depth=max_depth - 1)
        if this_key == key:
            return data[key_end:val_end]
        pos = val_end
    if pos >= n:
        raise BencodeError(f"truncated bencode at offset {pos}")
    return None


class _LenientReader:
    """A small recursive reader that accepts unsorted dictionary keys (depth is bounded by ``max_depth``)."""

    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.max_depth = max_depth

    def read(self, pos: int, depth: int) -> tuple[Any, int]:
        data = self.data
        c = data[pos]
        if c == 0x69:
            close = data.index(b"e", pos)
            return _check_int(data[pos + 1 : close], pos), close + 1
        if 0x30 <= c <= 0x39:
            colon = data.index(b":", pos)
            length = int(data[pos:colon])
            return data[colon + 1 : colon + 1 + length], colon + 1 + length
        if depth >= self.max_depth:
            raise BencodeError(f"nesting depth exceeds max depth {self.max_depth}")
        pos += 1
        if c == 0x6C:
            items: list[Any] = []
            while data[pos] != 0x65:
                item, pos = self.read(pos, depth + 1)
                items.append(item)
            return items, pos + 1
        result: dict[bytes, Any] = {}
        while data[pos] != 0x65:
            key, pos = self.read(pos, depth + 1)
            if key in result:
                raise BencodeError(f"duplicate dictionary key {key!r}")
            result[key], pos = self.read(pos, depth + 1)
        return result, pos + 1
