"""Per-IP rate limit (RELIABILITY case 29), in the shape of libtorrent's dos_blocker.

Packets from each IP are counted over a window of ``window`` seconds; an IP that sends more than
``rate * window`` packets in one window is ignored for ``block_for`` seconds. The table of IPs is bounded
(least recently seen dropped first), so a flood from many addresses cannot grow it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

logger = logging.getLogger(__name__)


class RateLimiter:
    def __init__(
        self, *, rate: float = 20.0, window: float = 10.0, block_for: float = 300.0, max_tracked: int = 4096
    ) -> None:
        self.rate = rate
        self.window = window
        self.block_for = block_for
        self.max_tracked = max_tracked
        self._seen: OrderedDict[str, list[float]] = (
            OrderedDict()
        )  # ip -> [window_start, count, blocked_until]
        self.blocked_total = 0

    def allow(self, ip: str, now: float) -> bool:
        """Count one packet from ``ip``; False if the packet must be ignored."""
        if self.rate <= 0:
            return True
        entry = self._seen.get(ip)
        if entry is None:
            entry = [now, 0.0, 0.0]
            self._seen[ip] = entry
            if len(self._seen) > self.max_tracked:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(ip)
        if entry[2] > now:
            return False
        if now - entry[0] >= self.window:
            entry[0], entry[1] = now, 0.0
        entry[1] += 1
        if entry[1] > self.rate * self.window:
            entry[2] = now + self.block_for
            self.blocked_total += 1
            logger.debug(
                "dht: ignoring %s for %.0f s (more than %.1f packets/s)", ip, self.block_for, self.rate
            )
            return False
        return True

    def tracked(self) -> int:
        return len(self._seen)


class UploadBudget:
    """A global cap on the bytes of our replies: ``rate`` bytes per second with a burst of one second (RELIABILITY
    case 29: libtorrent's ``dht_upload_rate_limit``). ``rate`` 0 means no cap."""

    def __init__(self, rate: int, now: float) -> None:
        self.rate = rate
        self._budget = float(rate)
        self._time = now

    def allow(self, size: int, now: float) -> bool:
        if self.rate <= 0:
            return True
        self._budget = min(float(self.rate), self._budget + (now - self._time) * self.rate)
        self._time = now
        if size > self._budget:
            return False
        self._budget -= size
        return True
