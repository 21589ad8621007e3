"""Data on disk for re-check tests (the forked re-check, the helper process, the threaded one): four files and a
pad under ``root/t``, and the damage that the checks must agree on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from shoal.storage.layout import Layout

PL = 32 * 1024  # piece length


def four_files(root: Path, big: int = 5 * PL + 100) -> tuple[Layout, bytes]:
    """Files ``a`` (``big`` bytes), ``b``, a pad, ``c`` and ``d`` under ``root/t``; the layout and the v1 piece
    hashes of the intended data."""
    sizes = {"a": big, "b": 3000, "c": 2 * PL + 17, "d": 3 * PL}
    files = [
        (("t", "a"), sizes["a"], False),
        (("t", "b"), sizes["b"], False),
        (("t", ".pad", "1"), PL - (sizes["a"] + sizes["b"]) % PL, True),
        (("t", "c"), sizes["c"], False),
        (("t", "d"), sizes["d"], False),
    ]
    layout = Layout.from_files(files, PL)
    space = bytearray()
    (root / "t").mkdir()
    for path, length, pad in files:
        data = bytes(length) if pad else os.urandom(length)
        if not pad:
            root.joinpath(*path).write_bytes(data)
        space += data
    hashes = b"".join(hashlib.sha1(space[i : i + PL]).digest() for i in range(0, len(space), PL))
    return layout, hashes


def damage(root: Path) -> None:
    """Piece 2 fails its hash, ``c`` is short (its pieces are skipped), ``d`` is missing."""
    with open(root / "t" / "a", "r+b") as f:
        f.seek(2 * PL + 5)
        byte = f.read(1)
        f.seek(2 * PL + 5)
        f.write(bytes([byte[0] ^ 1]))
    os.truncate(root / "t" / "c", PL)
    (root / "t" / "d").unlink()
