"""Known peers of one torrent: where they came from, whom to connect to next, back-off, bans (sans-IO).

- ``add(addr, source, now)`` records a peer from the tracker, DHT, PEX, LSD, an incoming connection or resume;
  the book is bounded (``max_peers``): when full, a peer that is not connected and has failed most (then the
  oldest) is evicted; if none can be, the new one is refused.
- ``candidates(now, n)`` -> up to ``n`` addresses to dial now: not connected, not connecting, not banned, and
  past their back-off; fewest failures first, then by source (tracker/incoming/pex/dht/lsd), then the rng.
  They are marked *connecting*; report the outcome with ``on_connected`` / ``on_connect_failed``.
- A failed connect backs off ``backoff * 2**(failures-1)`` (capped at ``backoff_max``); after
  ``max_failures`` in a row the peer is forgotten. ``on_disconnected`` makes it eligible again later.
- Bans are per IP and bounded (``max_bans``, oldest lifted first). ``on_hash_failure(ip)`` counts pieces that
  failed their hash with this IP among the senders; at ``max_hash_failures`` the IP is banned and True returned
  (the engine then disconnects it). ``on_corrupt_proven(ip)`` (smart ban: its block differed from the good
  copy) bans at once.
"""

from __future__ import annotations

import enum
import random
from collections import OrderedDict

from shoal.records import record
from shoal.types import PeerAddr


class PeerSource(enum.IntEnum):
    """Where we heard of a peer; lower sorts first when choosing whom to dial."""

    TRACKER = 0
    INCOMING = 1
    PEX = 2
    DHT = 3
    LSD = 4
    RESUME = 5


@record(frozen=False)
class PeerEntry:
    addr: PeerAddr
    source: PeerSource
    added_at: float
    failures: int = 0
    next_attempt: float = 0.0
    connected: bool = False
    connecting: bool = False
    last_connected: float | None = None


class PeerBook:
    """See the module docstring."""

    def __init__(
        self,
        *,
        rng: random.Random,
        max_peers: int = 2000,
        max_bans: int = 10_000,
        max_hash_failures: int = 3,
        backoff: float = 30.0,
        backoff_max: float = 3600.0,
        max_failures: int = 6,
    ) -> None:
        self._rng = rng
        self.max_peers = max_peers
        self.max_bans = max_bans
        self.max_hash_failures = max_hash_failures
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_failures = max_failures
        self._peers: dict[PeerAddr, PeerEntry] = {}
        self._bans: OrderedDict[str, str] = OrderedDict()  # ip -> reason
        self._hash_failures: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, addr: object) -> bool:
        return addr in self._peers

    def get(self, addr: PeerAddr) -> PeerEntry | None:
        return self._peers.get(addr)

    # --- adding ----------------------------------------------------------------------------------------------

    def add(self, addr: PeerAddr, source: PeerSource, now: float) -> bool:
        """Remember a peer; False if banned, invalid, or the book is full of peers that cannot be evicted."""
        if addr.host in self._bans or not 0 < addr.port < 65536:
            return False
        entry = self._peers.get(addr)
        if entry is not None:
            if source < entry.source:
                entry.source = source
            return True
        if len(self._peers) >= self.max_peers and not self._evict():
            return False
        self._peers[addr] = PeerEntry(addr, source, now)
        return True

    def _evict(self) -> bool:
        victim: PeerEntry | None = None
        for e in self._peers.values():
            if e.connected or e.connecting:
                continue
            if victim is None or (e.failures, -e.added_at) > (victim.failures, -victim.added_at):
                victim = e
        if victim is None:
            return False
        del self._peers[victim.addr]
        return True

    def remove(self, addr: PeerAddr) -> None:
        self._peers.pop(addr, None)

    # --- connecting ------------------------------------------------------------------------------------------

    def candidates(self, now: float, n: int) -> list[PeerAddr]:
        if n <= 0:
            return []
        ready = [
            e
            for e in self._peers.values()
            if not e.connected
            and not e.connecting
            and e.next_attempt <= now
            and e.addr.host not in self._bans
        ]
        keyed = sorted((e.failures, int(e.source), self._rng.random(), i) for i, e in enumerate(ready))
        out: list[PeerAddr] = []
        for *_, i in keyed[:n]:
            ready[i].connecting = True
            out.append(ready[i].addr)
        return out

    def num_connectable(self, now: float) -> int:
        return sum(
            1
            for e in self._peers.values()
            if not e.connected
            and not e.connecting
            and e.next_attempt <= now
            and e.addr.host not in self._bans
        )

    def on_connected(self, addr: PeerAddr, now: float, source: PeerSource | None = None) -> bool:
        """A connection is up (outgoing or incoming); False if the IP is banned (drop it)."""
        if addr.host in self._bans:
            return False
        entry = self._peers.get(addr)
        if entry is None:
            if not self.add(addr, source if source is not None else PeerSource.INCOMING, now):
                return True  # full book: still allow the connection, just do not remember it
            entry = self._peers[addr]
        entry.connected = True
        entry.connecting = False
        entry.failures = 0
        entry.last_connected = now
        return True

    def on_connect_failed(self, addr: PeerAddr, now: float) -> None:
        entry = self._peers.get(addr)
        if entry is None:
            return
        entry.connecting = False
        entry.failures += 1
        if entry.failures >= self.max_failures:
            del self._peers[addr]
            return
        entry.next_attempt = now + min(self.backoff_max, self.backoff * 2 ** (entry.failures - 1))

    def on_disconnected(self, addr: PeerAddr, now: float) -> None:
        entry = self._peers.get(addr)
        if entry is None:
            return
        entry.connected = False
        entry.connecting = False
        entry.next_attempt = now + self.backoff

    # --- bans --------------------------------------------------------------------------------------------

    def ban(self, ip: str, reason: str = "banned") -> None:
        self._bans[ip] = reason
        self._bans.move_to_end(ip)
        while len(self._bans) > self.max_bans:
            self._bans.popitem(last=False)
        for addr in [a for a in self._peers if a.host == ip]:
            del self._peers[addr]

    def unban(self, ip: str) -> None:
        self._bans.pop(ip, None)
        self._hash_failures.pop(ip, None)

    def is_banned(self, ip: str) -> bool:
        return ip in self._bans

    def ban_reason(self, ip: str) -> str | None:
        return self._bans.get(ip)

    @property
    def num_banned(self) -> int:
        return len(self._bans)

    def hash_failures(self, ip: str) -> int:
        return self._hash_failures.get(ip, 0)

    def on_hash_failure(self, ip: str) -> bool:
        """A piece this IP contributed to failed its hash; True if the IP is now banned."""
        if ip in self._bans:
            return True
        count = self._hash_failures.get(ip, 0) + 1
        if count >= self.max_hash_failures:
            self._hash_failures.pop(ip, None)
            self.ban(ip, f"{count} hash failures (max_hash_failures_before_ban {self.max_hash_failures})")
            return True
        if len(self._hash_failures) >= self.max_bans:
            self._hash_failures.pop(next(iter(self._hash_failures)))
        self._hash_failures[ip] = count
        return False

    def on_corrupt_proven(self, ip: str) -> None:
        """Smart ban: this IP's block differed from the verified copy."""
        self._hash_failures.pop(ip, None)
        self.ban(ip, "sent corrupt data")
