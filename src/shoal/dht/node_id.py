"""160-bit node ids: XOR distance, bucket index, and BEP 42 node-id security.

BEP 42 ties a node id to the node's external IP: the first 21 bits of the id must equal the first 21 bits of
``crc32c(masked_ip | r << 5 of the first octet)``, and the low 3 bits of the last byte carry ``r``. Nodes on
local or loopback addresses are exempt. CRC32C (Castagnoli) is computed with a small table in pure Python:
the input is at most 8 bytes, so speed does not matter.
"""

from __future__ import annotations

import ipaddress
import random

ID_LENGTH = 20
ID_BITS = 160

_V4_MASK = bytes((0x03, 0x0F, 0x3F, 0xFF))
_V6_MASK = bytes((0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF))


def _crc32c_table() -> list[int]:
    poly = 0x82F63B78  # reflected Castagnoli polynomial
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC32C (Castagnoli) of ``data``, continuing from ``crc``."""
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def distance(a: bytes, b: bytes) -> int:
    """XOR distance of two ids as an integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def common_prefix_bits(a: bytes, b: bytes) -> int:
    """How many leading bits ``a`` and ``b`` share (160 when equal)."""
    d = distance(a, b)
    return ID_BITS - d.bit_length()


def random_id(rng: random.Random) -> bytes:
    return rng.getrandbits(ID_BITS).to_bytes(ID_LENGTH, "big")


def random_id_in_bucket(own: bytes, prefix_bits: int, rng: random.Random) -> bytes:
    """A random id sharing exactly ``prefix_bits`` leading bits with ``own`` (used to refresh a bucket)."""
    if prefix_bits >= ID_BITS:
        return own
    own_int = int.from_bytes(own, "big")
    flip = 1 << (ID_BITS - 1 - prefix_bits)
    low = rng.getrandbits(ID_BITS - 1 - prefix_bits) if prefix_bits < ID_BITS - 1 else 0
    high = (own_int ^ flip) >> (ID_BITS - 1 - prefix_bits) << (ID_BITS - 1 - prefix_bits)
    return (high | low).to_bytes(ID_LENGTH, "big")


def is_local_ip(ip: str) -> bool:
    """Addresses exempt from BEP 42: private, loopback, link-local (and their IPv6 equivalents)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_private or addr.is_loopback or addr.is_link_local


def is_public_ip(host: str) -> bool:
    """A globally routable address: not private, loopback, link-local, multicast, reserved or unspecified (the
    "dark internet" a public node has no business handing out as peers, RELIABILITY case 34)."""
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def _id_prefix_crc(ip: str, r: int) -> int:
    packed = ipaddress.ip_address(ip).packed
    if len(packed) == 4:
        masked = bytearray(b & m for b, m in zip(packed, _V4_MASK, strict=True))
    else:
        masked = bytearray(b & m for b, m in zip(packed[:8], _V6_MASK, strict=True))
    masked[0] |= (r & 0x7) << 5
    return crc32c(bytes(masked))


def bep42_id(ip: str, rng: random.Random, r: int | None = None) -> bytes:
    """A node id valid for ``ip`` under BEP 42 (``r`` is the random 0..255 value; drawn from ``rng`` if None)."""
    rand = rng.getrandbits(8) if r is None else r & 0xFF
    crc = _id_prefix_crc(ip, rand & 0x7)
    out = bytearray(rng.getrandbits(8) for _ in range(ID_LENGTH))
    out[0] = (crc >> 24) & 0xFF
    out[1] = (crc >> 16) & 0xFF
    out[2] = ((crc >> 8) & 0xF8) | (out[2] & 0x7)
    out[19] = rand
    return bytes(out)


def bep42_valid(node_id: bytes, ip: str) -> bool:
    """Whether ``node_id`` satisfies BEP 42 for ``ip``; local addresses always do."""
    if len(node_id) != ID_LENGTH:
        return False
    if is_local_ip(ip):
        return True
    try:
        crc = _id_prefix_crc(ip, node_id[19] & 0x7)
    except ValueError:
        return False
    expected = crc >> 11  # top 21 bits
    actual = int.from_bytes(node_id[:3], "big") >> 3
    return expected == actual
