from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from shoal.codec.bencode import encode
from shoal.errors import TrackerError
from shoal.tracker.proto import http
from shoal.tracker.proto.messages import AnnounceRequest, Event
from shoal.types import PeerAddr

IH = bytes(range(20))
PID = b"-SH0100-" + b"\xff" * 12


def _query(url: str) -> dict[str, list[bytes]]:
    q = urlsplit(url).query
    return {k: [v.encode("latin-1") for v in vs] for k, vs in parse_qs(q, encoding="latin-1").items()}


def test_announce_url_encodes_binary_and_fields() -> None:
    req = AnnounceRequest(
        IH, PID, 6881, uploaded=1, downloaded=2, left=3, event=Event.STARTED, numwant=50, key=7
    )
    url = http.announce_url("http://t.example/announce", req)
    q = _query(url)
    assert q["info_hash"] == [IH]
    assert q["peer_id"] == [PID]
    assert (
        q["port"] == [b"6881"]
        and q["uploaded"] == [b"1"]
        and q["downloaded"] == [b"2"]
        and q["left"] == [b"3"]
    )
    assert q["event"] == [b"started"] and q["compact"] == [b"1"] and q["numwant"] == [b"50"]
    assert q["key"] == [b"00000007"]
    assert "%00%01" in url


def test_announce_url_keeps_existing_query_and_optional_fields() -> None:
    req = AnnounceRequest(IH, PID, 1, tracker_id=b"tid", ipv6="::1")
    url = http.announce_url("http://t.example/announce?pk=abc", req)
    q = _query(url)
    assert q["pk"] == [b"abc"] and q["trackerid"] == [b"tid"] and q["ipv6"] == [b"::1"]
    assert "event" not in q


@pytest.mark.parametrize(
    ("announce", "scrape"),
    [
        ("http://example.com/announce", "http://example.com/scrape"),
        ("http://example.com/x/announce", "http://example.com/x/scrape"),
        ("http://example.com/announce.php", "http://example.com/scrape.php"),
        ("http://example.com/announce?x2%0644", "http://example.com/scrape?x2%0644"),
        ("http://example.com/a", None),
        ("http://example.com/announce?x=2/4", "http://example.com/scrape?x=2/4"),
        ("http://example.com/x%064announce", None),
        ("http://example.com/PASSKEY/announce", "http://example.com/PASSKEY/scrape"),
    ],
)
def test_scrape_url_bep48(announce: str, scrape: str | None) -> None:
    assert http.scrape_url(announce) == scrape


def test_scrape_request_url_repeats_info_hash() -> None:
    url = http.scrape_request_url("http://e/scrape", [IH, b"\x01" * 20])
    assert _query(url)["info_hash"] == [IH, b"\x01" * 20]


def test_parse_compact_peers_and_peers6() -> None:
    body = encode(
        {
            b"interval": 900,
            b"min interval": 120,
            b"peers": bytes([10, 0, 0, 1, 0x1A, 0xE1]),
            b"peers6": bytes(15) + b"\x01" + b"\x1a\xe2",
            b"complete": 3,
            b"incomplete": 4,
            b"tracker id": b"xyz",
            b"warning message": b"be nice",
        }
    )
    r = http.parse_announce(body)
    assert r.interval == 900 and r.min_interval == 120
    assert r.peers == [PeerAddr("10.0.0.1", 6881), PeerAddr("::1", 6882)]
    assert (r.complete, r.incomplete, r.tracker_id, r.warning) == (3, 4, b"xyz", "be nice")


def test_parse_dict_peers_drops_bad_entries() -> None:
    peers = [
        {b"ip": b"10.0.0.2", b"port": 1, b"peer id": b"x" * 20},
        {b"ip": b"::2", b"port": 2},
        {b"ip": b"evil.example", b"port": 3},
        {b"ip": b"10.0.0.3", b"port": 0},
        {b"ip": b"10.0.0.4", b"port": 70000},
        b"junk",
    ]
    r = http.parse_announce(encode({b"interval": 60, b"peers": peers}))
    assert r.peers == [PeerAddr("10.0.0.2", 1), PeerAddr("::2", 2)]


def test_failure_reason_is_plain_text() -> None:
    body = encode({b"failure reason": b"<b>no</b>\x00\x1b[31m" + b"x" * 5000})
    with pytest.raises(TrackerError) as info:
        http.parse_announce(body)
    reason = info.value.failure_reason
    assert reason is not None and "\x00" not in reason and "\x1b" not in reason and len(reason) <= 512


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 60.0), (-5, 60.0), (10**12, 86400.0), (None, 1800.0), (3600, 3600.0)]
)
def test_interval_clamped_case_38(value: int | None, expected: float) -> None:
    d: dict[bytes, object] = {b"peers": b""}
    if value is not None:
        d[b"interval"] = value
    assert http.parse_announce(encode(d)).interval == expected


def test_bad_compact_length_dropped_case_38() -> None:
    r = http.parse_announce(encode({b"interval": 60, b"peers": b"\x01" * 7, b"peers6": b"\x01" * 19}))
    assert r.peers == []


def test_deep_bencode_refused_case_38() -> None:
    body = b"d5:peers" + b"l" * 10_000 + b"e" * 10_000 + b"e"
    with pytest.raises(TrackerError):
        http.parse_announce(body)


@pytest.mark.parametrize("body", [b"", b"garbage", b"le", b"i5e", b"<html>", encode([1])])
def test_garbage_is_tracker_error(body: bytes) -> None:
    with pytest.raises(TrackerError):
        http.parse_announce(body)


def test_max_peers_one_past() -> None:
    peers = b"".join(bytes([10, 0, i // 256, i % 256, 0, 1]) for i in range(11))
    r = http.parse_announce(encode({b"interval": 60, b"peers": peers}), max_peers=10)
    assert len(r.peers) == 10


def test_duplicate_peers_removed() -> None:
    r = http.parse_announce(encode({b"interval": 60, b"peers": bytes([1, 2, 3, 4, 0, 1]) * 2}))
    assert r.peers == [PeerAddr("1.2.3.4", 1)]


def test_parse_scrape() -> None:
    body = encode(
        {b"files": {IH: {b"complete": 1, b"downloaded": 2, b"incomplete": 3}, b"short": {b"complete": 1}}}
    )
    stats = http.parse_scrape(body)
    assert list(stats) == [IH]
    assert (stats[IH].complete, stats[IH].downloaded, stats[IH].incomplete) == (1, 2, 3)
    with pytest.raises(TrackerError):
        http.parse_scrape(encode({b"nofiles": 1}))
    with pytest.raises(TrackerError):
        http.parse_scrape(encode({b"failure reason": b"nope"}))
