"""BEP 52 merkle trees: SHA-256 over 16 KiB blocks, padded to a power of two.

* Leaves are SHA-256 of each 16 KiB block of a file (the last block may be short). A file's leaf count is rounded up
  to a power of two with all-zero 32-byte leaves (not hashes of zeros).
* ``pieces root`` is the root of that tree (a one-block file's root is its leaf hash).
* The piece layer is the layer where each node covers one piece (``piece_length // 16 KiB`` leaves); only files
  larger than one piece have one in ``piece layers``. The last piece's subtree is padded with zero leaves, and the
  layer is padded up to a power of two with :func:`pad_hash` of the piece height when computing the root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

BLOCK_SIZE = 16 * 1024
HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@lru_cache(maxsize=64)
def pad_hash(height: int) -> bytes:
    """Root of a subtree of ``2**height`` zero leaves."""
    h = ZERO_HASH
    for _ in range(height):
        h = _sha256(h + h)
    return h


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def merkle_root(hashes: Sequence[bytes], width: int | None = None, pad: bytes = ZERO_HASH) -> bytes:
    """Root of the tree over ``hashes`` padded to ``width`` (default: the next power of two) with ``pad``."""
    n = next_pow2(len(hashes)) if width is None else width
    if n & (n - 1) or n < len(hashes):
        raise ValueError(f"merkle width {n} is not a power of two >= {len(hashes)}")
    level = list(hashes) or [pad]
    sha256 = hashlib.sha256
    while n > 1:
        if len(level) % 2:
            level.append(pad)
        # pairs of one iterator, hashed inline: a third less time than indexing and a helper call per node
        pairs = iter(level)
        level = [sha256(a + b).digest() for a, b in zip(pairs, pairs, strict=True)]
        pad = sha256(pad + pad).digest()
        n //= 2
    return level[0]


def block_hashes(data: bytes | memoryview) -> list[bytes]:
    """SHA-256 of each 16 KiB block of ``data``."""
    view = memoryview(data)
    return [hashlib.sha256(view[i : i + BLOCK_SIZE]).digest() for i in range(0, len(view), BLOCK_SIZE)]


def piece_hash(leaves: Sequence[bytes], piece_length: int) -> bytes:
    """One piece-layer hash from the leaf hashes of (up to) one piece."""
    return merkle_root(leaves, piece_length // BLOCK_SIZE)


def layer_and_root(leaves: Sequence[bytes], piece_length: int) -> tuple[bytes, bytes]:
    """The piece layer (``b""`` for a file of at most one piece) and the pieces root, from all of a file's leaves."""
    per_piece = piece_length // BLOCK_SIZE
    if len(leaves) <= per_piece:
        return b"", merkle_root(leaves)
    pieces = [merkle_root(leaves[i : i + per_piece], per_piece) for i in range(0, len(leaves), per_piece)]
    return b"".join(pieces), root_from_layer(pieces, piece_length)


def root_from_layer(piece_hashes: Sequence[bytes], piece_length: int) -> bytes:
    """The pieces root of a file larger than one piece, from its piece-layer hashes."""
    height = (piece_length // BLOCK_SIZE).bit_length() - 1
    return merkle_root(piece_hashes, pad=pad_hash(height))


def split_layer(layer: bytes) -> list[bytes]:
    return [layer[i : i + HASH_SIZE] for i in range(0, len(layer), HASH_SIZE)]
