"""Check: does a seeder under an upload limit still reach the limit? Shoal seeding to Shoal, in one process.

A Session seeds a file with ``--limit`` bytes/s. ``--leechers`` Sessions, each told only of the seeder, download it
over loopback, and the script prints their combined rate. Leechers trade among themselves (PEX), so with more
than one leecher the total can pass the limit. The bucket starts full (one second of the limit), so a small file
reads high. This checks behaviour, not speed, and has no reference peer.

Run: ``.venv/bin/python benchmarks/bench_upload_limit.py [--limit 60000000] [--leechers 1] [--mib 96]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from shoal.config import Settings
from shoal.creator import create_torrent
from shoal.engine.session import Session
from shoal.types import PeerAddr


async def run(limit: int, leechers: int, mib: int) -> float:
    with tempfile.TemporaryDirectory(prefix="shoal-bench-limit-") as tmp:
        root = Path(tmp)
        src = root / "src" / "f.bin"
        src.parent.mkdir()
        src.write_bytes(random.Random(1).randbytes(mib << 20))
        torrent = create_torrent(src, piece_length=1 << 20)
        s = Settings()
        async with Session(s, listen=("127.0.0.1", 0)) as seeder:
            st = await seeder.add(torrent, save_path=src.parent, upload_limit=limit)
            await st.wait_complete(timeout=120)
            sessions = [Session(s, listen=("127.0.0.1", 0)) for _ in range(leechers)]
            try:
                for ls in sessions:
                    await ls.start()
                only_seeder = [PeerAddr("127.0.0.1", seeder.listen_port)]
                start = time.monotonic()
                handles = [
                    await ls.add(torrent, save_path=root / f"dl{i}", peers=only_seeder)
                    for i, ls in enumerate(sessions)
                ]
                await asyncio.gather(*(h.wait_complete(timeout=600) for h in handles))
                return leechers * (mib << 20) / (time.monotonic() - start)
            finally:
                for ls in sessions:
                    await ls.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--limit", type=int, default=60_000_000, help="seeder upload limit, bytes/s")
    ap.add_argument("--leechers", type=int, default=1)
    ap.add_argument("--mib", type=int, default=96)
    args = ap.parse_args()
    rate = asyncio.run(run(args.limit, args.leechers, args.mib))
    print(f"limit {args.limit / 1e6:.1f} MB/s, {args.leechers} leecher(s): {rate / 1e6:.1f} MB/s in all")


if __name__ == "__main__":
    main()
