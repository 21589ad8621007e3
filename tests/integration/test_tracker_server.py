"""`shoal tracker` in-process on loopback, driven by Shoal's own tracker client and raw sockets."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.config import Settings
from shoal.errors import TrackerError
from shoal.tracker.client import TrackerClient
from shoal.tracker.proto.messages import AnnounceRequest, Event, ScrapeStats
from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.server import TrackerServer
from shoal.types import PeerAddr

IH = b"\x42" * 20
CONFIG = TrackerdConfig(http="127.0.0.1:0", udp="127.0.0.1:0")
CLIENT = Settings(tracker_timeout=5.0, udp_tracker_retry_base=0.5, udp_tracker_retries=2)


def peer(i: int, left: int = 1, event: Event = Event.STARTED, ih: bytes = IH) -> AnnounceRequest:
    return AnnounceRequest(ih, b"-SH0100-" + bytes([i]) * 12, 7000 + i, left=left, event=event)


@pytest.fixture
async def server() -> AsyncIterator[TrackerServer]:
    async with TrackerServer(CONFIG, rng=random.Random(1)) as srv:
        yield srv


def urls(srv: TrackerServer) -> tuple[str, str]:
    assert srv.http_address and srv.udp_address
    return (
        f"http://127.0.0.1:{srv.http_address[1]}/announce",
        f"udp://127.0.0.1:{srv.udp_address[1]}/announce",
    )


@pytest.mark.parametrize("transport", ["http", "udp"])
async def test_swarm_over_transport(server: TrackerServer, transport: str) -> None:
    url = urls(server)[0 if transport == "http" else 1]
    async with TrackerClient(CLIENT) as client:
        r1 = await client.announce(url, peer(1, left=0))
        assert r1.peers == [] and r1.complete == 1
        r2 = await client.announce(url, peer(2))
        assert r2.peers == [PeerAddr("127.0.0.1", 7001)]
        assert (r2.complete, r2.incomplete) == (1, 1)
        r3 = await client.announce(url, peer(3, left=0))
        assert r3.peers == [PeerAddr("127.0.0.1", 7002)]  # seeders are not sent to seeders
        await client.announce(url, peer(2, left=0, event=Event.COMPLETED))
        await client.announce(url, peer(3, left=0, event=Event.STOPPED))
        stats = await client.scrape(url, [IH, b"\x00" * 20])
        assert stats[IH] == ScrapeStats(complete=2, downloaded=1, incomplete=0)
        assert stats[b"\x00" * 20] == ScrapeStats(0, 0, 0)


async def test_stats_json_and_page(server: TrackerServer) -> None:
    url = urls(server)[0]
    async with TrackerClient(CLIENT) as client:
        await client.announce(url, peer(1))
    assert server.http_address
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_address[1])
    writer.write(
        b"GET /stats.json HTTP/1.1\r\nHost: x\r\n\r\nGET /stats HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    async with asyncio.timeout(5):
        data = await reader.read()
    writer.close()
    first, second = data.split(b"HTTP/1.1 200 OK")[1:]
    stats = json.loads(first.split(b"\r\n\r\n", 1)[1])
    assert (
        stats["swarms"] == 1
        and stats["peers"] == 1
        and stats["started"] == 1
        and stats["backend"] == "memory"
    )
    assert b"<table>" in second and b"text/html" in second


async def test_ipv6_peers6() -> None:
    cfg = TrackerdConfig(http="[::1]:0", udp="[::1]:0")
    async with TrackerServer(cfg) as srv, TrackerClient(CLIENT) as client:
        assert srv.http_address and srv.udp_address
        for url in (
            f"http://[::1]:{srv.http_address[1]}/announce",
            f"udp://[::1]:{srv.udp_address[1]}/announce",
        ):
            await client.announce(url, peer(1, ih=url.encode()[:20].ljust(20, b"x")))
            r = await client.announce(url, peer(2, ih=url.encode()[:20].ljust(20, b"x")))
            assert r.peers == [PeerAddr("::1", 7001)]


async def test_private_mode_case_4(tmp_path: Path) -> None:
    (tmp_path / "allow").write_text(IH.hex() + "\n")
    (tmp_path / "keys").write_text("s3cret\n")
    cfg = CONFIG.with_(private=True, allow=str(tmp_path / "allow"), passkeys=str(tmp_path / "keys"))
    async with TrackerServer(cfg) as srv, TrackerClient(CLIENT) as client:
        http_url, udp_url = urls(srv)
        base = http_url.rsplit("/", 1)[0]
        good = f"{base}/s3cret/announce"
        assert (await client.announce(good, peer(1))).incomplete == 1
        with pytest.raises(TrackerError) as info:
            await client.announce(good, peer(2, ih=b"\x07" * 20))
        assert info.value.failure_reason == "unregistered torrent"
        for bad in (f"{base}/wrong/announce", http_url):
            with pytest.raises(TrackerError) as info:
                await client.announce(bad, peer(3))
            assert info.value.failure_reason == "unknown passkey"
        with pytest.raises(TrackerError) as info:
            await client.scrape(f"{base}/wrong/announce", [IH])
        with pytest.raises(TrackerError):
            await client.announce(udp_url, peer(4))  # passkeys only travel over HTTP
        assert (await client.scrape(good, [IH, b"\x07" * 20])) == {IH: ScrapeStats(0, 0, 1)}


async def test_private_allow_list_over_udp(tmp_path: Path) -> None:
    (tmp_path / "allow").write_text(IH.hex() + "\n")
    cfg = CONFIG.with_(private=True, allow=str(tmp_path / "allow"))
    async with TrackerServer(cfg) as srv, TrackerClient(CLIENT) as client:
        _, udp_url = urls(srv)
        assert (await client.announce(udp_url, peer(1))).incomplete == 1
        with pytest.raises(TrackerError) as info:
            await client.announce(udp_url, peer(1, ih=b"\x07" * 20))
        assert info.value.failure_reason == "unregistered torrent"


async def test_state_db_keeps_swarms_across_restart(tmp_path: Path) -> None:
    cfg = CONFIG.with_(state_db=str(tmp_path / "state.sqlite"))
    async with TrackerServer(cfg) as srv, TrackerClient(CLIENT) as client:
        url = urls(srv)[0]
        await client.announce(url, peer(1, left=0))
        await client.announce(url, peer(2, event=Event.COMPLETED, left=0))
    async with TrackerServer(cfg) as srv, TrackerClient(CLIENT) as client:
        url = urls(srv)[0]
        assert (await client.scrape(url, [IH]))[IH] == ScrapeStats(complete=2, downloaded=1, incomplete=0)
        r = await client.announce(url, peer(3))
        assert set(r.peers) == {PeerAddr("127.0.0.1", 7001), PeerAddr("127.0.0.1", 7002)}


def test_cli_serves_and_shuts_down_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal", "tracker", "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("shoal tracker: http://127.0.0.1:")
        assert proc.stdout.readline().decode().startswith("shoal tracker: udp://127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_cli_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from shoal.cli.main import main

    assert main(["tracker", "--http", "127.0.0.1:0", "--private"]) == 2
    assert "--private needs --allow" in capsys.readouterr().err
    bad = tmp_path / "c.toml"
    bad.write_text("nope = 1\n")
    assert main(["tracker", "--config", str(bad)]) == 2


async def test_state_db_saved_periodically(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "state.sqlite"
    cfg = CONFIG.with_(state_db=str(db), save_every=0.1, expire_every=0.2)
    async with TrackerServer(cfg) as srv, TrackerClient(CLIENT) as client:
        await client.announce(urls(srv)[0], peer(1))

        def rows() -> int:
            with sqlite3.connect(db) as conn:
                return int(conn.execute("SELECT COUNT(*) FROM peers").fetchone()[0])

        async with asyncio.timeout(10):
            while rows() != 1:  # written while the tracker runs, not only at shutdown
                await asyncio.sleep(0.1)


async def test_reload_allow_list(tmp_path: Path) -> None:
    allow = tmp_path / "allow"
    allow.write_text(IH.hex() + "\n")
    cfg = CONFIG.with_(private=True, allow=str(allow))
    other = b"\x07" * 20
    async with TrackerServer(cfg) as srv, TrackerClient(CLIENT) as client:
        url = urls(srv)[0]
        with pytest.raises(TrackerError):
            await client.announce(url, peer(1, ih=other))
        allow.write_text(IH.hex() + "\n" + other.hex() + "\n")
        srv.reload()  # what SIGHUP does
        assert (await client.announce(url, peer(1, ih=other))).incomplete == 1
        allow.write_text("not a hash\n")
        srv.reload()  # a bad file keeps the old list
        assert (await client.announce(url, peer(2, ih=other))).incomplete == 2
