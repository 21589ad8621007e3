"""Every limit and interval Shoal uses, as named fields with defaults.

Cores take the values they need as constructor arguments; adapters pass them from one :class:`Settings`.
Each area keeps its fields together under a comment. Add fields here rather than writing numbers into code.
"""

from __future__ import annotations

from dataclasses import field, replace
from typing import Any

from shoal.records import record


@record
class Settings:
    # --- bencode / metainfo (BEP 3, 52) ---
    max_bencode_depth: int = 64
    max_bencode_tokens: int = 3_000_000  # values in one torrent or info dict (libtorrent's limit)
    max_torrent_size: int = 64 * 1024 * 1024
    max_metadata_size: int = 32 * 1024 * 1024
    max_piece_count: int = 8 * 1024 * 1024
    max_file_count: int = 1_000_000
    max_path_length: int = 4096
    max_name_length: int = 255
    max_piece_length: int = 256 * 1024 * 1024
    max_path_depth: int = 100  # directories + file name in one torrent path
    max_trackers: int = 200  # trackers kept from a torrent or magnet (all tiers)
    max_web_seeds: int = 50
    max_magnet_length: int = 65536  # characters in a magnet URI
    max_magnet_peers: int = 100  # x.pe peers kept from a magnet URI

    # --- peer wire (BEP 3, 6, 10) ---
    max_message_size: int = 16 * 1024 * 1024 + 13
    mse_incoming: bool = (
        True  # answer MSE/PE handshakes (libtorrent's first try); plaintext stream when offered
    )
    mse_allow_rc4: bool = True  # an RC4 stream for peers that offer only RC4 (Transmission's default)
    max_pending_requests: int = 500  # requests a peer may have outstanding with us
    max_outstanding_requests: int = 1000  # upper bound of our own request queue to one peer
    min_outstanding_requests: int = 16
    handshake_timeout: float = 20.0
    peer_inactivity_timeout: float = 120.0
    keepalive_interval: float = 60.0
    request_timeout: float = 30.0
    max_request_length: int = 16 * 1024  # largest block a peer may request from us (BEP 3: 16 KiB)
    max_extended_message_size: int = 128 * 1024  # BEP 10 message payload cap (ut_metadata pieces are 16 KiB)
    max_invalid_requests: int = (
        300  # requests we refuse (choked, not advertised, over the queue) before a disconnect
    )
    max_allowed_fast_received: int = 256  # allowed-fast pieces remembered from one peer
    max_pex_peers: int = 50  # added (and dropped) peers taken from one ut_pex message (BEP 11)
    pex_interval: float = 60.0  # at most one ut_pex message per peer per interval, each way

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
    # --- policy: requests, choking, peer book, storage, resume (engineer C) ---
    request_queue_time: float = 3.0  # seconds of a peer's download rate we keep requested (pipeline depth)
    snub_timeout: float = 60.0  # no block for this long while requests are outstanding -> snubbed (depth 1)
    endgame_max_requesters: int = 2  # peers one block may be requested from in end-game
    seed_choke_slot_time: float = 30.0  # while seeding, an unchoked peer keeps its slot at least this long
    max_known_peers: int = 2000  # peer book entries per torrent
    max_banned_ips: int = 10_000
    peer_connect_backoff: float = 30.0  # first retry delay after a failed connect, doubled per failure
    peer_connect_backoff_max: float = 3600.0
    max_connect_failures: int = 6  # failed connects in a row before a peer is forgotten
    disk_threads: int = 4
    disk_write_chunk: int = 128 * 1024  # bytes per pwrite of a finished piece (storage/files.py says why)
    # written data leaves the page cache once this many newer bytes follow it; 0: it stays (storage/write_behind.py)
    disk_write_behind: int = 64 << 20
    # the aligned parts of verified pieces bypass the page cache (storage/direct_io.py)
    disk_direct_writes: bool = True
    # a new file gets all its blocks at once, so direct writes to it run side by side (storage/preallocate.py);
    # off: sparse files
    disk_preallocate: bool = True
    max_open_files: int = 64  # cached file descriptors per storage
    resume_checkpoint_pieces: int = 64  # checkpoint after this many newly verified pieces...
    resume_checkpoint_interval: float = 30.0  # ...or this many seconds, whichever first

    # --- tracker client (BEP 3, 12, 15, 23, 48) ---
    tracker_timeout: float = 15.0
    tracker_default_interval: float = 1800.0
    tracker_min_interval: float = 60.0
    tracker_numwant: int = 200
    udp_tracker_retries: int = 4
    udp_tracker_retry_base: float = 15.0  # BEP 15: wait 15 * 2**n seconds for answer n
    tracker_max_interval: float = 86400.0  # tracker intervals are clamped to [tracker_min_interval, this]
    tracker_retry_base: float = 15.0  # back-off after a failed announce, doubled per failure
    tracker_retry_max: float = 3600.0
    tracker_max_response_size: int = 1024 * 1024  # counted after decompression
    tracker_max_redirects: int = 5
    tracker_max_peers_per_response: int = 1000
    tracker_ssrf_mitigation: bool = True  # loopback trackers only with a path ending in /announce or /scrape

    # --- DHT (BEP 5) ---
    dht_bucket_size: int = 8
    dht_alpha: int = 3
    dht_max_peers_per_infohash: int = 500  # RELIABILITY case 33 (libtorrent dht_max_peers)
    dht_max_infohashes: int = 2000  # libtorrent dht_max_torrents
    dht_query_timeout: float = 5.0
    dht_token_rotation: float = 300.0
    dht_queries_per_ip_per_second: float = 20.0  # 0 disables the per-IP limit
    dht_rate_limit_window: float = 10.0
    dht_rate_limit_block: float = 300.0
    dht_rate_limit_tracked_ips: int = 4096
    dht_replacement_cache_size: int = 8
    dht_max_fails: int = 3  # consecutive timeouts before a node is bad
    dht_node_questionable_after: float = 900.0
    dht_bucket_refresh_interval: float = 900.0
    dht_maintenance_interval: float = 10.0
    dht_max_pings_per_tick: int = 8
    dht_peer_ttl: float = 1800.0
    dht_max_stored_peers: int = 50_000
    dht_max_peers_reply: int = 50
    dht_max_reply_size: int = 1200  # never a single reply bigger than this ...
    dht_max_amplification: int = 10  # ... nor bigger than this many times the query (case 30)
    dht_max_datagram_size: int = 1500
    dht_max_transaction_id: int = 16
    dht_max_pending_queries: int = 1000
    dht_max_lookups: int = 32
    dht_max_lookup_candidates: int = 100
    dht_max_lookup_queries: int = 200
    dht_max_peers_per_lookup: int = 1000
    # bytes/s of replies, all requesters together (libtorrent's default); 0: none
    dht_upload_rate_limit: int = 8000
    # answers naming our IP before it is saved for a BEP 42 id at next start
    dht_external_ip_min_votes: int = 5
    dht_max_peers_per_ip_per_lookup: int = 4  # one IP on many ports is a victim being steered at
    dht_lookup_retries: int = 1  # a timed-out node among the k closest is asked again (datagrams get lost)
    dht_sample_count: int = 20  # BEP 51 samples per reply
    dht_sample_interval: int = 21600
    dht_allow_same_ip: bool = False  # True: several nodes per IP and per /24 (loopback tests)
    dht_enforce_node_id: bool = False  # BEP 42: prefer verified ids for storage and table slots
    dht_read_only: bool = False  # BEP 43
    dht_port: int = 6881
    dht_routers: tuple[str, ...] = ("router.bittorrent.com:6881", "dht.transmissionbt.com:6881")
    dht_bootstrap_retry: float = 30.0
    dht_announce_interval: float = 900.0  # per torrent: get_peers + announce_peer this often
    dht_retry_interval: float = 30.0  # ... or this often while the torrent has no peers

    # --- local service discovery (BEP 14) ---
    lsd_announce_interval: float = 300.0
    lsd_max_infohashes_per_message: int = 32
    lsd_messages_per_ip_per_second: float = 2.0

    # --- engine (engineer F) ---
    # seconds between a torrent's ticks (choker, time-outs, rates, connects)
    engine_tick_interval: float = 0.5
    peer_connect_timeout: float = 10.0
    read_cache_bytes: int = 4 * 1024 * 1024  # whole pieces kept in memory per torrent to serve uploads (>= 2)
    read_buffer_spares: int = 2  # evicted read-cache buffers kept for reuse (no allocation per piece read)
    # finished pieces waiting for hash+write, per torrent, before its peers stop being read: this many bytes of
    # them (16 pieces of 1 MiB, 4 of 4 MiB), at most max_pending_piece_writes pieces, at least 2
    max_pending_write_bytes: int = 16 * 1024 * 1024
    max_pending_piece_writes: int = 256
    max_checking_torrents: int = 4  # torrents checking their data at once in a session (the others wait)
    # a re-check of 64 MiB or more hashes in a helper process, from memory maps (storage/check_helper.py); off:
    # in the session's threads, as smaller ones always do
    recheck_in_helper: bool = True
    max_alerts: int = 10_000  # alert queue size; the oldest is dropped beyond it
    listen_port_tries: int = 10  # a taken listen port: try the next ones, up to this many ports in all

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
