"""Events out of :class:`shoal.dht.node.DhtNode` (past tense: facts), and its stats snapshot."""

from __future__ import annotations

from shoal.codec.compact import CompactNode
from shoal.records import record
from shoal.types import PeerAddr


@record
class PeersFound:
    """A get_peers lookup received peers it had not seen yet."""

    lookup_id: int
    info_hash: bytes
    peers: tuple[PeerAddr, ...]


@record
class LookupFinished:
    """A lookup converged (or ran out of candidates or queries)."""

    lookup_id: int
    kind: str
    target: bytes
    nodes: tuple[CompactNode, ...]  # the closest nodes that answered, closest first
    peers: tuple[PeerAddr, ...]
    samples: tuple[bytes, ...]
    queries: int
    responses: int
    hops: int
    announced_to: int  # announce_peer queries sent after a get_peers lookup


@record
class PeerAnnounced:
    """A node announced a peer to us (stored in the peer store)."""

    info_hash: bytes
    peer: PeerAddr


DhtEvent = PeersFound | LookupFinished | PeerAnnounced


@record
class DhtStats:
    node_id: bytes
    nodes4: int
    nodes6: int
    replacements: int
    buckets4: int
    buckets6: int
    lookups: int
    pending_queries: int
    stored_infohashes: int
    stored_peers: int
    queries_received: int
    responses_received: int
    messages_dropped: int
    ips_blocked: int
    external_ip: str | None
