from __future__ import annotations

import random

from shoal.dht.peer_store import PeerStore
from shoal.types import PeerAddr


def h(i: int) -> bytes:
    return i.to_bytes(20, "big")


def test_per_infohash_cap_one_past_evicts_oldest() -> None:
    s = PeerStore(max_peers_per_infohash=3)
    for port in range(1, 5):
        s.announce(h(1), PeerAddr("1.1.1.1", port), float(port))
    peers = s.get(h(1), 0.0, 10, random.Random(1))
    assert sorted(p.port for p in peers) == [2, 3, 4]
    assert len(s) == 3


def test_infohash_cap_one_past() -> None:
    s = PeerStore(max_infohashes=2)
    for i in range(3):
        s.announce(h(i), PeerAddr("1.1.1.1", 1), 0.0)
    assert s.infohash_count() == 2
    assert not s.has(h(0))


def test_total_cap_one_past() -> None:
    s = PeerStore(max_peers_total=5)
    for i in range(6):
        s.announce(h(i % 3), PeerAddr("1.1.1.1", i + 1), float(i))
    assert len(s) == 5


def test_expiry_and_families() -> None:
    s = PeerStore(peer_ttl=10.0)
    s.announce(h(1), PeerAddr("1.1.1.1", 1), 0.0)
    s.announce(h(1), PeerAddr("::1", 2), 5.0)
    assert s.get(h(1), 1.0, 10, random.Random(1)) == [PeerAddr("1.1.1.1", 1)]
    assert s.get(h(1), 1.0, 10, random.Random(1), v6=True) == [PeerAddr("::1", 2)]
    s.expire(10.0)
    assert len(s) == 1
    s.expire(15.0)
    assert len(s) == 0 and not s.has(h(1))


def test_reply_count_is_capped_and_samples_bounded() -> None:
    s = PeerStore()
    for port in range(1, 200):
        s.announce(h(1), PeerAddr("1.1.1.1", port), 0.0)
    assert len(s.get(h(1), 0.0, 50, random.Random(1))) == 50
    for i in range(30):
        s.announce(h(100 + i), PeerAddr("1.1.1.1", 1), 0.0)
    assert len(s.sample_infohashes(20, random.Random(1))) == 20
