"""Per-torrent payload rates and limits over the session's global limits (token buckets from policy.rate).

A torrent's download is throttled by pausing the reading side of a peer's socket when a bucket runs dry (the tick
resumes it); its upload by leaving requests queued until the buckets refill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal.clock import Clock
from shoal.policy.rate import RateEstimator, TokenBucket

if TYPE_CHECKING:
    from shoal.engine.session import Session


def make_bucket(rate: int, clock: Clock) -> TokenBucket:
    return TokenBucket(float(rate), now=clock.now())


class RateSet:
    def __init__(self, session: Session, download_limit: int = 0, upload_limit: int = 0) -> None:
        self.session = session
        self.clock = session.clock
        now = self.clock.now()
        self.down = TokenBucket(float(download_limit), now=now)
        self.up = TokenBucket(float(upload_limit), now=now)
        self.down_est = RateEstimator()
        self.up_est = RateEstimator()
        self._down_total = 0
        self._up_total = 0
        self._down_debt = 0
        self._up_debt = 0

    def set_limits(self, download: int | None, upload: int | None) -> None:
        now = self.clock.now()
        if download is not None:
            self.down.set_rate(float(download), now)
        if upload is not None:
            self.up.set_rate(float(upload), now)

    @property
    def download_limit(self) -> int:
        return int(self.down.rate)

    @property
    def upload_limit(self) -> int:
        return int(self.up.rate)

    def effective_download_limit(self) -> int:
        """The tighter of this torrent's and the session's download limits (0: none)."""
        limits = [int(self.down.rate)]
        g = self.session.global_down
        if g is not None:
            limits.append(int(g.rate))
        limits = [x for x in limits if x > 0]
        return min(limits) if limits else 0

    def take_down(self, n: int, now: float) -> bool:
        """Account ``n`` downloaded bytes; False when a limit is exhausted (pause reading until it refills).

        Bytes beyond the tokens available become a debt paid back before reading resumes, so data that was
        already in socket buffers does not escape the limit.
        """
        self._down_total += n
        if self._unlimited_down():
            return True
        self._down_debt += n
        return self._pay_down(now)

    def _unlimited_down(self) -> bool:
        g = self.session.global_down
        return self.down.unlimited and (g is None or g.unlimited)

    def _pay_down(self, now: float) -> bool:
        debt = self._down_debt
        if debt <= 0:
            return True
        buckets = [b for b in (self.down, self.session.global_down) if b is not None and not b.unlimited]
        pay = min(int(b.available(now)) for b in buckets)
        pay = max(0, min(pay, debt))
        for b in buckets:
            b.take(pay, now)
        self._down_debt = debt - pay
        return self._down_debt == 0

    def can_down(self, now: float) -> bool:
        if self._unlimited_down():
            return True
        return self._pay_down(now)

    def upload_limited(self) -> bool:
        return not self._unlimited_up()

    def _unlimited_up(self) -> bool:
        g = self.session.global_up
        return self.up.unlimited and (g is None or g.unlimited)

    def can_up(self, now: float) -> bool:
        """Whether another block may be sent now (pays back earlier overdraft first)."""
        if self._unlimited_up():
            return True
        debt = self._up_debt
        buckets = [b for b in (self.up, self.session.global_up) if b is not None and not b.unlimited]
        if debt > 0:
            pay = max(0, min(min(int(b.available(now)) for b in buckets), debt))
            for b in buckets:
                b.take(pay, now)
            self._up_debt = debt = debt - pay
        return debt == 0 and all(b.available(now) >= 1 for b in buckets)

    def up_available(self, now: float) -> float:
        """Bytes the upload buckets allow now, after any overdraft (``inf`` when unlimited)."""
        if self._unlimited_up():
            return float("inf")
        buckets = [b for b in (self.up, self.session.global_up) if b is not None and not b.unlimited]
        return max(0.0, min(b.available(now) for b in buckets) - self._up_debt)

    def take_up(self, n: int, now: float) -> None:
        """Account ``n`` uploaded bytes; what the buckets cannot cover becomes debt."""
        self._up_total += n
        if self._unlimited_up():
            return
        self._up_debt += n
        self.can_up(now)

    def tick(self, now: float) -> None:
        self.down_est.add(self._down_total, now)
        self.up_est.add(self._up_total, now)
        self._down_total = self._up_total = 0
        self._now = now

    def down_rate(self) -> float:
        return self.down_est.rate(self.clock.now())

    def up_rate(self) -> float:
        return self.up_est.rate(self.clock.now())
