"""Command-line options for peer discovery without trackers (DHT, LSD), shared by ``shoal get`` and ``seed``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shoal.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("peer discovery without trackers")
    group.add_argument(
        "--dht", action="store_true", help="use the Mainline DHT (BEP 5) with the public routers"
    )
    group.add_argument(
        "--dht-bootstrap",
        action="append",
        metavar="HOST:PORT",
        help="use the DHT, bootstrapping from this node instead of the public routers (repeatable)",
    )
    group.add_argument(
        "--dht-port", type=int, default=None, help="UDP port of the DHT node (default: --port)"
    )
    group.add_argument("--dht-db", type=Path, default=None, help="SQLite file keeping the DHT id and nodes")
    group.add_argument(
        "--dht-allow-same-ip",
        action="store_true",
        help="keep several DHT nodes per IP (loopback experiments)",
    )
    group.add_argument("--lsd", action="store_true", help="local service discovery (BEP 14) on the LAN")


def make_dht(args: argparse.Namespace, settings: Settings) -> Any:
    """A (not yet started) DhtService from the options, or None when the DHT is off."""
    if not args.dht and not args.dht_bootstrap:
        return None
    from shoal.dht.service import DhtService

    if args.dht_allow_same_ip:
        settings = settings.with_(dht_allow_same_ip=True)
    port = args.dht_port if args.dht_port is not None else args.port
    host = args.bind if ":" not in args.bind else "0.0.0.0"
    return DhtService(settings, host=host, port=port, routers=args.dht_bootstrap, db_path=args.dht_db)
