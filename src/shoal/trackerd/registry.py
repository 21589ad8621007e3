"""The tracker's swarm registry: announce, scrape, expiry. Sans-IO (``now`` and ``rng`` are passed in).

Peers are keyed by their compact address (4 or 16 address bytes + 2 port bytes) so nobody can remove or
replace another address's entry by sending its peer id. Each swarm keeps seeders and leechers in two indexed
lists; removal is O(1) (swap with the last) and the ``numwant`` peers returned are a window at a random offset of
each list (sizes proportional to the list sizes), which costs one random number and a slice.

Rules: ``stopped`` removes the peer and returns no peers; seeders are not sent to seeders; the requester never
gets itself; ``completed`` counts as a download only when the peer was not already a seeder; peers that do not
announce within ``peer_timeout`` are removed by :meth:`Registry.expire`; in private mode unknown info-hashes and
passkeys get a failure; the number of swarms and peers is capped.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import field
from typing import NamedTuple

from shoal.errors import ShoalError
from shoal.records import record
from shoal.tracker.proto.messages import Event, ScrapeStats
from shoal.trackerd.config import TrackerdConfig


class AnnounceRefused(ShoalError):
    """The tracker refuses this announce; the message is the ``failure reason`` sent back."""


@record(frozen=False)
class ServerAnnounce:
    """An announce as the adapters parsed it. ``addr`` is the compact address (ip bytes + port)."""

    info_hash: bytes
    peer_id: bytes
    addr: bytes
    left: int
    event: Event = Event.NONE
    numwant: int | None = None
    passkey: str | None = None
    downloaded: int = 0
    uploaded: int = 0
    want_peer_ids: bool = False  # dictionary-mode HTTP answers carry peer ids


@record(frozen=False)
class AnnounceResult:
    """``peers`` are compact addresses (6 or 18 bytes); ``has_v6`` says whether any is 18 bytes (when not,
    they are joined without looking at each); ``peer_ids`` follows ``peers`` when asked for."""

    interval: int
    min_interval: int
    complete: int
    incomplete: int
    peers: list[bytes]
    has_v6: bool = False
    peer_ids: list[bytes] | None = None


class Peer(NamedTuple):
    """One peer of a swarm. A tuple of atomic values, so the cyclic garbage collector stops tracking it:
    with hundreds of thousands of peers, tracked objects made collections cost ~25 % of the throughput."""

    addr: bytes
    peer_id: bytes
    seeder: bool
    last_seen: float


class _PeerList:
    """Peers with O(1) removal (swap with the last). ``addrs`` mirrors ``items`` so that answers are sliced
    and joined in C, without a Python step per peer."""

    __slots__ = ("addrs", "index", "items", "v6")

    def __init__(self) -> None:
        self.items: list[Peer] = []
        self.addrs: list[bytes] = []
        self.index: dict[bytes, int] = {}
        self.v6 = 0

    def add(self, peer: Peer) -> None:
        self.index[peer.addr] = len(self.items)
        self.items.append(peer)
        self.addrs.append(peer.addr)
        if len(peer.addr) == 18:
            self.v6 += 1

    def replace(self, peer: Peer) -> None:
        self.items[self.index[peer.addr]] = peer

    def remove(self, addr: bytes) -> None:
        i = self.index.pop(addr)
        last = self.items.pop()
        self.addrs.pop()
        if last.addr != addr:
            self.items[i] = last
            self.addrs[i] = last.addr
            self.index[last.addr] = i
        if len(addr) == 18:
            self.v6 -= 1


@record(frozen=False)
class Swarm:
    seeders: _PeerList = field(default_factory=_PeerList)
    leechers: _PeerList = field(default_factory=_PeerList)
    downloaded: int = 0

    def get(self, addr: bytes) -> Peer | None:
        i = self.seeders.index.get(addr)
        if i is not None:
            return self.seeders.items[i]
        i = self.leechers.index.get(addr)
        return self.leechers.items[i] if i is not None else None

    def __len__(self) -> int:
        return len(self.seeders.items) + len(self.leechers.items)


@record(frozen=False)
class Counters:
    announces: int = 0
    scrapes: int = 0
    started: int = 0
    completed: int = 0
    stopped: int = 0
    refused: int = 0
    expired: int = 0


class Registry:
    """All swarms of one tracker process (in memory)."""

    def __init__(
        self,
        config: TrackerdConfig,
        rng: random.Random,
        *,
        allowed: set[bytes] | None = None,
        passkeys: set[str] | None = None,
    ) -> None:
        self.config = config
        self._rng = rng
        self.allowed = allowed
        self.passkeys = passkeys
        self.swarms: dict[bytes, Swarm] = {}
        self.counters = Counters()
        self.peer_count = 0
        self._expire_queue: list[bytes] = []

    # ------------------------------------------------------------ access

    def check_access(self, info_hash: bytes, passkey: str | None) -> None:
        if self.passkeys is not None and passkey not in self.passkeys:
            raise AnnounceRefused("unknown passkey")
        if self.allowed is not None and info_hash not in self.allowed:
            raise AnnounceRefused("unregistered torrent")

    # ------------------------------------------------------------ announce

    def announce(self, req: ServerAnnounce, now: float) -> AnnounceResult:
        """Record the announce and answer it; raises :class:`AnnounceRefused` to send a failure reason."""
        cfg = self.config
        complete, incomplete, peers, has_v6 = self.announce_fields(
            req.info_hash, req.peer_id, req.addr, req.left, req.event, req.numwant, req.passkey, now
        )
        res = AnnounceResult(cfg.interval, cfg.min_interval, complete, incomplete, peers, has_v6)
        if req.want_peer_ids:
            swarm = self.swarms.get(req.info_hash)
            res.peer_ids = [
                p.peer_id if swarm is not None and (p := swarm.get(a)) is not None else b"" for a in peers
            ]
        return res

    def announce_fields(
        self,
        info_hash: bytes,
        peer_id: bytes,
        addr: bytes,
        left: int,
        event: Event,
        numwant: int | None,
        passkey: str | None,
        now: float,
    ) -> tuple[int, int, list[bytes], bool]:
        """:meth:`announce` without the request and result objects (the UDP fast path): returns
        (complete, incomplete, compact peers, whether any peer is IPv6)."""
        cfg = self.config
        counters = self.counters
        counters.announces += 1
        if self.passkeys is not None or self.allowed is not None:
            try:
                self.check_access(info_hash, passkey)
            except AnnounceRefused:
                counters.refused += 1
                raise
        swarm = self.swarms.get(info_hash)
        if swarm is None:
            if event is Event.STOPPED:
                return 0, 0, [], False
            if len(self.swarms) >= cfg.max_swarms:
                counters.refused += 1
                raise AnnounceRefused(f"tracker is full: max_swarms {cfg.max_swarms}")
            swarm = self.swarms[info_hash] = Swarm()
        seeders = swarm.seeders
        leechers = swarm.leechers
        i = seeders.index.get(addr)
        if i is not None:
            peer: Peer | None = seeders.items[i]
        else:
            i = leechers.index.get(addr)
            peer = leechers.items[i] if i is not None else None
        seeder = left == 0
        if event is not Event.NONE:
            if event is Event.STOPPED:
                counters.stopped += 1
                if peer is not None:
                    self._remove(swarm, peer)
                return len(seeders.items), len(leechers.items), [], False
            if event is Event.STARTED:
                counters.started += 1
            else:
                counters.completed += 1
                if peer is None or not peer.seeder:
                    swarm.downloaded += 1
        if peer is None:
            if self.peer_count >= cfg.max_peers:
                counters.refused += 1
                raise AnnounceRefused(f"tracker is full: max_peers {cfg.max_peers}")
            (seeders if seeder else leechers).add(Peer(addr, peer_id, seeder, now))
            self.peer_count += 1
        elif peer.seeder == seeder:
            (seeders if seeder else leechers).replace(Peer(addr, peer_id, seeder, now))
        else:
            (seeders if peer.seeder else leechers).remove(addr)
            (seeders if seeder else leechers).add(Peer(addr, peer_id, seeder, now))
        if numwant is None:
            numwant = cfg.default_numwant
        numwant = max(0, min(numwant, cfg.max_numwant))
        peers = self._sample(swarm, seeder, addr, numwant) if numwant else []
        return (
            len(seeders.items),
            len(leechers.items),
            peers,
            bool(leechers.v6 or (seeders.v6 and not seeder)),
        )

    def _sample(self, swarm: Swarm, seeder: bool, own: bytes, k: int) -> list[bytes]:
        """Up to ``k`` compact addresses for a requester that was just recorded at ``own``: leechers (minus the
        requester) and, for a leecher, seeders, each as a window in proportion to the list sizes."""
        leech = swarm.leechers.addrs
        seeds: list[bytes] = [] if seeder else swarm.seeders.addrs
        skip = -1 if seeder else swarm.leechers.index.get(own, -1)  # where the requester sits among leechers
        nl = len(leech) - (skip >= 0)
        ns = len(seeds)
        if nl + ns <= k:
            out = leech[:skip] + leech[skip + 1 :] if skip >= 0 else leech[:]
            out += seeds
            return out
        kl = min(nl, max(k - ns, round(k * nl / (nl + ns))))
        out = self._window(leech, kl, skip)
        if k > kl:
            out += self._window(seeds, k - kl, -1)
        return out

    def _window(self, items: list[bytes], k: int, skip: int) -> list[bytes]:
        """``k`` entries from a random offset, wrapping around, leaving out index ``skip`` (-1: none): one
        random number and C-speed slicing. The list order is arrival order stirred by swap-removals, so a
        window is as good as a sample here."""
        n = len(items)
        if skip >= 0:
            if k >= n - 1:
                return items[:skip] + items[skip + 1 :]
            k += 1  # one more, so that dropping the requester (or the last) leaves k
        elif k >= n:
            return items[:]
        if k <= 0:
            return []
        start = int(self._rng.random() * n)  # randrange() costs ~10x more; the bias is < n / 2**53
        end = start + k
        out = items[start:end] if end <= n else items[start:] + items[: end - n]
        if skip >= 0:
            pos = (skip - start) % n
            del out[pos if pos < k else -1]
        return out

    def _remove(self, swarm: Swarm, peer: Peer) -> None:
        (swarm.seeders if peer.seeder else swarm.leechers).remove(peer.addr)
        self.peer_count -= 1

    # ------------------------------------------------------------ scrape, expiry, stats

    def scrape(self, info_hashes: Iterable[bytes], passkey: str | None = None) -> dict[bytes, ScrapeStats]:
        """Counts for each known (and, in private mode, allowed) info-hash; unknown ones count zero."""
        self.counters.scrapes += 1
        if self.passkeys is not None and passkey not in self.passkeys:
            raise AnnounceRefused("unknown passkey")
        out: dict[bytes, ScrapeStats] = {}
        for ih in info_hashes:
            if self.allowed is not None and ih not in self.allowed:
                continue
            swarm = self.swarms.get(ih)
            out[ih] = (
                ScrapeStats(len(swarm.seeders.items), swarm.downloaded, len(swarm.leechers.items))
                if swarm is not None
                else ScrapeStats(0, 0, 0)
            )
        return out

    def full_scrape(self, passkey: str | None = None) -> dict[bytes, ScrapeStats]:
        if not self.config.full_scrape:
            raise AnnounceRefused("full scrape is disabled")
        hashes = list(self.swarms)[: self.config.max_full_scrape]
        return self.scrape(hashes, passkey)

    def expire(self, now: float, max_swarms: int | None = None) -> int:
        """Forget peers silent for ``peer_timeout`` and swarms left empty with no downloads; return how many
        peers went. With ``max_swarms`` only that many swarms are visited per call (a cursor moves on), so a
        big registry is swept in slices without stalling the event loop."""
        cutoff = now - self.config.peer_timeout
        if not self._expire_queue:
            self._expire_queue = list(self.swarms)
        take = len(self._expire_queue) if max_swarms is None else max_swarms
        batch = self._expire_queue[-take:] if take else []
        del self._expire_queue[len(self._expire_queue) - len(batch) :]
        gone = 0
        for ih in batch:
            swarm = self.swarms.get(ih)
            if swarm is None:
                continue
            for plist in (swarm.seeders, swarm.leechers):
                for peer in [p for p in plist.items if p.last_seen < cutoff]:
                    plist.remove(peer.addr)
                    gone += 1
            if not len(swarm) and not swarm.downloaded:
                del self.swarms[ih]
        self.peer_count -= gone
        self.counters.expired += gone
        return gone

    def stats(self) -> dict[str, int]:
        seeders = sum(len(s.seeders.items) for s in self.swarms.values())
        return {
            "swarms": len(self.swarms),
            "peers": self.peer_count,
            "seeders": seeders,
            "leechers": self.peer_count - seeders,
            "announces": self.counters.announces,
            "scrapes": self.counters.scrapes,
            "started": self.counters.started,
            "completed": self.counters.completed,
            "stopped": self.counters.stopped,
            "refused": self.counters.refused,
            "expired": self.counters.expired,
        }

    # ------------------------------------------------------------ persistence hooks (used by the SQLite adapter)

    def restore(self, info_hash: bytes, downloaded: int, peers: Iterable[Peer]) -> None:
        swarm = self.swarms.setdefault(info_hash, Swarm())
        swarm.downloaded = max(swarm.downloaded, downloaded)
        for peer in peers:
            if swarm.get(peer.addr) is None and self.peer_count < self.config.max_peers:
                (swarm.seeders if peer.seeder else swarm.leechers).add(peer)
                self.peer_count += 1


class RateLimiter:
    """Token bucket per client IP (``rate`` per second, ``burst``), bounded to ``max_ips`` entries."""

    def __init__(self, rate: float, burst: float, max_ips: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_ips = max_ips
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, ip: str, now: float) -> bool:
        if self.rate <= 0:
            return True
        tokens, last = self._buckets.get(ip, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[ip] = (tokens, now)
            return False
        if len(self._buckets) >= self.max_ips and ip not in self._buckets:
            self._buckets.clear()  # bounded memory under a spoofed flood; everyone starts with a full bucket
        self._buckets[ip] = (tokens - 1.0, now)
        return True
