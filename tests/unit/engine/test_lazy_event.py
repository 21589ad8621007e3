"""LazyEvent behaves as asyncio.Event for set / clear / wait, and makes no Event unless somebody waits unset."""

from __future__ import annotations

import asyncio

from shoal.engine.lazy_event import LazyEvent


async def test_set_before_wait_makes_no_event() -> None:
    flag = LazyEvent()
    assert not flag.is_set()
    flag.set()
    assert flag.is_set()
    assert await asyncio.wait_for(flag.wait(), 1) is True
    assert flag._event is None


async def test_waiters_wake_on_set_and_clear_rearms() -> None:
    flag = LazyEvent()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True, True, True]
    flag.clear()
    assert not flag.is_set()
    later = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not later.done()  # cleared: a new wait waits again
    flag.set()
    assert await asyncio.wait_for(later, 1) is True


async def test_a_cancelled_waiter_leaves_the_others() -> None:
    flag = LazyEvent()
    a = asyncio.ensure_future(flag.wait())
    b = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    a.cancel()
    flag.set()
    assert await asyncio.wait_for(b, 1) is True
    assert a.cancelled()
