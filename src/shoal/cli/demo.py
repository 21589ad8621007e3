"""``shoal demo``: a one-command tour on loopback, no internet needed.

It makes a sample file, creates a torrent for it, starts a tracker (Shoal's own, HTTP on 127.0.0.1), a seeder
and a few leechers (each a separate Session with its own listening port), shows their progress side by side,
checks every leecher's copy against the original, and says how to do the same with a real torrent. The seeder's
upload is capped so the leechers visibly trade pieces among themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from shoal.cli._progress import add_row, human_bytes, make_progress, row_fields, run_async
from shoal.config import Settings
from shoal.engine.handle import Torrent
from shoal.engine.session import Session
from shoal.errors import ConfigError

MiB = 1024 * 1024


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mib", type=int, default=32, help="size of the sample file (default 32)")
    parser.add_argument("--leechers", type=int, default=3, help="how many downloaders (default 3)")
    parser.add_argument(
        "--seeder-limit-mib", type=float, default=8.0, help="seeder upload cap in MiB/s, 0 = none (default 8)"
    )
    parser.add_argument("--dir", default=None, help="work here (kept) instead of a temporary folder")
    parser.add_argument("--timeout", type=float, default=50.0, help="give up after this many seconds")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.leechers <= 16:
        raise ConfigError(f"leechers {args.leechers} not in 1..16")
    if not 1 <= args.size_mib <= 4096:
        raise ConfigError(f"size {args.size_mib} MiB not in 1..4096")
    if args.dir is not None:
        root = Path(args.dir)
        root.mkdir(parents=True, exist_ok=True)
        return run_async(lambda: _demo(args, root))
    tmp = tempfile.mkdtemp(prefix="shoal-demo-")
    try:
        return run_async(lambda: _demo(args, Path(tmp)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _make_sample(path: Path, size: int) -> str:
    rng = random.Random(2024)
    digest = hashlib.sha1()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        left = size
        while left:
            chunk = rng.randbytes(min(left, MiB))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


async def _start_tracker() -> tuple[Any, str]:
    from shoal.trackerd.config import TrackerdConfig
    from shoal.trackerd.server import TrackerServer

    config = TrackerdConfig(http="127.0.0.1:0", interval=5, min_interval=1, ip_rate=0, stats=False)
    server = TrackerServer(config)
    await server.start()
    assert server.http_address is not None
    host, port = server.http_address
    return server, f"http://{host}:{port}/announce"


async def _demo(args: argparse.Namespace, root: Path) -> int:
    from shoal.creator import create_torrent

    console = Console(highlight=False)
    started = time.monotonic()
    sample = root / "seed" / "shoal-demo.bin"
    console.print(f"[bold]Shoal demo[/bold] in {root}")
    expected = await asyncio.to_thread(_make_sample, sample, args.size_mib * MiB)
    console.print(f"1. made a {args.size_mib} MiB sample file: {sample}", soft_wrap=True)
    tracker, announce = await _start_tracker()
    console.print(f"2. started a tracker: {announce}", soft_wrap=True)
    try:
        raw = await asyncio.to_thread(create_torrent, sample, trackers=[announce], piece_length=256 * 1024)
        torrent_path = root / "shoal-demo.torrent"
        torrent_path.write_bytes(raw)
        console.print(f"3. created {torrent_path.name} (256 KiB pieces)")
        settings = Settings(engine_tick_interval=0.2, choke_interval=2.0, tracker_min_interval=1.0)
        seeder = Session(settings, listen=("127.0.0.1", 0))
        leechers = [Session(settings, listen=("127.0.0.1", 0)) for _ in range(args.leechers)]
        code = 1
        try:
            await seeder.start()
            for s in leechers:
                await s.start()
            limit = int(args.seeder_limit_mib * MiB)
            seed_t = await seeder.add(raw, save_path=sample.parent, upload_limit=limit)
            await seed_t.wait_complete(timeout=args.timeout)
            console.print(
                f"4. a seeder (port {seeder.listen_port}, upload capped at {args.seeder_limit_mib:g} MiB/s) "
                f"and {args.leechers} leechers join the swarm",
                soft_wrap=True,
            )
            handles: list[Torrent] = []
            for i, s in enumerate(leechers):
                handles.append(await s.add(raw, save_path=root / f"leecher{i + 1}"))
            ok = await _watch(console, args, seed_t, handles, started)
            code = 0 if ok else 1
            if ok:
                _verify(console, root, handles, expected, sample.name)
                shared = sum(h.status().uploaded for h in handles)
                console.print(
                    f"6. the leechers uploaded {human_bytes(shared)} to each other "
                    f"(the seeder sent {human_bytes(seed_t.status().uploaded)})",
                    soft_wrap=True,
                )
        finally:
            for s in leechers:
                await s.close()
            await seeder.close()
    finally:
        await tracker.close()
    if code == 0:
        console.print(f"done in {time.monotonic() - started:.1f}s.\n")
        console.print("Now with a real torrent:", style="bold")
        console.print("  shoal get FILE.torrent -o ~/Downloads        (or a magnet link or an http URL)")
        console.print("  shoal seed FILE.torrent PATH/TO/DATA          (check your data, then share it)")
        console.print("  shoal create PATH/TO/DATA -t http://tracker.example/announce -o DATA.torrent")
    return code


async def _watch(
    console: Console, args: argparse.Namespace, seed_t: Torrent, handles: list[Torrent], started: float
) -> bool:
    progress = None if args.quiet or not console.is_terminal else make_progress(console)
    deadline = started + args.timeout
    try:
        rows = []
        if progress is not None:
            progress.start()
            rows.append(add_row(progress, "seeder", seed_t.status()))
            rows += [add_row(progress, f"leecher {i + 1}", h.status()) for i, h in enumerate(handles)]
        while True:
            statuses = [h.status() for h in handles]
            if progress is not None:
                for row, h in zip(rows, [seed_t, *handles], strict=True):
                    progress.update(row, **row_fields(h.status()))
            if all(st.is_complete for st in statuses):
                return True
            if any(st.error for st in statuses) or time.monotonic() > deadline:
                for i, st in enumerate(statuses):
                    console.print(f"leecher {i + 1}: {st.state.value} {st.progress:.0%} {st.error or ''}")
                return False
            await asyncio.sleep(0.2)
    finally:
        if progress is not None:
            progress.stop()


def _verify(console: Console, root: Path, handles: list[Torrent], expected: str, name: str) -> None:
    for i in range(len(handles)):
        got = _sha1(root / f"leecher{i + 1}" / name)
        if got != expected:
            raise ConfigError(f"leecher {i + 1} ended with sha1 {got}, expected {expected}")
    console.print(
        f"5. verified: all {len(handles)} copies are identical to the original (sha1 {expected[:12]}…)"
    )
