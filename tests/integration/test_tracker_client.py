"""TrackerClient against small scripted HTTP and UDP trackers on loopback (including hostile ones, case 38)."""

from __future__ import annotations

import asyncio
import gzip
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from shoal.codec.bencode import encode
from shoal.config import Settings
from shoal.errors import TrackerError
from shoal.tracker.announcer import Announcer
from shoal.tracker.client import AnnounceDriver, TrackerClient
from shoal.tracker.proto import udp
from shoal.tracker.proto.messages import AnnounceRequest, Event, ScrapeStats
from shoal.types import PeerAddr

IH = b"\x11" * 20
PID = b"-SH0100-" + b"a" * 12
REQ = AnnounceRequest(IH, PID, 6881, left=10, event=Event.STARTED)
PEERS = bytes([10, 0, 0, 1, 0x1A, 0xE1])
SETTINGS = Settings(tracker_timeout=5.0, udp_tracker_retry_base=0.2, udp_tracker_retries=2)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for r in runners:
            await r.cleanup()


async def test_http_announce_and_scrape(serve: Callable[[Handler], Awaitable[str]]) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        if request.path.endswith("/scrape"):
            return web.Response(
                body=encode({b"files": {IH: {b"complete": 1, b"downloaded": 2, b"incomplete": 3}}})
            )
        return web.Response(
            body=encode({b"interval": 120, b"peers": PEERS, b"complete": 1, b"incomplete": 0})
        )

    base = await serve(handler)
    async with TrackerClient(SETTINGS) as client:
        resp = await client.announce(f"{base}/announce", REQ)
        assert resp.peers == [PeerAddr("10.0.0.1", 6881)] and resp.interval == 120
        stats = await client.scrape(f"{base}/announce", [IH])
        assert stats == {IH: ScrapeStats(1, 2, 3)}
    assert "event=started" in seen[0] and "info_hash=%11%11" in seen[0] and "numwant=200" in seen[0]


async def test_http_gzip_response_accepted(serve: Callable[[Handler], Awaitable[str]]) -> None:
    async def handler(request: web.Request) -> web.Response:
        body = gzip.compress(encode({b"interval": 60, b"peers": PEERS}))
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    base = await serve(handler)
    async with TrackerClient(SETTINGS) as client:
        assert (await client.announce(f"{base}/announce", REQ)).peers == [PeerAddr("10.0.0.1", 6881)]


async def _expect_error(base: str, path: str = "/announce", settings: Settings = SETTINGS) -> TrackerError:
    async with TrackerClient(settings) as client:
        with pytest.raises(TrackerError) as info:
            await client.announce(f"{base}{path}", REQ)
    return info.value


async def test_hostile_huge_body_aborted_at_limit(serve: Callable[[Handler], Awaitable[str]]) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"x" * 65536
        try:
            for _ in range(800):  # 50 MiB
                await resp.write(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    err = await _expect_error(await serve(handler))
    assert "tracker_max_response_size" in str(err)


async def test_hostile_gzip_bomb_counted_after_decompression(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    bomb = gzip.compress(b"d" + b"0" * (64 * 1024 * 1024))

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    err = await _expect_error(await serve(handler))
    assert "tracker_max_response_size" in str(err)


async def test_hostile_redirect_loop(serve: Callable[[Handler], Awaitable[str]]) -> None:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound("/announce?again")

    err = await _expect_error(await serve(handler))
    assert "redirect" in str(err)


async def test_http_status_and_failure_reason(serve: Callable[[Handler], Awaitable[str]]) -> None:
    async def handler(request: web.Request) -> web.Response:
        if "a=1" in request.query_string:
            return web.Response(status=500, text="<html>oops</html>")
        return web.Response(status=400, body=encode({b"failure reason": b"<script>unregistered</script>"}))

    base = await serve(handler)
    err = await _expect_error(base, "/announce?a=1")
    assert "500" in str(err)
    err = await _expect_error(base, "/announce")
    assert err.failure_reason == "<script>unregistered</script>"


async def test_outbound_rules_case_39() -> None:
    async with TrackerClient(SETTINGS) as client:
        for url in ("file:///etc/passwd", "gopher://x/announce", "http://127.0.0.1:9091/transmission/rpc"):
            with pytest.raises(TrackerError) as info:
                await client.announce(url, REQ)
            assert not info.value.retryable


async def test_connection_refused_is_tracker_error() -> None:
    async with TrackerClient(SETTINGS) as client:
        with pytest.raises(TrackerError):
            await client.announce("http://127.0.0.1:1/announce", REQ)


class FakeUdpTracker(asyncio.DatagramProtocol):
    """Answers BEP 15; can be told to ignore the first N packets or to send an error."""

    def __init__(self) -> None:
        self.minter = udp.ConnectionIdMinter(b"s" * 32)
        self.drop = 0
        self.error: str | None = None
        self.connects = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if self.drop:
            self.drop -= 1
            return
        req = udp.decode_request(data)
        if isinstance(req, udp.ConnectRequest):
            self.connects += 1
            self.transport.sendto(udp.encode_connect_response(req.tid, self.minter.make(addr[0], 0)), addr)
        elif isinstance(req, udp.UdpAnnounce):
            if not self.minter.valid(req.connection_id, addr[0], 0):
                return
            if self.error:
                self.transport.sendto(udp.encode_error(req.tid, self.error), addr)
                return
            self.transport.sendto(udp.encode_announce_response(req.tid, 300, 1, 2, PEERS), addr)
        elif isinstance(req, udp.UdpScrape):
            if not self.minter.valid(req.connection_id, addr[0], 0):
                return
            stats = [ScrapeStats(2, 5, 1) for _ in req.info_hashes]
            self.transport.sendto(udp.encode_scrape_response(req.tid, stats), addr)


@pytest.fixture
async def udp_tracker() -> AsyncIterator[tuple[FakeUdpTracker, str]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(FakeUdpTracker, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        yield proto, f"udp://127.0.0.1:{port}/announce"
    finally:
        transport.close()


async def test_udp_announce_scrape_and_retry(udp_tracker: tuple[FakeUdpTracker, str]) -> None:
    tracker, url = udp_tracker
    tracker.drop = 1  # the first connect is lost: the client retries after retry_timeout(0)
    async with TrackerClient(SETTINGS, rng=random.Random(3)) as client:
        resp = await client.announce(url, REQ)
        assert resp.peers == [PeerAddr("10.0.0.1", 6881)]
        assert (resp.interval, resp.complete, resp.incomplete) == (300.0, 2, 1)
        assert await client.scrape(url, [IH]) == {IH: ScrapeStats(2, 5, 1)}
    assert tracker.connects == 1  # the connection id is reused (same source address)


async def test_udp_error_and_silence(udp_tracker: tuple[FakeUdpTracker, str]) -> None:
    tracker, url = udp_tracker
    tracker.error = "torrent not registered"
    async with TrackerClient(SETTINGS) as client:
        with pytest.raises(TrackerError) as info:
            await client.announce(url, REQ)
        assert info.value.failure_reason == "torrent not registered"
        tracker.drop = 100
        with pytest.raises(TrackerError) as info:
            await client.announce(url, REQ)
        assert "did not answer 3 attempts" in str(info.value)


async def test_announce_driver_runs_and_stops(udp_tracker: tuple[FakeUdpTracker, str]) -> None:
    _, url = udp_tracker
    got: list[list[PeerAddr]] = []
    events: list[Event] = []

    def make_request(event: Event) -> AnnounceRequest:
        events.append(event)
        return REQ

    async with TrackerClient(SETTINGS) as client:
        announcer = Announcer([["http://127.0.0.1:1/announce"], [url]], random.Random(1))
        failures: list[str] = []
        driver = AnnounceDriver(
            announcer, client, make_request, got.append, on_failure=lambda url, exc: failures.append(url)
        )
        task = asyncio.create_task(driver.run())
        async with asyncio.timeout(10):
            while not got:
                await asyncio.sleep(0.02)
        assert announcer.working == url
        assert failures == ["http://127.0.0.1:1/announce"]  # tier 1 failed first, then tier 2 answered
        await driver.stop(task, timeout=5)
        assert task.done() and announcer.finished
    assert got[0] == [PeerAddr("10.0.0.1", 6881)]
    assert events[-1] is Event.STOPPED


def _padded(total: int) -> bytes:
    """A valid announce answer of exactly ``total`` bytes (a filler key ``x``)."""
    for n in range(total, 0, -1):
        body = b"d8:intervali60e5:peers0:1:x%d:%se" % (n, b"a" * n)
        if len(body) == total:
            return body
    raise AssertionError(total)


@pytest.mark.parametrize("gz", [False, True])
async def test_response_size_limit_one_past(serve: Callable[[Handler], Awaitable[str]], gz: bool) -> None:
    limit = 4096

    async def handler(request: web.Request) -> web.Response:
        body = _padded(int(request.query["n"]))
        if gz:
            return web.Response(body=gzip.compress(body), headers={"Content-Encoding": "gzip"})
        return web.Response(body=body)

    base = await serve(handler)
    settings = SETTINGS.with_(tracker_max_response_size=limit)
    async with TrackerClient(settings) as client:
        assert (await client.announce(f"{base}/announce?n={limit}", REQ)).interval == 60
    err = await _expect_error(base, f"/announce?n={limit + 1}", settings)
    assert "tracker_max_response_size 4096" in str(err)


async def test_redirect_limit_one_past(serve: Callable[[Handler], Awaitable[str]]) -> None:
    async def handler(request: web.Request) -> web.Response:
        hops = int(request.query["hops"])
        if hops:
            raise web.HTTPFound(f"/announce?hops={hops - 1}")
        return web.Response(body=encode({b"interval": 60, b"peers": PEERS}))

    base = await serve(handler)
    settings = SETTINGS.with_(tracker_max_redirects=3)
    async with TrackerClient(settings) as client:
        assert (await client.announce(f"{base}/announce?hops=3", REQ)).peers == [PeerAddr("10.0.0.1", 6881)]
    err = await _expect_error(base, "/announce?hops=4", settings)
    assert "tracker_max_redirects 3" in str(err)
