"""The session's DHT plumbing, Shoal to Shoal on 127.0.0.1: a magnet is completed through the DHT alone, and a
private torrent is never put on the DHT."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from shoal.config import Settings
from shoal.dht.service import DhtService
from shoal.engine.session import Session
from swarm_helpers import info_hash_of, make_payload, make_torrent, same_tree

SPEC = [("a.bin", 300_000), ("dir/b.bin", 70_000)]


def loopback() -> Settings:
    return Settings().with_(dht_allow_same_ip=True, dht_queries_per_ip_per_second=0.0)


def dht(router: DhtService | None, seed: int) -> DhtService:
    routers = [] if router is None else [f"127.0.0.1:{router.port}"]
    return DhtService(loopback(), host="127.0.0.1", port=0, routers=routers, rng=random.Random(seed))


async def test_magnet_completes_through_the_dht(tmp_path: Path) -> None:
    data = make_payload(tmp_path / "seed" / "payload", SPEC)
    torrent = make_torrent(data, piece_length=64 * 1024)
    magnet = f"magnet:?xt=urn:btih:{info_hash_of(torrent).hex()}"
    async with dht(None, 1) as router:
        seeder_dht, leecher_dht = dht(router, 2), dht(router, 3)
        async with (
            Session(loopback(), listen=("127.0.0.1", 0), dht=seeder_dht) as seeder,
            Session(loopback(), listen=("127.0.0.1", 0), dht=leecher_dht) as leecher,
        ):
            await seeder.add(torrent, save_path=data.parent)
            handle = await leecher.add(magnet, save_path=tmp_path / "dl")
            await handle.wait_complete(timeout=60)
            assert leecher.discovery is not None and seeder.discovery is not None
            # one side found the other on the DHT (whichever looked up after the other had announced)
            found = leecher.discovery.counters["dht_peers"] + seeder.discovery.counters["dht_peers"]
            assert found >= 1
            assert leecher.discovery.stats()["dht_nodes"] >= 1
    assert same_tree(data, tmp_path / "dl" / "payload")


async def test_private_torrent_is_not_announced(tmp_path: Path) -> None:
    data = make_payload(tmp_path / "seed" / "payload", SPEC)
    torrent = make_torrent(data, piece_length=64 * 1024, private=True)
    async with dht(None, 1) as router:
        async with Session(loopback(), listen=("127.0.0.1", 0), dht=dht(router, 2)) as seeder:
            await seeder.add(torrent, save_path=data.parent)
            await asyncio.sleep(1.0)
            assert seeder.discovery is not None
            assert seeder.discovery.counters["dht_lookups"] == 0
        assert router.stats().stored_peers == 0
