"""Turn what a user passed to ``Session.add`` into a :class:`ResolvedSource`.

Accepted: a ``Metainfo``; ``.torrent`` bytes; a path (str or Path) to a ``.torrent``; an ``http(s)://`` URL of a
``.torrent`` (fetched with a size cap); a ``magnet:`` URI (metadata is fetched later from peers, BEP 9).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.codec.magnet import Magnet
from shoal.codec.metainfo import Metainfo
from shoal.config import Settings
from shoal.errors import ConfigError, MetainfoError, NetworkError


@dataclass(slots=True)
class ResolvedSource:
    info_hash: bytes  # 20-byte wire info-hash
    metainfo: Metainfo | None
    name: str
    trackers: list[list[str]] = field(default_factory=list)
    info_hash_v2: bytes | None = None  # full 32-byte v2 hash when known
    magnet_peers: list[tuple[str, int]] = field(default_factory=list)
    magnet: Magnet | None = None


def from_metainfo(meta: Metainfo) -> ResolvedSource:
    return ResolvedSource(
        info_hash=meta.info_hash,
        metainfo=meta,
        name=meta.name,
        trackers=[list(t) for t in meta.trackers],
        info_hash_v2=meta.info_hash_v2,
    )


def _from_magnet(uri: str, settings: Settings) -> ResolvedSource:
    link = Magnet.parse(uri, settings)
    return ResolvedSource(
        info_hash=link.info_hash,
        metainfo=None,
        name=link.display_name or link.info_hash.hex(),
        trackers=[[t] for t in link.trackers],
        info_hash_v2=link.info_hash_v2,
        magnet_peers=[(p.host, p.port) for p in link.peers],
        magnet=link,
    )


async def _fetch_url(url: str, settings: Settings) -> bytes:
    import aiohttp

    limit = settings.max_torrent_size
    timeout = aiohttp.ClientTimeout(total=settings.tracker_timeout * 2)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as resp:
            if resp.status != 200:
                raise NetworkError(f"fetching {url} failed: http status {resp.status}")
            data = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                data += chunk
                if len(data) > limit:
                    raise MetainfoError(f"torrent at {url} exceeds max_torrent_size {limit}")
            return bytes(data)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise NetworkError(f"fetching {url} failed: {exc or type(exc).__name__}")


async def resolve_source(source: Any, settings: Settings) -> ResolvedSource:
    if isinstance(source, Metainfo):
        return from_metainfo(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return from_metainfo(Metainfo.from_bytes(bytes(source), settings))
    if isinstance(source, str) and source.startswith("magnet:"):
        return _from_magnet(source, settings)
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        return from_metainfo(Metainfo.from_bytes(await _fetch_url(source, settings), settings))
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise ConfigError(f"cannot read torrent file {str(path)!r}: {exc.strerror or exc}")
        return from_metainfo(Metainfo.from_bytes(data, settings))
    raise ConfigError(f"cannot add a torrent from {type(source).__name__}")
