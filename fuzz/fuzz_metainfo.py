"""Fuzz target: .torrent files (``Metainfo.from_bytes``) and bare info dicts (``InfoDict.from_bytes``, BEP 9).

Only ``MetainfoError`` (with ``UnsafePathError``) and ``BencodeError`` may come out. On success the result must be
safe and self-consistent:

* every file path component is non-empty, not ``.``/``..`` and has no separator or NUL (case 10);
* the info-hash is the hash of the raw ``info`` slice, and ``to_bytes()`` parses back to the same info-hash;
* the piece geometry adds up: ``num_pieces`` pieces of ``piece_size(i)`` cover ``total_length`` exactly.

Run: ``.venv/bin/python fuzz/fuzz_metainfo.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/metainfo``
"""

from __future__ import annotations

import hashlib

from shoal.codec import bencode
from shoal.codec.metainfo import InfoDict, Metainfo
from shoal.config import Settings
from shoal.errors import BencodeError, MetainfoError
from shoal.testing.fuzzing import run

# small caps so the fuzzer explores the limit checks instead of allocating
SETTINGS = Settings(
    max_torrent_size=1 << 20,
    max_metadata_size=1 << 20,
    max_piece_count=1 << 16,
    max_file_count=1000,
    max_bencode_depth=32,
)
ALLOWED = (MetainfoError, BencodeError)


def _check_info(info: InfoDict) -> None:
    for f in info.files:
        assert f.path, "empty path"
        for part in f.path:
            assert part not in ("", ".", ".."), f"unsafe component {part!r}"
            assert "/" not in part and "\\" not in part and "\x00" not in part, f"unsafe component {part!r}"
        assert f.length >= 0
    assert info.piece_length > 0
    assert info.num_pieces >= 1
    assert sum(info.piece_size(i) for i in (0, info.num_pieces - 1)) <= 2 * info.piece_length
    last = info.piece_size(info.num_pieces - 1)
    assert 0 < last <= info.piece_length
    assert info.piece_length * (info.num_pieces - 1) + last == info.total_length
    if info.piece_hashes_v1 is not None:
        assert len(info.piece_hashes_v1) == 20 * info.num_pieces


def _torrent(data: bytes) -> None:
    try:
        meta = Metainfo.from_bytes(data, SETTINGS)
    except ALLOWED:
        return
    _check_info(meta.info)
    raw = bencode.raw_value(data, b"info")
    assert raw == meta.info.raw
    assert meta.info_hash_v1 in (None, hashlib.sha1(raw).digest())
    again = Metainfo.from_bytes(meta.to_bytes(), SETTINGS)
    assert again.info_hash == meta.info_hash


def _info(data: bytes) -> None:
    try:
        info = InfoDict.from_bytes(data, SETTINGS)
    except ALLOWED:
        return
    _check_info(info)
    assert info.raw == data


def TestOneInput(data: bytes) -> None:
    _torrent(data)
    _info(data)
    # the same bytes as the info dict of a torrent
    if data[:1] == b"d":
        _torrent(b"d4:info" + data + b"e")


if __name__ == "__main__":
    run(TestOneInput)
