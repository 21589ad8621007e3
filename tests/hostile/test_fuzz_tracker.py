"""Hostile tracker traffic (cases 35, 36, 38): HTTP and UDP answers on the client side, UDP requests on the
server side. Only TrackerError comes out; intervals are clamped, peers filtered, counts capped."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import HOSTILE, corpus_files, load_target, mutate, peak_memory
from shoal.codec import bencode
from shoal.errors import TrackerError
from shoal.tracker.proto import http, udp

HTTP = load_target("tracker_http")
UDP = load_target("tracker_udp")
HTTP_SEEDS = [p.read_bytes() for p in corpus_files("tracker_http")]
UDP_SEEDS = [p.read_bytes() for p in corpus_files("tracker_udp")]

values: st.SearchStrategy[Any] = (
    st.sampled_from(
        [
            0,
            -1,
            10**12,
            -(10**12),
            2**63,
            b"",
            b"\x01" * 6,
            b"\x01" * 7,
            b"\x01" * 18,
            b"\x01" * 17,
            b"<script>alert(1)</script>",
            b"\x1b[31m\x00",
            [],
            {},
            [{b"ip": b"::1", b"port": 1}],
            [{b"ip": b"evil.example", b"port": 80}],
            [{b"ip": b"1.2.3.4", b"port": 0}],
            [b"x"],
        ]
    )
    | st.binary(max_size=30)
    | st.integers()
)
keys = st.sampled_from(
    [
        b"interval",
        b"min interval",
        b"peers",
        b"peers6",
        b"complete",
        b"incomplete",
        b"failure reason",
        b"warning message",
        b"tracker id",
        b"files",
    ]
)


@HOSTILE
@given(st.dictionaries(keys, values, max_size=6))
def test_structured_hostile_http_answers(body: dict[bytes, Any]) -> None:
    HTTP.TestOneInput(bencode.encode(body))


@HOSTILE
@given(st.sampled_from(HTTP_SEEDS), st.data())
def test_mutated_http_answers(seed: bytes, data: st.DataObject) -> None:
    HTTP.TestOneInput(mutate(seed, data.draw))


@HOSTILE
@given(
    st.sampled_from([0, 1, 2, 3, 4, -1, 2**31 - 1]),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.binary(max_size=120),
)
def test_structured_hostile_udp_packets(action: int, tid: int, body: bytes) -> None:
    UDP.TestOneInput(struct.pack(">ii", action, tid) + body)
    UDP.TestOneInput(struct.pack(">qii", udp.PROTOCOL_ID, action, tid) + body)


@HOSTILE
@given(st.sampled_from(UDP_SEEDS), st.data())
def test_mutated_udp_packets(seed: bytes, data: st.DataObject) -> None:
    UDP.TestOneInput(mutate(seed, data.draw))


def test_depth_10000_answer_is_a_tracker_error() -> None:
    body = b"d5:peers" + b"l" * 10_000 + b"e" * 10_000 + b"e"
    try:
        http.parse_announce(body)
    except TrackerError:
        pass
    else:
        raise AssertionError("a depth-10000 answer was accepted")


def test_300_kb_of_compact_peers_is_capped() -> None:
    body = bencode.encode(
        {
            b"interval": 1,
            b"peers": bytes(range(6)) * 10
            + b"".join(struct.pack(">4sH", i.to_bytes(4, "big"), 6881) for i in range(1, 50_000)),
        }
    )
    resp = http.parse_announce(body, max_peers=200)
    assert len(resp.peers) == 200 and resp.interval == http.MIN_INTERVAL
    assert peak_memory(lambda: http.parse_announce(body, max_peers=200)) < 64 * len(body)


def test_scrape_of_a_thousand_hashes_is_clamped() -> None:
    packet = struct.pack(">qii", 1234, udp.ACTION_SCRAPE, 7) + b"\x01" * 20 * 1000
    req = udp.decode_request(packet)
    assert isinstance(req, udp.UdpScrape) and len(req.info_hashes) == udp.MAX_SCRAPE_HASHES
