"""What is already on disk when a torrent starts, and resume checkpoints while it runs.

Start-up (``check_existing``):

1. No file of the torrent exists -> nothing to check (a fresh download).
2. Resume data exists and every file still has the size and mtime it had at the last checkpoint (a clean stop)
   -> the recorded pieces are trusted, nothing is hashed.
3. Otherwise (no resume data, files touched, or a crash / kill -9 after the last checkpoint) -> the pieces the
   resume data vouches for are kept only where their files are unchanged, and **every other piece whose files
   exist is hashed** (off the loop: 64 MiB or more in a helper process that hashes from memory maps,
   ``shoal.storage.check_helper``, else in the session's threads, ``shoal.storage.check.recheck``). So a verified
   piece written after the last checkpoint is found again instead of downloaded again, and unverified data is never
   trusted.

``force_recheck`` (``shoal check``, ``shoal seed`` where it cannot fork) hashes everything. ``verified_pieces``
(``shoal seed``, which hashed them in forked processes before its session started:
:mod:`shoal.storage.fork_check`) are trusted as given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.codec.bencode import encode
from shoal.errors import ConfigError, ResumeError, ShoalError
from shoal.storage.check import recheck
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout

if TYPE_CHECKING:
    from shoal.engine.torrent import TorrentTask
    from shoal.storage.resume import Checkpointer

logger = logging.getLogger(__name__)

RESUME_DIR = ".shoal"
RESUME_FILE = "resume.sqlite"


def resume_path(save_path: Path) -> Path:
    return save_path / RESUME_DIR / RESUME_FILE


def open_resume_store(path: Path) -> Any:
    """A :class:`~shoal.storage.resume.ResumeStore` at ``path``, or None (with a warning) if it cannot be opened.
    Blocking (SQLite): the session calls it on a worker thread, once per folder."""
    from shoal.storage.resume import ResumeStore

    try:
        return ResumeStore(path)
    except ResumeError as exc:
        logger.warning("resume data in %s unavailable: %s", path, exc)
        return None


async def check_existing(task: TorrentTask, storage: Any, layout: Layout, force: bool = False) -> set[int]:
    assert task.info is not None and task.info.piece_hashes_v1 is not None
    hashes = task.info.piece_hashes_v1
    if task.params.resume and task.resume_store is None:
        task.resume_store = await task.session.resume_store(task.save_path)
    verified = task.params.verified_pieces
    if verified is not None:
        have = set(verified)
        n = layout.num_pieces
        outside = [p for p in have if not 0 <= p < n]
        if outside:
            raise ConfigError(f"verified piece {outside[0]} is not a piece of this torrent (0..{n - 1})")
        task.counters["pieces_from_recheck"] = len(have)
        return have
    if force:  # recheck looks at the files itself and skips pieces of missing or short ones
        return await _recheck(task, storage, hashes)
    if not task.params.check:
        return set()
    stats = await storage.file_stats()
    if not any(s is not None and s.size > 0 for s in stats):
        return set()
    trusted: set[int] = set()
    state = None
    if task.resume_store is not None:
        state = await task.resume_store.load_async(task.info_hash, layout, stats)
    if state is not None:
        trusted = set(state.have)
        clean = not state.recheck and not state.dropped
        if clean and state.extra == _stats_blob(stats):
            task.counters["pieces_from_resume"] = len(trusted)
            return trusted
    todo = [i for i in range(layout.num_pieces) if i not in trusted]
    found = await _recheck(task, storage, hashes, todo) if todo else set()
    task.counters["pieces_from_resume"] = len(trusted)
    task.counters["pieces_from_recheck"] = len(found)
    return trusted | found


async def _recheck(task: TorrentTask, storage: Any, hashes: bytes, only: list[int] | None = None) -> set[int]:
    """Hash the pieces (all, or ``only``): in a helper process where it can (big enough, files on disk), else in
    the session's threads."""
    if task.settings.recheck_in_helper and type(storage) is FileStorage:  # a subclass may change how it reads
        from shoal.storage.check_helper import recheck_in_helper

        found = await recheck_in_helper(storage, hashes, only=only)
        if found is not None:
            task.counters["rechecks_in_helper"] += 1
            return set(found)
    return set(await recheck(storage, hashes, only=only))


def _stats_blob(stats: Any) -> bytes:
    """Every file's (size, mtime) at a checkpoint: if all are unchanged at start-up, nothing was written since."""
    return encode([[] if st is None else [st.size, st.mtime_ns] for st in stats])


async def save_resume(task: TorrentTask) -> None:
    if task.resume_store is None or task.transfer is None or task.have is None or task.layout is None:
        return
    stats = await task.transfer.storage.file_stats()
    await task.resume_store.save_async(
        task.info_hash, task.have, task.layout.piece_length, stats, extra=_stats_blob(stats)
    )


class ResumeCheckpoints:
    """A running torrent's resume checkpoints: the pieces verified since the last one are saved after
    ``resume_checkpoint_pieces`` of them or ``resume_checkpoint_interval`` seconds (at once when forced), one save
    at a time, off the loop. A save that fails is logged; the torrent goes on."""

    def __init__(self, task: TorrentTask) -> None:
        self.task = task
        self.dirty: set[int] = set()
        self._due: Checkpointer | None = None
        self._saving = False

    def pieces_verified(self, pieces: Iterable[int]) -> None:
        self.dirty.update(pieces)

    def checkpoint(self, force: bool = False) -> None:
        """Start a save if one is due (or ``force``), there is something to save and none is running."""
        task = self.task
        if task.resume_store is None or not self.dirty or self._saving:
            return
        now = task.session.clock.now()
        if self._due is None:
            from shoal.storage.resume import Checkpointer

            self._due = Checkpointer(
                task.settings.resume_checkpoint_pieces, task.settings.resume_checkpoint_interval, now
            )
        if not force:
            self._due.pending = len(self.dirty)
            if not self._due.due(now):
                return
        task.spawn(self._save(self._due, now))

    async def _save(self, due: Checkpointer, now: float) -> None:
        task = self.task
        self._saving = True
        self.dirty = set()
        try:
            await save_resume(task)
            due.done(now)
            task.counters["checkpoints"] += 1
        except ShoalError as exc:
            logger.warning("torrent %s: cannot save resume data: %s", task.name, exc)
        finally:
            self._saving = False
