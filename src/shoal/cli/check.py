"""``shoal check TORRENT DATA_PATH``: hash every piece of the data against the torrent and report.

Exit code 0 when every piece matches, 1 otherwise. Nothing is written; resume data is not consulted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from shoal.codec.metainfo import Metainfo
from shoal.config import Settings
from shoal.engine.sources import read_torrent_file
from shoal.errors import ConfigError, MetainfoError
from shoal.storage.check import recheck
from shoal.storage.files import FileStorage
from shoal.storage.fork_check import recheck_forked
from shoal.storage.layout import Layout


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("torrent", metavar="TORRENT", help="the .torrent file")
    parser.add_argument("data", metavar="DATA_PATH", help="the file or folder the torrent describes")
    parser.add_argument("--quiet", "-q", action="store_true", help="only the summary line")


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_check(args))


def _progress_bar(quiet: bool) -> Any:
    """A rich progress bar when stdout is a terminal (rich is imported only then: start-up time counts)."""
    if quiet or not sys.stdout.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    return Progress(
        TextColumn("checking"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} pieces"),
        console=Console(highlight=False),
    )


async def _check(args: argparse.Namespace) -> int:
    settings = Settings()
    raw = read_torrent_file(Path(args.torrent), settings.max_torrent_size)  # bounded; only a regular file
    meta = Metainfo.from_bytes(raw, settings)
    info = meta.info
    if info.piece_hashes_v1 is None:
        raise MetainfoError("v2-only torrents cannot be checked yet (v1 and hybrid can)")
    data = Path(args.data)
    if not data.exists():
        raise ConfigError(f"data path {str(data)!r} does not exist")
    files = [((data.name, *f.path[1:]) if not f.is_pad else f.path, f.length, f.is_pad) for f in info.files]
    layout = Layout.from_files(files, info.piece_length)
    storage = FileStorage(layout, data.resolve().parent)
    started = time.monotonic()
    progress = _progress_bar(args.quiet)
    task_id = None
    if progress is not None:
        progress.start()
        task_id = progress.add_task("check", total=layout.num_pieces)

    def step(done: int, total: int) -> None:
        if progress is not None and task_id is not None:
            progress.update(task_id, completed=done, total=total)

    try:
        # in forked processes from memory maps where this process can fork (it has started no thread yet; nothing
        # else runs on this loop while it waits for them), else in the storage's threads
        good = recheck_forked(storage, info.piece_hashes_v1, progress=step)
        if good is None:
            good = await recheck(storage, info.piece_hashes_v1, progress=step)
    finally:
        if progress is not None:
            progress.stop()
        await storage.close()
    bad_files = []
    for index, f in enumerate(layout.files):
        if f.is_pad or f.length == 0:
            continue
        pieces = layout.file_piece_range(index)
        if any(not good.has(p) for p in pieces):
            bad_files.append("/".join(f.path))
    elapsed = time.monotonic() - started
    total = layout.num_pieces
    ok = good.count == total
    if not args.quiet:
        for name in bad_files:
            sys.stdout.write(f"  incomplete or damaged: {name}\n")
    verdict = "all pieces ok" if ok else f"{total - good.count} pieces missing or damaged"
    sys.stdout.write(f"{info.name}: {good.count} of {total} pieces ok ({verdict}) in {elapsed:.1f}s\n")
    return 0 if ok else 1
