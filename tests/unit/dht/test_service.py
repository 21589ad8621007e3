from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from shoal.config import Settings
from shoal.dht.persist import NodesDb
from shoal.dht.service import DhtService, parse_host_port
from shoal.errors import ConfigError, StorageError
from shoal.types import PeerAddr

IH = bytes(range(20))


def loopback_settings() -> Settings:
    return Settings().with_(dht_allow_same_ip=True, dht_queries_per_ip_per_second=0.0)


async def wait_for(pred, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async def loop() -> None:
        while not pred():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), timeout)


async def test_services_on_loopback_announce_and_find(tmp_path: Path) -> None:
    s = loopback_settings()
    first = DhtService(s, host="127.0.0.1", port=0, routers=[], rng=random.Random(1))
    await first.start()
    services = [first]
    try:
        for i in range(4):
            svc = DhtService(
                s, host="127.0.0.1", port=0, routers=[f"127.0.0.1:{first.port}"], rng=random.Random(10 + i)
            )
            await svc.start()
            services.append(svc)
        await wait_for(lambda: all(svc.stats().nodes4 >= 2 for svc in services))
        done = await asyncio.wait_for(services[1].announce(IH, 7777), 20)
        assert done.announced_to >= 1
        peers = await asyncio.wait_for(services[4].get_peers(IH), 20)
        assert PeerAddr("127.0.0.1", 7777) in peers
        batches = []
        async with asyncio.timeout(20):
            async for batch in services[3].iter_peers(IH):
                batches.append(batch)
        assert PeerAddr("127.0.0.1", 7777) in [p for b in batches for p in b]
    finally:
        for svc in services:
            await svc.close()


async def test_node_id_and_nodes_survive_a_restart(tmp_path: Path) -> None:
    s = loopback_settings()
    db = tmp_path / "dht.sqlite"
    other = DhtService(s, host="127.0.0.1", port=0, routers=[], rng=random.Random(2))
    await other.start()
    try:
        svc = DhtService(s, host="127.0.0.1", port=0, routers=[f"127.0.0.1:{other.port}"], db_path=db)
        await svc.start()
        await wait_for(lambda: svc.stats().nodes4 >= 1)
        first_id = svc.stats().node_id
        await svc.close()
        again = DhtService(s, host="127.0.0.1", port=0, routers=[], db_path=db)
        await again.start()
        try:
            assert again.stats().node_id == first_id
            await wait_for(lambda: again.stats().nodes4 >= 1)  # bootstrapped from the saved node only
        finally:
            await again.close()
    finally:
        await other.close()


async def test_ipv4_and_ipv6_lookups_bep32() -> None:
    s = loopback_settings()
    first = DhtService(s, host="127.0.0.1", port=0, host6="::1", routers=[], rng=random.Random(1))
    await first.start()
    services = [first]
    try:
        routers = [f"127.0.0.1:{first.port}", f"[::1]:{first.port}"]
        for i in range(3):
            svc = DhtService(
                s, host="127.0.0.1", port=0, host6="::1", routers=routers, rng=random.Random(20 + i)
            )
            await svc.start()
            services.append(svc)
        await wait_for(lambda: all(v.stats().nodes4 >= 1 and v.stats().nodes6 >= 1 for v in services))
        done = await asyncio.wait_for(services[1].announce(IH, 7777), 20)
        assert done.announced_to >= 2  # on both families
        peers = await asyncio.wait_for(services[3].get_peers(IH), 20)
        assert PeerAddr("127.0.0.1", 7777) in peers
        assert PeerAddr("::1", 7777) in peers
    finally:
        for svc in services:
            await svc.close()


def test_parse_host_port() -> None:
    assert parse_host_port("router.example:6881") == ("router.example", 6881)
    assert parse_host_port("[::1]:7") == ("::1", 7)
    for bad in ("nohost", "h:0", "h:65536", ":5", "h:x"):
        with pytest.raises(ConfigError):
            parse_host_port(bad)


def test_nodes_db_rejects_garbage_rows(tmp_path: Path) -> None:
    db = NodesDb(tmp_path / "n.sqlite")
    db.save_nodes(
        [(b"x" * 20, "1.2.3.4", 5, 1.0), (b"short", "1.2.3.5", 5, 2.0), (b"y" * 20, "1.2.3.6", 0, 3.0)]
    )
    assert db.load_nodes(10) == [(b"x" * 20, "1.2.3.4", 5)]
    db.close()
    (tmp_path / "bad.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(StorageError):
        NodesDb(tmp_path / "bad.sqlite").load_node_id()


async def test_bep42_id_from_the_external_ip_voted_last_run(tmp_path: Path) -> None:
    from shoal.dht.node_id import bep42_valid

    db_path = tmp_path / "dht.sqlite"
    db = NodesDb(db_path)
    db.save_node_id(b"\x00" * 20)  # not valid for the address below
    db.save_external_ip("124.31.75.21")
    db.close()
    svc = DhtService(loopback_settings(), host="127.0.0.1", port=0, routers=[], db_path=db_path)
    await svc.start()
    try:
        node_id = svc.stats().node_id
        assert node_id != b"\x00" * 20 and bep42_valid(node_id, "124.31.75.21")
    finally:
        await svc.close()
    again = NodesDb(db_path)
    assert again.load_node_id() == node_id  # kept from now on
    again.close()


async def test_external_ip_votes_are_saved(tmp_path: Path) -> None:
    s = loopback_settings().with_(dht_external_ip_min_votes=1)
    other = DhtService(s, host="127.0.0.1", port=0, routers=[], rng=random.Random(2))
    await other.start()
    try:
        svc = DhtService(
            s, host="127.0.0.1", port=0, routers=[f"127.0.0.1:{other.port}"], db_path=tmp_path / "d"
        )
        await svc.start()
        await wait_for(lambda: svc.stats().external_ip is not None)
        await svc.close()
    finally:
        await other.close()
    db = NodesDb(tmp_path / "d")
    assert db.load_external_ip() == "127.0.0.1"
    db.close()
