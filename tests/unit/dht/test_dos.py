from __future__ import annotations

from shoal.dht.dos import RateLimiter


def test_limit_one_past_blocks_for_block_time() -> None:
    r = RateLimiter(rate=5, window=10, block_for=300)
    assert all(r.allow("1.1.1.1", 0.1 * i) for i in range(50))
    assert not r.allow("1.1.1.1", 5.1)  # the 51st packet in one window
    assert r.allow("2.2.2.2", 5.1)  # others still served
    assert not r.allow("1.1.1.1", 304.0)
    assert r.allow("1.1.1.1", 305.2)
    assert r.blocked_total == 1


def test_new_window_resets_count() -> None:
    r = RateLimiter(rate=1, window=10)
    assert all(r.allow("1.1.1.1", float(i)) for i in range(10))
    assert r.allow("1.1.1.1", 10.0)


def test_tracked_ips_bounded() -> None:
    r = RateLimiter(max_tracked=100)
    for i in range(1000):
        r.allow(f"10.0.{i >> 8}.{i & 255}", 0.0)
    assert r.tracked() == 100


def test_zero_rate_disables() -> None:
    r = RateLimiter(rate=0)
    assert all(r.allow("1.1.1.1", 0.0) for _ in range(10_000))
