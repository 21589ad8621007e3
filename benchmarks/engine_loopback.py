"""Shoal -> Shoal (or libtorrent -> Shoal) loopback throughput, one process per side.

    .venv/bin/python benchmarks/engine_loopback.py --size-mib 256 [--seeder shoal|libtorrent]

Prints MB/s and the downloader's CPU seconds. Data lives in a temporary folder (page cache warm after creation).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from swarm_helpers import make_file, make_torrent

SEEDER = r"""
import asyncio, sys
from pathlib import Path
from shoal.engine.session import Session
from shoal.config import Settings
async def main():
    async with Session(Settings(), listen=("127.0.0.1", 0)) as s:
        t = await s.add(Path(sys.argv[1]).read_bytes(), save_path=sys.argv[2])
        await t.wait_complete(600)
        print(s.listen_port, flush=True)
        await asyncio.sleep(3600)
try:
    import uvloop; uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""

LT_SEEDER = r"""
import sys, time, libtorrent as lt
ses = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
    "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True, "alert_mask": 0})
ti = lt.torrent_info(sys.argv[1])
h = ses.add_torrent({"ti": ti, "save_path": sys.argv[2]})
while not h.status().is_seeding:
    time.sleep(0.1)
print(ses.listen_port(), flush=True)
time.sleep(3600)
"""


async def download(torrent: bytes, out: Path, port: int) -> float:
    from shoal.config import Settings
    from shoal.engine.session import Session
    from shoal.types import PeerAddr

    async with Session(Settings(), listen=("127.0.0.1", 0)) as s:
        t0 = time.monotonic()
        t = await s.add(torrent, save_path=out, peers=[PeerAddr("127.0.0.1", port)], seed=False)
        await t.wait_complete(600)
        return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--piece-kib", type=int, default=1024)
    ap.add_argument("--seeder", choices=["shoal", "libtorrent"], default="shoal")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = make_file(root / "src" / "big.bin", args.size_mib * 1024 * 1024)
        tfile = root / "big.torrent"
        tfile.write_bytes(make_torrent(src, piece_length=args.piece_kib * 1024))
        code = LT_SEEDER if args.seeder == "libtorrent" else SEEDER
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(tfile), str(src.parent)], stdout=subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            before = resource.getrusage(resource.RUSAGE_SELF)
            runner = None
            try:
                import uvloop

                runner = uvloop.run
            except ImportError:
                runner = asyncio.run
            if args.profile:
                import cProfile
                import pstats

                prof = cProfile.Profile()
                prof.enable()
                secs = runner(download(tfile.read_bytes(), root / "dl", port))
                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            else:
                secs = runner(download(tfile.read_bytes(), root / "dl", port))
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            mb = args.size_mib * 1024 * 1024 / 1e6
            print(
                f"seeder={args.seeder} size={args.size_mib}MiB: {mb / secs:.0f} MB/s in {secs:.2f}s, downloader CPU {cpu:.2f}s"
            )
            ok = os.path.getsize(root / "dl" / "big.bin") == src.stat().st_size
            print("size ok" if ok else "SIZE MISMATCH")
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
