"""``shoal create PATH``: make a .torrent from a file or folder (v1, v2 or hybrid), hashing on all cores."""

from __future__ import annotations

import argparse
import os
import sys
import time

from shoal.creator import create, torrent_name
from shoal.errors import ConfigError, StorageError

TYPE_CHECKING = False  # typing, contextlib and pathlib stay unloaded: every ms of start-up counts here
if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.progress import Progress

_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="file or folder to describe")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="where to write the torrent (default: NAME.torrent)"
    )
    parser.add_argument("-f", "--force", action="store_true", help="overwrite FILE if it exists")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument(
        "--v1", dest="version", action="store_const", const="v1", help="BitTorrent v1 only (default)"
    )
    kind.add_argument(
        "--v2", dest="version", action="store_const", const="v2", help="BitTorrent v2 only (BEP 52)"
    )
    kind.add_argument(
        "--hybrid", dest="version", action="store_const", const="hybrid", help="v1 + v2 in one torrent"
    )
    parser.set_defaults(version="v1")
    parser.add_argument(
        "-t",
        "--tracker",
        action="append",
        default=[],
        metavar="URL",
        help="tracker; repeat for more tiers, or join URLs of one tier with commas",
    )
    parser.add_argument("--web-seed", action="append", default=[], metavar="URL", help="BEP 19 web seed")
    parser.add_argument("--piece-size", default="auto", metavar="auto|N", help="bytes, or with K/M suffix")
    parser.add_argument("--private", action="store_true", help="set the private flag (BEP 27)")
    parser.add_argument("--comment")
    parser.add_argument("--source", help="source tag (changes the info-hash; used by private trackers)")
    parser.add_argument("--created-by", default=None, help="creator string (default: Shoal VERSION)")
    parser.add_argument(
        "--date", action="store_true", help="write the creation date (output not reproducible)"
    )
    parser.add_argument("--threads", type=int, default=None, help="hashing threads (default: one per core)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def parse_piece_size(text: str) -> int | None:
    t = text.strip().lower()
    if t == "auto":
        return None
    mult = 1
    if t[-1:] in _UNITS:
        mult, t = _UNITS[t[-1]], t[:-1]
    elif t.endswith(("kib", "mib", "gib")):
        mult, t = _UNITS[t[0 - 3]], t[:-3]
    if not (t.isascii() and t.isdigit()) or len(t) > 12:
        raise ConfigError(f"piece size {text!r} is not 'auto' or a number of bytes")
    return int(t) * mult


class ProgressBar:
    """A rich progress bar on stderr when it is a terminal (``with`` gives its update function, else None); rich
    is imported only then (start-up time counts)."""

    def __init__(self, description: str, quiet: bool) -> None:
        self.description = description
        self.bar: Progress | None = None
        self.on = not quiet and sys.stderr.isatty()

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not self.on:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
        )
        bar = Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        bar.__enter__()
        self.bar = bar
        task = bar.add_task(self.description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def run(args: argparse.Namespace) -> int:
    src = args.path
    name = torrent_name(src)  # the folder is walked once, by create()
    out = args.output or f"{name}.torrent"
    if os.path.exists(out) and not args.force:
        raise ConfigError(f"output {out!r} exists (use --force to overwrite)")
    tiers = [[u.strip() for u in t.split(",") if u.strip()] for t in args.tracker]
    extra = {} if args.created_by is None else {"created_by": args.created_by}
    with ProgressBar(f"hashing {name}", quiet=args.quiet) as progress:
        made = create(
            src,
            version=args.version,
            trackers=tiers,
            web_seeds=args.web_seed,
            piece_length=parse_piece_size(args.piece_size),
            private=args.private,
            comment=args.comment,
            source=args.source,
            creation_date=int(time.time()) if args.date else None,
            threads=args.threads,
            progress=progress,
            **extra,
        )
    tmp = out + ".part"
    try:
        with open(tmp, "wb") as f:
            f.write(made.data)
        os.replace(tmp, out)
    except OSError as exc:
        raise StorageError(f"cannot write {out!r}: {exc.strerror}") from None
    sys.stdout.write(f"wrote {out} ({made.num_pieces} pieces of {made.piece_length} bytes)\n")
    if made.info_hash_v1:
        sys.stdout.write(f"info-hash v1: {made.info_hash_v1.hex()}\n")
    if made.info_hash_v2:
        sys.stdout.write(f"info-hash v2: {made.info_hash_v2.hex()}\n")
    return 0
