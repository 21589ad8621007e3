"""Incoming connections: every accepted socket gets a :class:`~shoal.engine.peer.PeerTask` with no torrent yet.

The peer's handshake is read up to its info-hash by the sans-IO connection (``HandshakeReceived``); the PeerTask
then asks ``Session.route(info_hash)`` for the torrent and answers (or closes the socket for an unknown hash, a
banned address, or when the torrent or session is full). So one listening socket serves every torrent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoal.engine.session import Session


def incoming_factory(session: Session) -> Callable[[], asyncio.BaseProtocol]:
    from shoal.engine.peer import PeerTask

    def make() -> asyncio.BaseProtocol:
        return PeerTask(session, None, None, initiator=False)

    return make
