"""Compact peer and node formats: BEP 23 (IPv4 peers), BEP 7 (IPv6 peers), BEP 5 and BEP 32 (DHT nodes).

=========================  ===========================================  ======
format                     layout                                       bytes
=========================  ===========================================  ======
compact IPv4 peer          4-byte address, 2-byte big-endian port       6
compact IPv6 peer          16-byte address, 2-byte big-endian port      18
compact IPv4 node          20-byte node id, compact IPv4 peer           26
compact IPv6 node          20-byte node id, compact IPv6 peer           38
=========================  ===========================================  ======

Decoders take bytes from strangers (trackers, DHT nodes, PEX): a length that is not a multiple of the entry size
raises :class:`shoal.errors.RemoteProtocolError` (callers re-raise it as their own ``TrackerError`` or
``KrpcError``), unless ``strict=False``, which drops the trailing partial entry. Encoders take our own values: an
address of the wrong family or a port out of range is a :class:`shoal.errors.LocalProtocolError`.

Entries with port 0 are returned as they are; whether to use them is the caller's decision.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from typing import NamedTuple

from shoal.errors import LocalProtocolError, RemoteProtocolError
from shoal.types import PeerAddr

PEER4_SIZE = 6
PEER6_SIZE = 18
NODE_ID_SIZE = 20
NODE4_SIZE = NODE_ID_SIZE + PEER4_SIZE
NODE6_SIZE = NODE_ID_SIZE + PEER6_SIZE

_PORT = struct.Struct(">H")

__all__ = [
    "NODE4_SIZE",
    "NODE6_SIZE",
    "NODE_ID_SIZE",
    "PEER4_SIZE",
    "PEER6_SIZE",
    "CompactNode",
    "decode_nodes",
    "decode_peer",
    "decode_peers",
    "encode_nodes",
    "encode_peer",
    "encode_peers",
    "is_ipv6",
]


class CompactNode(NamedTuple):
    """A DHT node as carried in ``nodes`` / ``nodes6``: its 20-byte id and address."""

    node_id: bytes
    addr: PeerAddr


def is_ipv6(host: str) -> bool:
    """True if ``host`` is an IPv6 literal (used to split peers into ``peers`` and ``peers6``)."""
    return ":" in host


def encode_peer(addr: PeerAddr | tuple[str, int], *, v6: bool = False) -> bytes:
    """One compact peer: 6 bytes (``v6=False``) or 18 bytes (``v6=True``)."""
    host, port = addr
    if not 0 <= port <= 0xFFFF:
        raise LocalProtocolError(f"port {port} out of range 0..65535")
    try:
        ip = ipaddress.IPv6Address(host) if v6 else ipaddress.IPv4Address(host)
    except ValueError:
        family = "ipv6" if v6 else "ipv4"
        raise LocalProtocolError(f"address {host!r} is not an {family} address") from None
    return ip.packed + _PORT.pack(port)


def encode_peers(peers: Iterable[PeerAddr | tuple[str, int]], *, v6: bool = False) -> bytes:
    """Concatenate compact peers (BEP 23 ``peers`` or, with ``v6=True``, BEP 7 ``peers6``)."""
    return b"".join(encode_peer(p, v6=v6) for p in peers)


def _host4(b: bytes | memoryview) -> str:
    return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"


def _host6(b: bytes | memoryview) -> str:
    return ipaddress.IPv6Address(bytes(b)).compressed


def decode_peer(data: bytes | memoryview) -> PeerAddr:
    """Decode one compact peer of 6 or 18 bytes."""
    if len(data) == PEER4_SIZE:
        return PeerAddr(_host4(data), _PORT.unpack_from(data, 4)[0])
    if len(data) == PEER6_SIZE:
        return PeerAddr(_host6(data[:16]), _PORT.unpack_from(data, 16)[0])
    raise RemoteProtocolError(f"compact peer of {len(data)} bytes is neither 6 nor 18 bytes")


def _check_length(data: bytes | memoryview, size: int, what: str, strict: bool) -> int:
    count, rest = divmod(len(data), size)
    if rest and strict:
        raise RemoteProtocolError(f"{what} of {len(data)} bytes is not a multiple of {size}")
    return count


def decode_peers(data: bytes | memoryview, *, v6: bool = False, strict: bool = True) -> list[PeerAddr]:
    """Decode a compact peer list: 6-byte entries, or 18-byte entries with ``v6=True``."""
    size = PEER6_SIZE if v6 else PEER4_SIZE
    count = _check_length(data, size, "compact peer list", strict)
    view = memoryview(data)
    peers: list[PeerAddr] = []
    append = peers.append
    if v6:
        for i in range(0, count * size, size):
            append(PeerAddr(_host6(view[i : i + 16]), _PORT.unpack_from(view, i + 16)[0]))
    else:
        for i in range(0, count * size, size):
            append(PeerAddr(_host4(view[i : i + 4]), _PORT.unpack_from(view, i + 4)[0]))
    return peers


def encode_nodes(nodes: Iterable[CompactNode | tuple[bytes, PeerAddr]], *, v6: bool = False) -> bytes:
    """Concatenate compact nodes (BEP 5 ``nodes``, 26 bytes each, or BEP 32 ``nodes6``, 38 bytes each)."""
    parts: list[bytes] = []
    for node_id, addr in nodes:
        if len(node_id) != NODE_ID_SIZE:
            raise LocalProtocolError(f"node id of {len(node_id)} bytes is not {NODE_ID_SIZE} bytes")
        parts.append(bytes(node_id))
        parts.append(encode_peer(addr, v6=v6))
    return b"".join(parts)


def decode_nodes(data: bytes | memoryview, *, v6: bool = False, strict: bool = True) -> list[CompactNode]:
    """Decode a compact node list (26-byte entries, or 38-byte entries with ``v6=True``)."""
    size = NODE6_SIZE if v6 else NODE4_SIZE
    count = _check_length(data, size, "compact node list", strict)
    view = memoryview(data)
    nodes: list[CompactNode] = []
    for i in range(0, count * size, size):
        node_id = bytes(view[i : i + NODE_ID_SIZE])
        nodes.append(CompactNode(node_id, decode_peer(view[i + NODE_ID_SIZE : i + size])))
    return nodes
