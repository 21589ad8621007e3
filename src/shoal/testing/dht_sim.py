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
import math
import random
import statistics
from collections.abc import Callable

from shoal.config import Settings
from shoal.dht.events import DhtEvent, LookupFinished
from shoal.dht.node import DhtNode
from shoal.records import record

Addr = tuple[str, int]


def sim_settings(**changes: object) -> Settings:
    """Settings for simulated nodes: limits as in production, but no background upkeep (pings and bucket
    refreshes), so the traffic measured is the lookups' own and long runs stay cheap."""
    base = Settings().with_(
        dht_maintenance_interval=300.0,
        dht_max_lookups=64,
        dht_node_questionable_after=1e9,
        dht_bucket_refresh_interval=1e9,
    )
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

    def _next_time(self) -> float | None:
        while self._timers and self._scheduled.get(self._timers[0][2]) != self._timers[0][0]:
            heapq.heappop(self._timers)  # a stale wake-up: the node re-armed its timer since
        times = [q[0][0] for q in (self._queue, self._timers) if q]
        return min(times) if times else None

    def step(self) -> bool:
        """Deliver the next datagram or fire the next timer; False when nothing is left."""
        if self._next_time() is None:
            return False
        if not self._timers or (self._queue and self._queue[0][0] <= self._timers[0][0]):
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
        """Step until ``done()`` or until the next event lies past ``max_time`` from now (the clock then
        stops at that deadline)."""
        deadline = self.now + max_time
        while not done():
            head = self._next_time()
            if head is None or head > deadline:
                self.now = max(self.now, deadline) if head is not None else self.now
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


@record
class LookupReport:
    nodes: int
    lookups: int
    converged: int  # lookups whose result held the true k closest nodes
    closest_found: int  # lookups whose first result was the true closest node
    hops_median: float
    hops_p95: float
    messages_median: float
    messages_p95: float
    log2_n: float
    announces: int = 0
    announces_found: int = 0  # get_peers lookups that found the announced peer
    loss: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"nodes {self.nodes} (log2 N = {self.log2_n:.1f}), datagram loss {self.loss:.0%}",
            f"find_node lookups {self.lookups}: found the true 8 closest in {self.converged},"
            f" the true closest in {self.closest_found}",
            f"hops to the closest node: median {self.hops_median:.0f}, p95 {self.hops_p95:.0f}",
            f"queries per lookup: median {self.messages_median:.0f}, p95 {self.messages_p95:.0f}",
            f"announce + get_peers: {self.announces_found}/{self.announces} found the announced peer",
        ]


def percentile(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def _run_lookup(sim: DhtSim, addr: Addr, start: Callable[[DhtNode], int]) -> LookupFinished:
    lookup_id = start(sim.nodes[addr])
    sim.flush(addr)
    if not sim.run_until(lambda: sim.finished(addr, lookup_id) is not None, 600.0):
        raise AssertionError(f"lookup {lookup_id} from {addr} never finished")
    done = sim.finished(addr, lookup_id)
    assert done is not None
    sim.events[addr].clear()
    return done


def lookup_experiment(
    nodes: int,
    lookups: int,
    *,
    announces: int = 0,
    seed: int = 1,
    loss: float = 0.0,
    sim: DhtSim | None = None,
) -> tuple[LookupReport, DhtSim]:
    """Build (or reuse) a settled DHT of ``nodes`` nodes; run ``lookups`` find_node lookups to random targets
    and ``announces`` announce-then-get_peers pairs, all between random nodes; report hops and messages."""
    if sim is None:
        sim = DhtSim(seed=seed, loss=loss)
        for _ in range(nodes):
            sim.add_node()
        sim.populate_tables()
    rng = sim.rng
    addrs = list(sim.nodes)
    k = sim.settings.dht_bucket_size
    hops: list[int] = []
    messages: list[int] = []
    converged = closest = 0
    for _ in range(lookups):
        addr = rng.choice(addrs)
        target = rng.getrandbits(160).to_bytes(20, "big")
        done = _run_lookup(sim, addr, lambda n, t=target: n.find_node(t, sim.now))  # type: ignore[misc]
        truth = set(sim.true_closest(target, k)) - {sim.nodes[addr].node_id}
        if truth <= {c.node_id for c in done.nodes}:
            converged += 1
        best = next(i for i in sim.true_closest(target, 2) if i != sim.nodes[addr].node_id)
        if done.nodes and done.nodes[0].node_id == best:
            closest += 1
        hops.append(done.hops)
        messages.append(done.queries)
    found = 0
    for i in range(announces):
        announcer, seeker = rng.sample(addrs, 2)
        info_hash = rng.getrandbits(160).to_bytes(20, "big")
        port = 10_000 + i
        _run_lookup(sim, announcer, lambda n, h=info_hash, p=port: n.get_peers(h, sim.now, announce_port=p))  # type: ignore[misc]
        sim.run_until(lambda: False, 5.0)  # let the announce_peer queries land
        done = _run_lookup(sim, seeker, lambda n, h=info_hash: n.get_peers(h, sim.now))  # type: ignore[misc]
        if (announcer[0], port) in [(p.host, p.port) for p in done.peers]:
            found += 1
    report = LookupReport(
        nodes=len(sim.nodes),
        lookups=lookups,
        converged=converged,
        closest_found=closest,
        hops_median=float(statistics.median(hops)) if hops else 0.0,
        hops_p95=percentile(hops, 0.95),
        messages_median=float(statistics.median(messages)) if messages else 0.0,
        messages_p95=percentile(messages, 0.95),
        log2_n=math.log2(max(1, len(sim.nodes))),
        announces=announces,
        announces_found=found,
        loss=sim.loss,
    )
    return report, sim


def bootstrap_network(nodes: int, *, seed: int = 1) -> DhtSim:
    """Build a DHT through the protocol only: node 0 is the router, every other node joins by bootstrapping from
    it (a find_node for its own id), one after the other."""
    sim = DhtSim(seed=seed)
    router = sim.address(0)
    sim.add_node(router)
    for _ in range(nodes - 1):
        addr = sim.address(len(sim.nodes))
        sim.add_node(addr)
        _run_lookup(sim, addr, lambda n: n.bootstrap([router], sim.now))
    return sim
