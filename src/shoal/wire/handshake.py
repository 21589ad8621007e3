"""The BEP 3 handshake, reserved bits, BEP 20 peer ids, and the BEP 6 allowed-fast set.

Handshake layout (68 bytes)::

    offset  size  field
    0       1     19 (length of the protocol string)
    1       19    b"BitTorrent protocol"
    20      8     reserved bits
    28      20    info-hash
    48      20    peer id

Reserved bits Shoal sets or reads (byte index, mask): extension protocol (BEP 10) ``[5] & 0x10``, fast extension
(BEP 6) ``[7] & 0x04``, DHT (BEP 5) ``[7] & 0x01``, v2 upgrade (BEP 52) ``[7] & 0x10``.
"""

from __future__ import annotations

import hashlib
import random
import struct

from shoal.errors import DisconnectReason, LocalProtocolError, PeerProtocolError
from shoal.records import record

PROTOCOL = b"BitTorrent protocol"
PREFIX = bytes((len(PROTOCOL),)) + PROTOCOL
"""The first 20 bytes of every handshake."""
HANDSHAKE_SIZE = 68
INFO_HASH_END = 48
"""Bytes needed before the info-hash is known (a listener routes on it)."""

PEER_ID_PREFIX = b"-SH0100-"
"""BEP 20 (Azureus-style) client id: Shoal 0.1.0.0."""
PEER_ID_SIZE = 20


def _bit(byte: int, mask: int) -> int:
    return mask << ((7 - byte) * 8)


EXTENSION_BIT = _bit(5, 0x10)
FAST_BIT = _bit(7, 0x04)
DHT_BIT = _bit(7, 0x01)
V2_BIT = _bit(7, 0x10)


@record
class Reserved:
    """The 8 reserved bytes as an integer (byte 0 most significant) with named flags."""

    bits: int = 0

    @classmethod
    def make(
        cls, *, extension: bool = True, fast: bool = True, dht: bool = False, v2: bool = False
    ) -> Reserved:
        bits = 0
        if extension:
            bits |= EXTENSION_BIT
        if fast:
            bits |= FAST_BIT
        if dht:
            bits |= DHT_BIT
        if v2:
            bits |= V2_BIT
        return cls(bits)

    @classmethod
    def from_bytes(cls, data: bytes) -> Reserved:
        return cls(int.from_bytes(data, "big"))

    def to_bytes(self) -> bytes:
        return self.bits.to_bytes(8, "big")

    @property
    def extension(self) -> bool:
        return bool(self.bits & EXTENSION_BIT)

    @property
    def fast(self) -> bool:
        return bool(self.bits & FAST_BIT)

    @property
    def dht(self) -> bool:
        return bool(self.bits & DHT_BIT)

    @property
    def v2(self) -> bool:
        return bool(self.bits & V2_BIT)


@record
class Handshake:
    reserved: Reserved
    info_hash: bytes
    peer_id: bytes

    def encode(self) -> bytes:
        return encode_handshake(self.info_hash, self.peer_id, self.reserved)


def encode_handshake(info_hash: bytes, peer_id: bytes, reserved: Reserved) -> bytes:
    if len(info_hash) != 20:
        raise LocalProtocolError(f"info-hash of {len(info_hash)} bytes is not 20 bytes")
    if len(peer_id) != PEER_ID_SIZE:
        raise LocalProtocolError(f"peer id of {len(peer_id)} bytes is not 20 bytes")
    return PREFIX + reserved.to_bytes() + info_hash + peer_id


def check_prefix(data: bytes | bytearray | memoryview) -> None:
    """Check as many of the first 20 bytes as have arrived; refuse a wrong protocol string early."""
    n = min(len(data), len(PREFIX))
    if bytes(data[:n]) != PREFIX[:n]:
        raise PeerProtocolError(
            f"handshake does not start with the bittorrent protocol string: {bytes(data[:n])!r}",
            DisconnectReason.BAD_HANDSHAKE,
        )


def decode_handshake(data: bytes | bytearray | memoryview) -> Handshake:
    """Decode a complete 68-byte handshake."""
    if len(data) != HANDSHAKE_SIZE:
        raise PeerProtocolError(
            f"handshake of {len(data)} bytes is not {HANDSHAKE_SIZE} bytes", DisconnectReason.BAD_HANDSHAKE
        )
    check_prefix(data)
    raw = bytes(data)
    return Handshake(Reserved.from_bytes(raw[20:28]), raw[28:48], raw[48:68])


def make_peer_id(rng: random.Random, prefix: bytes = PEER_ID_PREFIX) -> bytes:
    """A BEP 20 peer id: ``-SH0100-`` and 12 random bytes from the injected ``rng``."""
    if len(prefix) >= PEER_ID_SIZE:
        raise LocalProtocolError(f"peer id prefix of {len(prefix)} bytes leaves no room for random bytes")
    return prefix + rng.randbytes(PEER_ID_SIZE - len(prefix))


def allowed_fast_set(ip: bytes, info_hash: bytes, num_pieces: int, k: int) -> list[int]:
    """BEP 6 canonical allowed-fast set for a peer with IPv4 address ``ip`` (4 packed bytes)."""
    if len(ip) != 4:
        raise LocalProtocolError(f"allowed-fast set needs a 4-byte ipv4 address, got {len(ip)} bytes")
    k = min(k, num_pieces)
    result: list[int] = []
    if k <= 0:
        return result
    x = bytes((ip[0], ip[1], ip[2], 0)) + info_hash
    while len(result) < k:
        x = hashlib.sha1(x).digest()
        for i in range(5):
            if len(result) >= k:
                break
            (y,) = struct.unpack_from(">I", x, i * 4)
            index = y % num_pieces
            if index not in result:
                result.append(index)
    return result
