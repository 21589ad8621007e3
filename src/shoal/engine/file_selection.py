"""Which files of a torrent the user wants: the picker's piece priorities, and where the storage keeps each file.

A file at priority 0 is not downloaded: none of its pieces is picked, except those it shares with a wanted file.
Its bytes of such a shared piece go to a part file (``<save path>/.shoal.parts/``: :mod:`shoal.storage.part_files`),
so the file itself never appears on disk. When it becomes wanted, its part file moves into it (the storage holds
the file's descriptors meanwhile: :meth:`shoal.storage.fd_cache.FdCache.holding`).

Priorities come from the caller (``AddTorrentParams.file_priorities``, ``shoal get --files``) or a magnet's
``so=`` (BEP 53); :func:`resolve` turns them into one per file. At set-up the storage learns them before it opens
(so unwanted empty files are not created either) and before the check (which then reads part files). A change
while the torrent runs reaches the picker at once; the storage's part of it runs on its worker threads, each
change after the one before (:func:`move_parts`), so a file selected and unselected in quick succession ends where
the last call put it. A part file that cannot be moved (a full disk) fails the torrent, as a failed write does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shoal.errors import ConfigError

if TYPE_CHECKING:
    from shoal.engine.transfer import Transfer
    from shoal.policy.picker import PiecePicker
    from shoal.storage.layout import Layout


def resolve(priorities: Sequence[int] | None, layout: Layout, magnet: Any) -> list[int] | None:
    """One priority per file: ``priorities`` as given, else the magnet's selection (``so=``), else None (every
    file wanted). :class:`ConfigError` when the count does not match the files."""
    if priorities is None and magnet is not None and magnet.select_only is not None:
        priorities = [1 if magnet.selects(i) else 0 for i in range(len(layout.files))]
    if priorities is None:
        return None
    check(priorities, layout)
    return list(priorities)


def check(priorities: Sequence[int], layout: Layout) -> None:
    if len(priorities) != len(layout.files):
        raise ConfigError(f"{len(priorities)} file priorities for {len(layout.files)} files")


def apply(transfer: Transfer, layout: Layout, priorities: Sequence[int]) -> None:
    """The picker's side, at once: piece priorities (a piece takes the highest of the files it touches)."""
    transfer.picker.set_priorities(layout.piece_priorities(priorities))
    unwanted = getattr(transfer.storage, "set_unwanted_files", None)  # FileStorage: never preallocated
    if unwanted is not None:
        unwanted(i for i, p in enumerate(priorities) if p <= 0)


def wanted_bytes(picker: PiecePicker, layout: Layout) -> tuple[int, int]:
    """(bytes of the wanted pieces, bytes of those verified): the torrent's progress over what the user wants."""
    wanted = done = 0
    for i in range(layout.num_pieces):
        if picker.priority(i) > 0:
            size = layout.piece_size(i)
            wanted += size
            if picker.have(i):
                done += size
    return wanted, done


async def move_parts(storage: Any, before: asyncio.Task[Any] | None, priorities: list[int]) -> None:
    """The storage's side (part files in, part files out), after the change before it (``before``)."""
    if before is not None and not before.done():
        await asyncio.wait([before])
    await storage.set_file_priorities(priorities)
