"""Two `shoal tracker` processes sharing one real redis-server (started here on a free loopback port) give
consistent peer lists and scrape counts, also when they share one port with SO_REUSEPORT."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.harness.proc import free_port, start, stop, tail, tcp_open, wait_for
from peers import require_binary
from shoal.config import Settings
from shoal.tracker.client import TrackerClient
from shoal.tracker.proto.messages import AnnounceRequest, Event, ScrapeStats
from shoal.types import PeerAddr

IH = b"\x5a" * 20
CLIENT = Settings(tracker_timeout=5.0, udp_tracker_retry_base=0.5, udp_tracker_retries=2)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = require_binary("redis-server")
    port = free_port()
    proc = start(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        log_path=tmp_path / "redis.log",
    )
    try:
        wait_for(
            lambda: tcp_open("127.0.0.1", port),
            timeout=10,
            what=f"redis-server on {port}: {tail(tmp_path / 'redis.log')}",
        )
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


def tracker(args: list[str]) -> tuple[subprocess.Popen[bytes], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal", "tracker", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline().decode() for _ in range(2)]
    if not all(line.startswith("shoal tracker: ") for line in lines):
        stop(proc)
        proc.stdout.close()
        raise RuntimeError(f"shoal tracker did not start (exit {proc.poll()}): {lines}")
    http, udp = (line.split(": ", 1)[1].strip() for line in lines)
    return proc, http, udp


@pytest.fixture
def trackers(redis_url: str) -> Iterator[list[tuple[str, str]]]:
    procs = []
    try:
        out = []
        for _ in range(2):
            proc, http, udp = tracker(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--redis", redis_url])
            procs.append(proc)
            out.append((http, udp))
        yield out
    finally:
        for p in procs:
            stop(p)
            if p.stdout is not None:
                p.stdout.close()


def peer(i: int, left: int = 1, event: Event = Event.STARTED) -> AnnounceRequest:
    return AnnounceRequest(IH, b"-SH0100-" + bytes([i]) * 12, 7000 + i, left=left, event=event)


async def test_two_processes_share_swarms(trackers: list[tuple[str, str]]) -> None:
    (http_a, udp_a), (http_b, udp_b) = trackers
    async with TrackerClient(CLIENT) as client:
        await client.announce(http_a, peer(1, left=0))  # seeder via A (HTTP)
        await client.announce(udp_b, peer(2))  # leecher via B (UDP)
        r = await client.announce(http_b, peer(3))  # leecher via B sees both
        assert set(r.peers) == {PeerAddr("127.0.0.1", 7001), PeerAddr("127.0.0.1", 7002)}
        assert (r.complete, r.incomplete) == (1, 2)
        r = await client.announce(udp_a, peer(1, left=0, event=Event.NONE))  # the seeder gets only leechers
        assert set(r.peers) == {PeerAddr("127.0.0.1", 7002), PeerAddr("127.0.0.1", 7003)}
        await client.announce(http_a, peer(2, left=0, event=Event.COMPLETED))
        await client.announce(udp_b, peer(3, event=Event.STOPPED))
        expected = ScrapeStats(complete=2, downloaded=1, incomplete=0)
        for url in (http_a, udp_a, http_b, udp_b):
            assert (await client.scrape(url, [IH]))[IH] == expected


async def test_reuse_port_processes_answer_alike(redis_url: str) -> None:
    port = free_port(udp=True)
    procs = []
    try:
        for _ in range(2):
            args = [
                "--http",
                f"127.0.0.1:{port}",
                "--udp",
                f"127.0.0.1:{port}",
                "--redis",
                redis_url,
                "--reuse-port",
            ]
            proc, http, udp = tracker(args)
            procs.append(proc)
        assert all(p.poll() is None for p in procs)
        async with TrackerClient(CLIENT) as client:
            for i in range(1, 9):  # spread over both processes by the kernel
                await client.announce(http if i % 2 else udp, peer(i, left=0 if i <= 2 else 1))
            for _ in range(6):
                r = await client.announce(http, peer(9))
                assert (r.complete, r.incomplete) == (2, 7)
                assert (await client.scrape(udp, [IH]))[IH] == ScrapeStats(2, 0, 7)
    finally:
        for p in procs:
            stop(p)
            if p.stdout is not None:
                p.stdout.close()


def test_connection_id_from_one_process_accepted_by_the_other(trackers: list[tuple[str, str]]) -> None:
    from urllib.parse import urlsplit

    from shoal.tracker.proto import udp

    (_, udp_a), (_, udp_b) = trackers
    addr_a = ("127.0.0.1", urlsplit(udp_a).port)
    addr_b = ("127.0.0.1", urlsplit(udp_b).port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(udp.encode_connect(1), addr_a)
        cid = udp.decode_connect_response(s.recv(64), 1)
        s.sendto(udp.encode_announce(cid, 2, peer(1)), addr_b)  # the keys are shared through redis
        assert udp.decode_announce_response(s.recv(2048), 2).incomplete == 1


async def test_script_reloaded_after_redis_forgets_it(
    redis_url: str, trackers: list[tuple[str, str]]
) -> None:
    import redis

    (http_a, _), _ = trackers
    async with TrackerClient(CLIENT) as client:
        await client.announce(http_a, peer(1))
        with redis.Redis.from_url(redis_url) as r:
            r.script_flush()  # as after a redis restart
        assert (await client.announce(http_a, peer(2))).incomplete == 2
