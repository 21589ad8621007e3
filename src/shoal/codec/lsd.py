"""Local Service Discovery messages (BEP 14): an HTTP-like ``BT-SEARCH`` datagram sent to a multicast group.

::

    BT-SEARCH * HTTP/1.1\\r\\n
    Host: 239.192.152.143:6771\\r\\n
    Port: 6881\\r\\n
    Infohash: 0123456789abcdef0123456789abcdef01234567\\r\\n    (one or more)
    cookie: 8a1f0c2b\\r\\n                                    (optional: lets a sender ignore its own echo)
    \\r\\n
    \\r\\n

Header names are case-insensitive. :func:`decode_announce` takes datagrams from anyone on the LAN: it bounds
the size and the number of info-hashes and raises :class:`shoal.errors.RemoteProtocolError` for anything else.
"""

from __future__ import annotations

import re

from shoal.errors import LocalProtocolError, RemoteProtocolError
from shoal.records import record

LSD_GROUP4 = "239.192.152.143"
LSD_GROUP6 = "ff15::efc0:988f"
LSD_PORT = 6771
MAX_DATAGRAM = 1400  # BEP 14 keeps announces within one unfragmented datagram
_HEX40 = re.compile(rb"[0-9a-fA-F]{40}")


@record
class LsdAnnounce:
    port: int
    info_hashes: tuple[bytes, ...]
    cookie: bytes | None = None


def encode_announce(
    info_hashes: list[bytes] | tuple[bytes, ...],
    port: int,
    *,
    v6: bool = False,
    cookie: bytes | None = None,
    max_size: int = MAX_DATAGRAM,
) -> list[bytes]:
    """One or more datagrams (each within ``max_size``) announcing ``info_hashes`` on ``port``."""
    if not 0 < port < 65536:
        raise LocalProtocolError(f"port {port} out of range 1..65535")
    host = f"[{LSD_GROUP6}]:{LSD_PORT}" if v6 else f"{LSD_GROUP4}:{LSD_PORT}"
    head = f"BT-SEARCH * HTTP/1.1\r\nHost: {host}\r\nPort: {port}\r\n".encode()
    tail = (b"cookie: " + cookie + b"\r\n" if cookie else b"") + b"\r\n\r\n"
    out: list[bytes] = []
    lines: list[bytes] = []
    for info_hash in info_hashes:
        if len(info_hash) != 20:
            raise LocalProtocolError(f"info-hash of {len(info_hash)} bytes is not 20 bytes")
        line = b"Infohash: " + info_hash.hex().encode() + b"\r\n"
        if lines and len(head) + sum(map(len, lines)) + len(line) + len(tail) > max_size:
            out.append(head + b"".join(lines) + tail)
            lines = []
        lines.append(line)
    if lines:
        out.append(head + b"".join(lines) + tail)
    return out


def decode_announce(data: bytes, *, max_size: int = MAX_DATAGRAM, max_infohashes: int = 32) -> LsdAnnounce:
    """Parse one BT-SEARCH datagram."""
    if len(data) > max_size:
        raise RemoteProtocolError(f"lsd datagram of {len(data)} bytes exceeds max size {max_size}")
    lines = data.split(b"\r\n")
    if not lines or lines[0].strip() != b"BT-SEARCH * HTTP/1.1":
        raise RemoteProtocolError("lsd datagram does not start with 'BT-SEARCH * HTTP/1.1'")
    port: int | None = None
    cookie: bytes | None = None
    hashes: list[bytes] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise RemoteProtocolError("lsd header line without ':'")
        key, value = name.strip().lower(), value.strip()
        if key == b"port":
            if not value.isdigit() or len(value) > 5 or not 0 < int(value) < 65536:
                raise RemoteProtocolError(f"lsd port {value[:16]!r} out of range 1..65535")
            port = int(value)
        elif key == b"infohash":
            if not _HEX40.fullmatch(value):
                raise RemoteProtocolError(f"lsd infohash {value[:48]!r} is not 40 hex digits")
            if len(hashes) >= max_infohashes:
                raise RemoteProtocolError(f"lsd datagram carries more than {max_infohashes} info-hashes")
            info_hash = bytes.fromhex(value.decode())
            if info_hash not in hashes:
                hashes.append(info_hash)
        elif key == b"cookie":
            cookie = value[:64]
    if port is None:
        raise RemoteProtocolError("lsd datagram without a Port header")
    if not hashes:
        raise RemoteProtocolError("lsd datagram without an Infohash header")
    return LsdAnnounce(port, tuple(hashes), cookie)
