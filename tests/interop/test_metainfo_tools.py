"""Shoal against mktorrent 1.1 and Transmission 3.00's transmission-create / transmission-show (issue 2 acceptance 1-2).

* Torrents made by ``mktorrent`` and ``transmission-create`` load in Shoal with the info-hash and file list that
  ``transmission-show`` reports for them.
* ``transmission-show`` reads Shoal's v1 torrents with Shoal's info-hash and file list.
* Hybrid and v2: Transmission 3.00 predates BitTorrent v2 and refuses any torrent whose info dict has a
  ``file tree`` (seen here: removing ``file tree`` from a hybrid makes it load; removing ``meta version`` does not).
  Shoal's hybrid is byte-identical to libtorrent's (see test_metainfo_libtorrent.py), and Transmission 3.00 refuses
  both alike (PEERS.md), which ``test_transmission_refuses_the_v2_part_of_hybrids`` pins down. Transmission 3.00
  also lists BEP 47 pad files as ordinary files. If a newer Transmission
  accepts them, the test checks the v1 hash instead.
"""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from peers import require_binary
from shoal.codec.metainfo import Metainfo
from shoal.creator import create_torrent

pytestmark = pytest.mark.interop

TRACKER = "http://127.0.0.1:1/announce"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("content")
    rng = random.Random(3)
    for rel, size in {"a.bin": 100_003, "empty": 0, "sub/b.bin": 40_000, "sub/c/d.txt": 7}.items():
        p = root / "multi" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(size))
    (root / "single.bin").write_bytes(rng.randbytes(77_777))
    return root


def run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode:
        raise AssertionError(f"{cmd[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done.stdout


def transmission_show(path: Path) -> tuple[str, list[str]]:
    """The info-hash and file paths transmission-show reports."""
    out = run(require_binary("transmission-show"), str(path))
    hash_match = re.search(r"^\s*Hash: ([0-9a-f]{40})$", out, re.MULTILINE)
    assert hash_match, out
    files_part = out.split("\nFILES\n", 1)[1]
    files = [re.sub(r" \([^()]*\)$", "", line.strip()) for line in files_part.splitlines() if line.strip()]
    return hash_match.group(1), files


def shoal_files(m: Metainfo) -> list[str]:
    return ["/".join(f.path) for f in m.info.real_files]


@pytest.mark.parametrize("source", ["multi", "single.bin"])
def test_mktorrent_torrents_load_in_shoal(data: Path, tmp_path: Path, source: str) -> None:
    out = tmp_path / "mk.torrent"
    run(require_binary("mktorrent"), "-a", TRACKER, "-l", "15", "-t", "2", "-o", str(out), str(data / source))
    m = Metainfo.from_bytes(out.read_bytes())
    info_hash, files = transmission_show(out)
    assert m.info_hash_v1 is not None
    assert m.info_hash_v1.hex() == info_hash
    assert shoal_files(m) == files
    assert m.trackers == [[TRACKER]]
    assert m.info.piece_length == 32768


@pytest.mark.parametrize("source", ["multi", "single.bin"])
def test_transmission_create_torrents_load_in_shoal(data: Path, tmp_path: Path, source: str) -> None:
    out = tmp_path / "tc.torrent"
    run(require_binary("transmission-create"), "-o", str(out), "-t", TRACKER, "-s", "16", str(data / source))
    m = Metainfo.from_bytes(out.read_bytes())
    info_hash, files = transmission_show(out)
    assert m.info_hash_v1 is not None
    assert m.info_hash_v1.hex() == info_hash
    assert shoal_files(m) == files  # transmission-create leaves empty files out
    assert m.info.piece_length == 16384


@pytest.mark.parametrize("source", ["multi", "single.bin"])
def test_transmission_reads_shoal_v1(data: Path, tmp_path: Path, source: str) -> None:
    raw = create_torrent(data / source, version="v1", trackers=[TRACKER])
    out = tmp_path / "shoal.torrent"
    out.write_bytes(raw)
    m = Metainfo.from_bytes(raw)
    info_hash, files = transmission_show(out)
    assert m.info_hash_v1 is not None
    assert info_hash == m.info_hash_v1.hex()
    assert files == shoal_files(m)


def test_transmission_refuses_the_v2_part_of_hybrids(data: Path, tmp_path: Path) -> None:
    show = require_binary("transmission-show")
    ours = tmp_path / "shoal-hybrid.torrent"
    raw = create_torrent(data / "multi", version="hybrid", piece_length=16384, trackers=[TRACKER])
    ours.write_bytes(raw)
    m = Metainfo.from_bytes(raw)
    done = subprocess.run([show, str(ours)], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode == 0:  # a Transmission that knows v2: then it must agree on the v1 hash
        assert m.info_hash_v1 is not None
        assert transmission_show(ours)[0] == m.info_hash_v1.hex()
        return
    assert "Error parsing" in done.stdout + done.stderr
    # without 'file tree' (the v2 part) the same dict loads: the refusal is about v2, not about our encoding
    from shoal.codec import bencode

    top = bencode.decode(raw)
    del top[b"info"][b"file tree"]
    del top[b"piece layers"]
    v1_only = tmp_path / "stripped.torrent"
    v1_only.write_bytes(bencode.encode(top))
    listed = transmission_show(v1_only)[1]
    assert [f for f in listed if "/.pad/" not in f] == shoal_files(m)  # 3.00 shows BEP 47 pads as plain files
    assert any("/.pad/" in f for f in listed)
