"""A deterministic swarm of policy objects only: picker + requests + choker + rates + peer book, in virtual time.

No sockets, no engine: each simulated peer has its own PiecePicker, Choker, PeerBook, RequestTrackers and
RateEstimators, and a per-tick upload capacity. One seed, several leechers, one of which serves corrupt blocks.
It shows the policies working together: everyone honest completes, leechers upload to each other (tit-for-tat and
rarest first spread the pieces), duplicates stay confined to end-game, and the corrupt peer is banned from the
block senders of failed pieces while no honest peer is.
"""

from __future__ import annotations

import random
import zlib
from collections import deque
from dataclasses import dataclass, field

from shoal.config import Settings
from shoal.policy.choker import Choker, PeerStats
from shoal.policy.peer_book import PeerBook
from shoal.policy.picker import PiecePicker
from shoal.policy.rate import RateEstimator
from shoal.policy.requests import RequestTracker, plan_requests
from shoal.types import BLOCK_SIZE, BlockRef

NUM_PIECES = 40
PIECE = 4 * BLOCK_SIZE
DT = 0.25
CHOKE_EVERY = 5.0
S = Settings().with_(min_outstanding_requests=4, max_outstanding_requests=16, request_timeout=20.0)


@dataclass
class SimPeer:
    name: str
    up_cap: int  # blocks per tick
    seed: bool = False
    corrupt: bool = False
    picker: PiecePicker = field(init=False)
    book: PeerBook = field(init=False)
    choker: Choker = field(init=False)
    unchoked: set[str] = field(default_factory=set)
    trackers: dict[str, RequestTracker] = field(default_factory=dict)
    rates: dict[str, RateEstimator] = field(default_factory=dict)
    upq: dict[str, deque[BlockRef]] = field(default_factory=dict)
    sent_to: dict[str, int] = field(default_factory=dict)
    got_from: dict[str, int] = field(default_factory=dict)
    good: dict[int, set[int]] = field(default_factory=dict)  # piece -> blocks that arrived corrupt
    wasted: int = 0
    received: int = 0

    def __post_init__(self) -> None:
        self.picker = PiecePicker(
            NUM_PIECES, PIECE, NUM_PIECES * PIECE, rng=random.Random(zlib.crc32(self.name.encode()))
        )
        if self.seed:
            for i in range(NUM_PIECES):
                self.picker.set_have(i)
        self.book = PeerBook(rng=random.Random(1), max_hash_failures=S.max_hash_failures_before_ban)
        self.choker = Choker(slots=4, optimistic_interval=15.0)


class Swarm:
    def __init__(self, peers: list[SimPeer]) -> None:
        self.peers = {p.name: p for p in peers}
        self.rng = random.Random(7)
        self.now = 0.0
        self.inflight: list[tuple[str, str, BlockRef, bool]] = []  # (to, from, block, good)
        for a in peers:
            for b in peers:
                if a is b:
                    continue
                a.trackers[b.name] = RequestTracker(
                    request_timeout=S.request_timeout, snub_timeout=S.snub_timeout
                )
                a.rates[b.name] = RateEstimator(window=5.0)
                a.upq[b.name] = deque()
                a.sent_to[b.name] = 0
                a.got_from[b.name] = 0
                if b.seed:
                    a.picker.peer_have_all(b.name)

    def banned(self, a: SimPeer, b: str) -> bool:
        return a.book.is_banned(b)

    def step(self) -> None:
        now = self.now
        peers = list(self.peers.values())
        # 1. choking
        if now % CHOKE_EVERY < DT / 2:
            for a in peers:
                stats = [
                    PeerStats(
                        b.name,
                        interested=b.picker.is_interesting(a.name),
                        download_rate=a.rates[b.name].rate(now),
                        uploaded=a.sent_to[b.name],
                        downloaded=a.got_from[b.name],
                    )
                    for b in peers
                    if b is not a and not self.banned(a, b.name) and not self.banned(b, a.name)
                ]
                a.unchoked = set(a.choker.decide(stats, now, self.rng, seeding=a.picker.is_seed).unchoke)  # type: ignore[arg-type]
                for b in peers:
                    if b is not a and b.name not in a.unchoked:
                        for blk in b.trackers[a.name].clear():
                            b.picker.abort(a.name, blk)
                        a.upq[b.name].clear()
        # 2. deliveries from the previous tick
        arrivals, self.inflight = self.inflight, []
        for to, frm, blk, ok in arrivals:
            self.deliver(self.peers[to], frm, blk, ok)
        # 3. timeouts and new requests
        for a in peers:
            for b in peers:
                if b is a or self.banned(a, b.name):
                    continue
                tr = a.trackers[b.name]
                for blk in tr.timed_out(now):
                    tr.cancelled(blk)
                    a.picker.abort(b.name, blk)
                if a.name not in b.unchoked:
                    continue
                new = plan_requests(a.picker, b.name, tr, rate=a.rates[b.name].rate(now), now=now, settings=S)
                b.upq[a.name].extend(new)
        # 4. uploads, round robin over unchoked peers' queues
        for b in peers:
            budget = b.up_cap
            queues = [q for name, q in b.upq.items() if q and name in b.unchoked]
            while budget and queues:
                for q in list(queues):
                    if not q:
                        queues.remove(q)
                        continue
                    if budget == 0:
                        break
                    to = next(n for n, qq in b.upq.items() if qq is q)
                    blk = q.popleft()
                    self.inflight.append((to, b.name, blk, not b.corrupt))
                    b.sent_to[to] += 1
                    budget -= 1
        self.now += DT

    def deliver(self, a: SimPeer, frm: str, blk: BlockRef, ok: bool) -> None:
        if self.banned(a, frm):
            return
        if not a.trackers[frm].received(blk, self.now):
            a.wasted += 1
            return
        a.rates[frm].add(blk.length, self.now)
        a.got_from[frm] += 1
        res = a.picker.on_block_received(frm, blk)
        if not res.accepted:
            a.wasted += 1
            return
        a.received += 1
        if not ok:
            a.good.setdefault(blk.piece, set()).add(blk.offset // BLOCK_SIZE)
        for other in res.cancel:
            a.trackers[str(other)].cancelled(blk)
            q = self.peers[str(other)].upq[a.name]
            if blk in q:
                q.remove(blk)
        if not res.piece_complete:
            return
        if not a.good.pop(blk.piece, None):
            a.picker.on_piece_passed(blk.piece)
            for x in self.peers.values():
                if x is not a:
                    x.picker.peer_have(a.name, blk.piece)
            return
        senders = {str(s) for s in a.picker.block_senders(blk.piece) if s is not None}
        a.picker.on_piece_failed(blk.piece)
        for s in senders:
            banned = a.book.on_hash_failure(s) if len(senders) > 1 else (a.book.on_corrupt_proven(s) or True)
            if banned:
                a.picker.peer_left(s)
                a.trackers[s].clear()
                a.unchoked.discard(s)

    def run(self, until: float) -> None:
        while self.now < until and not all(p.picker.is_seed for p in self.peers.values() if not p.corrupt):
            self.step()


def test_policy_swarm_completes_shares_and_bans_the_liar() -> None:
    peers = [SimPeer("seed", up_cap=4, seed=True)]
    peers += [SimPeer(f"l{i}", up_cap=2) for i in range(6)]
    peers.append(SimPeer("liar", up_cap=3, corrupt=True))
    swarm = Swarm(peers)
    swarm.run(until=1200.0)
    honest = [p for p in peers if not p.seed and not p.corrupt]
    assert all(p.picker.is_seed for p in honest), [(p.name, p.picker.num_have) for p in honest]
    for p in honest:
        assert p.picker.invariant_errors() == []
        # leechers upload to other leechers, not only take from the seed
        assert sum(n for to, n in p.sent_to.items() if to != "seed") > 0
        # duplicates only in end-game: a small fraction of what was downloaded
        assert p.wasted <= 0.1 * p.received
    assert sum(p.sent_to["l0"] for p in honest if p.name != "l0") > 0
    leeched_from_leechers = sum(p.got_from[q.name] for p in honest for q in honest if q is not p)
    assert leeched_from_leechers > NUM_PIECES * 4  # more than one copy's worth moved between leechers
    # the liar is banned by whoever got its data; nobody honest is banned
    victims = [p for p in honest if p.got_from["liar"] > 0]
    assert victims and all(p.book.is_banned("liar") for p in victims)
    for p in peers:
        for q in [*honest, peers[0]]:
            assert not p.book.is_banned(q.name)


def test_policy_swarm_is_deterministic() -> None:
    def run() -> list[tuple[str, int, int]]:
        peers = [SimPeer("seed", up_cap=4, seed=True)] + [SimPeer(f"l{i}", up_cap=2) for i in range(3)]
        s = Swarm(peers)
        s.run(until=600.0)
        return [(p.name, p.received, sum(p.sent_to.values())) for p in peers]

    assert run() == run()
