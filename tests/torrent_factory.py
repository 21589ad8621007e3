"""Build valid torrents in memory for unit and hostile tests (hashes computed here, independently of the creator)."""

from __future__ import annotations

import hashlib
from typing import Any

from shoal.codec import bencode, merkle
from shoal.codec.metainfo_create import FileHashes, build_torrent_and_info, plan_layout


def content(length: int, seed: int = 0) -> bytes:
    return bytes((seed + i * 7) % 251 for i in range(length))


def build(
    files: dict[tuple[str, ...], bytes],
    version: str = "v1",
    piece_length: int = 16384,
    name: str = "t",
    **kw: Any,
) -> bytes:
    """A .torrent for ``files`` (path components -> data). One entry with path () makes a single-file torrent."""
    single = list(files) == [()]
    layout = plan_layout([(p, len(d)) for p, d in files.items()], piece_length, version, single)  # type: ignore[arg-type]
    stream = b"".join(bytes(e.length) if e.pad else files[e.path] for e in layout)
    pieces = b"".join(
        hashlib.sha1(stream[i : i + piece_length]).digest() for i in range(0, len(stream), piece_length)
    )
    hashes = []
    for e in layout:
        if e.pad:
            continue
        data = files[e.path]
        if not data:
            hashes.append(FileHashes(None))
            continue
        layer, root = merkle.layer_and_root(merkle.block_hashes(data), piece_length)
        hashes.append(FileHashes(root, layer))
    return build_torrent_and_info(
        name=name,
        layout=layout,
        piece_length=piece_length,
        version=version,  # type: ignore[arg-type]
        single=single,
        pieces_v1=pieces if version != "v2" else None,
        v2_hashes=hashes if version != "v1" else None,
        **kw,
    )[0]


def edit(torrent: bytes, change: Any) -> bytes:
    """Decode, let ``change(top_dict)`` mutate it, re-encode."""
    top = bencode.decode(torrent)
    change(top)
    return bencode.encode(top)
