"""A whole DHT in one process: many :class:`DhtNode` objects on a simulated network with a fake clock.

The network is a dict of address -> node and a priority queue of datagrams in flight; every datagram is the real
bencoded bytes, delivered after a seeded random latency (and optionally lost). Timers are honoured: the sim
keeps one scheduled wake-up per node and jumps the clock to the next datagram or timer. Everything random comes
from one seed, so a run is reproducible.

:func:`populate_tables` fills every routing table the way a long-running DHT would look (for each bucket depth,
up to ``k`` random nodes of that region of the id space), which costs O(N log N) instead of N bootstrap lookups;
the bootstrap path itself is exercised by :meth:`DhtSim.bootstrap_all` on smaller networks.
"""

from __future__ import annotations

import bisect
import heapq
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from shoal.config import Settings
from shoal.dht.events import DhtEvent, LookupFinished
from shoal.dht.node import DhtNode

Addr = tuple[str, int]


def sim_settings(**changes: object) -> Settings:
    """Settings for simulated nodes: per-IP limits as in production; slow maintenance to keep runs short."""
    base = Settings().with_(dht_maintenance_interval=300.0, dht_max_lookups=64)
    return base.with_(**changes) if changes else base


class DhtSim:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        seed: int = 1,
        latency: tuple[float, float] = (0.005, 0.1),
        loss: float = 0.0,
    ) -> None:
        self.settings = settings or sim_settings()
        self.rng = random.Random(seed)
        self.latency = latency
        self.loss = loss
        self.now = 0.0
        self.nodes: dict[Addr, DhtNode] = {}
        self.events: dict[Addr, list[DhtEvent]] = {}
        self._queue: list[tuple[float, int, Addr, Addr, bytes]] = []
        self._timers: list[tuple[float, int, Addr]] = []
        self._scheduled: dict[Addr, float] = {}
        self._seq = 0
        self.datagrams = 0
        self.bytes = 0

    # ------------------------------------------------------------------ building

    def address(self, index: int) -> Addr:
        """A distinct IP per node, each in its own /24 (so per-subnet limits do not bite)."""
        return (f"10.{(index >> 8) & 0xFF}.{index & 0xFF}.{1 + (index >> 16)}", 6881)

    def add_node(self, addr: Addr | None = None, *, settings: Settings | None = None) -> DhtNode:
        addr = addr or self.address(len(self.nodes))
        node = DhtNode(settings or self.settings, random.Random(self.rng.getrandbits(64)), self.now)
        self.nodes[addr] = node
        self.events[addr] = []
        self._schedule(addr, node)
        return node

    def populate_tables(self, extra: int = 0) -> None:
        """Give every node the routing table of a settled DHT (see the module docstring)."""
        by_int = sorted((int.from_bytes(n.node_id, "big"), a) for a, n in self.nodes.items())
        ids = [i for i, _ in by_int]
        k = self.settings.dht_bucket_size + extra
        for node in self.nodes.values():
            x = int.from_bytes(node.node_id, "big")
            table = node.tables[4]
            for depth in range(160):
                shift = 159 - depth
                lo = ((x >> shift) ^ 1) << shift
                start, end = bisect.bisect_left(ids, lo), bisect.bisect_left(ids, lo + (1 << shift))
                picks = range(start, end) if end - start <= k else self.rng.sample(range(start, end), k)
                for j in picks:
                    other = by_int[j][1]
                    table.heard_from(self.nodes[other].node_id, other[0], other[1], self.now, responded=True)
                own_lo = (x >> shift) << shift
                if bisect.bisect_left(ids, own_lo + (1 << shift)) - bisect.bisect_left(ids, own_lo) <= 1:
                    break

    # ------------------------------------------------------------------ running

    def _schedule(self, addr: Addr, node: DhtNode) -> None:
        t = node.get_timer()
        if t is None:
            return
        if self._scheduled.get(addr) != t:
            self._scheduled[addr] = t
            self._seq += 1
            heapq.heappush(self._timers, (t, self._seq, addr))

    def flush(self, addr: Addr) -> None:
        node = self.nodes[addr]
        for data, dst in node.datagrams_to_send(self.now):
            self.datagrams += 1
            self.bytes += len(data)
            if dst not in self.nodes or (self.loss and self.rng.random() < self.loss):
                continue
            self._seq += 1
            delay = self.rng.uniform(*self.latency)
            heapq.heappush(self._queue, (self.now + delay, self._seq, dst, addr, data))
        while (event := node.next_event()) is not None:
            self.events[addr].append(event)
        self._schedule(addr, node)

    def step(self) -> bool:
        """Deliver the next datagram or fire the next timer; False when nothing is left."""
        while self._timers and self._scheduled.get(self._timers[0][2]) != self._timers[0][0]:
            heapq.heappop(self._timers)
        next_dgram = self._queue[0][0] if self._queue else None
        next_timer = self._timers[0][0] if self._timers else None
        if next_dgram is None and next_timer is None:
            return False
        if next_timer is None or (next_dgram is not None and next_dgram <= next_timer):
            t, _, dst, src, data = heapq.heappop(self._queue)
            self.now = max(self.now, t)
            self.nodes[dst].receive_datagram(data, src, self.now)
            self.flush(dst)
        else:
            t, _, addr = heapq.heappop(self._timers)
            del self._scheduled[addr]
            self.now = max(self.now, t)
            self.nodes[addr].handle_timer(self.now)
            self.flush(addr)
        return True

    def run_until(self, done: Callable[[], bool], max_time: float) -> bool:
        deadline = self.now + max_time
        while not done():
            if not self._queue and not self._timers:
                return False
            head = min(
                self._queue[0][0] if self._queue else deadline,
                self._timers[0][0] if self._timers else deadline,
            )
            if head > deadline:
                return False
            self.step()
        return True

    def finished(self, addr: Addr, lookup_id: int) -> LookupFinished | None:
        for event in self.events[addr]:
            if isinstance(event, LookupFinished) and event.lookup_id == lookup_id:
                return event
        return None

    def true_closest(self, target: bytes, count: int) -> list[bytes]:
        t = int.from_bytes(target, "big")
        ids = sorted((n.node_id for n in self.nodes.values()), key=lambda i: int.from_bytes(i, "big") ^ t)
        return ids[:count]


@dataclass(frozen=True, slots=True)
class LookupReport:
    nodes: int
    lookups: int
    converged: int
    hops_median: float
    hops_p95: float
    messages_median: float
    messages_p95: float
    log2_n: float

    def lines(self) -> list[str]:
        return [
            f"nodes {self.nodes}, lookups {self.lookups}, converged {self.converged}/{self.lookups}",
            f"hops median {self.hops_median:.1f}, p95 {self.hops_p95:.1f}; log2(N) {self.log2_n:.1f}",
            f"messages per lookup median {self.messages_median:.1f}, p95 {self.messages_p95:.1f}",
        ]


def percentile(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def report(nodes: int, hops: list[int], messages: list[int], converged: int, log2_n: float) -> LookupReport:
    return LookupReport(
        nodes,
        len(hops),
        converged,
        float(statistics.median(hops)) if hops else 0.0,
        percentile(hops, 0.95),
        float(statistics.median(messages)) if messages else 0.0,
        percentile(messages, 0.95),
        log2_n,
    )
