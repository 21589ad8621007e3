"""SQLite persistence for the DHT: our node id and the nodes known at the last run (an adapter, not a core).

One small file: ``meta(key, value)`` holds our node id so it survives restarts (a stable id keeps our place in
other nodes' tables), ``nodes(node_id, host, port, last_seen)`` the good nodes saved at shutdown, used as
bootstrap seeds at the next start. sqlite3 errors become :class:`shoal.errors.StorageError` here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from shoal.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    node_id BLOB NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY (host, port)
);
"""


class NodesDb:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error, UnicodeDecodeError) as exc:  # a damaged file: undecodable text
            raise StorageError(f"cannot open dht nodes db {self.path}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def load_node_id(self) -> bytes | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read dht nodes db {self.path}: {exc}") from None
        if row is None or not isinstance(row[0], bytes) or len(row[0]) != 20:
            return None
        return bytes(row[0])

    def save_node_id(self, node_id: bytes) -> None:
        try:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('node_id', ?)", (node_id,))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write dht nodes db {self.path}: {exc}") from None

    def load_external_ip(self) -> str | None:
        """Our external IP as the other nodes saw it at the last run (BEP 42 ``ip`` votes)."""
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'external_ip'").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read dht nodes db {self.path}: {exc}") from None
        if row is None or not isinstance(row[0], bytes | str):
            return None
        value = row[0].decode("ascii", "replace") if isinstance(row[0], bytes) else row[0]
        return value[:64]

    def save_external_ip(self, ip: str) -> None:
        try:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('external_ip', ?)", (ip,))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write dht nodes db {self.path}: {exc}") from None

    def load_nodes(self, limit: int) -> list[tuple[bytes, str, int]]:
        try:
            rows = self._db.execute(
                "SELECT node_id, host, port FROM nodes ORDER BY last_seen DESC LIMIT ?", (limit,)
            ).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read dht nodes db {self.path}: {exc}") from None
        return [
            (bytes(r[0]), str(r[1]), int(r[2]))
            for r in rows
            if isinstance(r[0], bytes) and len(r[0]) == 20 and isinstance(r[2], int) and 0 < r[2] < 65536
        ]

    def save_nodes(self, nodes: Iterable[tuple[bytes, str, int, float]]) -> None:
        try:
            with self._db:
                self._db.execute("DELETE FROM nodes")
                self._db.executemany("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?)", list(nodes))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write dht nodes db {self.path}: {exc}") from None
