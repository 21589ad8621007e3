"""DhtNode: a whole Mainline DHT node (BEP 5, 32, 42, 43, 51) with no I/O, in the aioquic shape.

Drive it with ``receive_datagram(data, addr, now)``; send what ``datagrams_to_send(now)`` returns; call
``handle_timer(now)`` when ``get_timer()`` says; read results from ``next_event()``. Lookups are started with
:meth:`find_node`, :meth:`get_peers` (optionally followed by ``announce_peer``), :meth:`sample_infohashes` and
:meth:`bootstrap`. Time comes in as ``now``; randomness from the injected ``rng``.

Two routing tables, one per address family (BEP 32); a lookup runs in one family. Queries are answered from
a dispatch table (``_handlers``); every reply is bounded by ``dht_max_reply_size`` and by
``dht_max_amplification`` times the size of the query (RELIABILITY case 30): optional parts are trimmed until
it fits, or it is not sent. In read-only mode (BEP 43) the node marks its queries ``ro`` and answers nothing.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable

from shoal.codec.compact import CompactNode
from shoal.config import Settings
from shoal.dht import krpc
from shoal.dht.dos import RateLimiter, UploadBudget
from shoal.dht.events import DhtEvent, DhtStats, LookupFinished, PeerAnnounced, PeersFound
from shoal.dht.krpc import Error, KrpcMessageError, Query, Response
from shoal.dht.lookup import Lookup
from shoal.dht.node_id import bep42_id, bep42_valid, is_local_ip, is_public_ip, random_id, random_id_in_bucket
from shoal.dht.peer_store import PeerStore
from shoal.dht.routing_table import NodeEntry, RoutingTable
from shoal.dht.rpc import Pending, Transactions
from shoal.dht.tokens import TokenManager
from shoal.errors import KrpcError, LocalProtocolError
from shoal.types import PeerAddr

logger = logging.getLogger(__name__)

Addr = tuple[str, int]


def family_of(host: str) -> int:
    return 6 if ":" in host else 4


class DhtNode:
    def __init__(
        self,
        settings: Settings,
        rng: random.Random,
        now: float,
        *,
        node_id: bytes | None = None,
        external_ip: str | None = None,
    ) -> None:
        self.settings = s = settings
        self.rng = rng
        if node_id is None:
            node_id = bep42_id(external_ip, rng) if external_ip else random_id(rng)
        self.node_id = node_id
        self.read_only = s.dht_read_only
        self.tables = {fam: self._new_table(now) for fam in (4, 6)}
        self.tx = Transactions(rng, timeout=s.dht_query_timeout, max_pending=s.dht_max_pending_queries)
        self.tokens = TokenManager(rng, now, s.dht_token_rotation)
        self.store = PeerStore(
            max_peers_per_infohash=s.dht_max_peers_per_infohash,
            max_infohashes=s.dht_max_infohashes,
            max_peers_total=s.dht_max_stored_peers,
            peer_ttl=s.dht_peer_ttl,
        )
        self.limiter = RateLimiter(
            rate=s.dht_queries_per_ip_per_second,
            window=s.dht_rate_limit_window,
            block_for=s.dht_rate_limit_block,
            max_tracked=s.dht_rate_limit_tracked_ips,
        )
        self.lookups: dict[int, Lookup] = {}
        self._next_lookup_id = 1
        self._out: deque[tuple[bytes, Addr]] = deque()
        self._events: deque[DhtEvent] = deque()
        self._next_maintenance = now + s.dht_maintenance_interval
        self._routers: list[Addr] = []
        self._next_bootstrap: float | None = None
        self._bootstrap_lookups: set[int] = set()
        self.external_ip_votes: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self.upload = UploadBudget(s.dht_upload_rate_limit, now)
        self._handlers: dict[str, Callable[[Query, Addr, float], Response | Error]] = {
            "ping": self._on_ping,
            "find_node": self._on_find_node,
            "get_peers": self._on_get_peers,
            "announce_peer": self._on_announce_peer,
            "sample_infohashes": self._on_sample_infohashes,
        }

    def _new_table(self, now: float) -> RoutingTable:
        s = self.settings
        return RoutingTable(
            self.node_id,
            now=now,
            bucket_size=s.dht_bucket_size,
            replacement_size=s.dht_replacement_cache_size,
            max_fails=s.dht_max_fails,
            questionable_after=s.dht_node_questionable_after,
            allow_same_ip=s.dht_allow_same_ip,
            prefer_verified=s.dht_enforce_node_id,
        )

    # ------------------------------------------------------------------ sans-IO surface

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out = list(self._out)
        self._out.clear()
        return out

    def next_event(self) -> DhtEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        times = [self._next_maintenance, self.tokens.next_rotation]
        deadline = self.tx.next_deadline()
        if deadline is not None:
            times.append(deadline)
        return min(times)

    def handle_timer(self, now: float) -> None:
        for pending in self.tx.expire(now):
            self._on_timeout(pending, now)
        self.tokens.handle_timer(now)
        if now >= self._next_maintenance:
            self._next_maintenance = now + self.settings.dht_maintenance_interval
            self._maintenance(now)

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        addr = (addr[0], addr[1])
        if not self.limiter.allow(addr[0], now):
            self.counters["dropped"] += 1
            return
        try:
            msg = krpc.decode(
                data,
                max_size=self.settings.dht_max_datagram_size,
                max_tid=self.settings.dht_max_transaction_id,
            )
        except KrpcMessageError as exc:
            self.counters["dropped"] += 1
            logger.debug("dht: bad message from %s: %s", addr, exc)
            if exc.tid is not None and not self.read_only and self._looks_like_query(data):
                self._reply(Error(exc.tid, exc.code, str(exc)), addr, len(data), now)
            return
        if isinstance(msg, Query):
            self._on_query(msg, addr, now, len(data))
        elif isinstance(msg, Response):
            self._on_response(msg, addr, now)
        else:
            self._on_error(msg, addr, now)

    @staticmethod
    def _looks_like_query(data: bytes) -> bool:
        # errors are only sent for queries: never answer a bad response or error (no ping-pong)
        return b"1:y1:r" not in data and b"1:y1:e" not in data

    # ------------------------------------------------------------------ answering queries

    def _on_query(self, q: Query, addr: Addr, now: float, query_len: int) -> None:
        self.counters["queries_received"] += 1
        if self.read_only:
            return
        if not q.read_only:
            self.tables[family_of(addr[0])].heard_from(
                q.node_id, addr[0], addr[1], now, responded=False, verified=bep42_valid(q.node_id, addr[0])
            )
        self._reply(self._handlers[q.method](q, addr, now), addr, query_len, now)

    def _closest_nodes(self, target: bytes, family: int, exclude: bytes) -> tuple[CompactNode, ...]:
        k = self.settings.dht_bucket_size
        found = [n for n in self.tables[family].closest(target, k + 1) if n.node_id != exclude]
        return tuple(CompactNode(n.node_id, PeerAddr(n.host, n.port)) for n in found[:k])

    def _with_nodes(self, q: Query, addr: Addr, target: bytes, **fields: object) -> Response:
        want = q.want or frozenset({"n6" if family_of(addr[0]) == 6 else "n4"})
        nodes = self._closest_nodes(target, 4, q.node_id) if "n4" in want else ()
        nodes6 = self._closest_nodes(target, 6, q.node_id) if "n6" in want else ()
        return Response(q.tid, self.node_id, nodes=nodes, nodes6=nodes6, ip=PeerAddr(*addr), **fields)  # type: ignore[arg-type]

    def _on_ping(self, q: Query, addr: Addr, now: float) -> Response | Error:
        return Response(q.tid, self.node_id, ip=PeerAddr(*addr))

    def _on_find_node(self, q: Query, addr: Addr, now: float) -> Response | Error:
        assert q.target is not None
        return self._with_nodes(q, addr, q.target)

    def _on_get_peers(self, q: Query, addr: Addr, now: float) -> Response | Error:
        assert q.info_hash is not None
        values = self.store.get(
            q.info_hash, now, self.settings.dht_max_peers_reply, self.rng, v6=family_of(addr[0]) == 6
        )
        token = self.tokens.make(addr[0], q.info_hash)
        return self._with_nodes(q, addr, q.info_hash, values=tuple(values), token=token)

    def _on_announce_peer(self, q: Query, addr: Addr, now: float) -> Response | Error:
        assert q.info_hash is not None and q.token is not None
        if not self.tokens.verify(q.token, addr[0], q.info_hash):
            self.counters["bad_tokens"] += 1
            return Error(q.tid, KrpcError.PROTOCOL, "invalid token")
        port = addr[1] if q.implied_port or q.port is None else q.port
        peer = PeerAddr(addr[0], port)
        self.store.announce(q.info_hash, peer, now)
        self._events.append(PeerAnnounced(q.info_hash, peer))
        return Response(q.tid, self.node_id, ip=PeerAddr(*addr))

    def _on_sample_infohashes(self, q: Query, addr: Addr, now: float) -> Response | Error:
        assert q.target is not None
        samples = self.store.sample_infohashes(self.settings.dht_sample_count, self.rng)
        return self._with_nodes(
            q,
            addr,
            q.target,
            samples=tuple(samples),
            num=self.store.infohash_count(),
            interval=self.settings.dht_sample_interval,
        )

    def _reply(self, msg: Response | Error, addr: Addr, query_len: int, now: float) -> None:
        limit = min(self.settings.dht_max_reply_size, self.settings.dht_max_amplification * query_len)
        data = krpc.encode(msg)
        trimmed: Response | None = msg if isinstance(msg, Response) else None
        while len(data) > limit and trimmed is not None:
            trimmed = krpc.trim_response(trimmed)
            if trimmed is not None:
                data = krpc.encode(trimmed)
        if len(data) > limit or not self.upload.allow(len(data), now):
            self.counters["replies_suppressed"] += 1
            return
        self.counters["replies_sent"] += 1
        self._out.append((data, addr))

    # ------------------------------------------------------------------ our queries and their answers

    def _send_query(
        self,
        method: str,
        addr: Addr,
        now: float,
        *,
        node_id: bytes | None = None,
        lookup_id: int | None = None,
        **args: object,
    ) -> bool:
        pending = self.tx.start(addr, method, now, node_id=node_id, lookup_id=lookup_id)
        if pending is None:
            self.counters["queries_refused"] += 1
            return False
        q = Query(pending.tid, method, self.node_id, read_only=self.read_only, **args)  # type: ignore[arg-type]
        self._out.append((krpc.encode_query(q), addr))
        self.counters["queries_sent"] += 1
        return True

    def _on_response(self, r: Response, addr: Addr, now: float) -> None:
        pending = self.tx.match(r.tid, addr)
        if pending is None:
            self.counters["unsolicited"] += 1
            return
        self.counters["responses_received"] += 1
        fam = family_of(addr[0])
        verified = bep42_valid(r.node_id, addr[0])
        self.tables[fam].heard_from(r.node_id, addr[0], addr[1], now, responded=True, verified=verified)
        if r.ip is not None:
            self.external_ip_votes[r.ip.host] += 1
            if len(self.external_ip_votes) > 64:
                self.external_ip_votes = Counter(dict(self.external_ip_votes.most_common(8)))
        lookup = self.lookups.get(pending.lookup_id) if pending.lookup_id is not None else None
        if lookup is None:
            return
        found = r.nodes6 if fam == 6 else r.nodes
        nodes = [
            (n.node_id, (n.addr.host, n.addr.port), bep42_valid(n.node_id, n.addr.host))
            for n in found
            if n.node_id != self.node_id
        ]
        token = r.token if (verified or not self.settings.dht_enforce_node_id) else None
        values = r.values if is_local_ip(addr[0]) else [p for p in r.values if is_public_ip(p.host)]
        new_peers = lookup.on_response(
            addr, r.node_id, nodes, values=values, token=token, samples=r.samples, verified=verified
        )
        if new_peers:
            self._events.append(PeersFound(lookup.lookup_id, lookup.target, tuple(new_peers)))
        self._drive(lookup, now)

    def _on_error(self, e: Error, addr: Addr, now: float) -> None:
        pending = self.tx.match(e.tid, addr)
        if pending is None:
            self.counters["unsolicited"] += 1
            return
        self.counters["errors_received"] += 1
        logger.debug("dht: error %d from %s: %s", e.code, addr, e.message)
        lookup = self.lookups.get(pending.lookup_id) if pending.lookup_id is not None else None
        if lookup is not None:
            lookup.on_failure(addr)
            self._drive(lookup, now)

    def _on_timeout(self, pending: Pending, now: float) -> None:
        self.counters["timeouts"] += 1
        if pending.node_id is not None:
            self.tables[family_of(pending.addr[0])].failed(pending.node_id, now)
        lookup = self.lookups.get(pending.lookup_id) if pending.lookup_id is not None else None
        if lookup is not None:
            lookup.on_failure(pending.addr, timed_out=True)
            self._drive(lookup, now)

    # ------------------------------------------------------------------ lookups

    def find_node(self, target: bytes, now: float, *, family: int = 4) -> int:
        return self._start("find_node", target, now, family)

    def get_peers(
        self,
        info_hash: bytes,
        now: float,
        *,
        family: int = 4,
        announce_port: int | None = None,
        implied_port: bool = False,
    ) -> int:
        """Look up peers for ``info_hash``; with ``announce_port`` also announce us to the closest nodes."""
        return self._start(
            "get_peers", info_hash, now, family, announce_port=announce_port, implied_port=implied_port
        )

    def sample_infohashes(self, target: bytes, now: float, *, family: int = 4) -> int:
        return self._start("sample_infohashes", target, now, family)

    def add_node(self, addr: Addr, now: float) -> None:
        """Ping a node we were told about (its id is learnt from the answer)."""
        self._send_query("ping", (addr[0], addr[1]), now)

    def bootstrap(self, routers: Iterable[Addr], now: float) -> int:
        """Find our own neighbourhood starting from ``routers`` (and whatever the tables already know): one
        find_node for our id per address family among the routers. Returns the first lookup's id."""
        self._routers = [(h, p) for h, p in routers]
        self._next_bootstrap = now + self.settings.dht_bootstrap_retry
        families = sorted({family_of(h) for h, _ in self._routers}) or [4]
        ids = []
        for fam in families:
            seeds = [r for r in self._routers if family_of(r[0]) == fam]
            ids.append(self._start("find_node", self.node_id, now, fam, seeds=seeds))
        self._bootstrap_lookups.update(ids)
        return ids[0]

    def _start(
        self,
        kind: str,
        target: bytes,
        now: float,
        family: int,
        *,
        seeds: Iterable[Addr] = (),
        announce_port: int | None = None,
        implied_port: bool = False,
    ) -> int:
        s = self.settings
        if len(target) != 20:
            raise LocalProtocolError(f"lookup target of {len(target)} bytes is not 20 bytes")
        if len(self.lookups) >= s.dht_max_lookups:
            raise LocalProtocolError(
                f"{len(self.lookups)} lookups in flight reach dht_max_lookups {s.dht_max_lookups}"
            )
        lookup_id = self._next_lookup_id
        self._next_lookup_id += 1
        lookup = Lookup(
            lookup_id,
            kind,
            target,
            now,
            k=s.dht_bucket_size,
            alpha=s.dht_alpha,
            max_candidates=s.dht_max_lookup_candidates,
            max_queries=s.dht_max_lookup_queries,
            max_peers=s.dht_max_peers_per_lookup,
            max_retries=s.dht_lookup_retries,
            max_peers_per_ip=s.dht_max_peers_per_lookup
            if s.dht_allow_same_ip
            else s.dht_max_peers_per_ip_per_lookup,
            announce_port=announce_port,
            implied_port=implied_port,
        )
        lookup.add_nodes(
            ((n.node_id, n.addr, n.verified) for n in self.tables[family].closest(target, s.dht_bucket_size)),
            1,
        )
        if not seeds and len(self.tables[family]) < s.dht_bucket_size:
            # a young table: ask the bootstrap routers too, or a lookup started right after start-up finds nothing
            seeds = [r for r in self._routers if family_of(r[0]) == family]
        for addr in seeds:
            lookup.add_seed(addr)
        self.lookups[lookup_id] = lookup
        self._drive(lookup, now)
        return lookup_id

    def _drive(self, lookup: Lookup, now: float) -> None:
        method = lookup.kind
        key = "info_hash" if method == "get_peers" else "target"
        for cand in lookup.next_queries():
            if not self._send_query(
                method,
                cand.addr,
                now,
                node_id=cand.node_id,
                lookup_id=lookup.lookup_id,
                **{key: lookup.target},
            ):
                lookup.on_failure(cand.addr)
        if lookup.finished and lookup.lookup_id in self.lookups:
            self._finish(lookup, now)

    def _finish(self, lookup: Lookup, now: float) -> None:
        del self.lookups[lookup.lookup_id]
        self._bootstrap_lookups.discard(lookup.lookup_id)
        announced = 0
        prefer = self.settings.dht_enforce_node_id
        if lookup.kind == "get_peers" and lookup.announce_port is not None and not self.read_only:
            for cand in lookup.announce_targets(prefer):
                if self._send_query(
                    "announce_peer",
                    cand.addr,
                    now,
                    node_id=cand.node_id,
                    info_hash=lookup.target,
                    port=lookup.announce_port,
                    implied_port=lookup.implied_port,
                    token=cand.token,
                ):
                    announced += 1
        closest = tuple(
            CompactNode(c.node_id, PeerAddr(*c.addr))
            for c in lookup.closest_responded(prefer)
            if c.node_id is not None
        )
        self._events.append(
            LookupFinished(
                lookup.lookup_id,
                lookup.kind,
                lookup.target,
                closest,
                tuple(lookup.peers),
                tuple(sorted(lookup.samples)),
                lookup.stats.queries,
                lookup.stats.responses,
                lookup.stats.hops,
                announced,
            )
        )

    # ------------------------------------------------------------------ upkeep

    def _maintenance(self, now: float) -> None:
        s = self.settings
        self.store.expire(now)
        for fam, table in self.tables.items():
            for node in table.questionable(now, s.dht_max_pings_per_tick):
                self._send_query("ping", node.addr, now, node_id=node.node_id)
            if len(table) and len(self.lookups) < s.dht_max_lookups // 2:
                for index in table.stale_buckets(now, s.dht_bucket_refresh_interval)[:1]:
                    table.touch_bucket(index, now)
                    self._start("find_node", random_id_in_bucket(self.node_id, index, self.rng), now, fam)
        empty = not len(self.tables[4]) and not len(self.tables[6])
        if (
            empty
            and self._routers
            and not self._bootstrap_lookups
            and self._next_bootstrap is not None
            and now >= self._next_bootstrap
            and len(self.lookups) < s.dht_max_lookups
        ):
            self.bootstrap(self._routers, now)

    # ------------------------------------------------------------------ inspection

    def known_nodes(self) -> list[NodeEntry]:
        return [*self.tables[4], *self.tables[6]]

    def external_ip(self) -> str | None:
        if not self.external_ip_votes:
            return None
        return self.external_ip_votes.most_common(1)[0][0]

    def stats(self) -> DhtStats:
        t4, t6 = self.tables[4], self.tables[6]
        return DhtStats(
            node_id=self.node_id,
            nodes4=len(t4),
            nodes6=len(t6),
            replacements=t4.replacement_count() + t6.replacement_count(),
            buckets4=len(t4.buckets),
            buckets6=len(t6.buckets),
            lookups=len(self.lookups),
            pending_queries=len(self.tx),
            stored_infohashes=self.store.infohash_count(),
            stored_peers=len(self.store),
            queries_received=self.counters["queries_received"],
            responses_received=self.counters["responses_received"],
            messages_dropped=self.counters["dropped"],
            ips_blocked=self.limiter.blocked_total,
            external_ip=self.external_ip(),
        )
