"""Tracker client adapter: HTTP(S) through aiohttp, UDP (BEP 15) through a DatagramProtocol.

:class:`TrackerClient` does single announces and scrapes (the stable API for the engine)::

    async with TrackerClient(settings, rng=rng) as client:
        response = await client.announce("udp://tracker:6969/announce", AnnounceRequest(...))
        response.peers  # [PeerAddr(host, port), ...]

:class:`AnnounceDriver` runs one torrent's :class:`~shoal.tracker.announcer.Announcer` over a client: it sleeps
until the next announce is due, performs it, and hands the peers to a callback.

Every failure (network, timeout, HTTP status, garbage, the tracker's own ``failure reason``) is a
:class:`~shoal.errors.TrackerError`. Outbound rules (RELIABILITY cases 38-39): only http, https and udp; at most
``tracker_max_redirects`` redirects; the body is cut at ``tracker_max_response_size`` bytes counted after
decompression; with ``tracker_ssrf_mitigation`` a loopback tracker must use a path ending in ``/announce`` or
``/scrape``; TLS certificates are always checked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import random
import socket
import zlib
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
import yarl

from shoal.clock import Clock, MonotonicClock
from shoal.config import Settings
from shoal.errors import TrackerError
from shoal.tracker.announcer import AnnounceJob, Announcer
from shoal.tracker.proto import http as http_proto
from shoal.tracker.proto import udp as udp_proto
from shoal.tracker.proto.messages import AnnounceRequest, AnnounceResponse, Event, ScrapeStats
from shoal.types import PeerAddr

logger = logging.getLogger(__name__)

T = TypeVar("T")
USER_AGENT = "Shoal/0.1"


def check_url(url: str, settings: Settings) -> tuple[str, str, int | None, str]:
    """Return (scheme, host, port, path) of a tracker URL we are willing to contact, else TrackerError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TrackerError(f"bad tracker url {url!r}", retryable=False) from None
    if parts.scheme not in ("http", "https", "udp"):
        raise TrackerError(f"tracker url scheme {parts.scheme!r} is not http, https or udp", retryable=False)
    host = parts.hostname
    if not host:
        raise TrackerError(f"tracker url {url!r} has no host", retryable=False)
    loopback = settings.tracker_ssrf_mitigation and parts.scheme != "udp" and _is_loopback(host)
    if loopback and not parts.path.endswith(("/announce", "/scrape")):
        raise TrackerError(
            f"loopback tracker path {parts.path!r} does not end in /announce (ssrf mitigation)",
            retryable=False,
        )
    return parts.scheme, host, port, parts.path


def _is_local(host: str) -> bool:
    """Loopback, private, link-local or otherwise non-global (IP literals and ``localhost`` only: names are
    not resolved here)."""
    if _is_loopback(host):
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def check_redirect(source: str, target: str) -> None:
    """Refuse a redirect to another scheme than http/https, or from a public host to a local address."""
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https"):
        raise TrackerError(f"tracker redirect to scheme {parts.scheme!r} refused", retryable=False)
    old, new = urlsplit(source).hostname or "", parts.hostname or ""
    if not new:
        raise TrackerError(f"tracker redirect to {target!r} has no host", retryable=False)
    if _is_local(new) and not _is_local(old):
        raise TrackerError(f"tracker redirect from {old!r} to local address {new!r} refused", retryable=False)


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _UdpMux(asyncio.DatagramProtocol):
    """One UDP socket per address family, shared by every UDP tracker; answers are matched by transaction id
    and source address (so a connection id, bound by the tracker to our address, stays valid)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[tuple[str, int], asyncio.Future[bytes]]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        tid = udp_proto.response_transaction_id(data)
        entry = self.pending.get(tid) if tid is not None else None
        if entry is None:
            return
        want, fut = entry
        if (addr[0], addr[1]) == want and not fut.done():
            fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        logger.debug("udp tracker socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        for _, fut in self.pending.values():
            if not fut.done():
                fut.set_exception(TrackerError("udp tracker socket closed"))


class TrackerClient:
    """Announces and scrapes over HTTP(S) and UDP. One per session; safe for concurrent use."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        session: aiohttp.ClientSession | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.settings = settings or Settings()
        self._rng = rng or random.Random()
        self._clock = clock or MonotonicClock()
        self._session = session
        self._own_session = session is None
        self._user_agent = user_agent
        self._udp_ids: dict[tuple[str, int], tuple[int, float]] = {}
        self._udp_socks: dict[int, _UdpMux] = {}

    async def __aenter__(self) -> TrackerClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None
        for mux in self._udp_socks.values():
            if mux.transport is not None:
                mux.transport.close()
        self._udp_socks.clear()

    # ------------------------------------------------------------ public API

    async def announce(self, url: str, req: AnnounceRequest) -> AnnounceResponse:
        scheme, host, port, _ = check_url(url, self.settings)
        if req.numwant is None:
            req = dataclasses.replace(req, numwant=self.settings.tracker_numwant)
        if scheme == "udp":
            return await self._udp_announce(host, port, req)
        body = await self._http_get(http_proto.announce_url(url, req))
        return http_proto.parse_announce(
            body,
            min_interval=self.settings.tracker_min_interval,
            max_interval=self.settings.tracker_max_interval,
            default_interval=self.settings.tracker_default_interval,
            max_peers=self.settings.tracker_max_peers_per_response,
        )

    async def scrape(self, url: str, info_hashes: list[bytes]) -> dict[bytes, ScrapeStats]:
        """Scrape ``info_hashes`` at the tracker whose *announce* URL is ``url`` (BEP 48 / BEP 15)."""
        scheme, host, port, _ = check_url(url, self.settings)
        if scheme == "udp":
            return await self._udp_scrape(host, port, info_hashes)
        target = http_proto.scrape_url(url)
        if target is None:
            raise TrackerError(f"tracker {url!r} has no scrape url", retryable=False)
        return http_proto.parse_scrape(
            await self._http_get(http_proto.scrape_request_url(target, info_hashes))
        )

    # ------------------------------------------------------------ HTTP

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False, headers={"User-Agent": self._user_agent}
            )
            self._own_session = True
        return self._session

    async def _http_get(self, url: str) -> bytes:
        """GET ``url`` following at most ``tracker_max_redirects`` redirects (each checked: http/https only,
        never from a public host to a loopback/private/link-local address)."""
        max_redirects = self.settings.tracker_max_redirects
        for _ in range(max_redirects + 1):
            status, location, body = await self._http_get_once(url)
            if location is None:
                break
            target = urljoin(url, location)
            check_redirect(url, target)
            url = target
        else:
            raise TrackerError(f"tracker redirected more than tracker_max_redirects {max_redirects}")
        if status != 200:
            try:
                http_proto.parse_announce(body)
            except TrackerError as exc:
                if exc.failure_reason is not None:
                    raise
            raise TrackerError(f"tracker answered http status {status}")
        return body

    async def _http_get_once(self, url: str) -> tuple[int, str | None, bytes]:
        """(status, redirect location or None, body) of one GET."""
        limit = self.settings.tracker_max_response_size
        timeout = aiohttp.ClientTimeout(total=self.settings.tracker_timeout)
        try:
            async with self._get_session().get(
                # already percent-encoded: without encoded=True yarl turns %24 back into "$" and opentracker
                # answers 400 to any info-hash or peer id holding that byte
                yarl.URL(url, encoded=True),
                timeout=timeout,
                allow_redirects=False,
                headers={"Accept-Encoding": "gzip, identity"},
            ) as resp:
                if resp.status in (301, 302, 303, 307, 308):
                    location = resp.headers.get("Location")
                    if not location:
                        raise TrackerError(f"tracker redirect {resp.status} without a location")
                    return resp.status, location, b""
                gz = resp.headers.get("Content-Encoding", "").lower() in ("gzip", "x-gzip", "deflate")
                wbits = 47 if gz else 0  # 47: zlib or gzip header, auto-detected
                inflater = zlib.decompressobj(wbits) if gz else None
                chunks: list[bytes] = []
                size = 0
                while True:
                    raw = await resp.content.read(65536)
                    if not raw:
                        break
                    data = raw
                    if inflater is not None:
                        data = inflater.decompress(raw, limit + 1 - size)
                    size += len(data)
                    if size > limit:
                        raise TrackerError(f"tracker response exceeds tracker_max_response_size {limit}")
                    chunks.append(data)
                if inflater is not None:
                    rest = inflater.flush()
                    if size + len(rest) > limit:
                        raise TrackerError(f"tracker response exceeds tracker_max_response_size {limit}")
                    chunks.append(rest)
                status = resp.status
        except TrackerError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError, zlib.error, ValueError) as exc:
            raise TrackerError(f"tracker request failed: {type(exc).__name__}: {exc}".strip()) from None
        return status, None, b"".join(chunks)

    # ------------------------------------------------------------ UDP

    async def _udp_socket(self, family: int) -> _UdpMux:
        mux = self._udp_socks.get(family)
        if mux is not None and mux.transport is not None and not mux.transport.is_closing():
            return mux
        loop = asyncio.get_running_loop()
        local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
        try:
            _, mux = await loop.create_datagram_endpoint(_UdpMux, local_addr=local, family=family)
        except OSError as exc:
            raise TrackerError(f"cannot open a udp socket: {exc}") from None
        self._udp_socks[family] = mux
        return mux

    async def _udp_resolve(self, host: str, port: int | None) -> tuple[int, tuple[str, int]]:
        if port is None or not 0 < port <= 0xFFFF:
            raise TrackerError(f"udp tracker {host!r} has no usable port", retryable=False)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.settings.tracker_timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, TimeoutError) as exc:
            raise TrackerError(f"cannot resolve udp tracker {host!r}: {exc}") from None
        for family, _, _, _, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                return family, (str(sockaddr[0]), int(sockaddr[1]))
        raise TrackerError(f"udp tracker {host!r} has no ip address")

    async def _udp_exchange(
        self,
        mux: _UdpMux,
        addr: tuple[str, int],
        build: Callable[[int], bytes],
        parse: Callable[[bytes, int], T],
    ) -> T:
        retries = self.settings.udp_tracker_retries
        loop = asyncio.get_running_loop()
        for attempt in range(retries + 1):
            tid = udp_proto.transaction_id(self._rng)
            while tid in mux.pending:
                tid = udp_proto.transaction_id(self._rng)
            fut: asyncio.Future[bytes] = loop.create_future()
            mux.pending[tid] = (addr, fut)
            try:
                assert mux.transport is not None
                mux.transport.sendto(build(tid), addr)
                wait = udp_proto.retry_timeout(attempt, self.settings.udp_tracker_retry_base)
                async with asyncio.timeout(wait):
                    data = await fut
                return parse(data, tid)
            except TimeoutError:
                continue
            finally:
                mux.pending.pop(tid, None)
        raise TrackerError(f"udp tracker did not answer {retries + 1} attempts")

    async def _udp_call(
        self,
        host: str,
        port: int | None,
        build: Callable[[int, int], bytes],
        parse: Callable[[bytes, int, bool], T],
    ) -> T:
        family, addr = await self._udp_resolve(host, port)
        mux = await self._udp_socket(family)
        v6 = family == socket.AF_INET6
        cached = self._udp_ids.get(addr)
        if cached is not None and udp_proto.connection_id_fresh(cached[1], self._clock.now()):
            cid = cached[0]
        else:
            cid = await self._udp_exchange(
                mux, addr, udp_proto.encode_connect, udp_proto.decode_connect_response
            )
            self._udp_ids[addr] = (cid, self._clock.now())
        try:
            return await self._udp_exchange(
                mux, addr, lambda tid: build(cid, tid), lambda d, t: parse(d, t, v6)
            )
        except TrackerError:
            self._udp_ids.pop(addr, None)  # a stale or refused id: connect afresh next time
            raise

    async def _udp_announce(self, host: str, port: int | None, req: AnnounceRequest) -> AnnounceResponse:
        s = self.settings

        def parse(data: bytes, tid: int, v6: bool) -> AnnounceResponse:
            return udp_proto.decode_announce_response(
                data, tid, v6=v6, min_interval=s.tracker_min_interval, max_interval=s.tracker_max_interval
            )

        return await self._udp_call(
            host, port, lambda cid, tid: udp_proto.encode_announce(cid, tid, req), parse
        )

    async def _udp_scrape(self, host: str, port: int | None, hashes: list[bytes]) -> dict[bytes, ScrapeStats]:
        hashes = hashes[: udp_proto.MAX_SCRAPE_HASHES]
        return await self._udp_call(
            host,
            port,
            lambda cid, tid: udp_proto.encode_scrape(cid, tid, hashes),
            lambda data, tid, v6: udp_proto.decode_scrape_response(data, tid, hashes),
        )


class AnnounceDriver:
    """Runs one torrent's :class:`Announcer` over a :class:`TrackerClient` until stopped.

    ``make_request(event)`` builds the request from the torrent's current counters; ``on_peers`` receives every
    peer list a tracker returns; ``on_failure(url, error)`` (optional) hears of every failed announce. Call :meth:`run` in a task, :meth:`completed` when the download finishes and
    ``await stop()`` to send ``stopped`` (bounded by ``timeout``) and end the task.
    """

    def __init__(
        self,
        announcer: Announcer,
        client: TrackerClient,
        make_request: Callable[[Event], AnnounceRequest],
        on_peers: Callable[[list[PeerAddr]], None],
        clock: Clock | None = None,
        on_failure: Callable[[str, TrackerError], None] | None = None,
    ) -> None:
        self.announcer = announcer
        self._on_failure = on_failure
        self._client = client
        self._make_request = make_request
        self._on_peers = on_peers
        self._clock = clock or MonotonicClock()
        self._wake = asyncio.Event()
        self._jobs: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    def completed(self) -> None:
        self.announcer.completed(self._clock.now())
        self._wake.set()

    def want_peers(self) -> None:
        self.announcer.want_peers(self._clock.now())
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                for job in self.announcer.due(self._clock.now()):
                    task = asyncio.create_task(self._perform(job))
                    self._jobs.add(task)
                    task.add_done_callback(self._jobs.discard)
                if self.announcer.finished:
                    return
                when = self.announcer.next_announce_time()
                delay = None if when is None else max(0.0, when - self._clock.now())
                self._wake.clear()
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            for task in list(self._jobs):
                task.cancel()

    async def stop(self, runner: asyncio.Task[None], timeout: float) -> None:
        """Send ``stopped`` to every tracker that knows us, then end ``runner`` (the task running :meth:`run`)."""
        self.announcer.stop(self._clock.now())
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(runner)
        except TimeoutError:
            runner.cancel()

    async def _perform(self, job: AnnounceJob) -> None:
        req = dataclasses.replace(self._make_request(job.event), event=job.event, tracker_id=job.tracker_id)
        try:
            resp = await self._client.announce(job.url, req)
        except TrackerError as exc:
            logger.debug("announce to %s failed: %s", job.url, exc)
            self.announcer.on_failure(job, str(exc), self._clock.now())
            if self._on_failure is not None:
                self._on_failure(job.url, exc)
        except Exception as exc:  # a bug must not wedge the announcer with a job in flight
            logger.warning("announce to %s crashed: %r", job.url, exc)
            self.announcer.on_failure(job, repr(exc), self._clock.now())
        else:
            self.announcer.on_response(job, resp, self._clock.now())
            if resp.peers:
                self._on_peers(resp.peers)
        finally:
            self._wake.set()
