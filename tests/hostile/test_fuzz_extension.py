"""Hostile BEP 10 payloads (cases 23, 25, 26): extended handshake lies are clamped, ut_metadata size and hash lies
never produce accepted metadata, ut_pex floods are capped. (Whole-connection fuzzing is in test_wire_fuzz.py.)"""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import HOSTILE, corpus_files, load_target, mutate, peak_memory
from shoal.codec import bencode
from shoal.wire.metadata import MetadataFetcher, metadata_piece_count
from shoal.wire.pex import decode_pex

TARGET = load_target("extension")
SEEDS = [p.read_bytes() for p in corpus_files("extension")]

lies: st.SearchStrategy[Any] = (
    st.sampled_from([-1, 0, 1, 2**31, 2**63, 100 * 1024 * 1024, b"", b"x", [], {}, 16384, 16385])
    | st.integers()
    | st.binary(max_size=20)
)


@HOSTILE
@given(
    st.sampled_from([0, 1, 3]),
    st.dictionaries(
        st.sampled_from(
            [
                b"m",
                b"metadata_size",
                b"reqq",
                b"p",
                b"v",
                b"yourip",
                b"msg_type",
                b"piece",
                b"total_size",
                b"added",
                b"added.f",
                b"dropped",
                b"added6",
            ]
        ),
        lies | st.dictionaries(st.binary(max_size=12), lies, max_size=3),
        max_size=6,
    ),
    st.binary(max_size=64),
)
def test_structured_hostile_payloads(parser: int, fields: dict[bytes, Any], trailer: bytes) -> None:
    TARGET.TestOneInput(bytes([parser]) + bencode.encode(fields) + trailer)


@HOSTILE
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_payloads(seed: bytes, data: st.DataObject) -> None:
    TARGET.TestOneInput(mutate(seed, data.draw))


def test_poisoned_metadata_from_three_peers_is_rejected_and_refetched() -> None:
    info = (
        bencode.encode({b"name": b"a", b"length": 1, b"piece length": 16384, b"pieces": b"\x01" * 20}) * 600
    )
    fetcher = MetadataFetcher(hashlib.sha1(info).digest(), 4 * 1024 * 1024)
    assert fetcher.set_size(len(info), "p0")
    pieces = [info[i : i + 16384] for i in range(0, len(info), 16384)]
    assert len(pieces) == metadata_piece_count(len(info)) == 3
    result = None
    for i, piece in enumerate(pieces):  # three liars, one piece each, all flipped
        peer = f"p{i}"
        assert fetcher.next_request(peer, 0.0) == i
        result = fetcher.on_data(peer, i, len(info), bytes(b ^ 1 for b in piece))
    assert result is not None and not result.ok
    assert fetcher.suspects == {"p0", "p1", "p2"}
    # an honest peer then delivers the real thing
    assert fetcher.set_size(len(info), "honest")
    for i, piece in enumerate(pieces):
        assert fetcher.next_request("honest", 1.0) == i
        result = fetcher.on_data("honest", i, len(info), piece)
    assert result is not None and result.ok and result.info == info


def test_pex_flood_of_ten_thousand_peers_is_capped() -> None:
    payload = bencode.encode(
        {
            b"added": b"\x0a\x00\x00\x01\x1a\xe1" * 10_000,
            b"added.f": b"\x00" * 10_000,
            b"dropped": b"\x0a\x00\x00\x02\x00\x50" * 10_000,
        }
    )
    msg = decode_pex(payload, max_peers=50)
    assert len(msg.added) == 50 and len(msg.dropped) == 50
    assert peak_memory(lambda: decode_pex(payload, max_peers=50)) < 4 * len(payload) + 200_000
