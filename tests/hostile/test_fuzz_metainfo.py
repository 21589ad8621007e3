"""Hostile .torrent files and info dicts (cases 5-10, 12-13): only MetainfoError/BencodeError, and safe results.

The structured strategy builds torrents from hostile parts (names from a hostile alphabet, extreme integers,
wrong types in every field); the mutation test edits real torrents made by libtorrent (the seed corpus).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import HOSTILE, corpus_files, load_target, mutate, peak_memory
from shoal.codec import bencode
from shoal.codec.metainfo import InfoDict, Metainfo
from shoal.errors import BencodeError, MetainfoError

TARGET = load_target("metainfo")
SETTINGS = TARGET.SETTINGS
ALLOWED = (MetainfoError, BencodeError)
SEEDS = [p.read_bytes() for p in corpus_files("metainfo")]

hostile_text = st.sampled_from(
    [
        b"",
        b".",
        b"..",
        b"/",
        b"/etc/passwd",
        b"C:\\x",
        b"..\\..\\x",
        b"a/../../b",
        b"a\x00b",
        b"CON",
        b"nul.txt",
        b"COM1.tar",
        b"trail. ",
        "\u202eexe.avi".encode(),
        "\u200b".encode(),
        b"\xff\xfe",
        b"\xc0\xae\xc0\xae",
        b"x" * 300,
        b"a",
        b"b.txt",
        b"A.TXT",
        b"a.txt",
    ]
) | st.binary(max_size=12)
extreme_int = st.sampled_from(
    [0, -1, 1, 15, 16384, 2**31, 2**32 - 1, 2**63 - 1, 2**63, -(2**63)]
) | st.integers(min_value=-5, max_value=1 << 20)
any_value: st.SearchStrategy[Any] = st.recursive(
    extreme_int | hostile_text,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(hostile_text, c, max_size=3),
    max_leaves=6,
)


@st.composite
def hostile_info(draw: st.DrawFn) -> dict[bytes, Any]:
    info: dict[bytes, Any] = {
        b"name": draw(hostile_text),
        b"piece length": draw(extreme_int),
        b"pieces": b"\x01" * draw(st.sampled_from([0, 19, 20, 40, 21, 200])),
    }
    if draw(st.booleans()):
        info[b"length"] = draw(extreme_int)
    else:
        files = draw(
            st.lists(
                st.fixed_dictionaries(
                    {b"length": extreme_int, b"path": st.lists(hostile_text, max_size=4)},
                    optional={
                        b"attr": st.sampled_from([b"p", b"x", b"l", b"h", b"pl"]),
                        b"symlink path": st.lists(hostile_text, max_size=3),
                    },
                ),
                max_size=5,
            )
        )
        info[b"files"] = files
    if draw(st.booleans()):
        info[b"meta version"] = draw(extreme_int)
        info[b"file tree"] = draw(any_value)
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        info[
            draw(st.sampled_from([b"name", b"piece length", b"pieces", b"length", b"files", b"private"]))
        ] = draw(any_value)
    return info


def _parse_all(data: bytes) -> None:
    TARGET.TestOneInput(data)  # checks path safety, hash and geometry invariants on success


@HOSTILE
@given(
    hostile_info(),
    st.dictionaries(
        st.sampled_from(
            [b"announce", b"announce-list", b"url-list", b"piece layers", b"comment", b"creation date"]
        ),
        any_value,
        max_size=3,
    ),
)
def test_structured_hostile_torrent(info: dict[bytes, Any], top: dict[bytes, Any]) -> None:
    _parse_all(bencode.encode({**top, b"info": info}))
    _parse_all(bencode.encode(info))


@HOSTILE
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_real_torrents(seed: bytes, data: st.DataObject) -> None:
    _parse_all(mutate(seed, data.draw))


@HOSTILE
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _parse_all(data)


def _torrent(files: list[dict[bytes, Any]], pieces: int = 1) -> bytes:
    info = {b"name": b"d", b"piece length": 16384, b"pieces": b"\x01" * 20 * pieces, b"files": files}
    return bencode.encode({b"info": info})


BIG = {
    # case 7: duplicate-name storm, must fail in linear time
    "duplicate_storm_20k": lambda: _torrent([{b"length": 1, b"path": [b"a", b"b.txt"]}] * 20_000, 2),
    "case_variant_storm": lambda: _torrent(
        [{b"length": 1, b"path": [b"a", b"B.txt" if i % 2 else b"b.txt"]} for i in range(10_000)], 1
    ),
    # case 6: sizes from which nothing may be allocated
    "length_2_62_twice": lambda: _torrent(
        [{b"length": 2**62, b"path": [b"a"]}, {b"length": 2**62, b"path": [b"b"]}]
    ),
    "length_2_64": lambda: _torrent([{b"length": 2**64, b"path": [b"a"]}]),
    # case 13: depth and element length
    "depth_200": lambda: _torrent([{b"length": 1, b"path": [b"x"] * 200}]),
    # case 1 inside info
    "deep_info": lambda: b"d4:info" + b"l" * 100_000 + b"e" * 100_000 + b"e",
}


@pytest.mark.parametrize("name", sorted(BIG))
def test_big_hostile_torrent_fails_fast_with_bounded_memory(name: str) -> None:
    data = BIG[name]()
    with pytest.raises(ALLOWED):
        Metainfo.from_bytes(data)
    assert peak_memory(lambda: Metainfo.from_bytes(data)) < 64 * len(data) + 4_000_000


def test_long_element_is_cut_keeping_extension() -> None:
    meta = Metainfo.from_bytes(_torrent([{b"length": 1, b"path": [b"x" * 10_000 + b".txt"]}]))
    part = meta.info.files[0].path[-1]
    assert part.endswith(".txt") and len(part.encode()) <= 255


def test_info_dict_from_peer_must_match_hash() -> None:
    info = bencode.raw_value(SEEDS[0], b"info") if SEEDS[0].startswith(b"d") else None
    assert info is not None
    with pytest.raises(MetainfoError):
        InfoDict.from_bytes(info, expected_hash=b"\x00" * 20)


@pytest.mark.parametrize(
    "target", [[b"..", b"..", b"etc"], [b"/etc"], [b"C:\\x"], [b"a", b"..", b"..", b"b"], []]
)
def test_bep47_symlink_target_outside_is_refused(target: list[bytes]) -> None:
    """Case 11: a BEP 47 symlink whose target climbs out of the torrent (or is absolute, or empty)."""
    files = [
        {b"length": 1, b"path": [b"a"]},
        {b"length": 0, b"attr": b"l", b"symlink path": target, b"path": [b"link"]},
    ]
    with pytest.raises(MetainfoError):
        Metainfo.from_bytes(_torrent(files))


def test_bep47_symlink_inside_is_kept_sanitised() -> None:
    files = [
        {b"length": 1, b"path": [b"dir", b"a"]},
        {b"length": 0, b"attr": b"l", b"symlink path": [b"dir", b"a"], b"path": [b"link"]},
    ]
    meta = Metainfo.from_bytes(_torrent(files))
    assert [f.symlink for f in meta.info.files if f.symlink] == [("dir", "a")]
