"""``shoal tracker``: run an HTTP and/or UDP BitTorrent tracker until Ctrl-C or SIGTERM.

Flags override the config file (``--config FILE``, TOML, keys as in :class:`TrackerdConfig`). Several
processes can share the ports and the swarms: give each ``--reuse-port --redis redis://HOST:PORT/DB``.
SIGHUP re-reads the ``--allow`` and ``--passkeys`` files; SIGINT / SIGTERM stop it cleanly (state saved).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys

from shoal.trackerd.config import TrackerdConfig, load_config


def configure(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--http", metavar="HOST:PORT", help="serve HTTP announce/scrape/stats here (e.g. 0.0.0.0:6969)")
    a("--udp", metavar="HOST:PORT", help="serve UDP (BEP 15) here")
    a("--config", metavar="FILE", help="TOML file with tracker settings")
    a("--private", action="store_true", default=None, help="only allow-listed info-hashes / known passkeys")
    a("--allow", metavar="FILE", help="allowed info-hashes, 40 hex characters a line")
    a("--passkeys", metavar="FILE", help="passkeys, one a line; announce URL becomes /PASSKEY/announce")
    a("--redis", metavar="URL", help="keep swarms in Redis, shared by several tracker processes")
    a("--reuse-port", action="store_true", default=None, help="SO_REUSEPORT: several processes on one port")
    a("--state-db", metavar="PATH", help="SQLite file keeping swarms across restarts")
    a("--interval", type=int, help="announce interval sent to clients (seconds)")
    a("--min-interval", type=int, help="min interval sent to clients (seconds)")
    a("--max-numwant", type=int, help="most peers returned per announce")
    a("--full-scrape", action="store_true", default=None, help="answer /scrape without info_hash")
    a("--ip-rate", type=float, help="requests per second allowed per client IP (0: unlimited)")
    a("--ip-burst", type=float, help="burst of requests allowed per client IP")
    a("--max-connections", type=int, help="most open HTTP connections")
    a("--max-connections-per-ip", type=int, help="most open HTTP connections from one IP")
    a("--no-stats", dest="stats", action="store_false", default=None, help="do not serve /stats")
    a("--log-announces", action="store_true", default=None, help="log every announce (off by default)")
    a("--no-uvloop", action="store_true", help="use the default asyncio loop even when uvloop is installed")


_FLAGS = [
    "http",
    "udp",
    "private",
    "allow",
    "passkeys",
    "redis",
    "reuse_port",
    "state_db",
    "interval",
    "min_interval",
    "max_numwant",
    "full_scrape",
    "ip_rate",
    "ip_burst",
    "max_connections",
    "max_connections_per_ip",
    "stats",
    "log_announces",
]


def build_config(args: argparse.Namespace) -> TrackerdConfig:
    config = load_config(args.config) if args.config else TrackerdConfig()
    changes = {name: getattr(args, name) for name in _FLAGS if getattr(args, name, None) is not None}
    config = config.with_(**changes)
    if config.http is None and config.udp is None:
        config = config.with_(http="0.0.0.0:6969", udp="0.0.0.0:6969")
    return config


async def _serve(config: TrackerdConfig) -> None:
    from shoal.trackerd.server import TrackerServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with TrackerServer(config) as server:
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, server.reload)  # re-read --allow / --passkeys
        if server.http_address:
            host, port = server.http_address
            print(f"shoal tracker: http://{host}:{port}/announce", flush=True)
        if server.udp_address:
            host, port = server.udp_address
            print(f"shoal tracker: udp://{host}:{port}/announce", flush=True)
        await stop.wait()
        print("shoal tracker: shutting down", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    factory = None
    if not args.no_uvloop:
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            pass
    # A tracker allocates a few short-lived containers per request and keeps hundreds of thousands of peers:
    # fewer young-generation passes and a frozen start-up heap keep the cyclic GC out of the hot path
    # (docs/PERFORMANCE.md, Tracker). Cyclic garbage is still collected, only in larger batches.
    if config.gc_young_threshold > 0:
        gc.freeze()
        gc.set_threshold(config.gc_young_threshold, 20, 10)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(config))
    return 0
