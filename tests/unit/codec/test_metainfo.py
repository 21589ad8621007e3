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


# ---------------------------------------------------------------- v2, hybrid, round trips

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from shoal.codec import merkle  # noqa: E402
from torrent_factory import build, content  # noqa: E402

FILES = {("a",): content(40000), ("d", "e"): b"", ("d", "f"): content(16384 * 4, 3), ("z",): content(1, 5)}


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_v2_and_hybrid_parse(version: str) -> None:
    data = build(FILES, version)
    m = Metainfo.from_bytes(data)
    raw = bencode.raw_value(data, b"info")
    assert raw is not None
    assert m.info_hash_v2 == hashlib.sha256(raw).digest()
    assert (m.info_hash_v1 is not None) == (version == "hybrid")
    assert m.info.has_v2
    assert m.info.is_hybrid == (version == "hybrid")
    real = m.info.real_files
    assert [f.path for f in real] == [("t", "a"), ("t", "d", "e"), ("t", "d", "f"), ("t", "z")]
    for f in m.info.files:
        if f.length and not f.is_pad:
            assert f.offset % 16384 == 0
    assert m.info.num_pieces == 3 + 4 + 1
    big = m.info.files.index(real[2])
    assert m.piece_layer(big) == merkle.layer_and_root(merkle.block_hashes(FILES[("d", "f")]), 16384)[0]
    first, end = m.info.file_piece_range(big)
    assert (first, end) == (3, 7)
    assert m.v2_piece_hash(4) == m.piece_layer(big)[32:64]  # type: ignore[index]
    assert m.v2_piece_hash(0) == m.piece_layer(0)[:32]  # type: ignore[index]
    assert m.v2_piece_hash(7) == real[3].pieces_root
    assert Metainfo.from_bytes(m.to_bytes()) == m
    info = InfoDict.from_bytes(raw, expected_hash=hashlib.sha256(raw).digest()[:20])
    assert info == m.info


def test_v2_single_file() -> None:
    m = Metainfo.from_bytes(build({(): content(50000)}, "v2", name="one.bin"))
    assert m.info.files[0].path == ("one.bin",)
    assert m.info.files[1].is_pad
    assert m.info.total_length == 4 * 16384


names = st.text(alphabet="abcXYZ09-_", min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(
    files=st.dictionaries(
        st.lists(names, min_size=1, max_size=3).map(tuple), st.integers(0, 70000), min_size=1, max_size=5
    ),
    version=st.sampled_from(["v1", "v2", "hybrid"]),
    piece_length=st.sampled_from([16384, 32768, 65536]),
    private=st.booleans(),
)
def test_round_trip_property(
    files: dict[tuple[str, ...], int], version: str, piece_length: int, private: bool
) -> None:
    paths = sorted(files)
    # drop paths that are a prefix of another (a file cannot also be a directory)
    paths = [p for p in paths if not any(q[: len(p)] == p and q != p for q in paths)]
    if not paths or sum(files[p] for p in paths) == 0:
        return
    data = {p: content(files[p], i) for i, p in enumerate(paths)}
    raw = build(data, version, piece_length, trackers=[["http://t/a"]], private=private)
    m = Metainfo.from_bytes(raw)
    lone = version == "v2" and len(paths) == 1 and len(paths[0]) == 1  # a v2 tree with one root file: single
    assert [(f.path, f.length) for f in m.info.real_files] == [
        (p if lone else ("t", *p), len(data[p])) for p in paths
    ]
    assert m.info.private == private
    assert m.info.piece_length == piece_length
    assert m.to_bytes() == raw
    assert Metainfo.from_bytes(m.to_bytes()) == m


def test_info_from_bytes_metadata_limit_one_past() -> None:
    raw = bencode.encode(v1_single())
    InfoDict.from_bytes(raw, Settings(max_metadata_size=len(raw)))
    with pytest.raises(MetainfoError, match="max_metadata_size"):
        InfoDict.from_bytes(raw, Settings(max_metadata_size=len(raw) - 1))


def test_file_index_at_skips_empty_files_and_bounds() -> None:
    m = Metainfo.from_bytes(build({("a",): content(10), ("b",): b"", ("c",): content(20000)}, "v1"))
    assert [m.info.file_index_at(o) for o in (0, 9, 10, 20009)] == [0, 0, 2, 2]
    assert m.info.file_piece_range(1) == (0, 0)
    assert m.info.file_piece_range(2) == (0, 2)
    with pytest.raises(IndexError):
        m.info.piece_size(2)
    with pytest.raises(IndexError):
        m.info.piece_hash_v1(-1)
    assert m.v2_piece_hash(0) is None  # a v1 torrent has no v2 hashes
