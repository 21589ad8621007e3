"""Values shared by the HTTP (BEP 3, 23, 7, 48) and UDP (BEP 15) tracker protocols, client and server side.

An :class:`AnnounceRequest` is what a client tells a tracker; an :class:`AnnounceResponse` is what it learns back.
Both transports map onto these, so the announcer and the engine never care which one carried them.
"""

from __future__ import annotations

import enum
from dataclasses import field

from shoal.records import record
from shoal.types import PeerAddr

INFO_HASH_SIZE = 20
PEER_ID_SIZE = 20
MAX_FAILURE_TEXT = 512  # a tracker's failure/warning text is cut to this many characters


class Event(enum.Enum):
    """The announce ``event``: its HTTP query value and its BEP 15 number."""

    NONE = ("", 0)
    COMPLETED = ("completed", 1)
    STARTED = ("started", 2)
    STOPPED = ("stopped", 3)

    @property
    def http(self) -> str:
        return self.value[0]

    @property
    def udp(self) -> int:
        return self.value[1]

    @classmethod
    def from_http(cls, text: str) -> Event:
        return _EVENT_BY_HTTP.get(text, Event.NONE)

    @classmethod
    def from_udp(cls, number: int) -> Event:
        return _EVENT_BY_UDP.get(number, Event.NONE)


_EVENT_BY_HTTP = {e.http: e for e in Event}
_EVENT_BY_UDP = {e.udp: e for e in Event}


@record
class AnnounceRequest:
    """One announce, as the client means it (transport independent)."""

    info_hash: bytes
    peer_id: bytes
    port: int
    uploaded: int = 0
    downloaded: int = 0
    left: int = 0
    event: Event = Event.NONE
    numwant: int | None = None
    key: int | None = None  # 32-bit, lets a tracker recognise us across IP changes
    tracker_id: bytes | None = None
    compact: bool = True
    ipv6: str | None = None  # BEP 7: our IPv6 address, if we want to tell the tracker


@record
class AnnounceResponse:
    """What a tracker answered (already validated; bad peers dropped)."""

    interval: float
    min_interval: float | None = None
    peers: list[PeerAddr] = field(default_factory=list)
    complete: int | None = None
    incomplete: int | None = None
    tracker_id: bytes | None = None
    warning: str | None = None


@record
class ScrapeStats:
    """BEP 48 counts for one info-hash."""

    complete: int
    downloaded: int
    incomplete: int


def clean_text(raw: bytes | str, limit: int = MAX_FAILURE_TEXT) -> str:
    """A tracker's message as safe plain text: UTF-8 (bad bytes replaced), no control characters, bounded."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = "".join(ch if ch.isprintable() else " " for ch in text[: limit * 2])
    return text.strip()[:limit]
