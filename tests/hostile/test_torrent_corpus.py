"""A corpus of hostile .torrent files (RELIABILITY-CASES.md cases 1-8, 10, 12, 13), each with its documented error.

Every entry is built here from a valid torrent plus one lie, so the corpus documents itself: (id, bytes, error type,
message fragment). Whatever the input, ``Metainfo.from_bytes`` raises only ``ShoalError`` subclasses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.codec import bencode
from shoal.codec.metainfo import Metainfo
from shoal.config import Settings
from shoal.errors import BencodeError, MetainfoError, ShoalError, UnsafePathError
from torrent_factory import build, content, edit

V1 = build({("a",): content(40000), ("b", "c"): content(5)}, "v1")
V2 = build({("a",): content(40000), ("b", "c"): content(5)}, "v2")
HYBRID = build({("a",): content(40000), ("b", "c"): content(5)}, "hybrid")
SINGLE = build({(): content(20000)}, "v1", name="one")


def info_edit(base: bytes, change: Callable[[dict[bytes, Any]], None]) -> bytes:
    return edit(base, lambda top: change(top[b"info"]))


def set_path(index: int, path: list[bytes]) -> Callable[[dict[bytes, Any]], None]:
    def change(info: dict[bytes, Any]) -> None:
        info[b"files"][index][b"path"] = path

    return change


def set_key(key: bytes, value: Any) -> Callable[[dict[bytes, Any]], None]:
    def change(d: dict[bytes, Any]) -> None:
        d[key] = value

    return change


def del_key(key: bytes) -> Callable[[dict[bytes, Any]], None]:
    def change(d: dict[bytes, Any]) -> None:
        del d[key]

    return change


def tree_key(old: bytes, new: bytes) -> Callable[[dict[bytes, Any]], None]:
    def change(info: dict[bytes, Any]) -> None:
        tree = info[b"file tree"]
        tree[new] = tree.pop(old)

    return change


def first_layer(change: Callable[[bytes], bytes]) -> Callable[[dict[bytes, Any]], None]:
    def edit_top(top: dict[bytes, Any]) -> None:
        layers = top[b"piece layers"]
        root = next(iter(layers))
        layers[root] = change(layers[root])

    return edit_top


def zero_root(info: dict[bytes, Any]) -> None:
    info[b"file tree"][b"a"][b""][b"pieces root"] = bytes(32)


def hybrid_rename_v1(info: dict[bytes, Any]) -> None:
    info[b"files"][0][b"path"] = [b"x"]


def hybrid_drop_pad(info: dict[bytes, Any]) -> None:
    info[b"files"] = [f for f in info[b"files"] if b"attr" not in f]


def hybrid_big_pad(info: dict[bytes, Any]) -> None:
    for f in info[b"files"]:
        if b"attr" in f:
            f[b"length"] += 16384
            f[b"path"] = [b".pad", str(f[b"length"]).encode()]
    info[b"pieces"] += bytes(20 * sum(1 for f in info[b"files"] if b"attr" in f))


def file_and_dir(info: dict[bytes, Any]) -> None:
    info[b"file tree"][b"a"][b"extra"] = {b"": {b"length": 1, b"pieces root": b"\x01" * 32}}


def deep_tree(depth: int) -> Callable[[dict[bytes, Any]], None]:
    def change(info: dict[bytes, Any]) -> None:
        node: dict[bytes, Any] = {b"": {b"length": 5, b"pieces root": b"\x01" * 32}}
        for _ in range(depth):
            node = {b"d": node}
        info[b"file tree"] = {b"a": info[b"file tree"][b"a"], **node}

    return change


# (id, torrent bytes, error type, message fragment); ids name the case from RELIABILITY-CASES.md
CORPUS: list[tuple[str, bytes, type[ShoalError], str]] = [
    # case 10: traversal
    ("10-dotdot", info_edit(V1, set_path(0, [b"..", b"x"])), UnsafePathError, "unsafe path component '..'"),
    ("10-dot", info_edit(V1, set_path(0, [b".", b"x"])), UnsafePathError, "unsafe path component '.'"),
    ("10-empty", info_edit(V1, set_path(0, [b"", b"x"])), UnsafePathError, "unsafe path component ''"),
    ("10-no-path", info_edit(V1, set_path(0, [])), UnsafePathError, "empty file path"),
    ("10-absolute", info_edit(V1, set_path(0, [b"/etc/passwd"])), UnsafePathError, "path separator"),
    ("10-inner-dotdot", info_edit(V1, set_path(0, [b"a/../../b"])), UnsafePathError, "path separator"),
    ("10-backslash", info_edit(V1, set_path(0, [b"..\\..\\x"])), UnsafePathError, "path separator"),
    ("10-drive", info_edit(V1, set_path(0, [b"C:\\x"])), UnsafePathError, "path separator"),
    ("10-nul", info_edit(V1, set_path(0, [b"a\x00.txt"])), UnsafePathError, "contains nul"),
    ("10-name-dotdot", info_edit(V1, set_key(b"name", b"..")), UnsafePathError, "'..'"),
    ("10-single-name-abs", info_edit(SINGLE, set_key(b"name", b"/etc/passwd")), UnsafePathError, "separator"),
    ("10-v2-tree-dotdot", info_edit(V2, tree_key(b"a", b"..")), UnsafePathError, "'..'"),
    ("10-v2-tree-slash", info_edit(V2, tree_key(b"a", b"../x")), UnsafePathError, "separator"),
    (
        "10-path-utf8-dotdot",
        info_edit(V1, lambda i: i[b"files"][0].update({b"path.utf-8": [b".."]})),
        UnsafePathError,
        "'..'",
    ),
    # case 7: duplicates and file/directory conflicts
    ("7-duplicate", info_edit(V1, set_path(1, [b"a"])), UnsafePathError, "duplicate file path"),
    ("7-duplicate-case", info_edit(V1, set_path(1, [b"A"])), UnsafePathError, "duplicate file path"),
    ("7-file-is-dir", info_edit(V1, set_path(1, [b"a", b"c"])), UnsafePathError, "is also a file"),
    ("7-v2-file-and-dir", info_edit(V2, file_and_dir), MetainfoError, "both a file and a directory"),
    # case 13: depth
    ("13-deep-v1-path", info_edit(V1, set_path(0, [b"d"] * 101)), UnsafePathError, "max_path_depth"),
    # case 1: nesting
    ("1-deep-bencode", b"d4:info" + b"l" * 100_000 + b"e" * 100_000 + b"e", BencodeError, "max depth"),
    ("1-deep-in-info", b"d4:infod1:x" + b"l" * 80 + b"e" * 80 + b"ee", BencodeError, "max depth"),
    # cases 2-4: bencode abuse inside a torrent
    ("2-length-overflow", b"d4:info18446744073709551615:foobare", BencodeError, "runs past the end"),
    ("2-truncated", V1[: len(V1) // 2], BencodeError, "runs past the end"),
    (
        "3-leading-zero",
        V1.replace(b"12:piece lengthi16384e", b"12:piece lengthi016384e"),
        BencodeError,
        "invalid integer",
    ),
    ("4-duplicate-key", b"d4:infod4:name1:a4:name1:bee", BencodeError, "duplicate"),
    # wrong types
    ("type-top-list", b"li1ee", MetainfoError, "not a dictionary"),
    ("type-no-info", bencode.encode({b"announce": b"x"}), MetainfoError, "no info dictionary"),
    ("type-info-list", bencode.encode({b"info": [1]}), MetainfoError, "info is not a dictionary"),
    (
        "type-piece-length-str",
        info_edit(V1, set_key(b"piece length", b"16384")),
        MetainfoError,
        "not an integer",
    ),
    ("type-pieces-int", info_edit(V1, set_key(b"pieces", 5)), MetainfoError, "'pieces' is not a bytes"),
    ("type-files-dict", info_edit(V1, set_key(b"files", {b"a": 1})), MetainfoError, "'files' is not a list"),
    ("type-file-entry", info_edit(V1, set_key(b"files", [b"x"])), MetainfoError, "not a dictionary"),
    (
        "type-length-str",
        info_edit(V1, lambda i: i[b"files"][0].update({b"length": b"1"})),
        MetainfoError,
        "'length' is not an integer",
    ),
    ("type-path-bytes", info_edit(V1, set_path(0, b"a")), MetainfoError, "'path' is not a list"),  # type: ignore[arg-type]
    ("type-path-int", info_edit(V1, set_path(0, [1])), MetainfoError, "not a string"),  # type: ignore[list-item]
    ("type-name-int", info_edit(V1, set_key(b"name", 7)), MetainfoError, "'name' is not a bytes"),
    ("type-attr-int", info_edit(V1, lambda i: i[b"files"][0].update({b"attr": 1})), MetainfoError, "attr"),
    ("type-tree-list", info_edit(V2, set_key(b"file tree", [])), MetainfoError, "file tree"),
    ("type-tree-node", info_edit(V2, set_key(b"file tree", {b"a": 5})), MetainfoError, "not a dictionary"),
    # case 6: geometry lies
    (
        "6-pieces-not-20",
        info_edit(V1, lambda i: i.update({b"pieces": i[b"pieces"][:-1]})),
        MetainfoError,
        "not a multiple of 20",
    ),
    (
        "6-pieces-count",
        info_edit(V1, lambda i: i.update({b"pieces": i[b"pieces"][:-20]})),
        MetainfoError,
        "piece hashes but its files need",
    ),
    ("6-piece-length-0", info_edit(V1, set_key(b"piece length", 0)), MetainfoError, "not positive"),
    ("6-piece-length-neg", info_edit(V1, set_key(b"piece length", -16384)), MetainfoError, "not positive"),
    ("6-piece-length-missing", info_edit(V1, del_key(b"piece length")), MetainfoError, "no 'piece length'"),
    (
        "6-piece-length-huge",
        info_edit(V1, set_key(b"piece length", 2**40)),
        MetainfoError,
        "max_piece_length",
    ),
    (
        "6-v2-piece-length-odd",
        info_edit(V2, set_key(b"piece length", 3 * 16384)),
        MetainfoError,
        "not a power of two",
    ),
    (
        "6-v2-piece-length-small",
        info_edit(V2, set_key(b"piece length", 8192)),
        MetainfoError,
        "not a power of two",
    ),
    ("6-no-pieces", info_edit(V1, del_key(b"pieces")), MetainfoError, "no 'pieces'"),
    ("6-negative-length", info_edit(SINGLE, set_key(b"length", -1)), MetainfoError, "negative"),
    ("6-huge-length", info_edit(SINGLE, set_key(b"length", 2**63)), MetainfoError, "piece count"),
    (
        "6-zero-total",
        info_edit(SINGLE, lambda i: i.update({b"length": 0, b"pieces": b""})),
        MetainfoError,
        "no data",
    ),
    ("6-files-empty", info_edit(V1, set_key(b"files", [])), MetainfoError, "empty 'files'"),
    ("6-length-and-files", info_edit(V1, set_key(b"length", 5)), MetainfoError, "both 'length' and 'files'"),
    ("6-meta-version-3", info_edit(V2, set_key(b"meta version", 3)), MetainfoError, "meta version"),
    # case 8: v2 / hybrid inconsistency
    ("8-layers-missing", edit(V2, del_key(b"piece layers")), MetainfoError, "no 'piece layers'"),
    ("8-layer-missing", edit(V2, set_key(b"piece layers", {})), MetainfoError, "piece layer missing"),
    ("8-layer-short", edit(V2, first_layer(lambda b: b[:-32])), MetainfoError, "expected 96"),
    (
        "8-layer-wrong",
        edit(V2, first_layer(lambda b: bytes(len(b)))),
        MetainfoError,
        "does not match its pieces root",
    ),
    ("8-zero-root", info_edit(V2, zero_root), MetainfoError, "all-zero 'pieces root'"),
    (
        "8-no-root",
        info_edit(V2, lambda i: i[b"file tree"][b"a"][b""].pop(b"pieces root")),
        MetainfoError,
        "no valid 'pieces root'",
    ),
    ("8-hybrid-files-differ", info_edit(HYBRID, hybrid_rename_v1), MetainfoError, "differs from its v2"),
    ("8-hybrid-big-pad", info_edit(HYBRID, hybrid_big_pad), MetainfoError, "not less than a piece"),
    ("8-hybrid-unaligned", info_edit(HYBRID, hybrid_drop_pad), MetainfoError, "piece"),
    (
        "8-v2-pad-attr",
        info_edit(V2, lambda i: i[b"file tree"][b"a"][b""].update({b"attr": b"p"})),
        MetainfoError,
        "pad file",
    ),
    (
        "8-v2-empty-dir",
        info_edit(V2, lambda i: i[b"file tree"].update({b"e": {}})),
        MetainfoError,
        "is empty",
    ),
    ("8-v2-deep-tree", info_edit(V2, deep_tree(40)), MetainfoError, "max_path_depth 30"),
]


@pytest.mark.parametrize(("case", "data", "error", "match"), CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_torrent(case: str, data: bytes, error: type[ShoalError], match: str) -> None:
    s = Settings(max_path_depth=30) if case == "8-v2-deep-tree" else Settings()
    with pytest.raises(error) as info:
        Metainfo.from_bytes(data, s)
    assert match in str(info.value)
    assert "\n" not in str(info.value)


def test_valid_bases_parse() -> None:
    for base in (V1, V2, HYBRID, SINGLE):
        Metainfo.from_bytes(base)


def test_file_count_limit_one_past() -> None:
    files = {(f"f{i}",): content(3, i) for i in range(10)}
    data = build(files, "v1")
    assert len(Metainfo.from_bytes(data, Settings(max_file_count=10)).info.files) == 10
    with pytest.raises(MetainfoError, match="max_file_count 9"):
        Metainfo.from_bytes(data, Settings(max_file_count=9))
    v2 = build(files, "v2")
    Metainfo.from_bytes(v2, Settings(max_file_count=10))
    with pytest.raises(MetainfoError, match="max_file_count 9"):
        Metainfo.from_bytes(v2, Settings(max_file_count=9))


def test_piece_count_limit_one_past() -> None:
    data = build({(): content(16384 * 4)}, "v1")
    Metainfo.from_bytes(data, Settings(max_piece_count=4))
    with pytest.raises(MetainfoError, match="max_piece_count 3"):
        Metainfo.from_bytes(data, Settings(max_piece_count=3))


def test_hybrid_v1_cannot_skip_v2_check() -> None:
    """A hybrid with a good v1 part but a lying v2 layer is refused as a whole (case 8)."""
    bad = edit(HYBRID, first_layer(lambda b: bytes(len(b))))
    with pytest.raises(MetainfoError, match="pieces root"):
        Metainfo.from_bytes(bad)


def test_million_file_list_is_refused_fast() -> None:
    """Case 5: a huge file list is refused by max_file_count before any per-file work."""
    entry = b"d6:lengthi1e4:pathl1:aee"
    info = b"d5:filesl" + entry * 200_000 + b"e4:name1:t12:piece lengthi16384e6:pieces20:" + bytes(20) + b"e"
    with pytest.raises(MetainfoError, match="max_file_count"):
        Metainfo.from_bytes(b"d4:info" + info + b"e", Settings(max_file_count=100_000))


def test_empty_name_becomes_info_hash() -> None:
    data = info_edit(SINGLE, set_key(b"name", b""))
    m = Metainfo.from_bytes(data)
    raw = bencode.raw_value(data, b"info")
    assert raw is not None
    assert m.info.name == hashlib.sha1(raw).hexdigest()


def test_hostile_names_are_neutralised() -> None:
    """Case 12: reserved, control and bidi characters become portable names; the info-hash is untouched."""
    data = info_edit(V1, set_path(0, ["CON", "evil\u202egpj.exe", "a\x01b:c"]))  # type: ignore[list-item]
    m = Metainfo.from_bytes(data)
    assert m.info.files[0].path == ("t", "_CON", "evilgpj.exe", "a_b_c")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([V1, V2, HYBRID, SINGLE]),
    st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=3))),
)
def test_mutations_raise_only_shoal_errors(base: bytes, edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(base)
    for pos, new in edits:
        at = pos % len(data)
        data[at : at + len(new)] = new
    try:
        Metainfo.from_bytes(bytes(data))
    except ShoalError:
        pass
