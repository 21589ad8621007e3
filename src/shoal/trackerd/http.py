"""HTTP front end of ``shoal tracker``: a small asyncio protocol serving GET /announce, /scrape and /stats.

Why not an aiohttp app: announces are tiny GETs, and a lean protocol answers several times more of them per
second on one core (docs/PERFORMANCE.md, Tracker). It is also where the hardening lives (RELIABILITY 36-37):

* request line + headers capped at ``max_request_size`` (431 and close), no bodies (413 and close), GET only;
* a whole request must arrive within ``request_timeout`` seconds of its first byte or of the previous answer
  (slowloris), idle keep-alive connections are closed after ``keepalive_timeout``;
* at most ``max_connections`` connections, ``max_connections_per_ip`` from one address; extra ones are closed;
* a token bucket per client IP (429 with a failure reason);
* HTTP/1.1 keep-alive and pipelining (answers in order), HTTP/1.0 closes unless asked to keep alive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, cast

from shoal.trackerd import query as q
from shoal.trackerd.registry import AnnounceRefused, AnnounceResult
from shoal.trackerd.service import TrackerService, pack_ip, stats_html, stats_json

logger = logging.getLogger(__name__)

_REASONS = {
    500: b"Internal Server Error",
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Payload Too Large",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
}
_TEXT = b"text/plain"

Answer = tuple[int, bytes, bytes]


class HttpTracker:
    """Owns the connection table of one HTTP listener."""

    def __init__(self, service: TrackerService) -> None:
        self.service = service
        self.config = service.config
        self.connections: set[TrackerHttpProtocol] = set()
        self.per_ip: dict[str, int] = {}
        self.loop = asyncio.get_event_loop()
        self._sweeper: asyncio.TimerHandle | None = None
        self._packed: dict[str, tuple[str, bytes]] = {}

    def pack(self, host: str) -> tuple[str, bytes]:
        hit = self._packed.get(host)
        if hit is None:
            if len(self._packed) > 65536:
                self._packed.clear()
            hit = self._packed[host] = pack_ip(host)
        return hit

    def start(self) -> None:
        """Start the deadline sweeper (one timer for all connections, instead of one per request)."""
        self.loop = asyncio.get_running_loop()
        self._sweep()

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in [c for c in self.connections if c.deadline <= now]:
            conn.close()
        tick = min(self.config.request_timeout, self.config.keepalive_timeout) / 4
        self._sweeper = self.loop.call_later(max(0.05, min(tick, 1.0)), self._sweep)

    def protocol(self) -> TrackerHttpProtocol:
        return TrackerHttpProtocol(self)

    def close_all(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.connections):
            conn.close()

    # ------------------------------------------------------------ request handling

    def answer(self, target: bytes, ip: str, packed: bytes) -> Answer | Awaitable[Answer]:
        svc = self.service
        now = self.loop.time()
        t = q.parse_target(target)
        stats_page = t.action in ("stats", "stats.json") and self.config.stats and t.passkey is None
        tracker = t.action in ("announce", "scrape") and (t.passkey is None or self.config.private)
        if not (stats_page or tracker):
            return 404, q.encode_failure("not found"), _TEXT
        if not svc.allow(ip, now):
            return 429, q.encode_failure("too many requests from this address"), _TEXT
        if stats_page:
            return self._stats(t.action)
        try:
            if t.action == "announce":
                svc.announces += 1
                parsed = q.parse_announce(t.query, packed, t.passkey)
                if self.config.log_announces:
                    logger.info(
                        "announce %s %s %s", ip, parsed.request.info_hash.hex(), parsed.request.event.http
                    )
                reg = svc.registry
                if reg is not None:
                    return (
                        200,
                        q.encode_announce(
                            reg.announce(parsed.request, now), parsed.compact, parsed.no_peer_id
                        ),
                        _TEXT,
                    )
                return self._announce_async(parsed)
            hashes = q.parse_scrape(t.query, self.config.max_scrape_hashes_http)
            reg = svc.registry
            if reg is not None:
                stats = reg.scrape(hashes, t.passkey) if hashes else reg.full_scrape(t.passkey)
                return 200, q.encode_scrape(stats), _TEXT
            return self._scrape_async(hashes, t.passkey)
        except q.BadRequest as exc:
            svc.bad_requests += 1
            return 400, q.encode_failure(str(exc)), _TEXT
        except AnnounceRefused as exc:
            return 200, q.encode_failure(str(exc)), _TEXT

    async def _announce_async(self, parsed: q.AnnounceQuery) -> Answer:
        backend: Any = self.service.backend
        try:
            res: AnnounceResult = await backend.announce(parsed.request, asyncio.get_running_loop().time())
        except AnnounceRefused as exc:
            return 200, q.encode_failure(str(exc)), _TEXT
        return 200, q.encode_announce(res, parsed.compact, parsed.no_peer_id), _TEXT

    async def _scrape_async(self, hashes: list[bytes], passkey: str | None) -> Answer:
        backend: Any = self.service.backend
        try:
            stats = await (backend.scrape(hashes, passkey) if hashes else backend.full_scrape(passkey))
        except AnnounceRefused as exc:
            return 200, q.encode_failure(str(exc)), _TEXT
        return 200, q.encode_scrape(stats), _TEXT

    async def _stats(self, action: str) -> Answer:
        stats = await self.service.stats()
        if action == "stats.json":
            return 200, stats_json(stats), b"application/json"
        return 200, stats_html(stats), b"text/html; charset=utf-8"


class TrackerHttpProtocol(asyncio.Protocol):
    def __init__(self, server: HttpTracker) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.ip = ""
        self.packed = b""
        self.deadline = float("inf")  # closed by the sweeper once the loop's time passes this
        self.busy = False  # an asynchronous answer is pending: later requests wait in buf
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        server = self.server
        cfg = server.config
        peer = transport.get_extra_info("peername")
        try:
            self.ip, self.packed = server.pack(peer[0])
        except (OSError, TypeError, IndexError):
            transport.close()
            return
        n = server.per_ip.get(self.ip, 0)
        if len(server.connections) >= cfg.max_connections or n >= cfg.max_connections_per_ip:
            transport.abort()
            self.transport = None
            return
        server.per_ip[self.ip] = n + 1
        server.connections.add(self)
        self._arm(cfg.keepalive_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        server = self.server
        if self in server.connections:
            server.connections.discard(self)
            n = server.per_ip.get(self.ip, 1) - 1
            if n > 0:
                server.per_ip[self.ip] = n
            else:
                server.per_ip.pop(self.ip, None)

    def pause_writing(self) -> None:
        """The client does not read its answers: stop reading its requests (bounded memory)."""
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def _arm(self, seconds: float) -> None:
        self.deadline = self.server.loop.time() + seconds

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        starting = not self.buf
        self.buf += data
        if starting:
            self._arm(self.server.config.request_timeout)
        if not self.busy:
            self._process()

    def _process(self) -> None:
        cfg = self.server.config
        while self.buf and not self.busy and not self.closing:
            end = self.buf.find(b"\r\n\r\n", 0, cfg.max_request_size + 4)
            if end < 0:
                if len(self.buf) > cfg.max_request_size:
                    self._send(
                        431,
                        q.encode_failure(f"request exceeds max_request_size {cfg.max_request_size}"),
                        _TEXT,
                        False,
                    )
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            self._handle(head)

    def _handle(self, head: bytes) -> None:
        line, _, headers = head.partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self.server.service.bad_requests += 1
            self._send(400, q.encode_failure("malformed request line"), _TEXT, False)
            return
        method, target, version = parts
        lower = headers.lower()
        if version == b"HTTP/1.0":
            keep = b"connection: keep-alive" in lower
        else:
            keep = b"connection: close" not in lower
        if _has_body(lower):
            self._send(413, q.encode_failure("request bodies are not accepted"), _TEXT, False)
            return
        if method != b"GET":
            self._send(405, q.encode_failure("only GET is served"), _TEXT, False)
            return
        try:
            result = self.server.answer(target, self.ip, self.packed)
        except Exception:  # a bug must cost one answer, not the listener
            logger.exception("tracker request from %s failed", self.ip)
            self._send(500, q.encode_failure("internal error"), _TEXT, False)
            return
        if isinstance(result, tuple):
            self._send(*result, keep)
            return
        self.busy = True
        task = asyncio.ensure_future(result)
        task.add_done_callback(lambda t: self._finish(t, keep))

    def _finish(self, task: asyncio.Future[Answer], keep: bool) -> None:
        self.busy = False
        if self.closing:
            return
        if task.cancelled():
            self.close()
            return
        exc = task.exception()
        if exc is not None:
            logger.warning("tracker request failed: %r", exc)
            self._send(500, q.encode_failure("internal error"), _TEXT, False)
            return
        self._send(*task.result(), keep)
        self._process()

    def _send(self, status: int, body: bytes, ctype: bytes, keep: bool) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            status,
            _REASONS.get(status, b"Error"),
            ctype,
            len(body),
            b"" if keep else b"Connection: close\r\n",
        )
        transport.write(head + body)
        if keep:
            self._arm(
                self.server.config.request_timeout if self.buf else self.server.config.keepalive_timeout
            )
        else:
            self.closing = True
            transport.close()


def _has_body(lower_headers: bytes) -> bool:
    if b"transfer-encoding:" in lower_headers:
        return True
    i = lower_headers.find(b"content-length:")
    if i < 0:
        return False
    end = lower_headers.find(b"\r\n", i)
    value = lower_headers[i + 15 : end if end >= 0 else len(lower_headers)].strip()
    return value != b"0"
