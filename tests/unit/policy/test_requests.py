"""Pipeline depth, request timeouts, snubbing, allowed-fast while choked."""

from __future__ import annotations

import random

from shoal.config import Settings
from shoal.policy.picker import PiecePicker
from shoal.policy.requests import RequestTracker, pipeline_depth, plan_requests
from shoal.types import BLOCK_SIZE, BlockRef

S = Settings()


def depth(rate: float, **kw: object) -> int:
    return pipeline_depth(
        rate,
        request_queue_time=3.0,
        min_requests=S.min_outstanding_requests,
        max_requests=S.max_outstanding_requests,
        **kw,  # type: ignore[arg-type]
    )


def test_depth_follows_rate_and_is_clamped() -> None:
    assert depth(0) == S.min_outstanding_requests
    assert depth(1024 * 1024) == 1024 * 1024 * 3 // BLOCK_SIZE
    assert depth(10 * 1024 * 1024) == S.max_outstanding_requests
    assert depth(10**12) == S.max_outstanding_requests
    assert depth(10**12, peer_reqq=250) == 250
    assert depth(10**12, snubbed=True) == 1


def test_tracker_timeouts_and_snub() -> None:
    t = RequestTracker(request_timeout=30.0, snub_timeout=60.0, now=0.0)
    a, b = BlockRef(0, 0, BLOCK_SIZE), BlockRef(0, BLOCK_SIZE, BLOCK_SIZE)
    t.sent(a, 100.0)
    t.sent(b, 110.0)
    assert t.next_deadline() == 130.0
    assert not t.snubbed(150.0)
    assert t.timed_out(135.0) == [a]
    assert len(t) == 2  # still outstanding until the caller cancels it
    t.cancelled(a)
    assert len(t) == 1 and b in t and t.timed_out(135.0) == []
    assert t.snubbed(160.0)
    assert t.received(b, 161.0)
    assert not t.received(b, 161.0)  # unsolicited now
    assert not t.snubbed(500.0)  # nothing outstanding


def test_plan_requests_fills_pipeline_and_respects_choke() -> None:
    p = PiecePicker(100, 4 * BLOCK_SIZE, 400 * BLOCK_SIZE, rng=random.Random(1))
    p.peer_have_all("x")
    t = RequestTracker(request_timeout=30.0, snub_timeout=60.0)
    got = plan_requests(p, "x", t, rate=0.0, now=0.0, settings=S)
    assert len(got) == S.min_outstanding_requests == len(t)
    assert plan_requests(p, "x", t, rate=0.0, now=1.0, settings=S) == []  # pipeline full
    t.received(got[0], 2.0)
    p.on_block_received("x", got[0])
    assert len(plan_requests(p, "x", t, rate=0.0, now=2.0, settings=S)) == 1
    # choked without allowed-fast: nothing; with allowed-fast: only those pieces
    t2 = RequestTracker(request_timeout=30.0, snub_timeout=60.0)
    p.peer_have_all("y")
    assert plan_requests(p, "y", t2, rate=0.0, now=0.0, settings=S, peer_choking=True) == []
    fast = plan_requests(p, "y", t2, rate=0.0, now=0.0, settings=S, peer_choking=True, allowed_fast={50})
    assert {b.piece for b in fast} == {50}


def test_snubbed_peer_gets_one_request() -> None:
    p = PiecePicker(10, 4 * BLOCK_SIZE, 40 * BLOCK_SIZE, rng=random.Random(1))
    p.peer_have_all("x")
    t = RequestTracker(request_timeout=1000.0, snub_timeout=60.0)
    got = plan_requests(p, "x", t, rate=0.0, now=0.0, settings=S)
    for b in got[1:]:
        t.cancelled(b)
        p.abort("x", b)
    assert plan_requests(p, "x", t, rate=0.0, now=100.0, settings=S) == []  # snubbed: depth 1, one pending


def test_tracker_batches() -> None:
    t = RequestTracker(request_timeout=30.0, snub_timeout=60.0, now=0.0)
    blocks = [BlockRef(0, i * BLOCK_SIZE, BLOCK_SIZE) for i in range(4)]
    t.sent_many(blocks, 5.0)
    assert len(t) == 4 and t.next_deadline() == 35.0
    # (piece, offset, start, end) as in a wire BlocksReceived; one we never asked for is ignored
    t.received_blocks([(0, 0, 100, 100 + BLOCK_SIZE), (0, BLOCK_SIZE, 0, BLOCK_SIZE), (9, 0, 0, 10)], 7.0)
    assert t.outstanding() == blocks[2:] and t.last_block_at == 7.0
