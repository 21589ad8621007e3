"""Iterative Kademlia lookup (BEP 5): the state of one find_node / get_peers / sample_infohashes search.

Theory of operation. Candidates are kept sorted by XOR distance to the target. :meth:`Lookup.next_queries`
hands out the not-yet-asked candidates among the ``k`` closest live ones, keeping at most ``alpha`` queries in
flight. Each response adds the nodes it carries (one hop further than the responder); a timeout marks the
candidate failed, which lets the next closest one move into the ``k`` closest. The lookup is done when every one
of the ``k`` closest live candidates has answered (or ``max_queries`` were sent and none is in flight).

The lookup never sends anything itself: the node turns the candidates it returns into KRPC queries and calls
:meth:`on_response` / :meth:`on_failure` with what came back. Candidate count is bounded by ``max_candidates``
(the farthest are dropped), so a hostile response cannot grow it.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from shoal.records import record
from shoal.types import PeerAddr

NEW, IN_FLIGHT, RESPONDED, FAILED = "new", "in flight", "responded", "failed"
_UNKNOWN_DISTANCE = -1  # bootstrap seeds whose id we do not know yet are asked first


@record(frozen=False)
class Candidate:
    dist: int
    addr: tuple[str, int]
    node_id: bytes | None
    hop: int
    state: str = NEW
    token: bytes | None = None
    verified: bool = True
    retries: int = 0

    def __lt__(self, other: Candidate) -> bool:
        return self.dist < other.dist


@record(frozen=False)
class LookupStats:
    queries: int = 0
    responses: int = 0
    failures: int = 0
    hops: int = 0  # hop count at which the closest answering node was reached


@dataclass
class Lookup:
    lookup_id: int
    kind: str  # "find_node", "get_peers", "sample_infohashes"
    target: bytes
    started: float
    k: int = 8
    alpha: int = 3
    max_candidates: int = 100
    max_queries: int = 200
    max_peers: int = 1000
    max_peers_per_ip: int = 4
    max_retries: int = 1  # a timed-out node among the k closest is asked again this many times
    announce_port: int | None = None  # get_peers followed by announce_peer
    implied_port: bool = False
    candidates: list[Candidate] = field(default_factory=list)
    peers: list[PeerAddr] = field(default_factory=list)
    samples: set[bytes] = field(default_factory=set)
    stats: LookupStats = field(default_factory=LookupStats)
    finished: bool = False

    def __post_init__(self) -> None:
        self._target_int = int.from_bytes(self.target, "big")
        self._by_addr: dict[tuple[str, int], Candidate] = {}
        self._ids: set[bytes] = set()
        self._peer_set: set[PeerAddr] = set()
        self._per_ip: Counter[str] = Counter()
        self.in_flight = 0

    # ------------------------------------------------------------------ candidates

    def add_seed(self, addr: tuple[str, int]) -> None:
        """A node whose id we do not know (a bootstrap router)."""
        if addr not in self._by_addr:
            self._insert(Candidate(_UNKNOWN_DISTANCE, addr, None, hop=1))

    def add_nodes(self, nodes: Iterable[tuple[bytes, tuple[str, int], bool]], hop: int) -> None:
        """Nodes as ``(id, addr, verified)``; duplicates and far ones past ``max_candidates`` are dropped."""
        for node_id, addr, verified in nodes:
            if node_id in self._ids or addr in self._by_addr:
                continue
            dist = int.from_bytes(node_id, "big") ^ self._target_int
            if len(self.candidates) >= self.max_candidates:
                worst = self.candidates[-1]
                if dist >= worst.dist or worst.state == IN_FLIGHT:
                    continue
                self._drop(worst)
            self._insert(Candidate(dist, addr, node_id, hop, verified=verified))

    def _insert(self, cand: Candidate) -> None:
        bisect.insort(self.candidates, cand)
        self._by_addr[cand.addr] = cand
        if cand.node_id is not None:
            self._ids.add(cand.node_id)

    def _drop(self, cand: Candidate) -> None:
        self.candidates.remove(cand)
        del self._by_addr[cand.addr]
        if cand.node_id is not None:
            self._ids.discard(cand.node_id)

    def _closest_live(self) -> list[Candidate]:
        out: list[Candidate] = []
        for c in self.candidates:
            if c.state != FAILED:
                out.append(c)
                if len(out) >= self.k:
                    break
        return out

    # ------------------------------------------------------------------ driving

    def next_queries(self) -> list[Candidate]:
        """Candidates to query now (marked in flight)."""
        if self.finished:
            return []
        out: list[Candidate] = []
        for c in self._closest_live():
            if self.in_flight >= self.alpha or self.stats.queries >= self.max_queries:
                break
            if c.state == NEW:
                c.state = IN_FLIGHT
                self.in_flight += 1
                self.stats.queries += 1
                out.append(c)
        self._check_done()
        return out

    def candidate(self, addr: tuple[str, int]) -> Candidate | None:
        return self._by_addr.get(addr)

    def on_response(
        self,
        addr: tuple[str, int],
        node_id: bytes,
        nodes: Iterable[tuple[bytes, tuple[str, int], bool]],
        *,
        values: Iterable[PeerAddr] = (),
        token: bytes | None = None,
        samples: Iterable[bytes] = (),
        verified: bool = True,
    ) -> list[PeerAddr]:
        """Record an answer; returns the peers in it that are new to this lookup."""
        cand = self._by_addr.get(addr)
        if cand is None or cand.state != IN_FLIGHT:
            return []
        self.in_flight -= 1
        self.stats.responses += 1
        if cand.node_id is None:  # a seed: now we know where it sits
            self.candidates.remove(cand)
            if node_id in self._ids:
                del self._by_addr[addr]
                cand.state = RESPONDED
            else:
                cand.node_id = node_id
                cand.dist = int.from_bytes(node_id, "big") ^ self._target_int
                self._insert(cand)
        cand.state = RESPONDED
        cand.token = token
        cand.verified = verified
        self.add_nodes(nodes, cand.hop + 1)
        self.samples.update(samples)
        new_peers = []
        for peer in values:
            if peer in self._peer_set or len(self.peers) >= self.max_peers:
                continue
            if self._per_ip[peer.host] >= self.max_peers_per_ip:
                continue  # one host on many ports: a victim being steered at (RELIABILITY case 34)
            self._per_ip[peer.host] += 1
            self._peer_set.add(peer)
            self.peers.append(peer)
            new_peers.append(peer)
        self._check_done()
        return new_peers

    def on_failure(self, addr: tuple[str, int], *, timed_out: bool = False) -> None:
        """A query failed. A timeout (a datagram may have been lost) is retried up to ``max_retries`` times if
        the node is still among the ``k`` closest; an error answer is final."""
        cand = self._by_addr.get(addr)
        if cand is None or cand.state != IN_FLIGHT:
            return
        self.in_flight -= 1
        self.stats.failures += 1
        if timed_out and cand.retries < self.max_retries and cand in self._closest_live():
            cand.retries += 1
            cand.state = NEW
        else:
            cand.state = FAILED
        self._check_done()

    def _check_done(self) -> None:
        if self.finished or self.in_flight:
            return
        closest = self._closest_live()
        exhausted = self.stats.queries >= self.max_queries
        if exhausted or all(c.state == RESPONDED for c in closest):
            self.finished = True
            responded = [c for c in closest if c.state == RESPONDED]
            self.stats.hops = responded[0].hop if responded else 0

    # ------------------------------------------------------------------ results

    def closest_responded(self, prefer_verified: bool = False) -> list[Candidate]:
        """The ``k`` closest nodes that answered (verified ones first when ``prefer_verified``)."""
        responded = [c for c in self.candidates if c.state == RESPONDED and c.node_id is not None]
        if prefer_verified:
            responded.sort(key=lambda c: (not c.verified, c.dist))
        return responded[: self.k]

    def announce_targets(self, prefer_verified: bool = False) -> list[Candidate]:
        """The ``k`` closest answering nodes that gave us a token (BEP 42: verified ones first)."""
        with_token = [
            c for c in self.candidates if c.state == RESPONDED and c.token and c.node_id is not None
        ]
        if prefer_verified:
            with_token.sort(key=lambda c: (not c.verified, c.dist))
        return with_token[: self.k]
