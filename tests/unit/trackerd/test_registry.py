from __future__ import annotations

import random

import pytest

from shoal.tracker.proto.messages import Event, ScrapeStats
from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.registry import AnnounceRefused, RateLimiter, Registry, ServerAnnounce

IH = b"\x01" * 20
CFG = TrackerdConfig(peer_timeout=100.0)


def addr(i: int, port: int = 6881) -> bytes:
    return bytes([10, 0, i // 256, i % 256]) + port.to_bytes(2, "big")


def req(
    i: int, left: int = 1, event: Event = Event.NONE, numwant: int | None = None, ih: bytes = IH
) -> ServerAnnounce:
    return ServerAnnounce(ih, bytes([i % 256]) * 20, addr(i), left, event, numwant)


def reg(config: TrackerdConfig = CFG, **kw: object) -> Registry:
    return Registry(config, random.Random(7), **kw)  # type: ignore[arg-type]


def test_announce_counts_and_never_returns_self() -> None:
    r = reg()
    res = r.announce(req(1, event=Event.STARTED), 0.0)
    assert (res.complete, res.incomplete, res.peers) == (0, 1, [])
    res = r.announce(req(2, left=0, event=Event.STARTED), 1.0)
    assert (res.complete, res.incomplete) == (1, 1)
    assert res.peers == [addr(1)]
    res = r.announce(req(1), 2.0)
    assert res.peers == [addr(2)]
    assert res.interval == CFG.interval and res.min_interval == CFG.min_interval


def test_seeders_not_sent_to_seeders() -> None:
    r = reg()
    for i in range(5):
        r.announce(req(i, left=0), 0.0)
    r.announce(req(10), 0.0)
    res = r.announce(req(0, left=0), 1.0)
    assert res.peers == [addr(10)]


def test_numwant_default_cap_and_randomness() -> None:
    r = reg()
    for i in range(200):
        r.announce(req(i), 0.0)
    assert len(r.announce(req(0), 1.0).peers) == CFG.default_numwant
    assert len(r.announce(req(0, numwant=10**6), 1.0).peers) == CFG.max_numwant
    assert len(r.announce(req(0, numwant=CFG.max_numwant + 1), 1.0).peers) == CFG.max_numwant
    assert r.announce(req(0, numwant=0), 1.0).peers == []
    a = set(r.announce(req(0, numwant=5), 1.0).peers)
    b = set(r.announce(req(0, numwant=5), 1.0).peers)
    assert a != b and addr(0) not in a | b


def test_stopped_removes_and_completed_counts_once() -> None:
    r = reg()
    r.announce(req(1, event=Event.STARTED), 0.0)
    r.announce(req(1, left=0, event=Event.COMPLETED), 1.0)
    r.announce(req(1, left=0, event=Event.COMPLETED), 2.0)  # already a seeder: not a second download
    assert r.scrape([IH])[IH] == ScrapeStats(complete=1, downloaded=1, incomplete=0)
    res = r.announce(req(1, left=0, event=Event.STOPPED), 3.0)
    assert res.peers == [] and (res.complete, res.incomplete) == (0, 0)
    assert r.scrape([IH])[IH] == ScrapeStats(0, 1, 0)
    s = r.stats()
    assert (s["started"], s["completed"], s["stopped"], s["peers"]) == (1, 2, 1, 0)


def test_stopped_for_unknown_swarm_creates_nothing() -> None:
    r = reg()
    r.announce(req(1, event=Event.STOPPED), 0.0)
    assert r.swarms == {}


def test_expiry() -> None:
    r = reg()
    r.announce(req(1), 0.0)
    r.announce(req(2), 50.0)
    assert r.expire(100.0) == 0
    assert r.expire(100.1) == 1
    assert r.scrape([IH])[IH].incomplete == 1
    assert r.expire(1000.0) == 1
    assert r.swarms == {} and r.peer_count == 0


def test_swarm_and_peer_caps_one_past() -> None:
    r = reg(CFG.with_(max_swarms=2, max_peers=3))
    r.announce(req(1, ih=b"a" * 20), 0.0)
    r.announce(req(2, ih=b"b" * 20), 0.0)
    with pytest.raises(AnnounceRefused, match="max_swarms 2"):
        r.announce(req(3, ih=b"c" * 20), 0.0)
    r.announce(req(3, ih=b"a" * 20), 0.0)
    with pytest.raises(AnnounceRefused, match="max_peers 3"):
        r.announce(req(4, ih=b"a" * 20), 0.0)
    r.announce(req(3, ih=b"a" * 20), 1.0)  # a known peer may still re-announce


def test_private_mode() -> None:
    r = reg(allowed={IH}, passkeys={"abc"})
    with pytest.raises(AnnounceRefused, match="unknown passkey"):
        r.announce(req(1), 0.0)
    with pytest.raises(AnnounceRefused, match="unregistered torrent"):
        r.announce(ServerAnnounce(b"\x02" * 20, b"p" * 20, addr(1), 1, passkey="abc"), 0.0)
    r.announce(ServerAnnounce(IH, b"p" * 20, addr(1), 1, passkey="abc"), 0.0)
    assert list(r.scrape([IH, b"\x02" * 20], "abc")) == [IH]
    with pytest.raises(AnnounceRefused):
        r.scrape([IH], "nope")
    assert r.stats()["refused"] == 2


def test_full_scrape_off_by_default() -> None:
    r = reg()
    r.announce(req(1), 0.0)
    with pytest.raises(AnnounceRefused, match="disabled"):
        r.full_scrape()
    assert list(reg(CFG.with_(full_scrape=True)).full_scrape()) == []


def test_peer_keyed_by_address_not_peer_id() -> None:
    r = reg()
    r.announce(req(1), 0.0)
    # someone else sends peer 1's peer id from another address: peer 1 stays
    r.announce(ServerAnnounce(IH, bytes([1]) * 20, addr(99), 1, Event.STOPPED), 1.0)
    assert r.scrape([IH])[IH].incomplete == 1


def test_rate_limiter() -> None:
    lim = RateLimiter(rate=1.0, burst=3.0, max_ips=2)
    assert [lim.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert lim.allow("a", 1.0)
    assert not lim.allow("a", 1.0)
    assert lim.allow("b", 1.0) and lim.allow("c", 1.0)  # table bounded: cleared, not grown
    assert RateLimiter(0, 0, 1).allow("x", 0.0)


def test_expiry_in_slices() -> None:
    r = reg()
    for i in range(10):
        r.announce(req(i, ih=bytes([i]) * 20), 0.0)
    assert r.expire(200.0, max_swarms=3) == 3
    assert r.expire(200.0, max_swarms=3) == 3
    assert r.expire(200.0, max_swarms=100) == 4  # the rest of this pass
    assert r.swarms == {} and r.peer_count == 0
    r.announce(req(1), 300.0)
    assert r.expire(300.0, max_swarms=0) == 0


def test_peer_ids_for_dictionary_answers_and_v6_flag() -> None:
    r = reg()
    r.announce(req(1), 0.0)
    v6 = ServerAnnounce(IH, b"6" * 20, bytes(15) + b"\x01" + b"\x00\x07", 1)
    r.announce(v6, 0.0)
    res = r.announce(ServerAnnounce(IH, b"x" * 20, addr(3), 1, want_peer_ids=True), 0.0)
    assert dict(zip(res.peers, res.peer_ids or [], strict=True)) == {
        addr(1): bytes([1]) * 20,
        v6.addr: b"6" * 20,
    }
    assert res.has_v6
    r.announce(ServerAnnounce(IH, b"6" * 20, v6.addr, 1, Event.STOPPED), 1.0)
    assert not r.announce(req(3), 1.0).has_v6
