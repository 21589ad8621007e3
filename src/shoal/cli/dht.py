"""``shoal dht``: run a standalone DHT node and print its state every few seconds."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from shoal.config import Settings
from shoal.dht.service import DhtService


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None, help="UDP port (default: settings dht_port, 6881)")
    parser.add_argument("--bind", default="0.0.0.0", help="IPv4 address to listen on")
    parser.add_argument("--bind6", default=None, help="also listen on this IPv6 address (BEP 32)")
    parser.add_argument(
        "--bootstrap",
        action="append",
        metavar="HOST:PORT",
        help="bootstrap node (repeatable); default: the public routers",
    )
    parser.add_argument("--db", type=Path, default=None, help="SQLite file keeping our id and known nodes")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between state reports")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--read-only", action="store_true", help="BEP 43 read-only node: query, never answer")
    parser.add_argument(
        "--allow-same-ip", action="store_true", help="keep several nodes per IP (for loopback experiments)"
    )


def _report(svc: DhtService, started: float) -> str:
    st = svc.stats()
    node = svc.node
    lines = [
        f"[{time.monotonic() - started:7.1f}s] node {st.node_id.hex()} port {svc.port}"
        f" external-ip {st.external_ip or '?'}",
        f"  nodes {st.nodes4} (ipv4) {st.nodes6} (ipv6), replacements {st.replacements},"
        f" buckets {st.buckets4}/{st.buckets6}",
        f"  lookups {st.lookups}, pending queries {st.pending_queries},"
        f" stored peers {st.stored_peers} for {st.stored_infohashes} info-hashes",
        f"  queries received {st.queries_received}, responses received {st.responses_received},"
        f" dropped {st.messages_dropped}, ips blocked {st.ips_blocked}",
    ]
    if node is not None:
        table = node.tables[4]
        filled = " ".join(f"{i}:{n}" for i, n, _ in table.dump() if n)
        lines.append(f"  ipv4 buckets (index:nodes) {filled or '-'}")
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> int:
    settings = Settings().with_(dht_read_only=args.read_only, dht_allow_same_ip=args.allow_same_ip)
    started = time.monotonic()
    async with DhtService(
        settings, host=args.bind, port=args.port, host6=args.bind6, routers=args.bootstrap, db_path=args.db
    ) as svc:
        print(f"shoal dht: listening on udp {args.bind}:{svc.port}", flush=True)
        deadline = None if args.duration is None else started + args.duration
        while True:
            wait = args.interval
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(wait)
            print(_report(svc, started), flush=True)
            if deadline is not None and time.monotonic() >= deadline:
                return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        print("shoal dht: stopped", file=sys.stderr)
        return 0
