"""Fuzz target: UDP tracker packets (BEP 15), both sides.

Client side: the connect, announce and scrape response decoders (the transaction id expected is taken from the
packet itself half of the time, so the fuzzer gets past the id check); only ``TrackerError`` may come out, the
interval is clamped and peers have ports 1-65535. Server side: ``decode_request`` never raises (bad packets are
dropped, case 35), a scrape carries at most ``max_scrape_hashes`` hashes (case 36), and a connection id is only
valid for the address and time it was minted for.

Run: ``.venv/bin/python fuzz/fuzz_tracker_udp.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/tracker_udp``
"""

from __future__ import annotations

from shoal.errors import TrackerError
from shoal.testing.fuzzing import run
from shoal.tracker.proto import udp

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


def TestOneInput(data: bytes) -> None:
    _client(data)
    _server(data)


if __name__ == "__main__":
    run(TestOneInput)
