"""RateEstimator and TokenBucket, driven by an explicit now."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.policy.rate import RateEstimator, TokenBucket


def test_rate_estimator_window() -> None:
    r = RateEstimator(window=4.0, resolution=1.0)
    assert r.rate(0.0) == 0.0
    for t in range(8):
        r.add(1000, float(t))
    assert r.rate(7.5) == pytest.approx(1000.0, rel=0.3)
    assert r.total == 8000
    assert r.rate(20.0) == 0.0  # everything expired
    r.add(500, 21.0)
    assert r.rate(21.0) > 0


def test_rate_estimator_ramp_up_not_diluted() -> None:
    r = RateEstimator(window=10.0, resolution=0.5)
    r.add(10_000, 100.0)
    r.add(10_000, 101.0)
    assert r.rate(102.0) == pytest.approx(10_000.0)


def test_rate_estimator_bad_args() -> None:
    with pytest.raises(ValueError):
        RateEstimator(window=0)


def test_token_bucket() -> None:
    b = TokenBucket(100.0, burst=200.0, now=0.0)
    assert b.consume(150, 0.0)
    assert not b.consume(100, 0.0)
    assert b.delay(100, 0.0) == pytest.approx(0.5)
    assert b.consume(100, 0.5)
    assert b.take(1000, 10.0) == 200  # burst caps accumulation
    assert b.available(10.0) == 0
    b.set_rate(0, 10.0)
    assert b.unlimited and b.consume(10**9, 10.0) and b.take(5, 10.0) == 5 and b.delay(10**9, 10.0) == 0.0
    with pytest.raises(ValueError):
        TokenBucket(-1)


def test_token_bucket_time_going_backwards_is_harmless() -> None:
    b = TokenBucket(10.0, burst=10.0, now=5.0)
    assert b.take(10, 5.0) == 10
    assert b.take(10, 4.0) == 0


class _DequeEstimator:
    """The estimator as it was (a deque of [start, bytes] buckets): the reference for the ring version."""

    def __init__(self, window: float, resolution: float) -> None:
        from collections import deque

        self.window, self.resolution = window, resolution
        self.buckets: deque[list[float]] = deque()
        self.sum = 0.0
        self.first: float | None = None

    def _expire(self, now: float) -> None:
        while self.buckets and self.buckets[0][0] + self.resolution <= now - self.window:
            self.sum -= self.buckets.popleft()[1]

    def add(self, nbytes: int, now: float) -> None:
        if self.first is None:
            self.first = now
        start = now - (now % self.resolution)
        if self.buckets and self.buckets[-1][0] >= start:
            self.buckets[-1][1] += nbytes
        else:
            self.buckets.append([start, float(nbytes)])
        self.sum += nbytes
        self._expire(now)

    def rate(self, now: float) -> float:
        if self.first is None:
            return 0.0
        self._expire(now)
        if not self.buckets:
            return 0.0
        return self.sum / min(self.window, max(now - self.first, self.resolution))


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40_000), st.booleans()), min_size=1, max_size=120)
)
def test_rate_estimator_matches_the_reference(steps: list[tuple[int, int, bool]]) -> None:
    """Ticks of 0.25 s (quarter steps: no float rounding at bucket edges), idle gaps, zero adds, reads."""
    ring, ref = RateEstimator(window=5.0, resolution=0.5), _DequeEstimator(5.0, 0.5)
    now = 100.0
    for gap, nbytes, read in steps:
        now += gap * 0.25 if gap < 3 else 7.0
        if read:
            assert ring.rate(now) == pytest.approx(ref.rate(now), abs=1e-6)
        else:
            ring.add(nbytes, now)
            ref.add(nbytes, now)
    assert ring.rate(now) == pytest.approx(ref.rate(now), abs=1e-6)


def test_rate_estimator_goes_idle() -> None:
    r = RateEstimator(window=5.0, resolution=0.5)
    assert not r.idle  # never fed: its first add sets the start of the window
    r.add(0, 10.0)
    assert r.idle and r.rate(10.0) == 0.0
    r.add(1000, 10.5)
    assert not r.idle and r.rate(11.0) > 0
    for i in range(12):
        r.add(0, 11.0 + i * 0.5)
    assert r.rate(17.0) == 0.0 and r.idle
