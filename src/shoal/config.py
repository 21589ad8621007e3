"""Every limit and interval Shoal uses, as named fields with defaults.

Cores take the values they need as constructor arguments; adapters pass them from one :class:`Settings`.
Each area keeps its fields together under a comment. Add fields here rather than writing numbers into code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    # --- bencode / metainfo (BEP 3, 52) ---
    max_bencode_depth: int = 64
    max_torrent_size: int = 64 * 1024 * 1024
    max_metadata_size: int = 32 * 1024 * 1024
    max_piece_count: int = 8 * 1024 * 1024
    max_file_count: int = 1_000_000
    max_path_length: int = 4096
    max_name_length: int = 255
    max_piece_length: int = 256 * 1024 * 1024

    # --- peer wire (BEP 3, 6, 10) ---
    max_message_size: int = 16 * 1024 * 1024 + 13
    max_pending_requests: int = 500  # requests a peer may have outstanding with us
    max_outstanding_requests: int = 1000  # upper bound of our own request queue to one peer
    min_outstanding_requests: int = 16
    handshake_timeout: float = 20.0
    peer_inactivity_timeout: float = 120.0
    keepalive_interval: float = 60.0
    request_timeout: float = 30.0

    # --- swarm ---
    max_peers_per_torrent: int = 80
    max_peers_global: int = 400
    max_connections_per_ip: int = 8
    max_half_open: int = 32
    upload_slots: int = 4
    optimistic_unchoke_interval: float = 30.0
    choke_interval: float = 10.0
    endgame_threshold_blocks: int = 64
    max_hash_failures_before_ban: int = 3

    # --- tracker client (BEP 3, 12, 15, 23, 48) ---
    tracker_timeout: float = 15.0
    tracker_default_interval: float = 1800.0
    tracker_min_interval: float = 60.0
    tracker_numwant: int = 200
    udp_tracker_retries: int = 4

    # --- DHT (BEP 5) ---
    dht_bucket_size: int = 8
    dht_alpha: int = 3
    dht_max_peers_per_infohash: int = 1000
    dht_max_infohashes: int = 10_000
    dht_query_timeout: float = 5.0
    dht_token_rotation: float = 300.0
    dht_queries_per_ip_per_second: float = 20.0

    # --- listening ---
    listen_host: str = "0.0.0.0"
    listen_port: int = 6881

    # --- rates (bytes per second; 0 means unlimited) ---
    download_rate_limit: int = 0
    upload_rate_limit: int = 0

    extra: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)
