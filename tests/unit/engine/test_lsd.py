"""BEP 14 adapter. Multicast only inside network namespaces this test creates (root needed): IPv4 on the
namespace's own loopback, IPv6 over a veth pair between two namespaces. The receive path (bounds, rate limit,
own-cookie filter) is also tested in-process with unicast to 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from peers import require_binary, require_root
from shoal.codec.lsd import encode_announce
from shoal.config import Settings
from shoal.engine.lsd import LsdService
from shoal.types import PeerAddr

IH_A = b"\xaa" * 20
IH_B = b"\xbb" * 20

SCRIPT = """
import asyncio, json, sys
from shoal.config import Settings
from shoal.engine.lsd import LsdService

async def main():
    family, interface, duration = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    specs = json.loads(sys.argv[4])  # [[listen_port, info_hash_hex], ...]
    settings = Settings().with_(lsd_announce_interval=0.3)
    found = []
    services = []
    for port, ih in specs:
        def on_peer(info_hash, peer, me=port):
            found.append([me, info_hash.hex(), peer.host, peer.port])
        svc = LsdService(settings, listen_port=port, on_peer=on_peer, family=family, interface=interface)
        await svc.start()
        svc.add_torrent(bytes.fromhex(ih))
        services.append(svc)
    await asyncio.sleep(duration)
    for svc in services:
        await svc.close()
    print(json.dumps(found))

asyncio.run(main())
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def netns() -> Iterator[list[str]]:
    require_root("multicast inside a network namespace")
    require_binary("ip")
    names: list[str] = []
    try:
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def _run_in(ns: str, script: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen[str]) -> list[list[object]]:
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_ipv4_multicast_inside_a_namespace(netns: list[str], tmp_path: Path) -> None:
    ns = f"shoal-lsd4-{os.getpid()}"
    _ip("netns", "add", ns)
    netns.append(ns)
    _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
    _ip("netns", "exec", ns, "ip", "link", "set", "lo", "multicast", "on")
    script = tmp_path / "lsd_node.py"
    script.write_text(SCRIPT)
    specs = json.dumps([[7001, IH_A.hex()], [7002, IH_B.hex()]])
    found = _result(_run_in(ns, script, "4", "127.0.0.1", "1.5", specs))
    assert [7001, IH_B.hex(), "127.0.0.1", 7002] in found
    assert [7002, IH_A.hex(), "127.0.0.1", 7001] in found
    assert not [f for f in found if f[0] == f[3]]  # our own announces are ignored


def test_ipv6_multicast_between_two_namespaces(netns: list[str], tmp_path: Path) -> None:
    tag = os.getpid() % 100000
    a, b = f"shoal-lsd6a-{tag}", f"shoal-lsd6b-{tag}"
    va, vb = f"sl6a{tag}", f"sl6b{tag}"
    for ns in (a, b):
        _ip("netns", "add", ns)
        netns.append(ns)
    _ip("link", "add", va, "type", "veth", "peer", "name", vb)
    _ip("link", "set", va, "netns", a)
    _ip("link", "set", vb, "netns", b)
    for ns, dev in ((a, va), (b, vb)):
        _ip("netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.accept_dad=0")
        _ip("netns", "exec", ns, "ip", "link", "set", dev, "up")
    script = tmp_path / "lsd_node.py"
    script.write_text(SCRIPT)
    pa = _run_in(a, script, "6", va, "2.0", json.dumps([[7001, IH_A.hex()]]))
    pb = _run_in(b, script, "6", vb, "2.0", json.dumps([[7002, IH_B.hex()]]))
    found_a, found_b = _result(pa), _result(pb)
    assert any(f[1] == IH_B.hex() and f[3] == 7002 and str(f[2]).startswith("fe80:") for f in found_a)
    assert any(f[1] == IH_A.hex() and f[3] == 7001 for f in found_b)


async def test_receive_path_over_unicast() -> None:
    found: list[tuple[bytes, PeerAddr]] = []
    svc = LsdService(
        Settings().with_(lsd_messages_per_ip_per_second=1.0),
        listen_port=6881,
        on_peer=lambda ih, peer: found.append((ih, peer)),
        group="127.0.0.1",
        port=0,
    )
    await svc.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        target = ("127.0.0.1", svc.bound_port)
        (good,) = encode_announce([IH_A], 7000, cookie=b"other")
        (own,) = encode_announce([IH_B], 7001, cookie=svc.cookie)
        for data in (good, own, b"garbage", good * 30):
            sock.sendto(data, target)
        for _ in range(20):  # past the rate limit (1/s over 10 s)
            sock.sendto(good, target)

        async def settle() -> None:
            while svc.counters["received"] < 24:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(settle(), 5)
    finally:
        sock.close()
        await svc.close()
    assert (IH_A, PeerAddr("127.0.0.1", 7000)) in found
    assert all(ih != IH_B for ih, _ in found)  # own cookie ignored
    assert svc.counters["bad"] == 2
    assert len(found) <= 10  # the rest was over the per-IP limit


def test_private_torrents_are_not_announced() -> None:
    svc = LsdService(Settings(), listen_port=1, on_peer=lambda ih, p: None, group="127.0.0.1", port=0)
    assert not svc.add_torrent(IH_A, private=True)
    assert svc.add_torrent(IH_B)


def test_shoal_get_finds_shoal_seed_by_lsd_only(netns: list[str], tmp_path: Path) -> None:
    """The whole path: `shoal seed --lsd` and `shoal get --lsd` in one namespace, a torrent without trackers, no
    peer given: the leecher learns the seeder from its multicast announce."""
    from swarm_helpers import ShoalProc, make_payload, make_torrent, same_tree

    ns = f"shoal-lsde-{os.getpid()}"
    _ip("netns", "add", ns)
    netns.append(ns)
    _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
    _ip("netns", "exec", ns, "ip", "link", "set", "lo", "multicast", "on")
    _ip("netns", "exec", ns, "ip", "route", "add", "224.0.0.0/4", "dev", "lo")
    data = make_payload(tmp_path / "seed" / "payload", [("a.bin", 200_000), ("b/c.bin", 50_000)])
    torrent = tmp_path / "t.torrent"
    torrent.write_bytes(make_torrent(data, piece_length=32 * 1024))
    in_ns = ["ip", "netns", "exec", ns]
    common = ["--port", "0", "--bind", "127.0.0.1", "--lsd"]
    get_args = ["get", str(torrent), "-o", str(tmp_path / "dl"), *common, "--no-seed", "--timeout", "60"]
    with ShoalProc(get_args, tmp_path / "get", netns_exec=in_ns) as leecher:
        leecher.port()  # listening, LSD joined
        seed_args = ["seed", str(torrent), str(data), *common]
        with ShoalProc(seed_args, tmp_path / "seed_proc", netns_exec=in_ns) as seeder:
            seeder.port()
            assert leecher.wait_exit(timeout=90) == 0, leecher.log() + seeder.log()
    assert same_tree(data, tmp_path / "dl" / "payload")
