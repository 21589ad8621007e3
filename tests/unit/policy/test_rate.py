"""RateEstimator and TokenBucket, driven by an explicit now."""

from __future__ import annotations

import pytest

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
