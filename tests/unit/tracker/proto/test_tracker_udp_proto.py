from __future__ import annotations

import random
import struct

import pytest

from shoal.errors import LocalProtocolError, TrackerError
from shoal.tracker.proto import udp
from shoal.tracker.proto.messages import AnnounceRequest, Event, ScrapeStats
from shoal.types import PeerAddr

IH = b"\x11" * 20
PID = b"-SH0100-" + b"a" * 12


def test_connect_round_trip() -> None:
    rng = random.Random(1)
    tid = udp.transaction_id(rng)
    assert tid == udp.transaction_id(random.Random(1))
    pkt = udp.encode_connect(tid)
    assert len(pkt) == 16 and pkt[:8] == struct.pack(">q", 0x41727101980)
    req = udp.decode_request(pkt)
    assert req == udp.ConnectRequest(tid)
    assert udp.decode_connect_response(udp.encode_connect_response(tid, -5), tid) == -5


def test_announce_round_trip() -> None:
    req = AnnounceRequest(
        IH, PID, 6881, uploaded=3, downloaded=2, left=1, event=Event.STOPPED, numwant=9, key=77
    )
    pkt = udp.encode_announce(1234, -7, req)
    assert len(pkt) == 98
    parsed = udp.decode_request(pkt)
    assert isinstance(parsed, udp.UdpAnnounce)
    assert (parsed.connection_id, parsed.tid) == (1234, -7)
    assert parsed.request == req


def test_announce_response_peers_v4_and_v6() -> None:
    peers = bytes([10, 0, 0, 1, 0, 80]) + bytes([10, 0, 0, 2, 0, 0])
    r = udp.decode_announce_response(udp.encode_announce_response(5, 10, 2, 3, peers + b"\x01"), 5)
    assert r.peers == [PeerAddr("10.0.0.1", 80)]
    assert (r.interval, r.incomplete, r.complete) == (60.0, 2, 3)
    v6 = bytes(15) + b"\x01" + b"\x00\x50"
    r6 = udp.decode_announce_response(udp.encode_announce_response(5, 900, 0, 0, v6), 5, v6=True)
    assert r6.peers == [PeerAddr("::1", 80)] and r6.interval == 900


def test_scrape_round_trip_and_cap() -> None:
    pkt = udp.encode_scrape(9, 1, [IH, b"\x22" * 20])
    parsed = udp.decode_request(pkt)
    assert isinstance(parsed, udp.UdpScrape) and parsed.info_hashes == [IH, b"\x22" * 20]
    resp = udp.encode_scrape_response(1, [ScrapeStats(1, 2, 3), ScrapeStats(4, 5, 6)])
    out = udp.decode_scrape_response(resp, 1, [IH, b"\x22" * 20])
    assert out[IH] == ScrapeStats(1, 2, 3)
    with pytest.raises(LocalProtocolError):
        udp.encode_scrape(9, 1, [IH] * (udp.MAX_SCRAPE_HASHES + 1))
    big = udp.decode_request(udp._REQ_HEADER.pack(9, 2, 1) + IH * 100, max_scrape_hashes=70)
    assert isinstance(big, udp.UdpScrape) and len(big.info_hashes) == 70


def test_error_packet_and_mismatches() -> None:
    with pytest.raises(TrackerError) as info:
        udp.decode_announce_response(udp.encode_error(3, "go away\x00"), 3)
    assert info.value.failure_reason == "go away"
    with pytest.raises(TrackerError):
        udp.decode_connect_response(udp.encode_connect_response(3, 1), 4)
    with pytest.raises(TrackerError):
        udp.decode_connect_response(b"\x00" * 7, 4)
    with pytest.raises(TrackerError):
        udp.decode_connect_response(udp.encode_connect_response(3, 1)[:12], 3)
    with pytest.raises(TrackerError):
        udp.decode_announce_response(udp.encode_connect_response(3, 1), 3)


@pytest.mark.parametrize("size", [0, 8, 15, 16, 97])
def test_short_requests_dropped(size: int) -> None:
    pkt = udp.encode_announce(1, 1, AnnounceRequest(IH, PID, 1))[:size]
    assert udp.decode_request(pkt) is None


def test_connect_with_wrong_protocol_id_dropped() -> None:
    assert udp.decode_request(struct.pack(">qii", 1, 0, 5)) is None
    assert udp.decode_request(struct.pack(">qii", 1, 9, 5)) is None


def test_retry_schedule() -> None:
    assert [udp.retry_timeout(n) for n in range(4)] == [15, 30, 60, 120]
    assert udp.retry_timeout(100) == 15 * 2**8
    with pytest.raises(LocalProtocolError):
        udp.retry_timeout(-1)


def test_client_connection_id_lifetime() -> None:
    assert udp.connection_id_fresh(100.0, 159.9)
    assert not udp.connection_id_fresh(100.0, 160.0)


def test_connection_ids_stateless_and_unforgeable() -> None:
    m = udp.ConnectionIdMinter(b"k" * 32)
    cid = m.make("10.0.0.1", 1000.0)
    assert m.valid(cid, "10.0.0.1", 1000.0)
    assert m.valid(cid, "10.0.0.1", 1120.0)
    assert not m.valid(cid, "10.0.0.1", 1121.0)  # one past 120 s
    assert not m.valid(cid, "10.0.0.2", 1000.0)
    assert m.valid(cid, "10.0.0.1", 1000.0)  # not bound to the port (libtorrent shares ids across sessions)
    assert not m.valid(cid ^ 1, "10.0.0.1", 1000.0)
    assert not udp.ConnectionIdMinter(b"j" * 32).valid(cid, "10.0.0.1", 1000.0)
    assert not m.valid(cid, "10.0.0.1", 900.0)  # from the future
    with pytest.raises(LocalProtocolError):
        udp.ConnectionIdMinter(b"short")


def test_connection_id_fits_signed_i64() -> None:
    m = udp.ConnectionIdMinter(b"k" * 32)
    for now in (0.0, 2.0**31 + 5, 2.0**32 - 1):
        cid = m.make("::1", now)
        assert -(2**63) <= cid < 2**63
        udp.encode_connect_response(1, cid)
        assert m.valid(cid, "::1", now + 60)


def test_connection_id_cache_changes_nothing_accepted() -> None:
    m = udp.ConnectionIdMinter(b"k" * 32, cache_size=2)
    ids = {
        ip: m.make(ip, 1000.0) for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    }  # third one clears the cache
    assert len(m._cache) <= 2
    fresh = udp.ConnectionIdMinter(b"k" * 32)
    for ip, cid in ids.items():
        assert cid == fresh.make(ip, 1000.0)  # same id with or without the cache
        assert m.valid(cid, ip, 1000.0)
        assert not m.valid(cid, ip, 1121.0)  # a cached id still expires
        assert not m.valid(cid ^ 1, ip, 1000.0)
    assert m.make("10.0.0.3", 1000.5) == ids["10.0.0.3"]  # same second: the cached id
    assert m.make("10.0.0.3", 1001.0) != ids["10.0.0.3"]  # next second: a new stamp
    assert not m.valid(ids["10.0.0.1"], "10.0.0.2", 1000.0)  # bound to the ip, cached or not
