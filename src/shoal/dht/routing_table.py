"""Kademlia routing table (BEP 5): k-buckets split around our own id, liveness, replacement cache.

Theory of operation. Bucket ``i`` (for ``i < len(buckets) - 1``) holds nodes whose ids share exactly ``i``
leading bits with ours; the last bucket holds every node sharing at least ``len(buckets) - 1`` bits. Only the
last bucket splits (when it is full and a new node falls into it), so the table stays at most 160 buckets of
``k`` nodes plus a bounded replacement cache each. A node is *good* if it answered one of our queries within
``questionable_after`` seconds; *questionable* otherwise; *bad* after ``max_fails`` consecutive timeouts. A bad
node is replaced by the freshest replacement; a full bucket of good nodes sends newcomers to the replacement
cache.

Sybil limits (RELIABILITY case 32): one entry per IP in the whole table, and one per /24 (IPv6: /64) inside a
bucket; ``allow_same_ip=True`` lifts both (for loopback tests where every node is 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import field

from shoal.dht.node_id import ID_BITS, common_prefix_bits, distance
from shoal.records import record


@record(frozen=False)
class NodeEntry:
    node_id: bytes
    host: str
    port: int
    first_seen: float
    last_seen: float = 0.0  # last message of any kind from it
    last_response: float | None = None  # last answer to one of our queries
    fails: int = 0
    verified: bool = False  # BEP 42 id matches its IP
    subnet: str = ""  # /24 or /64, for the per-bucket sybil limit

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    def status(self, now: float, questionable_after: float, max_fails: int) -> str:
        if self.fails >= max_fails:
            return "bad"
        if self.last_response is not None and now - self.last_seen < questionable_after:
            return "good"
        return "questionable"


@record(frozen=False)
class Bucket:
    nodes: list[NodeEntry] = field(default_factory=list)
    replacements: list[NodeEntry] = field(default_factory=list)
    last_changed: float = 0.0


def subnet_key(host: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) a host belongs to."""
    if ":" not in host:
        return host.rpartition(".")[0]
    try:
        return str(ipaddress.ip_network(f"{host}/64", strict=False))
    except ValueError:
        return host


class RoutingTable:
    def __init__(
        self,
        own_id: bytes,
        *,
        now: float = 0.0,
        bucket_size: int = 8,
        replacement_size: int = 8,
        max_fails: int = 3,
        questionable_after: float = 900.0,
        allow_same_ip: bool = False,
        prefer_verified: bool = False,
    ) -> None:
        self.own_id = own_id
        self.k = bucket_size
        self.replacement_size = replacement_size
        self.max_fails = max_fails
        self.questionable_after = questionable_after
        self.allow_same_ip = allow_same_ip
        self.prefer_verified = prefer_verified
        self.buckets: list[Bucket] = [Bucket(last_changed=now)]
        self._by_id: dict[bytes, NodeEntry] = {}
        self._by_ip: dict[str, NodeEntry] = {}  # key: host, or "host:port" when allow_same_ip

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[NodeEntry]:
        for bucket in self.buckets:
            yield from bucket.nodes

    def get(self, node_id: bytes) -> NodeEntry | None:
        return self._by_id.get(node_id)

    def replacement_count(self) -> int:
        return sum(len(b.replacements) for b in self.buckets)

    def bucket_index(self, node_id: bytes) -> int:
        return min(common_prefix_bits(self.own_id, node_id), len(self.buckets) - 1)

    def closest(self, target: bytes, count: int) -> list[NodeEntry]:
        """The ``count`` known non-bad nodes closest to ``target`` (good ones first among equals)."""
        t = int.from_bytes(target, "big")
        candidates = [n for n in self._by_id.values() if n.fails < self.max_fails]
        candidates.sort(key=lambda n: int.from_bytes(n.node_id, "big") ^ t)
        return candidates[:count]

    def status(self, node: NodeEntry, now: float) -> str:
        return node.status(now, self.questionable_after, self.max_fails)

    def questionable(self, now: float, limit: int) -> list[NodeEntry]:
        """Up to ``limit`` nodes that need a ping: questionable ones, least recently seen first."""
        stale = [n for n in self._by_id.values() if self.status(n, now) == "questionable"]
        stale.sort(key=lambda n: n.last_seen)
        return stale[:limit]

    def stale_buckets(self, now: float, refresh_interval: float) -> list[int]:
        """Indexes of buckets that have not changed for ``refresh_interval`` seconds."""
        return [i for i, b in enumerate(self.buckets) if now - b.last_changed >= refresh_interval]

    # ------------------------------------------------------------------ updates

    def _ip_key(self, host: str, port: int) -> str:
        return f"{host}:{port}" if self.allow_same_ip else host

    def heard_from(
        self,
        node_id: bytes,
        host: str,
        port: int,
        now: float,
        *,
        responded: bool,
        verified: bool = False,
    ) -> bool:
        """Record a message from a node; returns True if it is (now) in the table."""
        if node_id == self.own_id or len(node_id) != len(self.own_id):
            return False
        entry = self._by_id.get(node_id)
        if entry is not None:
            if entry.addr != (host, port):
                return False  # an id moving to another address: keep the one we know
            entry.last_seen = now
            if responded:
                entry.last_response = now
                entry.fails = 0
            return True
        if self._ip_key(host, port) in self._by_ip:
            return False  # one entry per IP
        entry = NodeEntry(
            node_id, host, port, first_seen=now, last_seen=now, verified=verified, subnet=subnet_key(host)
        )
        if responded:
            entry.last_response = now
        return self._insert(entry, now)

    def _insert(self, entry: NodeEntry, now: float) -> bool:
        while True:
            index = self.bucket_index(entry.node_id)
            bucket = self.buckets[index]
            if not self.allow_same_ip:
                net = entry.subnet
                if any(n.subnet == net for n in bucket.nodes):
                    return False
            if len(bucket.nodes) < self.k:
                self._add(bucket, entry, now)
                return True
            if index == len(self.buckets) - 1 and len(self.buckets) < ID_BITS:
                self._split(now)
                continue
            for i, old in enumerate(bucket.nodes):
                if old.fails >= self.max_fails or (
                    self.prefer_verified and entry.verified and not old.verified and entry.last_response
                ):
                    self._forget(old)
                    bucket.nodes[i] = entry
                    self._remember(entry)
                    bucket.last_changed = now
                    return True
            self._add_replacement(bucket, entry)
            return False

    def _add(self, bucket: Bucket, entry: NodeEntry, now: float) -> None:
        bucket.nodes.append(entry)
        bucket.last_changed = now
        self._remember(entry)

    def _remember(self, entry: NodeEntry) -> None:
        self._by_id[entry.node_id] = entry
        self._by_ip[self._ip_key(entry.host, entry.port)] = entry

    def _forget(self, entry: NodeEntry) -> None:
        self._by_id.pop(entry.node_id, None)
        self._by_ip.pop(self._ip_key(entry.host, entry.port), None)

    def _add_replacement(self, bucket: Bucket, entry: NodeEntry) -> None:
        if any(r.node_id == entry.node_id or r.host == entry.host for r in bucket.replacements):
            return
        bucket.replacements.append(entry)
        if len(bucket.replacements) > self.replacement_size:
            # drop the one we heard from least recently
            bucket.replacements.sort(key=lambda n: n.last_seen)
            del bucket.replacements[0]

    def _split(self, now: float) -> None:
        last = self.buckets[-1]
        new = Bucket(last_changed=now)
        depth = len(self.buckets) - 1
        keep = Bucket(last_changed=last.last_changed)
        for n in last.nodes:
            (new if common_prefix_bits(self.own_id, n.node_id) > depth else keep).nodes.append(n)
        for n in last.replacements:
            (new if common_prefix_bits(self.own_id, n.node_id) > depth else keep).replacements.append(n)
        self.buckets[-1] = keep
        self.buckets.append(new)
        self._refill(keep)
        self._refill(new)

    def _refill(self, bucket: Bucket) -> None:
        while len(bucket.nodes) < self.k and bucket.replacements:
            bucket.replacements.sort(key=lambda n: n.last_seen)
            entry = bucket.replacements.pop()
            if self._ip_key(entry.host, entry.port) in self._by_ip or entry.node_id in self._by_id:
                continue
            bucket.nodes.append(entry)
            self._remember(entry)

    def failed(self, node_id: bytes, now: float) -> None:
        """One of our queries to ``node_id`` timed out; after ``max_fails`` in a row it is replaced."""
        entry = self._by_id.get(node_id)
        if entry is None:
            return
        entry.fails += 1
        if entry.fails < self.max_fails:
            return
        bucket = self.buckets[self.bucket_index(node_id)]
        if bucket.replacements:
            self.remove(node_id, now)

    def remove(self, node_id: bytes, now: float) -> None:
        entry = self._by_id.get(node_id)
        if entry is None:
            return
        bucket = self.buckets[self.bucket_index(node_id)]
        bucket.nodes = [n for n in bucket.nodes if n.node_id != node_id]
        self._forget(entry)
        bucket.last_changed = now
        self._refill(bucket)

    def touch_bucket(self, index: int, now: float) -> None:
        self.buckets[index].last_changed = now

    def dump(self) -> list[tuple[int, int, int]]:
        """Per bucket: (index, nodes, replacements)."""
        return [(i, len(b.nodes), len(b.replacements)) for i, b in enumerate(self.buckets)]


__all__ = ["Bucket", "NodeEntry", "RoutingTable", "distance", "subnet_key"]
