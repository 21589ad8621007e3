"""Peers announced to us (``announce_peer``), with expiry and caps (RELIABILITY case 33).

Bounded three ways: peers per info-hash, number of info-hashes, and peers in total. When a cap is hit the entry
that would expire first is evicted (for info-hashes: the one whose newest announce is oldest), so a flood of new
announces cannot grow memory, and fresh announces still get in.
"""

from __future__ import annotations

import random
from collections import OrderedDict

from shoal.types import PeerAddr


class PeerStore:
    def __init__(
        self,
        *,
        max_peers_per_infohash: int = 500,
        max_infohashes: int = 2000,
        max_peers_total: int = 50_000,
        peer_ttl: float = 1800.0,
    ) -> None:
        self.max_peers_per_infohash = max_peers_per_infohash
        self.max_infohashes = max_infohashes
        self.max_peers_total = max_peers_total
        self.peer_ttl = peer_ttl
        # info-hash -> (peer -> expiry), both ordered oldest announce first
        self._torrents: OrderedDict[bytes, OrderedDict[PeerAddr, float]] = OrderedDict()
        self._total = 0

    def __len__(self) -> int:
        return self._total

    def infohash_count(self) -> int:
        return len(self._torrents)

    def announce(self, info_hash: bytes, peer: PeerAddr, now: float) -> None:
        peers = self._torrents.get(info_hash)
        if peers is None:
            if len(self._torrents) >= self.max_infohashes:
                _, dropped = self._torrents.popitem(last=False)
                self._total -= len(dropped)
            peers = self._torrents[info_hash] = OrderedDict()
        if peer in peers:
            del peers[peer]
            self._total -= 1
        elif len(peers) >= self.max_peers_per_infohash:
            peers.popitem(last=False)
            self._total -= 1
        peers[peer] = now + self.peer_ttl
        self._total += 1
        self._torrents.move_to_end(info_hash)
        while self._total > self.max_peers_total:
            self._evict_one()

    def _evict_one(self) -> None:
        oldest_hash = next(iter(self._torrents))
        peers = self._torrents[oldest_hash]
        peers.popitem(last=False)
        self._total -= 1
        if not peers:
            del self._torrents[oldest_hash]

    def get(
        self, info_hash: bytes, now: float, count: int, rng: random.Random, v6: bool = False
    ) -> list[PeerAddr]:
        """Up to ``count`` live peers of one address family, a random sample when there are more."""
        peers = self._torrents.get(info_hash)
        if not peers:
            return []
        live = [p for p, expiry in peers.items() if expiry > now and (":" in p.host) == v6]
        if len(live) <= count:
            return live
        return rng.sample(live, count)

    def has(self, info_hash: bytes) -> bool:
        return info_hash in self._torrents

    def sample_infohashes(self, count: int, rng: random.Random) -> list[bytes]:
        """BEP 51: a random sample of the info-hashes we store."""
        keys = list(self._torrents)
        return keys if len(keys) <= count else rng.sample(keys, count)

    def expire(self, now: float) -> None:
        for info_hash in list(self._torrents):
            peers = self._torrents[info_hash]
            for peer in [p for p, expiry in peers.items() if expiry <= now]:
                del peers[peer]
                self._total -= 1
            if not peers:
                del self._torrents[info_hash]
