"""A canonical bencode *encoder* in plain Python, for one-shot commands where start-up time counts.

``shoal create`` writes one small dictionary and exits. Loading ``bencode2`` (what :mod:`shoal.codec.bencode` uses)
costs about 30 ms here, because its compiled module imports ``dataclasses`` and with it ``inspect``, ``ast`` and
``tokenize``; encoding a torrent's dictionary in Python takes well under a millisecond. The output is the same
bytes as :func:`shoal.codec.bencode.encode` (keys sorted as raw bytes, ``str`` as UTF-8); a test checks that.
"""

from __future__ import annotations

from shoal.errors import BencodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Encoded(bytes):
    """Bytes that are already bencoded: :func:`encode` writes them as they are (e.g. an info dictionary encoded
    once for its info-hash and then placed in the torrent)."""


def encode(value: Any) -> bytes:
    """``value`` (int, bytes, str, list, tuple, dict with bytes or str keys) as canonical bencode."""
    out: list[bytes] = []
    _put(value, out)
    return b"".join(out)


def _put(value: Any, out: list[bytes]) -> None:
    if type(value) is Encoded:
        out.append(value)
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out += (b"%d:" % len(raw), raw)
    elif isinstance(value, str):
        raw = value.encode()
        out += (b"%d:" % len(raw), raw)
    elif isinstance(value, int):  # bool too, as 0 and 1 (as bencode2 does)
        out.append(b"i%de" % value)
    elif isinstance(value, list | tuple):
        out.append(b"l")
        for item in value:
            _put(item, out)
        out.append(b"e")
    elif isinstance(value, dict):
        items: list[tuple[bytes, Any]] = []
        for k, v in value.items():
            if isinstance(k, str):
                k = k.encode()
            elif not isinstance(k, bytes):
                raise BencodeError(f"cannot bencode value: key {k!r} is not bytes or str")
            items.append((k, v))
        items.sort(key=lambda kv: kv[0])
        out.append(b"d")
        last = None
        for k, v in items:
            if k == last:
                raise BencodeError(f"cannot bencode value: duplicate key {k!r}")
            last = k
            out += (b"%d:" % len(k), k)
            _put(v, out)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode value: {type(value).__name__} {value!r:.40}")
