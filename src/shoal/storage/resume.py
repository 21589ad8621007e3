"""Resume state in SQLite (stdlib ``sqlite3``, WAL): which pieces were verified, and the files they were in.

Resume data is a hint, never the truth. :meth:`ResumeStore.load` checks the claim against the files as they are
now (``FileStat`` from ``Storage.file_stats()``):

- a file that is missing or shorter than the torrent says -> every piece touching it is **dropped**;
- a file whose size or mtime differs from the checkpoint -> its claimed pieces go to ``recheck``: the engine
  hashes them (``shoal.storage.check.recheck(..., only=state.recheck)``) before trusting them. That happens after
  ``kill -9`` (files were written after the last checkpoint) or when someone touched the files;
- anything unreadable (other info-hash, wrong piece count or length, bad blob, corrupt database) -> ignored with
  a warning; the caller falls back to a full recheck. A corrupt database file is moved aside.

Writes are atomic: one transaction per :meth:`ResumeStore.save` (``BEGIN IMMEDIATE`` ... ``COMMIT``, WAL), so a
crash leaves either the old or the new checkpoint. :class:`Checkpointer` is the pure cadence rule: checkpoint
after ``every_pieces`` newly verified pieces or ``every_seconds``, whichever comes first.

API (names are stable)::

    store = ResumeStore(path)                        # thread-safe; calls take < 1 ms, or use the *_async forms
    store.save(info_hash, have: Bitfield, piece_length, stats, extra=b"")
    state = store.load(info_hash, layout, stats)     # -> ResumeState | None
    state.have (Bitfield: trusted), state.recheck (list[int]: hash first), state.dropped (int), state.extra
    store.remove(info_hash); store.close()
    cp = Checkpointer(every_pieces=64, every_seconds=30.0); cp.piece_verified(); cp.due(now); cp.done(now)
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import field
from pathlib import Path

from shoal.errors import PeerProtocolError, ResumeError
from shoal.policy.bitfield import Bitfield
from shoal.records import record
from shoal.storage.backend import FileStat
from shoal.storage.layout import Layout

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS torrent (
    info_hash BLOB PRIMARY KEY,
    num_pieces INTEGER NOT NULL,
    piece_length INTEGER NOT NULL,
    have BLOB NOT NULL,
    extra BLOB NOT NULL DEFAULT x'',
    generation INTEGER NOT NULL DEFAULT 0,
    saved_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS file (
    info_hash BLOB NOT NULL,
    idx INTEGER NOT NULL,
    size INTEGER,
    mtime_ns INTEGER,
    PRIMARY KEY (info_hash, idx)
) WITHOUT ROWID;
"""


@record(frozen=False)
class ResumeState:
    """What :meth:`ResumeStore.load` found still valid."""

    have: Bitfield
    recheck: list[int] = field(default_factory=list)
    dropped: int = 0
    generation: int = 0
    extra: bytes = b""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class ResumeStore:
    """SQLite resume database shared by all torrents of a session."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = self._connect(busy_timeout)
        except (
            sqlite3.DatabaseError,
            UnicodeDecodeError,
        ) as exc:  # a corrupt file can yield undecodable text
            aside = self.path.with_name(self.path.name + ".corrupt")
            logger.warning("resume database %s unreadable (%s); moved to %s", self.path, exc, aside)
            try:
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):
                    side = self.path.with_name(self.path.name + suffix)
                    if side.exists():
                        side.unlink()
                self._db = self._connect(busy_timeout)
            except (OSError, sqlite3.Error) as exc2:
                raise ResumeError(f"resume database {self.path}: {exc2}") from exc2
        except sqlite3.Error as exc:
            raise ResumeError(f"resume database {self.path}: {exc}") from exc

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            db.execute("SELECT count(*) FROM torrent").fetchone()
            if db.execute("PRAGMA quick_check").fetchone() != ("ok",):  # damaged pages: move the file aside
                raise sqlite3.DatabaseError("resume database failed quick_check")
        except (sqlite3.Error, UnicodeDecodeError):
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- write -------------------------------------------------------------------------------------------

    def save(
        self,
        info_hash: bytes,
        have: Bitfield,
        piece_length: int,
        stats: Sequence[FileStat | None],
        extra: bytes = b"",
    ) -> int:
        """Atomically replace the checkpoint of one torrent; returns its new generation number."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                row = db.execute("SELECT generation FROM torrent WHERE info_hash=?", (info_hash,)).fetchone()
                gen = (row[0] if row and _is_int(row[0]) else 0) + 1  # a damaged row restarts at 1
                db.execute(
                    "INSERT OR REPLACE INTO torrent(info_hash, num_pieces, piece_length, have, extra, generation,"
                    " saved_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (info_hash, have.num_pieces, piece_length, have.to_bytes(), extra, gen, time.time()),
                )
                db.execute("DELETE FROM file WHERE info_hash=?", (info_hash,))
                db.executemany(
                    "INSERT INTO file(info_hash, idx, size, mtime_ns) VALUES (?, ?, ?, ?)",
                    [
                        (info_hash, i, None if s is None else s.size, None if s is None else s.mtime_ns)
                        for i, s in enumerate(stats)
                    ],
                )
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise ResumeError(f"resume save to {self.path}: {exc}") from exc
            return gen

    def remove(self, info_hash: bytes) -> None:
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM torrent WHERE info_hash=?", (info_hash,))
                db.execute("DELETE FROM file WHERE info_hash=?", (info_hash,))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise ResumeError(f"resume remove in {self.path}: {exc}") from exc

    # --- read --------------------------------------------------------------------------------------------

    def _fetch(
        self, info_hash: bytes
    ) -> tuple[tuple[int, int, bytes, bytes, int], dict[int, FileStat | None]] | None:
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT num_pieces, piece_length, have, extra, generation FROM torrent WHERE info_hash=?",
                    (info_hash,),
                ).fetchone()
                if row is None:
                    return None
                files = self._db.execute(
                    "SELECT idx, size, mtime_ns FROM file WHERE info_hash=?", (info_hash,)
                ).fetchall()
            except (sqlite3.Error, UnicodeDecodeError) as exc:
                logger.warning("resume data for %s unreadable: %s", info_hash.hex(), exc)
                return None
        num_pieces, piece_length, blob, extra, gen = row
        # SQLite columns are loosely typed: anything of the wrong type means the row is not ours to trust.
        if not (
            _is_int(num_pieces)
            and _is_int(piece_length)
            and _is_int(gen)
            and isinstance(blob, bytes)
            and isinstance(extra, bytes)
        ):
            logger.warning("resume data for %s has wrong column types; ignored", info_hash.hex())
            return None
        recorded: dict[int, FileStat | None] = {}
        for idx, size, mtime in files:
            if not _is_int(idx):
                continue
            ok = _is_int(size) and _is_int(mtime)
            recorded[idx] = FileStat(size, mtime) if ok else None
        return (num_pieces, piece_length, blob, extra, gen), recorded

    def load(self, info_hash: bytes, layout: Layout, stats: Sequence[FileStat | None]) -> ResumeState | None:
        """The pieces still believable given the files' current ``stats``; None if there is nothing usable."""
        fetched = self._fetch(info_hash)
        if fetched is None:
            return None
        (num_pieces, piece_length, blob, extra, gen), recorded = fetched
        if num_pieces != layout.num_pieces or piece_length != layout.piece_length:
            logger.warning("resume data for %s is for another geometry; ignored", info_hash.hex())
            return None
        if len(stats) != len(layout.files):
            raise ValueError(f"{len(stats)} file stats for {len(layout.files)} files")
        try:
            claimed = Bitfield.from_bytes(blob, num_pieces)
        except (PeerProtocolError, ValueError):
            logger.warning("resume bitfield for %s is malformed; ignored", info_hash.hex())
            return None
        # per file: 0 ok, 1 recheck, 2 drop
        verdict = [0] * len(layout.files)
        for i, f in enumerate(layout.files):
            if f.is_pad or f.length == 0:
                continue
            now, then = stats[i], recorded.get(i)
            if now is None or now.size < f.length:
                verdict[i] = 2
            elif then is None or then != now:
                verdict[i] = 1
        worst_of = bytearray(num_pieces)  # per piece: the worst verdict of the files it touches
        for fi, v in enumerate(verdict):
            if v:
                for piece in layout.file_piece_range(fi):
                    if worst_of[piece] < v:
                        worst_of[piece] = v
        state = ResumeState(Bitfield(num_pieces), generation=gen, extra=extra)
        for piece in claimed:
            worst = worst_of[piece]
            if worst == 0:
                state.have.add(piece)
            elif worst == 1:
                state.recheck.append(piece)
            else:
                state.dropped += 1
        if state.dropped or state.recheck:
            logger.info(
                "resume %s: %d pieces trusted, %d to recheck, %d dropped",
                info_hash.hex(),
                state.have.count,
                len(state.recheck),
                state.dropped,
            )
        return state

    # --- async conveniences ------------------------------------------------------------------------------

    async def save_async(
        self,
        info_hash: bytes,
        have: Bitfield,
        piece_length: int,
        stats: Sequence[FileStat | None],
        extra: bytes = b"",
    ) -> int:
        return await asyncio.to_thread(self.save, info_hash, have.copy(), piece_length, list(stats), extra)

    async def load_async(
        self, info_hash: bytes, layout: Layout, stats: Sequence[FileStat | None]
    ) -> ResumeState | None:
        return await asyncio.to_thread(self.load, info_hash, layout, list(stats))


class Checkpointer:
    """When to write a checkpoint: after ``every_pieces`` verified pieces or ``every_seconds`` (pure)."""

    def __init__(self, every_pieces: int = 64, every_seconds: float = 30.0, now: float = 0.0) -> None:
        self.every_pieces = every_pieces
        self.every_seconds = every_seconds
        self.pending = 0
        self.last = now

    def piece_verified(self, n: int = 1) -> None:
        self.pending += n

    def due(self, now: float) -> bool:
        return self.pending > 0 and (
            self.pending >= self.every_pieces or now - self.last >= self.every_seconds
        )

    def done(self, now: float) -> None:
        self.pending = 0
        self.last = now
