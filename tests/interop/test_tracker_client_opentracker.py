"""Shoal's tracker client against a real opentracker (HTTP and UDP): announces get peers back, scrape counts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from interop.harness.opentracker import OpenTracker
from shoal.config import Settings
from shoal.errors import TrackerError
from shoal.tracker.client import TrackerClient
from shoal.tracker.proto.messages import AnnounceRequest, Event
from shoal.types import PeerAddr

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

IH = bytes.fromhex("5e" * 20)
CLIENT = Settings(tracker_timeout=5.0, udp_tracker_retry_base=1.0, udp_tracker_retries=2)


def peer(i: int, left: int = 1, event: Event = Event.STARTED, ih: bytes = IH) -> AnnounceRequest:
    return AnnounceRequest(ih, b"-SH0100-" + bytes([i]) * 12, 7000 + i, left=left, event=event)


@pytest.mark.parametrize("transport", ["http", "udp"])
def test_shoal_client_against_opentracker(transport: str, make_tracker: Callable[..., OpenTracker]) -> None:
    # opentracker reads its allow-list in a thread after it opens its port: allow() waits until it is in force
    ot = make_tracker()
    ot.allow(IH.hex())
    url = ot.announce_url if transport == "http" else ot.udp_url

    async def go() -> None:
        async with TrackerClient(CLIENT) as client:
            first = await client.announce(url, peer(1, left=0))
            assert first.interval >= 60
            second = await client.announce(url, peer(2))
            assert PeerAddr("127.0.0.1", 7001) in second.peers
            assert (second.complete, second.incomplete) == (1, 1)
            await client.announce(url, peer(2, left=0, event=Event.COMPLETED))
            stats = (await client.scrape(url, [IH]))[IH]
            assert (stats.complete, stats.incomplete, stats.downloaded) == (2, 0, 1)
            if transport == "http":  # Debian's opentracker refuses info-hashes not on its allow-list
                with pytest.raises(TrackerError):
                    await client.announce(url, peer(3, ih=b"\x01" * 20))

    asyncio.run(go())
