"""Fuzz target: the ``shoal tracker`` HTTP front end and registry fed hostile requests (server side).

The input is what one client sends on a keep-alive connection (cut into chunks by the first byte), fed to a
``TrackerHttpProtocol`` over a fake transport inside one event loop, with an in-memory registry. Nothing may be
raised by the protocol (cases 36, 37). Checked on top:

* every answer is a well-formed HTTP/1.1 response whose ``Content-Length`` matches its body;
* every 200 answer to an announce is accepted by Shoal's own client parser (``parse_announce``), and every 400 or
  refused announce carries a bencoded ``failure reason``;
* an announce answer never lists more than ``max_numwant`` peers.

Run: ``.venv/bin/python fuzz/fuzz_tracker_server.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/tracker_server``
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

from shoal.codec import bencode
from shoal.errors import BencodeError, TrackerError
from shoal.testing.fuzzing import run
from shoal.tracker.proto import http as client
from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.http import HttpTracker
from shoal.trackerd.registry import Registry
from shoal.trackerd.service import MemoryBackend, TrackerService

CONFIG = TrackerdConfig(max_request_size=2048, max_numwant=10, ip_rate=0, full_scrape=True)
_HEAD = re.compile(rb"HTTP/1\.1 (\d{3}) [A-Za-z ]+\r\nContent-Type: [^\r]+\r\nContent-Length: (\d+)\r\n")


class FakeTransport(asyncio.Transport):
    def __init__(self, peer: tuple[str, int]) -> None:
        super().__init__()
        self.peer = peer
        self.out = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _check_answers(out: bytes) -> None:
    pos = 0
    while pos < len(out):
        m = _HEAD.match(out, pos)
        assert m is not None, f"malformed response head {out[pos : pos + 80]!r}"
        status, length = int(m.group(1)), int(m.group(2))
        head_end = out.index(b"\r\n\r\n", pos) + 4
        body = out[head_end : head_end + length]
        assert len(body) == length, "short body"
        pos = head_end + length
        if status in (400, 404, 413, 429, 431):
            assert b"failure reason" in bencode.decode(body), body
        elif status == 200 and body.startswith(b"d8:complete"):
            resp = client.parse_announce(body, max_peers=1000)
            assert len(resp.peers) <= CONFIG.max_numwant
        elif status == 200 and body.startswith(b"d14:failure reason"):
            try:
                client.parse_announce(body)
            except TrackerError as exc:
                assert exc.failure_reason
        elif status == 200 and body.startswith(b"d5:files"):
            client.parse_scrape(body)


async def _serve(data: bytes) -> bytes:
    service = TrackerService(CONFIG, MemoryBackend(Registry(CONFIG, random.Random(0))))
    server = HttpTracker(service)
    transport = FakeTransport(("10.0.0.1" if not data or data[0] & 1 else "2001:db8::1", 40000))
    proto = server.protocol()
    proto.connection_made(transport)
    chunk = 1 + (data[0] if data else 0) * 4
    body = data[1:]
    for pos in range(0, len(body), chunk):
        if transport.closed:
            break
        proto.data_received(body[pos : pos + chunk])
        await asyncio.sleep(0)
    for _ in range(3):
        await asyncio.sleep(0)
    proto.connection_lost(None)
    assert not server.connections and not server.per_ip
    return bytes(transport.out)


def TestOneInput(data: bytes) -> None:
    out = asyncio.run(_serve(data))
    try:
        _check_answers(out)
    except BencodeError as exc:
        raise AssertionError(f"tracker answered invalid bencode: {exc}") from None


if __name__ == "__main__":
    run(TestOneInput)
