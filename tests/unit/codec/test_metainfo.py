from __future__ import annotations

import hashlib

import pytest

from shoal.codec import bencode
from shoal.codec.metainfo import InfoDict, Metainfo
from shoal.config import Settings
from shoal.errors import MetainfoError


def v1_single(length: int = 40000, piece_length: int = 16384) -> dict[bytes, object]:
    n = -(-length // piece_length)
    return {b"name": b"a.bin", b"piece length": piece_length, b"length": length, b"pieces": b"\x01" * 20 * n}


def torrent(info: dict[bytes, object], **top: object) -> bytes:
    return bencode.encode({b"info": info, **{k.replace("_", " ").encode(): v for k, v in top.items()}})


def test_v1_single_file() -> None:
    data = torrent(v1_single(), announce=b"http://t/announce", comment=b"hi", creation_date=5)
    m = Metainfo.from_bytes(data)
    raw = bencode.encode(v1_single())
    assert m.info_hash_v1 == hashlib.sha1(raw).digest()
    assert m.info_hash == m.info_hash_v1
    assert m.info_hash_v2 is None
    assert m.info.raw == raw
    assert m.info.num_pieces == 3
    assert [m.info.piece_size(i) for i in range(3)] == [16384, 16384, 40000 - 32768]
    assert m.info.files[0].path == ("a.bin",)
    assert m.trackers == [["http://t/announce"]]
    assert m.comment == "hi"
    assert m.creation_date == 5
    assert Metainfo.from_bytes(m.to_bytes()) == m


def test_v1_multi_file_offsets_and_private() -> None:
    info = {
        b"name": b"dir",
        b"piece length": 16384,
        b"files": [
            {b"length": 10, b"path": [b"x", b"a"]},
            {b"length": 0, b"path": [b"e"]},
            {b"length": 20000, b"path": [b"b"]},
        ],
        b"pieces": b"\x00" * 40,
        b"private": 1,
        b"source": b"SRC",
    }
    m = Metainfo.from_bytes(torrent(info))
    assert [(f.path, f.offset) for f in m.info.files] == [
        (("dir", "x", "a"), 0),
        (("dir", "e"), 10),
        (("dir", "b"), 10),
    ]
    assert m.info.private
    assert m.info.source == "SRC"
    assert m.info.total_length == 20010


def test_unsorted_info_keeps_original_hash() -> None:
    raw = b"d6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:" + b"\x02" * 20 + b"e"
    unsorted = b"d4:name1:a6:lengthi5e12:piece lengthi16384e6:pieces20:" + b"\x02" * 20 + b"e"
    m = Metainfo.from_bytes(b"d4:info" + unsorted + b"e")
    assert m.info_hash_v1 == hashlib.sha1(unsorted).digest() != hashlib.sha1(raw).digest()


def test_info_from_bytes_checks_hash() -> None:
    raw = bencode.encode(v1_single())
    info = InfoDict.from_bytes(raw, expected_hash=hashlib.sha1(raw).digest())
    assert info.name == "a.bin"
    with pytest.raises(MetainfoError, match="does not match"):
        InfoDict.from_bytes(raw, expected_hash=b"\x00" * 20)


def test_piece_count_mismatch() -> None:
    info = v1_single()
    info[b"pieces"] = b"\x01" * 20
    with pytest.raises(MetainfoError, match="piece hashes"):
        Metainfo.from_bytes(torrent(info))


def test_max_torrent_size_one_past() -> None:
    data = torrent(v1_single())
    Metainfo.from_bytes(data, Settings(max_torrent_size=len(data)))
    with pytest.raises(MetainfoError, match="max_torrent_size"):
        Metainfo.from_bytes(data, Settings(max_torrent_size=len(data) - 1))
