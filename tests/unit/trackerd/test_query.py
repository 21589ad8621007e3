from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest

from shoal.codec.bencode import decode
from shoal.tracker.proto import http as client_http
from shoal.tracker.proto.messages import AnnounceRequest, Event, ScrapeStats
from shoal.trackerd import query as q
from shoal.trackerd.registry import AnnounceResult
from shoal.types import PeerAddr

IH = bytes(range(20))
PID = b"-SH0100-" + b"\xfe" * 12
IP = bytes([127, 0, 0, 1])


def test_target_routing() -> None:
    assert q.parse_target(b"/announce?a=1") == q.Target("announce", None, b"a=1")
    assert q.parse_target(b"/KEY123/announce?x") == q.Target("announce", "KEY123", b"x")
    assert q.parse_target(b"/../announce").action == ""
    assert q.parse_target(b"/a/b/announce").action == ""
    assert q.parse_target(b"/stats.json").action == "stats.json"


def test_our_client_url_parses_back() -> None:
    req = AnnounceRequest(IH, PID, 51413, uploaded=5, downloaded=6, left=7, event=Event.COMPLETED, numwant=9)
    url = client_http.announce_url("http://x/announce", req)
    parsed = q.parse_announce(url.split("?", 1)[1].encode(), IP, None)
    r = parsed.request
    assert (r.info_hash, r.peer_id, r.left, r.event, r.numwant) == (IH, PID, 7, Event.COMPLETED, 9)
    assert r.addr == IP + (51413).to_bytes(2, "big") and parsed.compact


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (b"peer_id=" + b"a" * 20 + b"&port=1", "missing info_hash"),
        (b"info_hash=" + b"a" * 19 + b"&peer_id=" + b"a" * 20 + b"&port=1", "19 bytes"),
        (b"info_hash=" + b"a" * 21 + b"&peer_id=" + b"a" * 20 + b"&port=1", "21 bytes"),
        (b"info_hash=" + b"a" * 20 + b"&peer_id=" + b"a" * 20, "missing port"),
        (b"info_hash=" + b"a" * 20 + b"&peer_id=" + b"a" * 20 + b"&port=0", "port 0 out of range"),
        (b"info_hash=" + b"a" * 20 + b"&peer_id=" + b"a" * 20 + b"&port=65536", "out of range"),
        (b"info_hash=" + b"a" * 20 + b"&peer_id=" + b"a" * 20 + b"&port=x", "not a number"),
        (b"info_hash=%zz" + b"a" * 18, "percent-encoding"),
        (b"info_hash=%4", "percent-encoding"),
        (b"&".join([b"x=1"] * 257), "257 query parameters exceed 256"),
        (b"info_hash=" + b"a" * 20 + b"&peer_id=" + b"a" * 20 + b"&port=1&left=-1", "not a number"),
    ],
)
def test_bad_announce_queries_case_36(query: bytes, message: str) -> None:
    with pytest.raises(q.BadRequest, match=message):
        q.parse_announce(query, IP, None)


def test_ip_param_ignored_case_36() -> None:
    parsed = q.parse_announce(
        b"info_hash=" + b"a" * 20 + b"&peer_id=" + b"a" * 20 + b"&port=5&ip=6.6.6.6&ipv6=::6", IP, None
    )
    assert parsed.request.addr == IP + b"\x00\x05"


def test_scrape_hashes_capped_one_past() -> None:
    ok = b"&".join([b"info_hash=" + quote_from_bytes(bytes([i]) * 20).encode() for i in range(1, 101)])
    assert len(q.parse_scrape(ok, 100)) == 100
    with pytest.raises(q.BadRequest, match="101 info-hashes exceeds 100"):
        q.parse_scrape(ok + b"&info_hash=" + b"z" * 20, 100)
    assert q.parse_scrape(b"", 100) == []


def test_encode_announce_compact_and_dict() -> None:
    peers = [bytes([1, 2, 3, 4, 0, 80]), bytes(15) + b"\x01\x00\x51"]
    res = AnnounceResult(1800, 900, 1, 1, peers, has_v6=True, peer_ids=[b"p" * 20, b"q" * 20])
    compact = q.encode_announce(res)
    assert decode(compact)  # canonical bencode (sorted keys)
    parsed = client_http.parse_announce(compact)
    assert parsed.peers == [PeerAddr("1.2.3.4", 80), PeerAddr("::1", 81)]
    assert (parsed.complete, parsed.incomplete, parsed.interval, parsed.min_interval) == (1, 1, 1800, 900)
    d = decode(q.encode_announce(res, compact=False, no_peer_id=False))
    assert d[b"peers"][0] == {b"ip": b"1.2.3.4", b"port": 80, b"peer id": b"p" * 20}
    assert client_http.parse_announce(q.encode_announce(res, compact=False)).peers == parsed.peers


def test_encode_scrape_and_failure() -> None:
    assert client_http.parse_scrape(q.encode_scrape({IH: ScrapeStats(1, 2, 3)})) == {IH: ScrapeStats(1, 2, 3)}
    assert decode(q.encode_failure("nope")) == {b"failure reason": b"nope"}


@pytest.mark.parametrize(
    "raw",
    [bytes(range(20)), b"\xff" * 20, b"abc=def%41" + bytes(10), b"-SH0100-abcdefghijkl", b"a b\tc+d_e"],
)
def test_unquote_matches_urllib(raw: bytes) -> None:
    from urllib.parse import unquote_to_bytes

    for encoded in (
        quote_from_bytes(raw, safe="").encode(),
        quote_from_bytes(raw, safe="").lower().encode(),
        quote_from_bytes(raw).encode(),
        "".join(f"%{b:02X}" for b in raw).encode(),
    ):
        assert q.unquote(encoded) == unquote_to_bytes(encoded) == raw or q.unquote(
            encoded
        ) == unquote_to_bytes(encoded)
