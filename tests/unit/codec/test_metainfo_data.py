"""Real torrents from other tools, stored in tests/data/torrents with what those tools reported for them.

``expected.json`` was written from libtorrent 2.1.1 (info-hashes, piece count, files without pads) and, for the v1
ones, cross-checked with transmission-show 3.00 when the fixtures were made. ``noncanonical_v1.torrent`` has an info
dict with unsorted keys: its info-hash must be taken over the original bytes, as libtorrent does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal.codec.magnet import Magnet
from shoal.codec.metainfo import Metainfo

DATA = Path(__file__).resolve().parents[2] / "data" / "torrents"
EXPECTED = json.loads((DATA / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_matches_the_tools(name: str) -> None:
    want = EXPECTED[name]
    m = Metainfo.from_bytes((DATA / name).read_bytes())
    assert (m.info_hash_v1.hex() if m.info_hash_v1 else None) == want["info_hash_v1"]
    assert (m.info_hash_v2.hex() if m.info_hash_v2 else None) == want["info_hash_v2"]
    assert m.info.num_pieces == want["num_pieces"]
    assert m.info.piece_length == want["piece_length"]
    assert [["/".join(f.path), f.length] for f in m.info.real_files] == want["files"]
    assert Metainfo.from_bytes(m.to_bytes()).info.raw == m.info.raw
    assert Magnet.parse(Magnet.from_metainfo(m).to_uri()).info_hash == m.info_hash
