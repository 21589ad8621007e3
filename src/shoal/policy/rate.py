"""Rates driven by an explicit ``now`` (sans-IO): a sliding-window estimator and a token bucket.

``RateEstimator(window=5.0)``: ``add(nbytes, now)``, ``rate(now)`` -> bytes/s over the last ``window`` seconds
(over the time since the first sample while younger than the window), ``total``.

``TokenBucket(rate, burst=None, now=0.0)``: ``rate`` bytes/s, 0 = unlimited; ``burst`` defaults to one second of
rate. ``consume(n, now)`` all-or-nothing; ``take(n, now)`` up to ``n``; ``delay(n, now)`` seconds until ``n``
would be available; ``set_rate(rate, now)``.
"""

from __future__ import annotations

from collections import deque


class RateEstimator:
    """Bytes per second over a sliding window, kept in buckets of ``resolution`` seconds."""

    __slots__ = ("_buckets", "_first", "_sum", "resolution", "total", "window")

    def __init__(self, window: float = 5.0, resolution: float = 0.5) -> None:
        if window <= 0 or resolution <= 0:
            raise ValueError("window and resolution must be positive")
        self.window = window
        self.resolution = resolution
        self._buckets: deque[list[float]] = deque()  # [bucket start, bytes]
        self._sum = 0.0
        self._first: float | None = None
        self.total = 0

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        buckets = self._buckets
        while buckets and buckets[0][0] + self.resolution <= horizon:
            self._sum -= buckets.popleft()[1]

    def add(self, nbytes: int, now: float) -> None:
        if self._first is None:
            self._first = now
        self.total += nbytes
        start = now - (now % self.resolution)
        if self._buckets and self._buckets[-1][0] >= start:
            self._buckets[-1][1] += nbytes
        else:
            self._buckets.append([start, float(nbytes)])
        self._sum += nbytes
        self._expire(now)

    def rate(self, now: float) -> float:
        if self._first is None:
            return 0.0
        self._expire(now)
        if not self._buckets:
            self._sum = 0.0
            return 0.0
        span = min(self.window, max(now - self._first, self.resolution))
        return self._sum / span


class TokenBucket:
    """Classic token bucket; ``rate`` 0 means unlimited."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0) -> None:
        if rate < 0:
            raise ValueError(f"rate {rate} is negative")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._tokens = self.burst
        self._last = now

    @property
    def unlimited(self) -> bool:
        return self.rate == 0

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def available(self, now: float) -> float:
        if self.unlimited:
            return float("inf")
        self._refill(now)
        return self._tokens

    def consume(self, n: float, now: float) -> bool:
        if self.unlimited:
            return True
        self._refill(now)
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def take(self, n: int, now: float) -> int:
        """Up to ``n`` whole tokens."""
        if self.unlimited:
            return n
        self._refill(now)
        got = min(n, int(self._tokens))
        self._tokens -= got
        return max(got, 0)

    def delay(self, n: float, now: float) -> float:
        """Seconds until ``n`` tokens are available (n above ``burst`` counts as ``burst``)."""
        if self.unlimited:
            return 0.0
        self._refill(now)
        missing = min(n, self.burst) - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def set_rate(self, rate: float, now: float, burst: float | None = None) -> None:
        self._refill(now)
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._tokens = min(self._tokens, self.burst)
