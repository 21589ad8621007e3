"""``shoal seed TORRENT DATA_PATH``: check the data against the torrent, then seed it until Ctrl-C.

DATA_PATH is the file or folder the torrent describes (what ``shoal create`` was given); it may have another name
than the torrent. Every piece is hashed before anything is uploaded; data that does not match is an error. The
hashing runs before the session starts, in forked processes from memory maps (:mod:`shoal.storage.fork_check`),
where this process can fork; otherwise the session checks the data itself.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shoal.cli._discovery import add_arguments as add_discovery_arguments
from shoal.cli._discovery import make_dht
from shoal.cli._progress import (
    add_row,
    human_bytes,
    make_console,
    make_progress,
    row_fields,
    run_async,
    write_stats,
)
from shoal.codec.metainfo import Metainfo
from shoal.config import Settings
from shoal.engine.handle import TorrentState
from shoal.engine.session import Session
from shoal.engine.sources import read_torrent_file
from shoal.errors import ConfigError, NetworkError, StorageError
from shoal.policy.bitfield import Bitfield
from shoal.storage.files import FileStorage
from shoal.storage.fork_check import recheck_forked
from shoal.storage.layout import Layout


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("torrent", metavar="TORRENT", help="the .torrent file")
    parser.add_argument("data", metavar="DATA_PATH", help="the file or folder the torrent describes")
    parser.add_argument("--port", type=int, default=6881, help="port to listen on (0 picks one)")
    add_discovery_arguments(parser)
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--upload-limit", type=int, default=0, metavar="BYTES/S")
    parser.add_argument("--time", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.add_argument("--stats", metavar="FILE", help="keep writing status and counters as JSON to FILE")


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    data = Path(args.data)
    if not data.exists():
        raise ConfigError(f"data path {str(data)!r} does not exist")
    settings = Settings()
    meta = Metainfo.from_bytes(read_torrent_file(Path(args.torrent), settings.max_torrent_size), settings)
    _check_port(args.bind, args.port)  # before the check, which can take minutes
    verified = _check_forked(meta, data)
    return run_async(lambda: _seed(args, meta, verified, started))


def _check_port(host: str, port: int) -> None:
    """NetworkError now, as the session would give it after the check, when ``host:port`` cannot be listened on
    (another program has it). A port of 0 always can."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(
            None if host in ("", "*") else host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError:
        return  # a name that does not resolve: the session says so
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the session's server does
            try:
                sock.bind(addr)
            except OSError as exc:
                raise NetworkError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _check_forked(meta: Metainfo, data: Path) -> Bitfield | None:
    """Every piece of the data hashed now, in forked processes from memory maps, before the session starts any
    thread (:mod:`shoal.storage.fork_check`); None where that cannot be done (the session then checks)."""
    if not meta.info.has_v1:
        return None
    with ThreadPoolExecutor(max_workers=1) as unused:  # never given work: the check runs in other processes
        storage = FileStorage(
            Layout.for_torrent(meta.info, data.name), data.resolve().parent, executor=unused
        )
        return recheck_forked(storage, meta.info.piece_hashes_v1)


async def _seed(args: argparse.Namespace, meta: Metainfo, verified: Bitfield | None, started: float) -> int:
    console = make_console()
    data = Path(args.data)
    dht = make_dht(args, Settings())
    async with Session(Settings(), listen=(args.bind, args.port), dht=dht, lsd=args.lsd) as session:
        torrent = await session.add(
            meta,
            save_path=data.resolve().parent,
            data_name=data.name,
            force_recheck=verified is None,
            verified_pieces=verified,
            upload_limit=args.upload_limit,
            seed=True,
        )
        while torrent.status().state in (TorrentState.CHECKING, TorrentState.DOWNLOADING_METADATA):
            await asyncio.sleep(0.02)  # the check is done when it is done: report it soon
        st = torrent.status()
        if st.state is TorrentState.ERROR:
            raise StorageError(st.error or "checking failed")
        if not st.is_complete:
            console.print(
                f"{st.name}: data at {data} does not match the torrent: "
                f"{st.pieces_have} of {st.pieces_total} pieces verified",
                soft_wrap=True,
            )
            return 1
        port = session.listen_port
        console.print(
            f"{st.name}: {st.pieces_total} pieces verified; seeding on port {port} (Ctrl-C to stop)"
        )
        progress = None if args.quiet or not console.is_terminal else make_progress(console)
        try:
            if progress is not None:
                progress.start()
                row = add_row(progress, st.name[:14], st)
            while args.time is None or time.monotonic() - started < args.time:
                st = torrent.status()
                write_stats(args.stats, st, {"listen_port": port, "counters": torrent.stats})
                if st.state is TorrentState.ERROR:
                    break
                if progress is not None:
                    progress.update(row, **row_fields(st))
                await asyncio.sleep(0.25)
        finally:
            if progress is not None:
                progress.stop()
            st = torrent.status()
            write_stats(args.stats, st, {"listen_port": port, "counters": torrent.stats, "finished": True})
            console.print(
                f"{st.name}: uploaded {human_bytes(st.uploaded)} in {time.monotonic() - started:.1f}s",
                soft_wrap=True,
            )
        return 1 if st.state is TorrentState.ERROR else 0
