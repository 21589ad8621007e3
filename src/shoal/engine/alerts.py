"""Typed alerts: what the engine tells its user, in a bounded queue with async iteration.

Every alert is a frozen, slotted dataclass with a ``category`` class attribute. The session posts them into one
:class:`AlertQueue`; when the queue is full the oldest alert is dropped and counted (``dropped``), so a consumer that
never reads cannot make the engine grow without bound. Consumers either ``await queue.get()`` or iterate::

    async for alert in session.alerts():
        ...
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import AsyncIterator
from typing import ClassVar

from shoal.records import record


class Category(enum.Flag):
    STATUS = enum.auto()
    ERROR = enum.auto()
    PEER = enum.auto()
    TRACKER = enum.auto()
    STORAGE = enum.auto()
    PROGRESS = enum.auto()


@record
class Alert:
    """Base of all alerts. ``info_hash`` is empty for session-wide alerts."""

    category: ClassVar[Category] = Category.STATUS
    info_hash: bytes

    def message(self) -> str:
        return type(self).__name__


@record
class ListenSucceeded(Alert):
    host: str
    port: int


@record
class ListenFailed(Alert):
    category: ClassVar[Category] = Category.ERROR
    host: str
    port: int
    error: str


@record
class TorrentAdded(Alert):
    name: str


@record
class TorrentRemoved(Alert):
    pass


@record
class MetadataReceived(Alert):
    name: str


@record
class StateChanged(Alert):
    old: str
    new: str


@record
class CheckingFinished(Alert):
    pieces_have: int
    pieces_total: int


@record
class PieceFinished(Alert):
    category: ClassVar[Category] = Category.PROGRESS
    piece: int


@record
class HashFailed(Alert):
    category: ClassVar[Category] = Category.ERROR
    piece: int
    peers: tuple[str, ...]


@record
class TorrentFinished(Alert):
    """Every wanted piece is downloaded and verified."""

    downloaded: int


@record
class TorrentError(Alert):
    category: ClassVar[Category] = Category.ERROR
    error: str


@record
class PeerConnected(Alert):
    category: ClassVar[Category] = Category.PEER
    peer: str
    incoming: bool


@record
class PeerDisconnected(Alert):
    category: ClassVar[Category] = Category.PEER
    peer: str
    reason: str


@record
class PeerBanned(Alert):
    category: ClassVar[Category] = Category.PEER | Category.ERROR
    peer: str
    reason: str


@record
class TrackerReply(Alert):
    category: ClassVar[Category] = Category.TRACKER
    url: str
    peers: int


@record
class TrackerFailed(Alert):
    category: ClassVar[Category] = Category.TRACKER | Category.ERROR
    url: str
    error: str


class AlertQueue:
    """A bounded FIFO of alerts; the oldest is dropped (and counted) when full."""

    def __init__(self, max_size: int = 10_000) -> None:
        if max_size < 1:
            raise ValueError(f"alert queue size {max_size} below 1")
        self._items: collections.deque[Alert] = collections.deque()
        self._max = max_size
        self._waiter: asyncio.Event | None = None
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def post(self, alert: Alert) -> None:
        if len(self._items) >= self._max:
            self._items.popleft()
            self.dropped += 1
        self._items.append(alert)
        if self._waiter is not None:
            self._waiter.set()

    def pop_all(self) -> list[Alert]:
        """Everything queued now, oldest first; never waits."""
        items = list(self._items)
        self._items.clear()
        return items

    def close(self) -> None:
        """Wake waiting consumers; iteration ends once the queue is drained."""
        self._closed = True
        if self._waiter is not None:
            self._waiter.set()

    async def get(self) -> Alert:
        """The next alert; raises ``EOFError`` when the queue was closed and is empty."""
        while not self._items:
            if self._closed:
                raise EOFError("alert queue closed")
            if self._waiter is None:
                self._waiter = asyncio.Event()
            self._waiter.clear()
            await self._waiter.wait()
        return self._items.popleft()

    def __aiter__(self) -> AsyncIterator[Alert]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Alert]:
        while True:
            try:
                yield await self.get()
            except EOFError:
                return
