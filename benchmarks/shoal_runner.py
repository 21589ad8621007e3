"""Run one Shoal session in its own process (the Session API) and report JSON lines, like ``lt_runner``.

Used by the scale benchmarks, which need settings the CLI does not expose (connection limits, upload slots)::

    python -m benchmarks.shoal_runner seed TORRENT DATA_PARENT [--listen IP] [--set FIELD=VALUE ...]
    python -m benchmarks.shoal_runner many TORRENT_DIR DATA_PARENT [--listen IP] [--set FIELD=VALUE ...]
    python -m benchmarks.shoal_runner get TORRENT SAVE_DIR --peer IP:PORT [...]   # "ready" = download complete

Lines: ``{"event": "listening", "port": P}`` once listening; ``{"event": "ready", "seconds": T, "count": N}`` once
every torrent is checked and seeding (T from process start); ``{"event": "exit", ...}`` on SIGTERM/SIGINT or
``--timeout``. ``--profile FILE`` writes cProfile stats (main thread only: hashing and disk threads are not
in it); read them with ``python -m pstats FILE``. ``--loop asyncio`` avoids uvloop (used by default when installed, as the CLI does). ``--set`` takes ``shoal.config.Settings`` field names (ints, floats, bools parsed).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

T_START = time.monotonic()


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def parse_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_peer(text: str) -> Any:
    from shoal.types import PeerAddr

    host, _, port = text.rpartition(":")
    return PeerAddr(host.strip("[]"), int(port))


def seeding(torrent: Any) -> bool:
    st = torrent.status()
    return bool(st.is_complete and st.state.value != "checking")


async def amain(args: argparse.Namespace) -> int:
    from shoal.config import Settings
    from shoal.engine.session import Session

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = parse_value(value)
    settings = dataclasses.replace(Settings(), **overrides)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    paths = sorted(args.torrent.glob("*.torrent")) if args.mode == "many" else [args.torrent]
    async with Session(settings, listen=(args.listen, 0)) as session:
        emit({"event": "listening", "port": session.listen_port})
        torrents = []
        peers = [parse_peer(p) for p in args.peer]
        for p in paths:
            torrents.append(
                await session.add(
                    p,
                    save_path=args.save,
                    seed=args.mode != "get",
                    use_trackers=False,
                    peers=peers,
                    # a seeder hashes its data on every start, as the libtorrent runner does (no resume data),
                    # unless --resume: then a start after the first trusts the resume database
                    force_recheck=args.mode != "get" and not args.resume,
                    resume=args.mode == "get" or args.resume,
                )
            )
        deadline = time.monotonic() + args.timeout
        done = 0  # torrents[:done] are seeding (it lasts): each poll asks only the others, as lt_runner does
        while True:
            while done < len(torrents) and seeding(torrents[done]):
                done += 1
            if done == len(torrents):
                break
            if stop.is_set() or time.monotonic() > deadline:
                done = sum(seeding(t) for t in torrents)
                emit({"event": "exit", "stats": {"seeding": done, "count": len(torrents)}})
                return 2
            await asyncio.sleep(0.02)
        emit({"event": "ready", "seconds": time.monotonic() - T_START, "count": len(torrents)})
        if args.mode == "get" or args.exit_when_ready:
            stop.set()
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            pass
        stats = {"count": len(torrents), "uploaded": sum(t.status().uploaded for t in torrents)}
    ru = resource.getrusage(resource.RUSAGE_SELF)
    emit(
        {
            "event": "exit",
            "stats": stats,
            "cpu_user": ru.ru_utime,
            "cpu_sys": ru.ru_stime,
            "max_rss_kib": ru.ru_maxrss,
        }
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="shoal_runner")
    ap.add_argument("mode", choices=["seed", "many", "get"])
    ap.add_argument("--peer", action="append", default=[], metavar="HOST:PORT")
    ap.add_argument("torrent", type=Path)
    ap.add_argument("save", type=Path)
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--loop", choices=["auto", "asyncio"], default="auto", help="auto: uvloop when installed")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="seed/many: keep resume data (DATA_PARENT/.shoal), no forced re-check",
    )
    ap.add_argument(
        "--exit-when-ready", action="store_true", help="seed/many: stop once every torrent is seeding"
    )
    ap.add_argument("--profile", type=Path, default=None, help="write cProfile stats of the run to this file")
    args = ap.parse_args()
    if args.profile is not None:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        try:
            return run_loop(args)
        finally:
            prof.disable()
            prof.dump_stats(args.profile)
    return run_loop(args)


def run_loop(args: argparse.Namespace) -> int:
    if args.loop == "asyncio":
        return asyncio.run(amain(args))
    try:
        import uvloop  # the CLI uses it when installed; so does this runner
    except ImportError:
        return asyncio.run(amain(args))
    return int(uvloop.run(amain(args)))


if __name__ == "__main__":
    raise SystemExit(main())
