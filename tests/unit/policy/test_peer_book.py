"""PeerBook: sources, candidates, back-off, bounded size, bans and hash-failure counting."""

from __future__ import annotations

import random

from shoal.policy.peer_book import PeerBook, PeerSource
from shoal.types import PeerAddr


def book(**kw: int) -> PeerBook:
    return PeerBook(rng=random.Random(1), **kw)  # type: ignore[arg-type]


def test_add_and_candidates_marked_connecting() -> None:
    b = book()
    a1, a2 = PeerAddr("10.0.0.1", 6881), PeerAddr("10.0.0.2", 6881)
    assert b.add(a1, PeerSource.DHT, 0.0)
    assert b.add(a2, PeerSource.TRACKER, 0.0)
    assert b.add(a1, PeerSource.TRACKER, 1.0)  # known: source upgraded
    assert b.get(a1) is not None and b.get(a1).source == PeerSource.TRACKER  # type: ignore[union-attr]
    assert not b.add(PeerAddr("10.0.0.3", 0), PeerSource.PEX, 0.0)
    got = b.candidates(0.0, 5)
    assert sorted(got) == [a1, a2]
    assert b.candidates(0.0, 5) == []  # all connecting


def test_backoff_doubles_then_forgets() -> None:
    b = book(backoff=10, backoff_max=35, max_failures=4)  # type: ignore[arg-type]
    a = PeerAddr("10.0.0.1", 1)
    b.add(a, PeerSource.TRACKER, 0.0)
    now = 0.0
    delays = []
    for _ in range(3):
        assert b.candidates(now, 1) == [a]
        b.on_connect_failed(a, now)
        entry = b.get(a)
        assert entry is not None
        delays.append(entry.next_attempt - now)
        assert b.candidates(now, 1) == []
        now = entry.next_attempt
    assert delays == [10, 20, 35]
    assert b.candidates(now, 1) == [a]
    b.on_connect_failed(a, now)
    assert a not in b


def test_bounded_evicts_failed_not_connected() -> None:
    b = book(max_peers=3)
    addrs = [PeerAddr(f"10.0.0.{i}", 1) for i in range(4)]
    for a in addrs[:3]:
        b.add(a, PeerSource.DHT, 0.0)
    b.on_connected(addrs[0], 0.0)
    b.candidates(0.0, 3)
    b.on_connect_failed(addrs[1], 0.0)
    assert b.add(addrs[3], PeerSource.PEX, 1.0)
    assert len(b) == 3 and addrs[1] not in b and addrs[0] in b
    # all connected or connecting: nothing can be evicted
    b.candidates(100.0, 10)
    assert not b.add(PeerAddr("10.0.0.9", 1), PeerSource.PEX, 2.0)


def test_hash_failures_ban_at_limit_and_one_past() -> None:
    b = book(max_hash_failures=3)
    a = PeerAddr("10.0.0.1", 1)
    b.add(a, PeerSource.TRACKER, 0.0)
    assert not b.on_hash_failure("10.0.0.1")
    assert not b.on_hash_failure("10.0.0.1")
    assert b.hash_failures("10.0.0.1") == 2
    assert b.on_hash_failure("10.0.0.1")  # the 3rd
    assert b.is_banned("10.0.0.1") and a not in b
    assert "hash failures" in (b.ban_reason("10.0.0.1") or "")
    assert not b.add(a, PeerSource.TRACKER, 1.0)
    assert not b.on_connected(PeerAddr("10.0.0.1", 2), 1.0)
    assert b.on_hash_failure("10.0.0.1")


def test_smart_ban_and_bounded_bans() -> None:
    b = book(max_bans=2)
    b.on_corrupt_proven("1.1.1.1")
    b.ban("2.2.2.2")
    b.ban("3.3.3.3")
    assert b.num_banned == 2 and not b.is_banned("1.1.1.1")
    b.unban("3.3.3.3")
    assert not b.is_banned("3.3.3.3")


def test_incoming_connection_recorded_and_disconnect_backoff() -> None:
    b = book(backoff=30)  # type: ignore[arg-type]
    a = PeerAddr("10.0.0.5", 5555)
    assert b.on_connected(a, 0.0)
    assert b.get(a) is not None and b.get(a).source == PeerSource.INCOMING  # type: ignore[union-attr]
    assert b.candidates(0.0, 1) == []
    b.on_disconnected(a, 10.0)
    assert b.candidates(20.0, 1) == []
    assert b.candidates(40.0, 1) == [a]
