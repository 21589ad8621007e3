"""LazyEvent: ``asyncio.Event``'s ``is_set`` / ``set`` / ``clear`` / ``wait``, with the Event itself (and its
waiter deque, ~760 bytes) made only when somebody waits while it is not set.

Every torrent has two such flags (metadata known, download complete) that most sessions never await; with a
thousand idle torrents in one session the Events alone were 1.5 KiB of each (issue 7 case 6).
"""

from __future__ import annotations

import asyncio


class LazyEvent:
    __slots__ = ("_event", "_value")

    def __init__(self) -> None:
        self._value = False
        self._event: asyncio.Event | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        if self._event is not None:
            self._event.set()

    def clear(self) -> None:
        self._value = False
        if self._event is not None:
            self._event.clear()

    async def wait(self) -> bool:
        """Return at once if set, else when :meth:`set` is called (as ``asyncio.Event.wait``)."""
        if self._value:
            return True
        if self._event is None:
            self._event = asyncio.Event()
        return await self._event.wait()
