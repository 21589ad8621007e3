"""Settings of ``shoal tracker``: every limit a named field, loadable from a TOML file and overridden by flags.

Example file (``--config tracker.toml``)::

    http = "0.0.0.0:6969"
    udp = "0.0.0.0:6969"
    interval = 1800
    max_numwant = 74
    private = true
    allow = "/etc/shoal/allowed-hashes.txt"   # one hex info-hash per line
    passkeys = "/etc/shoal/passkeys.txt"      # one passkey per line
    redis = "redis://127.0.0.1:6379/0"
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from shoal.errors import ConfigError
from shoal.records import record


@record
class TrackerdConfig:
    # --- listening ---
    http: str | None = None  # HOST:PORT
    udp: str | None = None
    reuse_port: bool = False  # SO_REUSEPORT, for several processes sharing the ports (with redis)
    # --- swarm policy ---
    interval: int = 1800
    min_interval: int = 900
    peer_timeout: float = 2700.0  # a peer that has not announced for this long is forgotten
    expire_every: float = 60.0
    default_numwant: int = 50
    max_numwant: int = 74
    max_scrape_hashes_http: int = 100
    max_scrape_hashes_udp: int = 70
    full_scrape: bool = False
    max_full_scrape: int = 10_000
    max_swarms: int = 1_000_000
    max_peers: int = 5_000_000  # over all swarms
    # --- access ---
    private: bool = False
    allow: str | None = None  # file: hex info-hashes, one a line
    passkeys: str | None = None  # file: passkeys, one a line
    # --- per client IP ---
    ip_rate: float = 50.0  # announces + scrapes per second per IP (token bucket); 0 turns it off
    ip_burst: float = 500.0
    max_tracked_ips: int = 100_000
    max_connections: int = 2048
    max_connections_per_ip: int = 256
    # --- HTTP hardening (RELIABILITY cases 36-37) ---
    max_request_size: int = 8192  # request line + headers
    request_timeout: float = 10.0  # a whole request must arrive within this (slowloris)
    keepalive_timeout: float = 15.0
    # --- state ---
    state_db: str | None = None  # SQLite file: swarms survive a restart
    save_every: float = 60.0
    redis: str | None = None  # redis://... : several processes share swarms
    redis_prefix: str = "shoal:"
    # --- operations ---
    stats: bool = True  # /stats (HTML) and /stats.json
    log_announces: bool = False
    gc_young_threshold: int = 20_000  # allocations between young-generation GC passes; 0 keeps Python's 700

    def with_(self, **changes: Any) -> TrackerdConfig:
        return dataclasses.replace(self, **changes)


def load_config(path: str | Path, base: TrackerdConfig | None = None) -> TrackerdConfig:
    """Read a TOML config file over ``base``; unknown keys or wrong types are a ConfigError."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read tracker config {str(path)!r}: {exc}") from None
    base = base or TrackerdConfig()
    known = {f.name: f for f in fields(TrackerdConfig)}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"unknown tracker config key {key!r} in {str(path)!r}")
        current = getattr(base, name)
        if isinstance(current, bool) and not isinstance(value, bool):
            raise ConfigError(f"tracker config key {key!r} must be true or false")
        if isinstance(current, (int, float)) and not isinstance(current, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"tracker config key {key!r} must be a number")
            value = type(current)(value)
        changes[name] = value
    return dataclasses.replace(base, **changes)


def read_info_hashes(path: str | Path) -> set[bytes]:
    """An allow-list file: one 40-character hex info-hash per line; '#' comments and blank lines ignored."""
    out: set[bytes] = set()
    for n, line in enumerate(_lines(path), 1):
        try:
            ih = bytes.fromhex(line)
        except ValueError:
            ih = b""
        if len(ih) != 20:
            raise ConfigError(f"line {n} of {str(path)!r} is not a 40-character hex info-hash")
        out.add(ih)
    return out


def read_passkeys(path: str | Path) -> set[str]:
    keys = set(_lines(path))
    for key in keys:
        if not key.isalnum() or len(key) > 64:
            raise ConfigError(f"passkey {key[:16]!r}... in {str(path)!r} is not 1-64 letters and digits")
    return keys


def _lines(path: str | Path) -> list[str]:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc}") from None
    return [s for s in (line.split("#", 1)[0].strip() for line in text.splitlines()) if s]


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"address {text!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)
