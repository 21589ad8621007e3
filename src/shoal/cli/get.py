"""``shoal get TORRENT|URL|MAGNET``: download with a live progress bar, then seed (or not) and print a summary.

Ctrl-C (or SIGTERM) stops cleanly, saving resume data; running the same command again resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from shoal.cli._discovery import add_arguments as add_discovery_arguments
from shoal.cli._discovery import make_dht
from shoal.cli._progress import (
    add_row,
    make_console,
    make_progress,
    row_fields,
    run_async,
    summary_line,
    write_stats,
)
from shoal.config import Settings
from shoal.engine.handle import TorrentState
from shoal.engine.session import Session
from shoal.errors import ConfigError
from shoal.types import PeerAddr


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", metavar="TORRENT|URL|MAGNET", help="a .torrent file, an http(s) URL or a magnet"
    )
    parser.add_argument("-o", "--output", default=".", help="folder to download into (default: current)")
    seeding = parser.add_mutually_exclusive_group()
    seeding.add_argument(
        "--seed-ratio", type=float, default=None, help="seed until upload/download reaches R"
    )
    seeding.add_argument("--no-seed", action="store_true", help="exit as soon as the download is complete")
    parser.add_argument("--seed-time", type=float, default=None, help="seed for at most this many seconds")
    parser.add_argument(
        "--files", nargs="+", type=int, default=None, metavar="N", help="only these file indexes"
    )
    parser.add_argument("--port", type=int, default=6881, help="port to listen on (0 picks one)")
    add_discovery_arguments(parser)
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    parser.add_argument(
        "--peer", action="append", default=[], metavar="HOST:PORT", help="connect to this peer"
    )
    parser.add_argument("--download-limit", type=int, default=0, metavar="BYTES/S")
    parser.add_argument("--upload-limit", type=int, default=0, metavar="BYTES/S")
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, only the summary")
    parser.add_argument("--stats", metavar="FILE", help="keep writing status and counters as JSON to FILE")


def parse_peer(text: str) -> PeerAddr:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"peer {text!r} is not host:port")
    return PeerAddr(host.strip("[]"), int(port))


def run(args: argparse.Namespace) -> int:
    return run_async(lambda: _get(args))


async def _get(args: argparse.Namespace) -> int:
    console = make_console()
    settings = Settings()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    peers = [parse_peer(p) for p in args.peer]
    started = time.monotonic()
    dht = make_dht(args, settings)
    async with Session(settings, listen=(args.bind, args.port), dht=dht, lsd=args.lsd) as session:
        options: dict[str, Any] = {
            "peers": peers,
            "download_limit": args.download_limit,
            "upload_limit": args.upload_limit,
            "seed": not args.no_seed,
            "seed_ratio": args.seed_ratio,
        }
        torrent = await session.add(args.source, save_path=out, **options)
        if args.files is not None:
            await torrent.wait_metadata(timeout=args.timeout)
            count = torrent._task.file_count()
            bad = [i for i in args.files if not 0 <= i < count]
            if bad:
                raise ConfigError(f"file index {bad[0]} out of range 0..{count - 1}")
            torrent.set_file_priorities([1 if i in args.files else 0 for i in range(count)])
        deadline = None if args.timeout is None else started + args.timeout
        # wake at once when the download completes (or fails), not at the next 0.25 s status poll
        complete = asyncio.ensure_future(torrent.wait_complete())
        complete.add_done_callback(lambda f: f.cancelled() or f.exception())  # the loop reads the outcome
        progress = None if args.quiet or not console.is_terminal else make_progress(console)
        code = 0
        try:
            if progress is not None:
                progress.start()
                row = add_row(progress, torrent.name[:14] or "torrent", torrent.status())
            while True:
                st = torrent.status()
                write_stats(args.stats, st, _extra(session, torrent))
                if progress is not None:
                    progress.update(row, description=(st.name or "torrent")[:14], **row_fields(st))
                if st.state is TorrentState.ERROR:
                    code = 1
                    break
                if st.is_complete and _done_seeding(args, st, started):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    code = 0 if st.is_complete else 1
                    break
                if complete.done():
                    await asyncio.sleep(0.25)
                else:
                    await asyncio.wait({complete}, timeout=0.25)
        finally:
            complete.cancel()
            if progress is not None:
                progress.stop()
            st = torrent.status()
            write_stats(args.stats, st, {**_extra(session, torrent), "finished": True})
            console.print(summary_line(st, time.monotonic() - started), highlight=False, soft_wrap=True)
            if st.error:
                print(f"shoal: error: {st.error}", file=sys.stderr)
        return code


def _extra(session: Session, torrent: Any) -> dict[str, Any]:
    extra = {"listen_port": session.listen_port, "counters": torrent.stats}
    if session.discovery is not None:
        extra["discovery"] = session.discovery.stats()
    return extra


def _done_seeding(args: argparse.Namespace, st: Any, started: float) -> bool:
    if args.no_seed:
        return True
    if args.seed_ratio is not None:
        base = max(st.total_wanted, 1)
        if st.uploaded / base >= args.seed_ratio:
            return True
    if args.seed_time is not None:
        return bool(time.monotonic() - started >= args.seed_time)
    return False
