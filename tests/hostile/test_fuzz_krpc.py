"""Hostile KRPC datagrams (case 28): only KrpcError from the decoder, nothing at all out of the node."""

from __future__ import annotations

import random
import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import HOSTILE, corpus_files, load_target, mutate, peak_memory
from shoal.codec import bencode
from shoal.config import Settings
from shoal.dht.node import DhtNode

TARGET = load_target("krpc")
SEEDS = [p.read_bytes() for p in corpus_files("krpc")]

field_values: st.SearchStrategy[Any] = (
    st.sampled_from(
        [
            b"",
            b"A" * 20,
            b"A" * 19,
            b"A" * 21,
            b"N" * 26 * 3,
            b"N" * 25,
            b"N" * 38,
            0,
            -1,
            65536,
            2**64,
            [],
            {},
            [b"n4", b"n6"],
            [b"\x7f\x00\x00\x01\x1a\xe1"],
            [b"x"],
        ]
    )
    | st.binary(max_size=40)
    | st.integers()
)
methods = st.sampled_from(
    [b"ping", b"find_node", b"get_peers", b"announce_peer", b"sample_infohashes", b"x", b""]
)
arg_keys = st.sampled_from(
    [
        b"id",
        b"target",
        b"info_hash",
        b"port",
        b"token",
        b"implied_port",
        b"want",
        b"ro",
        b"nodes",
        b"nodes6",
        b"values",
        b"samples",
        b"interval",
        b"num",
    ]
)


@st.composite
def krpc_message(draw: st.DrawFn) -> bytes:
    body = draw(st.dictionaries(arg_keys, field_values, max_size=6))
    kind = draw(st.sampled_from([b"q", b"r", b"e", b"x", 1]))
    msg: dict[bytes, Any] = {b"t": draw(st.binary(max_size=20) | st.integers()), b"y": kind}
    if kind == b"q":
        msg[b"q"] = draw(methods)
        msg[b"a"] = body
    elif kind == b"r":
        msg[b"r"] = body
    else:
        msg[b"e"] = draw(st.sampled_from([[201, b"x"], [b"x"], b"x", [], [999999999999, b"y" * 100]]))
    for key in draw(st.lists(st.sampled_from([b"t", b"y", b"a", b"r", b"q"]), max_size=1)):
        msg.pop(key, None)
    return bencode.encode(msg)


def _framed(datagrams: list[tuple[int, bytes]]) -> bytes:
    return b"".join(bytes([src]) + struct.pack(">H", len(d)) + d for src, d in datagrams)


@HOSTILE
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=255), krpc_message()), min_size=1, max_size=6))
def test_structured_hostile_datagrams(datagrams: list[tuple[int, bytes]]) -> None:
    for _, d in datagrams:
        TARGET.TestOneInput(d)
    TARGET.TestOneInput(_framed(datagrams))


@HOSTILE
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_datagrams(seed: bytes, data: st.DataObject) -> None:
    TARGET.TestOneInput(mutate(seed, data.draw))


def test_huge_datagram_flood_keeps_memory_flat() -> None:
    """64 KiB datagrams and 1,000 distinct sources: dropped by size, rate limiter table stays bounded."""
    settings = Settings()
    node = DhtNode(settings, random.Random(1), 0.0, node_id=b"\x01" * 20)
    big = b"d1:t2:aa1:y1:q1:q4:ping1:ad2:id20:" + b"A" * 20 + b"1:x" + b"65000:" + b"x" * 65000 + b"ee"

    def flood() -> None:
        for i in range(1000):
            node.receive_datagram(big, (f"10.{i // 250}.{i % 250}.1", 1000 + i), float(i) / 100)
            node.datagrams_to_send(float(i) / 100)

    assert peak_memory(flood) < 4 * len(big) + 2_000_000
    assert all(len(d) <= settings.dht_max_datagram_size for d, _ in node.datagrams_to_send(20.0))
