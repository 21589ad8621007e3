"""Acceptance 1 and 2 (issue 4): magnets found through the DHT alone, between Shoal and libtorrent.

A small DHT on 127.0.0.1 of three libtorrent sessions (PEERS.md settings: no routers, no IP restrictions; they
are told about each other with ``add_dht_node``). The torrents name no tracker and magnets carry no ``tr=`` or
``x.pe=``: the only way to the other peer is a DHT lookup. Shoal runs as the real CLI (``shoal get`` /
``shoal seed`` subprocesses) with ``--dht-bootstrap`` pointing at the libtorrent nodes.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from interop.harness import content
from interop.harness.libtorrent_peer import LtSession
from swarm_helpers import MULTI_FILE_SPEC, ShoalProc, make_payload

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

PIECE = 64 << 10


@pytest.fixture
def sample(tmp_path: Path) -> content.Content:
    root = make_payload(tmp_path / "seed" / "shapes", MULTI_FILE_SPEC)
    return content.Content(path=root, files=dict(MULTI_FILE_SPEC))


@pytest.fixture
def lt_dht(make_lt: Callable[..., LtSession]) -> Iterator[list[LtSession]]:
    """Three libtorrent sessions forming a DHT on 127.0.0.1."""
    import libtorrent as lt

    extra = {
        "dht_announce_interval": 5,
        "alert_mask": lt.alert_category.all,
    }  # all: dht_get_peers_reply_alert
    nodes = [make_lt(dht=True, settings=extra) for _ in range(3)]
    for a in nodes:
        for b in nodes:
            if a is not b:
                a.add_dht_node("127.0.0.1", b.port)
    deadline = time.monotonic() + 30
    while not all(_dht_node_count(n) >= 2 for n in nodes):
        if time.monotonic() > deadline:
            pytest.fail("libtorrent DHT sessions did not find each other within 30 s")
        for n in nodes:
            n.pump(0.05)
    yield nodes


def _dht_node_count(node: LtSession) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # session.status() is deprecated but has dht_nodes
        return int(node.session.status().dht_nodes)


def _bootstrap_args(nodes: list[LtSession]) -> list[str]:
    args = ["--dht-allow-same-ip"]
    for n in nodes:
        args += ["--dht-bootstrap", f"127.0.0.1:{n.port}"]
    return args


def _dht_peers(node: LtSession, info_hash_hex: str, timeout: float) -> set[tuple[str, int]]:
    """Ask libtorrent's DHT for the peers of an info-hash until some come back."""
    lt = node.lt
    found: set[tuple[str, int]] = set()
    deadline = time.monotonic() + timeout
    next_query = 0.0
    while not found and time.monotonic() < deadline:
        if time.monotonic() >= next_query:
            node.session.dht_get_peers(lt.sha1_hash(bytes.fromhex(info_hash_hex)))
            next_query = time.monotonic() + 2
        node.session.wait_for_alert(100)
        for a in node.session.pop_alerts():
            if isinstance(a, lt.dht_get_peers_reply_alert):
                found.update((str(h), int(p)) for h, p in a.peers())
    return found


def test_shoal_gets_magnet_seeded_by_libtorrent_over_dht(
    tmp_path: Path, sample: content.Content, lt_dht: list[LtSession]
) -> None:
    t = content.make_torrent(sample.path, tmp_path / "s.torrent", piece_length=PIECE)  # no trackers
    seeder = lt_dht[0]
    hs = seeder.add(t.path, sample.parent, seed=True)
    hs.force_dht_announce()
    assert ("127.0.0.1", seeder.port) in _dht_peers(lt_dht[1], t.info_hash, 30), "libtorrent never announced"
    magnet = f"magnet:?xt=urn:btih:{t.info_hash}"
    args = ["get", magnet, "-o", str(tmp_path / "dl"), "--port", "0", "--bind", "127.0.0.1", "--no-seed"]
    with ShoalProc([*args, *_bootstrap_args(lt_dht), "--timeout", "120"], tmp_path / "shoal") as sh:
        code = sh.wait_exit(timeout=150)
        assert code == 0, sh.log()
        st = sh.stats()
    discovery = st.get("discovery")
    assert isinstance(discovery, dict) and discovery.get("dht_peers", 0) >= 1, st
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_libtorrent_gets_magnet_seeded_by_shoal_over_dht(
    tmp_path: Path, sample: content.Content, lt_dht: list[LtSession]
) -> None:
    t = content.make_torrent(sample.path, tmp_path / "s.torrent", piece_length=PIECE)  # no trackers
    args = ["seed", str(t.path), str(sample.path), "--port", "0", "--bind", "127.0.0.1"]
    with ShoalProc([*args, *_bootstrap_args(lt_dht)], tmp_path / "shoal") as sh:
        port = sh.port()
        # Shoal's announce reached the DHT: libtorrent's own lookup returns Shoal's listening port
        assert ("127.0.0.1", port) in _dht_peers(lt_dht[1], t.info_hash, 60), sh.log()
        leecher = lt_dht[2]
        lt = leecher.lt
        atp = lt.parse_magnet_uri(f"magnet:?xt=urn:btih:{t.info_hash}")
        atp.save_path = str(tmp_path / "dl")
        atp.flags &= ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
        hl = leecher.session.add_torrent(atp)
        hl.force_dht_announce()
        leecher.wait_complete(hl, timeout=120)
        assert ("127.0.0.1", port) in leecher.peer_addresses(hl) or leecher.stats(hl)["progress"] == 1.0
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_pex_from_libtorrent_leads_shoal_to_a_third_peer(
    tmp_path: Path, sample: content.Content, make_lt: Callable[..., LtSession]
) -> None:
    """Acceptance 4 (libtorrent half): Shoal knows only libtorrent A; A knows B; A's ut_pex names B; Shoal
    connects to B. No tracker, no DHT: B has no other way to be found."""
    t = content.make_torrent(sample.path, tmp_path / "s.torrent", piece_length=PIECE)
    a = make_lt()
    b = make_lt(settings={"enable_outgoing_tcp": False})  # B never dials: Shoal must dial B
    ha = a.add(t.path, sample.parent, seed=True)
    hb = b.add(t.path, tmp_path / "b")  # a slow leecher, so A and B stay connected (two seeds would part)
    hb.set_download_limit(40_000)
    a.connect(ha, "127.0.0.1", b.port)
    b.wait(lambda: len(b.peer_addresses(hb)) >= 1, timeout=20, what="A and B to connect")
    args = ["get", str(t.path), "-o", str(tmp_path / "dl"), "--port", "0", "--bind", "127.0.0.1"]
    args += ["--peer", f"127.0.0.1:{a.port}", "--download-limit", "150000", "--no-seed"]
    with ShoalProc([*args, "--timeout", "150"], tmp_path / "shoal") as sh:
        shoal_port = sh.port()
        lt = b.lt

        def shoal_dialled_b() -> bool:
            # a connection B did not open itself, from a peer id with Shoal's prefix: Shoal dialled B, and the
            # only place Shoal could have read B's address is A's ut_pex
            return any(
                bytes(p.pid.to_bytes()).startswith(b"-SH") and not p.flags & lt.peer_info.local_connection
                for p in hb.get_peer_info()
            )

        b.wait(shoal_dialled_b, timeout=90, what="shoal to connect to B after A's ut_pex", handle=hb)
        assert sh.wait_exit(timeout=150) == 0, sh.log()
    assert shoal_port
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_pex_from_shoal_leads_libtorrent_to_a_third_peer(
    tmp_path: Path, sample: content.Content, make_lt: Callable[..., LtSession]
) -> None:
    """Acceptance 4 (Shoal half): Shoal seeds; libtorrent X and Y each know only Shoal; Shoal's ut_pex tells
    each about the other, and they connect to each other."""
    t = content.make_torrent(sample.path, tmp_path / "s.torrent", piece_length=PIECE)
    args = ["seed", str(t.path), str(sample.path), "--port", "0", "--bind", "127.0.0.1"]
    with ShoalProc(args, tmp_path / "shoal") as sh:
        port = sh.port()
        x, y = make_lt(), make_lt()
        hx = x.add(t.path, tmp_path / "x", peers=[("127.0.0.1", port)])
        hy = y.add(t.path, tmp_path / "y", peers=[("127.0.0.1", port)])
        for h in (hx, hy):
            h.set_download_limit(40_000)  # stay leechers, so X and Y still want each other
        lt = x.lt

        def sources() -> set[int]:
            return {
                int(p.source)
                for h in (hx, hy)
                for p in h.get_peer_info()
                if bytes(p.pid.to_bytes()).startswith(b"-LT")
            }

        def x_and_y_connected() -> bool:
            # X and Y hold a connection one of them dialed at an address it could only have from Shoal's ut_pex.
            # (Both get the pex at once and dial each other at once: the incoming halves may be up first.)
            y.pump(0.01)
            return any(src & lt.peer_info.pex for src in sources())

        x.wait(x_and_y_connected, timeout=90, what="X and Y to connect after Shoal's ut_pex", handle=hx)
        assert any(src & lt.peer_info.pex for src in sources()), sources()
