"""Fuzz target: HTTP tracker answers, client side (BEP 3, 7, 23, 48): announce and scrape bodies.

Only ``TrackerError`` may come out. Checked on top (case 38): the interval is clamped to ``[60 s, 1 day]``, peers
are unique with ports 1-65535 and literal addresses, at most ``max_peers`` of them, and tracker text is plain text
(no control characters, bounded length).

Run: ``.venv/bin/python fuzz/fuzz_tracker_http.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/tracker_http``
"""

from __future__ import annotations

import ipaddress

from shoal.errors import TrackerError
from shoal.testing.fuzzing import run
from shoal.tracker.proto import http
from shoal.tracker.proto.messages import MAX_FAILURE_TEXT

MAX_PEERS = 50


def _text_ok(text: str | None) -> None:
    if text is not None:
        assert len(text) <= MAX_FAILURE_TEXT and text.isprintable(), f"unsafe tracker text {text!r}"


def _announce(body: bytes) -> None:
    try:
        resp = http.parse_announce(body, max_peers=MAX_PEERS)
    except TrackerError as exc:
        _text_ok(exc.failure_reason)
        return
    assert http.MIN_INTERVAL <= resp.interval <= http.MAX_INTERVAL
    assert resp.min_interval is None or http.MIN_INTERVAL <= resp.min_interval <= resp.interval
    assert len(resp.peers) <= MAX_PEERS and len(set(resp.peers)) == len(resp.peers)
    for peer in resp.peers:
        assert 0 < peer.port <= 0xFFFF
        ipaddress.ip_address(peer.host)
    _text_ok(resp.warning)
    assert resp.complete is None or resp.complete >= 0


def _scrape(body: bytes) -> None:
    try:
        files = http.parse_scrape(body)
    except TrackerError as exc:
        _text_ok(exc.failure_reason)
        return
    for ih, stats in files.items():
        assert len(ih) == 20
        assert min(stats.complete, stats.downloaded, stats.incomplete) >= 0


def TestOneInput(data: bytes) -> None:
    _announce(data)
    _scrape(data)


if __name__ == "__main__":
    run(TestOneInput)
