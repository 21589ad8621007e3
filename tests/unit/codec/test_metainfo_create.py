"""Torrent creation: piece size, layout, hashes checked against an independent in-test computation."""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal import creator
from shoal.codec import merkle
from shoal.codec.metainfo import Metainfo
from shoal.codec.metainfo_create import auto_piece_length, plan_layout
from shoal.creator import create_torrent
from shoal.errors import ConfigError
from shoal.storage import hash_fork, hasher
from torrent_factory import build, content

KiB = 1024
MiB = 1024 * KiB


def test_auto_piece_length() -> None:
    assert auto_piece_length(1) == 16 * KiB
    assert auto_piece_length(2000 * 16 * KiB) == 16 * KiB
    assert auto_piece_length(2000 * 16 * KiB + 1) == 32 * KiB
    assert auto_piece_length(1024 * MiB) == 1 * MiB
    assert auto_piece_length(100 * 1024**4) == 16 * MiB


def test_layout_pads_only_for_v2_and_hybrid() -> None:
    files = [(("b",), 10), (("a", "x"), 0), (("a", "y"), 20000)]
    v1 = plan_layout(files, 16 * KiB, "v1", single=False)
    assert [(e.path, e.offset, e.pad) for e in v1] == [
        (("a", "x"), 0, False),
        (("a", "y"), 0, False),
        (("b",), 20000, False),
    ]
    hy = plan_layout(files, 16 * KiB, "hybrid", single=False)
    assert [(e.path, e.length, e.pad) for e in hy] == [
        (("a", "x"), 0, False),
        (("a", "y"), 20000, False),
        ((".pad", str(32768 - 20000)), 32768 - 20000, True),
        (("b",), 10, False),
        ((".pad", str(16384 - 10)), 16384 - 10, True),
    ]


def make_tree(root: Path, sizes: dict[str, int], seed: int = 1) -> dict[str, bytes]:
    rng = random.Random(seed)
    contents = {}
    for rel, size in sizes.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(size)
        p.write_bytes(data)
        contents[rel] = data
    return contents


SIZES = {"z.bin": 70001, "dir/empty": 0, "dir/a.txt": 1, "dir/sub/c.dat": 16384 * 3, "m.bin": 40000}


def expected_v1_pieces(m: Metainfo, contents: dict[str, bytes]) -> bytes:
    stream = b""
    for f in m.info.files:
        stream += bytes(f.length) if f.is_pad else contents["/".join(f.path[1:]) or f.path[0]]
    pl = m.info.piece_length
    return b"".join(hashlib.sha1(stream[i : i + pl]).digest() for i in range(0, len(stream), pl))


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
@pytest.mark.parametrize("chunk", [32 * KiB, 8 * MiB])
@pytest.mark.parametrize("fork", [False, True])
def test_multi_file_hashes(
    tmp_path: Path,
    version: str,
    chunk: int,
    fork: bool,
    monkeypatch: pytest.MonkeyPatch,
    in_fresh_process: Callable[[], None],
) -> None:
    if fork and not hash_fork.fork_is_safe():
        in_fresh_process()
        return
    monkeypatch.setattr(hash_fork, "fork_is_safe", lambda: fork)
    monkeypatch.setattr(hasher, "BUFFER_BYTES", chunk)
    monkeypatch.setattr(hasher, "RUN_BYTES", chunk)
    contents = make_tree(tmp_path / "t", SIZES)
    m = Metainfo.from_bytes(create_torrent(tmp_path / "t", version=version, piece_length=16 * KiB))  # type: ignore[arg-type]
    assert [("/".join(f.path), f.length) for f in m.info.real_files] == sorted(
        (f"t/{k}", len(v)) for k, v in contents.items()
    )
    assert m.info.content_length == sum(SIZES.values())
    if version != "v2":
        assert m.info.piece_hashes_v1 == expected_v1_pieces(m, contents)
    if version != "v1":
        for i, f in enumerate(m.info.files):
            if f.is_pad:
                continue
            data = contents["/".join(f.path[1:])]
            if not data:
                assert f.pieces_root is None
                continue
            layer, root = merkle.layer_and_root(merkle.block_hashes(data), 16 * KiB)
            assert f.pieces_root == root
            assert m.piece_layer(i) == (layer or root)


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
@pytest.mark.parametrize("size", [1, 16383, 16384, 16385, 100_000])
def test_single_file(tmp_path: Path, version: str, size: int) -> None:
    data = random.Random(size).randbytes(size)
    (tmp_path / "f.bin").write_bytes(data)
    m = Metainfo.from_bytes(create_torrent(tmp_path / "f.bin", version=version, piece_length=16 * KiB))  # type: ignore[arg-type]
    assert m.info.files[0].path == ("f.bin",)
    assert m.info.num_pieces == -(-size // (16 * KiB))
    if version != "v2":
        assert m.info.piece_hash_v1(0) == hashlib.sha1(data[: 16 * KiB]).digest()
    if version != "v1":
        assert m.info.files[0].pieces_root == merkle.layer_and_root(merkle.block_hashes(data), 16 * KiB)[1]


def test_reproducible_and_threads_agree(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", SIZES)
    a = create_torrent(tmp_path / "t", version="hybrid", threads=1)
    b = create_torrent(tmp_path / "t", version="hybrid", threads=2)
    assert a == b
    c = create_torrent(tmp_path / "t", version="hybrid", creation_date=1_700_000_000)
    assert c != a
    assert Metainfo.from_bytes(c).creation_date == 1_700_000_000


def test_options_written(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", {"a": 5})
    data = create_torrent(
        tmp_path / "t",
        trackers=[["http://a/announce", "udp://b:1"], ["https://c/announce"]],
        web_seeds=["http://w/"],
        private=True,
        comment="c",
        source="S",
        created_by="me",
    )
    m = Metainfo.from_bytes(data)
    assert m.trackers == [["http://a/announce", "udp://b:1"], ["https://c/announce"]]
    assert m.web_seeds == ["http://w/"]
    assert (m.info.private, m.info.source, m.comment, m.created_by, m.creation_date) == (
        True,
        "S",
        "c",
        "me",
        None,
    )
    assert m.to_bytes() == data


def test_progress_reaches_total(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", SIZES)
    seen: list[tuple[int, int]] = []
    create_torrent(tmp_path / "t", piece_length=16 * KiB, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] == sum(SIZES.values())


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        create_torrent(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no files"):
        create_torrent(tmp_path / "empty")
    (tmp_path / "empty" / "z").write_bytes(b"")
    with pytest.raises(ConfigError, match="no data"):
        create_torrent(tmp_path / "empty")
    (tmp_path / "f").write_bytes(b"x")
    for bad in (1000, 16 * KiB + 1, 8 * KiB, 512 * MiB):
        with pytest.raises(ConfigError, match="piece size"):
            create_torrent(tmp_path / "f", piece_length=bad)
    with pytest.raises(ConfigError, match="threads 0"):
        create_torrent(tmp_path / "f", threads=0)
    with pytest.raises(ConfigError, match="version"):
        create_torrent(tmp_path / "f", version="v3")  # type: ignore[arg-type]


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("fork", [False, True])
def test_file_shrinking_while_hashing_is_storage_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    multi: bool,
    fork: bool,
    in_fresh_process: Callable[[], None],
) -> None:
    from shoal.errors import StorageError

    if fork and not hash_fork.fork_is_safe():
        in_fresh_process()
        return
    monkeypatch.setattr(hash_fork, "fork_is_safe", lambda: fork)
    monkeypatch.setattr(hasher, "RUN_BYTES", 16 * KiB)  # several runs, so several workers

    make_tree(tmp_path / "t", {"a": 40000, "b": 100})
    real_scan = creator.scan

    def stale_scan(path: Path) -> tuple[str, list[tuple[tuple[str, ...], int, Path]], bool]:
        name, files, single = real_scan(path)
        return name, [(rel, length + 50000, full) for rel, length, full in files], single

    monkeypatch.setattr(creator, "scan", stale_scan)
    with pytest.raises(StorageError, match="shrank"):
        create_torrent(tmp_path / "t" if multi else tmp_path / "t" / "a", piece_length=16 * KiB)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 70000), min_size=1, max_size=4),
    version=st.sampled_from(["v1", "v2", "hybrid"]),
    piece_length=st.sampled_from([16 * KiB, 32 * KiB]),
    chunk=st.sampled_from([16 * KiB, 64 * KiB, 8 * MiB]),
)
def test_creator_matches_independent_hashing(
    sizes: list[int], version: str, piece_length: int, chunk: int
) -> None:
    """Whatever the sizes and chunking, the threaded creator writes the same bytes as hashing everything in memory."""
    if sum(sizes) == 0:
        return
    files = {(f"f{i}",): content(n, i) for i, n in enumerate(sizes)}
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(hasher, "BUFFER_BYTES", chunk)
        mp.setattr(hasher, "RUN_BYTES", chunk * 2)
        root = Path(tmp) / "t"
        root.mkdir()
        for (name,), data in files.items():
            (root / name).write_bytes(data)
        ours = create_torrent(root, version=version, piece_length=piece_length, created_by=None)  # type: ignore[arg-type]
    assert ours == build(files, version, piece_length)


def test_local_names_are_sanitised_and_collisions_refused(tmp_path: Path) -> None:
    from shoal.errors import UnsafePathError

    root = tmp_path / "t"
    root.mkdir()
    with open(os.path.join(os.fsencode(root), b"bad\xff.bin"), "wb") as f:  # not UTF-8
        f.write(b"x" * 10)
    (root / "CON").write_bytes(b"y")
    m = Metainfo.from_bytes(create_torrent(root))
    assert [f.path for f in m.info.files] == [("t", "_CON"), ("t", "bad_.bin")]
    (root / "bad_.bin").write_bytes(b"z")
    with pytest.raises(UnsafePathError, match="duplicate"):
        create_torrent(root)


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_create_reports_the_info_hashes_the_parser_computes(tmp_path: Path, version: str) -> None:
    make_tree(tmp_path / "t", SIZES)
    made = creator.create(tmp_path / "t", version=version, piece_length=16 * KiB)  # type: ignore[arg-type]
    m = Metainfo.from_bytes(made.data)
    assert (made.info_hash_v1, made.info_hash_v2) == (m.info_hash_v1, m.info_hash_v2)
    assert (made.num_pieces, made.piece_length) == (m.info.num_pieces, m.info.piece_length)
