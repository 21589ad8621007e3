"""Small domain values shared by every layer."""

from __future__ import annotations

from typing import NamedTuple, NewType

InfoHash = NewType("InfoHash", bytes)
"""A 20-byte v1 info-hash (SHA-1), or the 20-byte truncated v2 info-hash when used on the wire."""

PeerId = NewType("PeerId", bytes)
"""A 20-byte peer id (BEP 20 style, e.g. ``-SH0100-`` followed by 12 random bytes)."""

PieceIndex = NewType("PieceIndex", int)


class PeerAddr(NamedTuple):
    """A peer's address: host (IPv4 or IPv6 text form) and port."""

    host: str
    port: int


class BlockRef(NamedTuple):
    """One block of a piece: ``length`` bytes at ``offset`` inside piece ``piece``."""

    piece: int
    offset: int
    length: int


BLOCK_SIZE = 16 * 1024
"""The size of a request on the wire; the last block of a piece may be shorter."""
