"""The HTTP accept fast path of `shoal tracker` (answer a lone ``Connection: close`` request inside the accept
callback) and its hand-over to the ordinary protocol, over real loopback sockets."""

from __future__ import annotations

import asyncio
import errno
import random
import socket
from collections.abc import AsyncIterator
from urllib.parse import quote_from_bytes

import pytest

from shoal.codec.bencode import decode
from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.http import HttpTracker
from shoal.trackerd.registry import Registry
from shoal.trackerd.server import TrackerServer
from shoal.trackerd.service import MemoryBackend, TrackerService

CONFIG = TrackerdConfig(http="127.0.0.1:0", ip_rate=0, max_request_size=1024)
IH = quote_from_bytes(b"\x42" * 20)


def announce(i: int, extra: str = "") -> bytes:
    pid = quote_from_bytes(b"-SH0100-" + bytes([i]) * 12)
    return f"/announce?info_hash={IH}&peer_id={pid}&port={7000 + i}&left=1&compact=1{extra}".encode()


@pytest.fixture
async def server() -> AsyncIterator[TrackerServer]:
    async with TrackerServer(CONFIG, rng=random.Random(1)) as srv:
        yield srv


async def exchange(srv: TrackerServer, *chunks: bytes, pause: float = 0.0) -> bytes:
    """Send ``chunks`` (with ``pause`` seconds between them) and read until the server closes."""
    assert srv.http_address is not None
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*srv.http_address), 5)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def body(answer: bytes) -> dict[bytes, object]:
    head, _, data = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    out = decode(data)
    assert isinstance(out, dict)
    return out


async def test_close_requests_answered(server: TrackerServer) -> None:
    for i in range(1, 6):
        got = body(await exchange(server, b"GET " + announce(i) + b" HTTP/1.1\r\nConnection: close\r\n\r\n"))
        assert got[b"incomplete"] == i
        assert len(got[b"peers"]) == 6 * (i - 1)  # type: ignore[arg-type]
    got = body(await exchange(server, b"GET " + announce(9) + b" HTTP/1.0\r\n\r\n"))  # 1.0 closes by default
    assert got[b"incomplete"] == 6
    assert server.http is not None
    assert not server.http.connections


async def test_errors_on_the_fast_path(server: TrackerServer) -> None:
    answer = await exchange(server, b"POST /announce HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405 ")
    answer = await exchange(server, b"GET /nothing HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ")
    answer = await exchange(server, b"GET /announce?info_hash=%zz HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    answer = await exchange(server, b"BROKEN\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_handed_over_requests_keep_every_rule(server: TrackerServer) -> None:
    # split request: the first read holds part of it, the protocol completes it
    req = b"GET " + announce(1) + b" HTTP/1.1\r\nConnection: close\r\n\r\n"
    assert body(await exchange(server, req[:20], req[20:], pause=0.05))[b"incomplete"] == 1
    # keep-alive + pipelined: both answered in order on one connection, then the explicit close
    two = (
        b"GET "
        + announce(2)
        + b" HTTP/1.1\r\n\r\n"
        + b"GET "
        + announce(3)
        + b" HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    answer = await exchange(server, two)
    assert answer.count(b"HTTP/1.1 200 ") == 2
    # stats page (asynchronous answer) and an oversized head (431, one past max_request_size)
    assert (await exchange(server, b"GET /stats.json HTTP/1.1\r\nConnection: close\r\n\r\n")).startswith(
        b"HTTP/1.1 200 "
    )
    big = b"GET /announce?" + b"x" * 1100 + b" HTTP/1.1\r\nConnection: close\r\n\r\n"
    assert (await exchange(server, big)).startswith(b"HTTP/1.1 431 ")
    # a request body is refused whatever the path
    answer = await exchange(
        server, b"GET " + announce(4) + b" HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    )
    assert answer.startswith(b"HTTP/1.1 413 ")


async def test_fast_path_taken_when_the_request_is_already_there(server: TrackerServer) -> None:
    """A client that sent its whole request before the tracker accepts gets its answer with no protocol
    object (the common case under load): hold the tracker's loop while the request lands."""
    assert server.http is not None and server.http_address is not None
    before = server.http.fast_answers
    req = b"GET " + announce(7) + b" HTTP/1.1\r\nConnection: close\r\n\r\n"
    for _ in range(3):
        with socket.create_connection(server.http_address, timeout=5) as sock:
            sock.sendall(req)  # blocking, while the loop (and so the accept callback) cannot run
            sock.setblocking(False)
            answer = b""
            for _ in range(500):
                await asyncio.sleep(0.01)
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                answer += chunk
        body(answer)
    assert server.http.fast_answers - before == 3


class _Exhausted(socket.socket):
    """A listener whose first accept fails as if the process were out of file descriptors."""

    failures = 1

    def _accept(self) -> tuple[int, object]:  # type: ignore[override]
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return super()._accept()  # type: ignore[misc,no-any-return]


async def test_accept_pauses_when_out_of_descriptors() -> None:
    cfg = TrackerdConfig(ip_rate=0)
    tracker = HttpTracker(TrackerService(cfg, MemoryBackend(Registry(cfg, random.Random(1)))))
    tracker.start()
    sock = _Exhausted(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        tracker.listen(sock)
        port = sock.getsockname()[1]
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        writer.write(b"GET " + announce(1) + b" HTTP/1.1\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)  # served after the 1 s pause, not lost
        writer.close()
        assert body(answer)[b"incomplete"] == 1
        assert sock.failures == 0
    finally:
        tracker.close_all()
