"""Fuzz target: UDP tracker packets (BEP 15), both sides.

Client side: the connect, announce and scrape response decoders (the transaction id expected is taken from the
packet itself half of the time, so the fuzzer gets past the id check); only ``TrackerError`` may come out, the
interval is clamped and peers have ports 1-65535. Server side: ``decode_request`` never raises (bad packets are
dropped, case 35), a scrape carries at most ``max_scrape_hashes`` hashes (case 36), and a connection id is only
valid for the address and time it was minted for.

Server front end: the input is also read as a sequence of datagrams (``source byte, 2-byte length, packet``) sent
to a ``trackerd.udp.UdpTracker`` with an in-memory registry; when a packet's first byte is odd its connection id
is replaced by the one the tracker minted for that source, so announces and scrapes get past the id check. The
tracker may log no error, must answer only with well-formed packets echoing the request's transaction id, never
more than ``max_numwant`` peers, and never more bytes than it received plus a small constant (no amplification).

Run: ``.venv/bin/python fuzz/fuzz_tracker_udp.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/tracker_udp``
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from typing import Any

from shoal.errors import TrackerError
from shoal.testing.fuzzing import run
from shoal.tracker.proto import udp
from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.registry import Registry
from shoal.trackerd.service import MemoryBackend, TrackerService
from shoal.trackerd.udp import UdpTracker

MINTER = udp.ConnectionIdMinter(b"0123456789abcdef0123456789abcdef")
HASHES = [bytes([i]) * 20 for i in range(3)]


def _client(data: bytes) -> None:
    tid = udp.response_transaction_id(data)
    if tid is None or (data and data[-1] & 1):
        tid = 12345
    for v6 in (False, True):
        try:
            resp = udp.decode_announce_response(data, tid, v6=v6)
        except TrackerError:
            continue
        assert 60.0 <= resp.interval <= 86400.0
        assert all(0 < p.port <= 0xFFFF for p in resp.peers)
    for fn in (
        lambda: udp.decode_connect_response(data, tid),
        lambda: udp.decode_scrape_response(data, tid, HASHES),
    ):
        try:
            fn()
        except TrackerError:
            pass


def _server(data: bytes) -> None:
    req = udp.decode_request(data, max_scrape_hashes=10)
    if isinstance(req, udp.UdpScrape):
        assert 1 <= len(req.info_hashes) <= 10 and all(len(h) == 20 for h in req.info_hashes)
    elif isinstance(req, udp.UdpAnnounce):
        assert len(req.request.info_hash) == 20 and 0 <= req.request.port <= 0xFFFF
        # a client-chosen connection id is never valid unless we minted it for this address and time
        if req.connection_id != MINTER.make("10.0.0.1", 1000.0):
            assert not MINTER.valid(req.connection_id, "10.0.0.1", 1000.0)
        assert not MINTER.valid(MINTER.make("10.0.0.1", 1000.0), "10.0.0.2", 1000.0)


CONFIG = TrackerdConfig(max_numwant=10, ip_rate=0, max_scrape_hashes_udp=20)
SOURCES = [("10.0.0.1", 6881), ("10.0.0.2", 1), ("2001:db8::7", 51413, 0, 0)]


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Transport(asyncio.DatagramTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        self.sent.append((bytes(data), addr))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("0.0.0.0", 6969) if name == "sockname" else default

    def is_closing(self) -> bool:
        return False


async def _frontend(stream: bytes) -> None:
    tracker = UdpTracker(TrackerService(CONFIG, MemoryBackend(Registry(CONFIG, random.Random(0)))), b"k" * 32)
    transport = _Transport()
    tracker.connection_made(transport)
    minted: dict[str, int] = {}
    pos = 0
    while pos + 3 <= len(stream):
        addr = SOURCES[stream[pos] % len(SOURCES)]
        n = int.from_bytes(stream[pos + 1 : pos + 3], "big")
        packet = bytearray(stream[pos + 3 : pos + 3 + n])
        pos += 3 + n
        if len(packet) >= 16 and packet[0] & 1 and addr[0] in minted:
            struct.pack_into(">q", packet, 0, minted[addr[0]])
        before = len(transport.sent)
        tracker.datagram_received(bytes(packet), addr)
        await asyncio.sleep(0)
        for out, to in transport.sent[before:]:
            assert to == addr, "answered another address"
            assert len(out) >= 8 and len(packet) >= 16
            action, tid = struct.unpack_from(">ii", out)
            assert tid == struct.unpack_from(">i", packet, 12)[0], "transaction id not echoed"
            assert action in (0, 1, 2, 3), action
            assert len(out) <= len(packet) + 20 + 18 * CONFIG.max_numwant, (
                "reply much bigger than the request"
            )
            if action == 0:
                minted[addr[0]] = struct.unpack_from(">q", out, 8)[0]
            elif action == 1:
                assert (len(out) - 20) // 6 <= CONFIG.max_numwant


def _server_frontend(data: bytes) -> None:
    handler = _Errors()
    log = logging.getLogger("shoal.trackerd")
    log.addHandler(handler)
    try:
        asyncio.run(_frontend(data))
    finally:
        log.removeHandler(handler)
    assert not handler.records, f"the UDP tracker logged an error: {handler.records[0].getMessage()}"


def TestOneInput(data: bytes) -> None:
    _client(data)
    _server(data)
    _server_frontend(data)


if __name__ == "__main__":
    run(TestOneInput)
