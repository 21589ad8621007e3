"""Magnet links (BEP 9) between Shoal sessions: metadata fetched over ut_metadata, then a normal download."""

from __future__ import annotations

from pathlib import Path

from shoal import alerts
from shoal.config import Settings
from shoal.engine.handle import TorrentState
from shoal.engine.session import Session
from shoal.types import PeerAddr
from swarm_helpers import MULTI_FILE_SPEC, info_hash_of, make_payload, make_torrent, same_tree


def settings() -> Settings:
    return Settings(engine_tick_interval=0.1, choke_interval=1.0)


async def test_magnet_download_from_shoal_seeder(tmp_path: Path) -> None:
    src = make_payload(tmp_path / "src" / "multi", MULTI_FILE_SPEC)
    raw = make_torrent(src, piece_length=64 * 1024)
    ih = info_hash_of(raw)
    async with Session(settings(), listen=("127.0.0.1", 0)) as seeder:
        await (await seeder.add(raw, save_path=src.parent)).wait_complete(timeout=10)
        async with Session(settings(), listen=("127.0.0.1", 0)) as leecher:
            uri = f"magnet:?xt=urn:btih:{ih.hex()}&dn=multi"
            t = await leecher.add(
                uri, save_path=tmp_path / "dl", peers=[PeerAddr("127.0.0.1", seeder.listen_port)]
            )
            assert t.status().state in (TorrentState.DOWNLOADING_METADATA, TorrentState.CHECKING)
            await t.wait_metadata(timeout=20)
            await t.wait_complete(timeout=30)
            kinds = {type(a) for a in leecher.alerts().pop_all()}
            assert alerts.MetadataReceived in kinds
    assert same_tree(src, tmp_path / "dl" / "multi")


async def test_magnet_with_peer_in_uri_and_select_only(tmp_path: Path) -> None:
    src = make_payload(tmp_path / "src" / "multi", MULTI_FILE_SPEC)
    raw = make_torrent(src, piece_length=64 * 1024)
    ih = info_hash_of(raw)
    async with Session(settings(), listen=("127.0.0.1", 0)) as seeder:
        await (await seeder.add(raw, save_path=src.parent)).wait_complete(timeout=10)
        async with Session(settings(), listen=("127.0.0.1", 0)) as leecher:
            # files in torrent order: empty.txt, small.bin, sub/big.bin, sub/deeper/tail.dat -> take only small.bin
            uri = f"magnet:?xt=urn:btih:{ih.hex()}&x.pe=127.0.0.1:{seeder.listen_port}&so=1"
            t = await leecher.add(uri, save_path=tmp_path / "dl")
            status = await t.wait_complete(timeout=30)
            assert status.total_wanted < 3 * 64 * 1024
    assert (tmp_path / "dl" / "multi" / "small.bin").read_bytes() == (src / "small.bin").read_bytes()
