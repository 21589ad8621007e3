"""Shoal: a peer-to-peer file-sharing engine that speaks the BitTorrent protocol.

The public API::

    import shoal

    async with shoal.Session(listen=("0.0.0.0", 6881)) as session:
        torrent = await session.add("file.torrent", save_path="downloads")
        print(torrent.status().progress)
        await torrent.wait_complete(timeout=3600)

Names are imported lazily (so ``shoal info`` does not load the engine); ``__all__`` lists everything public.
"""

from __future__ import annotations

import importlib

from shoal.errors import (
    ConfigError,
    MagnetError,
    MetainfoError,
    NetworkError,
    ShoalError,
    StorageError,
    TrackerError,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `import shoal` stays cheap for one-shot commands
if TYPE_CHECKING:
    from typing import Any

    from shoal.config import Settings
    from shoal.engine import alerts
    from shoal.engine.handle import AddTorrentParams, Torrent, TorrentState, TorrentStatus
    from shoal.engine.session import Session
    from shoal.types import PeerAddr

__version__ = "0.1.0"

_LAZY: dict[str, tuple[str, str | None]] = {
    "Session": ("shoal.engine.session", "Session"),
    "Torrent": ("shoal.engine.handle", "Torrent"),
    "TorrentStatus": ("shoal.engine.handle", "TorrentStatus"),
    "TorrentState": ("shoal.engine.handle", "TorrentState"),
    "AddTorrentParams": ("shoal.engine.handle", "AddTorrentParams"),
    "Settings": ("shoal.config", "Settings"),
    "PeerAddr": ("shoal.types", "PeerAddr"),
    "alerts": ("shoal.engine.alerts", None),
}

__all__ = [
    "AddTorrentParams",
    "ConfigError",
    "MagnetError",
    "MetainfoError",
    "NetworkError",
    "PeerAddr",
    "Session",
    "Settings",
    "ShoalError",
    "StorageError",
    "Torrent",
    "TorrentState",
    "TorrentStatus",
    "TrackerError",
    "__version__",
    "alerts",
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'shoal' has no attribute {name!r}")
    module = importlib.import_module(target[0])
    value = module if target[1] is None else getattr(module, target[1])
    globals()[name] = value
    return value
