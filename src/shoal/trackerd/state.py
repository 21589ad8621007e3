"""``--state-db``: the in-memory registry saved to SQLite (periodically and at shutdown) and loaded at start,
so a restart keeps swarms, download counts and live peers.

Peer ages are stored as wall-clock times and turned back into the loop's monotonic clock at load; peers older
than ``peer_timeout`` are not restored. A save replaces the whole snapshot in one transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from shoal.errors import ConfigError
from shoal.trackerd.registry import Peer, Registry

Snapshot = tuple[list[tuple[bytes, int]], list[tuple[bytes, bytes, bytes, int, float]]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS swarms (info_hash BLOB PRIMARY KEY, downloaded INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS peers (
    info_hash BLOB NOT NULL, addr BLOB NOT NULL, peer_id BLOB NOT NULL, seeder INTEGER NOT NULL,
    seen REAL NOT NULL, PRIMARY KEY (info_hash, addr));
"""


class StateDb:
    def __init__(self, path: str | Path) -> None:
        try:
            self._lock = threading.Lock()  # a periodic write in a worker thread may meet the final save
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, UnicodeDecodeError) as exc:  # a damaged file can yield undecodable text
            raise ConfigError(f"cannot open tracker state db {str(path)!r}: {exc}") from None

    @staticmethod
    def snapshot(registry: Registry, mono_now: float, wall_now: float) -> Snapshot:
        """Copy the registry's state (call it on the event loop thread; :meth:`write` may then run elsewhere)."""
        offset = wall_now - mono_now
        swarms = [(ih, s.downloaded) for ih, s in registry.swarms.items()]
        peers = [
            (ih, p.addr, p.peer_id, int(p.seeder), p.last_seen + offset)
            for ih, s in registry.swarms.items()
            for plist in (s.seeders, s.leechers)
            for p in plist.items
        ]
        return swarms, peers

    def write(self, snap: Snapshot) -> None:
        """Replace the stored state by ``snap`` in one transaction."""
        swarms, peers = snap
        with self._lock, self._db:
            self._db.execute("DELETE FROM swarms")
            self._db.execute("DELETE FROM peers")
            self._db.executemany("INSERT INTO swarms VALUES (?, ?)", swarms)
            self._db.executemany("INSERT OR REPLACE INTO peers VALUES (?, ?, ?, ?, ?)", peers)

    def save(self, registry: Registry, mono_now: float, wall_now: float) -> None:
        self.write(self.snapshot(registry, mono_now, wall_now))

    def load(self, registry: Registry, mono_now: float, wall_now: float) -> int:
        """Restore swarms into ``registry``; return how many peers came back."""
        offset = wall_now - mono_now
        cutoff = wall_now - registry.config.peer_timeout
        # rows of the wrong type (a damaged or hand-edited file) are skipped, never trusted
        downloaded = {
            ih: n
            for ih, n in self._db.execute("SELECT info_hash, downloaded FROM swarms")
            if isinstance(ih, bytes) and len(ih) == 20 and isinstance(n, int) and n >= 0
        }
        peers: dict[bytes, list[Peer]] = {}
        for ih, addr, pid, seeder, seen in self._db.execute("SELECT * FROM peers"):
            if not (
                isinstance(ih, bytes)
                and len(ih) == 20
                and isinstance(addr, bytes)
                and len(addr) in (6, 18)
                and isinstance(pid, bytes)
                and isinstance(seeder, int)
                and isinstance(seen, int | float)
            ):
                continue
            if seen >= cutoff:
                peers.setdefault(ih, []).append(Peer(addr, pid, bool(seeder), min(seen, wall_now) - offset))
        count = 0
        for ih in set(downloaded) | set(peers):
            registry.restore(ih, downloaded.get(ih, 0), peers.get(ih, []))
            count += len(peers.get(ih, []))
        return count

    def close(self) -> None:
        with self._lock:
            self._db.close()
