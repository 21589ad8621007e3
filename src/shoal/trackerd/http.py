"""HTTP front end of ``shoal tracker``: a small asyncio protocol serving GET /announce, /scrape and /stats.

Why not an aiohttp app: announces are tiny GETs, and a lean protocol answers several times more of them per
second on one core (docs/PERFORMANCE.md, Tracker). It is also where the hardening lives (RELIABILITY 36-37):

* request line + headers capped at ``max_request_size`` (431 and close), no bodies (413 and close), GET only;
* a whole request must arrive within ``request_timeout`` seconds of its first byte or of the previous answer
  (slowloris), idle keep-alive connections are closed after ``keepalive_timeout``;
* at most ``max_connections`` connections, ``max_connections_per_ip`` from one address; extra ones are closed;
* a token bucket per client IP (429 with a failure reason);
* HTTP/1.1 keep-alive and pipelining (answers in order), HTTP/1.0 closes unless asked to keep alive.

Fast path (:meth:`HttpTracker.listen`): the listener is read with ``add_reader`` and accepted connections are
first tried without any transport or protocol object: when the first read already holds exactly one whole
GET request that asks to close (``Connection: close``, or HTTP/1.0), the answer is sent and the socket closed
inside the accept callback (the usual case for clients that reconnect per announce). Anything else — no data
yet, a partial, pipelined, keep-alive or oversized request, the stats pages, a Redis backend — is handed with
the bytes already read to the ordinary protocol above, so every limit still applies to it.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import logging
import socket
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
        self._listeners: list[socket.socket] = []
        self._handoffs: set[asyncio.Task[Any]] = set()
        self.fast_answers = 0  # connections answered and closed inside the accept callback

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

    def listen(self, sock: socket.socket, batch: int = 64) -> None:
        """Serve a listening socket: accept up to ``batch`` connections per wake-up, answer the simple ones
        in place (module docstring), hand the others to :class:`TrackerHttpProtocol`."""
        sock.setblocking(False)
        self._listeners.append(sock)
        # the C-level accept: socket.accept() would build a Python-level socket.socket (two enum conversions
        # and a Python __init__ per connection); the fast path only needs recv, send and close
        raw_accept = cast(Any, sock)._accept
        family, kind = int(sock.family), int(sock.type)
        serve = self._serve_accepted

        def acceptable() -> None:
            for _ in range(batch):
                try:
                    fd, addr = raw_accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    if exc.errno in _RESOURCE_ERRORS:  # out of descriptors/memory: pause (as asyncio does)
                        logger.warning("tracker accept failed, pausing 1 s: %s", exc)
                        self.loop.remove_reader(sock.fileno())
                        self.loop.call_later(1.0, resume)
                    else:  # e.g. ECONNABORTED: the next one may be fine
                        logger.debug("tracker accept failed: %s", exc)
                    return
                conn = _socket.socket(family, kind, 0, fd)
                try:
                    serve(conn, addr)
                except Exception:  # one connection must never stop the listener
                    logger.exception("tracker connection from %s failed", addr[0] if addr else "?")
                    conn.close()

        def resume() -> None:
            if sock in self._listeners:
                self.loop.add_reader(sock.fileno(), acceptable)

        resume()

    def _serve_accepted(self, conn: _socket.socket, addr: tuple[Any, ...]) -> None:
        data = b""
        if self.service.registry is not None:
            try:
                data = conn.recv(self.config.max_request_size + 4, _DONTWAIT)
            except (BlockingIOError, InterruptedError):
                data = b""
            except OSError:
                conn.close()
                return
            if not data:  # nothing yet (or an immediate EOF): the protocol handles it
                self._handoff(conn, b"")
                return
            end = data.find(b"\r\n\r\n")
            if end >= 0 and end + 4 == len(data) and not data.startswith(b"GET /stats"):
                error, target, keep = parse_head(data[:end])
                if not keep and self._answer_now(conn, addr, error, target):
                    return
        self._handoff(conn, data)

    def _answer_now(
        self, conn: _socket.socket, addr: tuple[Any, ...], error: Answer | None, target: bytes
    ) -> bool:
        """Answer a lone ``close`` request inside the accept callback; False hands the connection over."""
        try:
            ip, packed = self.pack(addr[0])
        except (OSError, TypeError, IndexError):
            conn.close()
            return True
        if error is not None:
            if error[0] == 400:
                self.service.bad_requests += 1
            answer: Answer = error
        else:
            try:
                result = self.answer(target, ip, packed)
            except Exception:  # a bug must cost one answer, not the listener
                logger.exception("tracker request from %s failed", ip)
                result = 500, q.encode_failure("internal error"), _TEXT
            if not isinstance(result, tuple):  # cannot happen (checked by the caller); never block on it
                cast(Any, result).close()
                return False
            answer = result
        out = response(*answer, False)
        try:
            sent = conn.send(out, _DONTWAIT)
        except OSError:
            conn.close()
            return True
        if sent < len(out):
            self._handoff(conn, b"", out[sent:])
            return True
        self.fast_answers += 1
        conn.close()
        return True

    def _handoff(self, raw: _socket.socket, data: bytes, unsent: bytes = b"") -> None:
        """Give an accepted socket to the ordinary protocol (with the bytes already read from it, or the part
        of a fast answer the kernel did not take)."""
        conn = raw if isinstance(raw, socket.socket) else socket.socket(raw.family, raw.type, 0, raw.detach())
        conn.setblocking(False)
        if unsent:
            factory: Any = lambda: _Finish(unsent)  # noqa: E731
        else:
            factory = lambda: TrackerHttpProtocol(self, data)  # noqa: E731
        task = asyncio.ensure_future(self.loop.connect_accepted_socket(factory, conn))
        self._handoffs.add(task)
        task.add_done_callback(self._handoff_done)

    def _handoff_done(self, task: asyncio.Task[Any]) -> None:
        self._handoffs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("tracker connection handoff failed: %r", task.exception())

    def close_listeners(self) -> None:
        """Stop accepting (graceful shutdown, first step)."""
        for sock in self._listeners:
            if sock.fileno() >= 0:
                self.loop.remove_reader(sock.fileno())
                sock.close()
        self._listeners.clear()

    def close_all(self) -> None:
        self.close_listeners()
        for task in list(self._handoffs):
            task.cancel()
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


class _Finish(asyncio.Protocol):
    """Writes the rest of a fast answer the kernel did not take at once, then closes."""

    def __init__(self, rest: bytes) -> None:
        self.rest = rest

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t = cast(asyncio.Transport, transport)
        t.write(self.rest)
        t.close()


class TrackerHttpProtocol(asyncio.Protocol):
    def __init__(self, server: HttpTracker, initial: bytes = b"") -> None:
        self.initial = initial  # bytes read before this protocol took over the connection
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
        if self.initial:
            initial, self.initial = self.initial, b""
            self.data_received(initial)

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
        error, target, keep = parse_head(head)
        if error is not None:
            if error[0] == 400:
                self.server.service.bad_requests += 1
            self._send(*error, False)
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
        transport.write(response(status, body, ctype, keep))
        if keep:
            self._arm(
                self.server.config.request_timeout if self.buf else self.server.config.keepalive_timeout
            )
        else:
            self.closing = True
            transport.close()


_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def parse_head(head: bytes) -> tuple[Answer | None, bytes, bool]:
    """Check a request head (request line + headers, without the blank line): (an error answer or None, the
    target, whether the connection stays open). Error answers always close."""
    line, _, headers = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return (400, q.encode_failure("malformed request line"), _TEXT), b"", False
    method, target, version = parts
    lower = headers.lower()
    http10 = version == b"HTTP/1.0"
    keep = (b"connection: keep-alive" in lower) if http10 else (b"connection: close" not in lower)
    if _has_body(lower):
        return (413, q.encode_failure("request bodies are not accepted"), _TEXT), target, False
    if method != b"GET":
        return (405, q.encode_failure("only GET is served"), _TEXT), target, False
    return None, target, keep


def response(status: int, body: bytes, ctype: bytes, keep: bool) -> bytes:
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status,
        _REASONS.get(status, b"Error"),
        ctype,
        len(body),
        b"" if keep else b"Connection: close\r\n",
        body,
    )


def _has_body(lower_headers: bytes) -> bool:
    if b"transfer-encoding:" in lower_headers:
        return True
    i = lower_headers.find(b"content-length:")
    if i < 0:
        return False
    end = lower_headers.find(b"\r\n", i)
    value = lower_headers[i + 15 : end if end >= 0 else len(lower_headers)].strip()
    return value != b"0"
