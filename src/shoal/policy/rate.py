"""Rates driven by an explicit ``now`` (sans-IO): a sliding-window estimator and a token bucket.

``RateEstimator(window=5.0)``: ``add(nbytes, now)``, ``rate(now)`` -> bytes/s over the last ``window`` seconds
(over the time since the first sample while younger than the window), ``total``.

``TokenBucket(rate, burst=None, now=0.0)``: ``rate`` bytes/s, 0 = unlimited; ``burst`` defaults to one second of
rate. ``consume(n, now)`` all-or-nothing; ``take(n, now)`` up to ``n``; ``delay(n, now)`` seconds until ``n``
would be available; ``set_rate(rate, now)``.
"""

from __future__ import annotations

import math
from array import array


class RateEstimator:
    """Bytes per second over a sliding window, kept in buckets of ``resolution`` seconds.

    The buckets are a fixed ring of floats indexed by ``floor(now / resolution)``, so an estimator costs a few
    hundred bytes and ``add`` allocates nothing (every peer connection has two).
    """

    __slots__ = ("_first", "_newest", "_oldest", "_ring", "_size", "_sum", "resolution", "total", "window")

    def __init__(self, window: float = 5.0, resolution: float = 0.5) -> None:
        if window <= 0 or resolution <= 0:
            raise ValueError("window and resolution must be positive")
        self.window = window
        self.resolution = resolution
        self._size = math.ceil(window / resolution) + 2
        self._ring = array("d", bytes(8 * self._size))
        self._oldest = 0  # bucket numbers [_oldest, _newest] are live; none while _oldest > _newest
        self._newest = -1
        self._sum = 0.0
        self._first: float | None = None
        self.total = 0

    @property
    def idle(self) -> bool:
        """Nothing in the window any more (the rate is 0 until the next non-zero :meth:`add`): ``add(0, now)``
        and ``rate(now)`` would change nothing, so a caller may skip them."""
        return self._first is not None and self._oldest > self._newest

    def _drop_until(self, lo: int) -> None:
        """Forget buckets numbered below ``lo`` (``lo`` > ``_oldest``)."""
        oldest = self._oldest
        if lo == oldest + 1:  # the usual step: one bucket leaves
            if oldest <= self._newest:
                slot = oldest % self._size
                self._sum -= self._ring[slot]
                self._ring[slot] = 0.0
            self._oldest = lo
            return
        if lo - oldest >= self._size:  # every live bucket is older: clear all at once
            if self._newest >= self._oldest:
                self._ring = array("d", bytes(8 * self._size))
            self._sum = 0.0
        else:
            ring, size = self._ring, self._size
            for k in range(self._oldest, min(lo, self._newest + 1)):
                self._sum -= ring[k % size]
                ring[k % size] = 0.0
        self._oldest = lo

    def add(self, nbytes: int, now: float) -> None:
        if self._first is None:
            self._first = now
        self.total += nbytes
        res = self.resolution
        # a bucket numbered k spans [k * res, (k + 1) * res); it leaves the window once its end <= now - window
        lo = int((now - self.window) // res)
        if lo > self._oldest:
            self._drop_until(lo)
        if not nbytes:
            return  # an empty bucket changes no rate (so a quiet peer's estimator goes idle)
        k = int(now // res)
        newest = self._newest
        if self._oldest > newest:  # nothing live: start afresh at this bucket
            self._oldest = self._newest = newest = k
        elif k > newest:  # slots of buckets below lo are zero, and k - lo < _size: the slot is free
            self._newest = newest = k
        self._ring[newest % self._size] += nbytes  # bucket k, or the newest one if the clock went back
        self._sum += nbytes

    def rate(self, now: float) -> float:
        if self._first is None:
            return 0.0
        lo = int((now - self.window) // self.resolution)
        if lo > self._oldest:
            self._drop_until(lo)
        if self._oldest > self._newest:
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
