"""Fixtures for interop tests: reference peers that are checked for, started on demand and always cleaned up.

Each ``make_*`` fixture is a factory: call it as often as the test needs; everything it made is stopped at
teardown (also when the test fails). Missing peers skip locally and fail under CI=true (``tests/peers.py``).

* ``sample``                       4 MiB multi-file content (``content.make_multifile``) under ``tmp_path/"seed"``
* ``make_tracker(host=..., info_hashes=...)``   -> ``OpenTracker``
* ``make_lt(listen_ip=..., dht=False)``         -> ``LtSession``
* ``make_aria2(torrent, save_dir, seed=False, listen_ip=...)`` -> ``Aria2Peer``
* ``make_netns()``                              -> ``Netns`` (root)
* ``make_transmission(ns)``                     -> ``TransmissionPeer`` inside ``ns``
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import peers
from interop.harness import content
from interop.harness.aria2 import Aria2Peer
from interop.harness.libtorrent_peer import LtSession
from interop.harness.netns import Netns
from interop.harness.opentracker import OpenTracker
from interop.harness.transmission import TransmissionPeer

SAMPLE_PIECE = 64 << 10
SAMPLE_TOTAL = 4 << 20


@pytest.fixture
def cleanup() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture
def sample(tmp_path: Path) -> content.Content:
    return content.make_multifile(tmp_path / "seed", total=SAMPLE_TOTAL, piece_length=SAMPLE_PIECE)


@pytest.fixture
def make_tracker(tmp_path: Path, cleanup: contextlib.ExitStack) -> Callable[..., OpenTracker]:
    peers.require_binary("opentracker")
    counter = iter(range(1000))

    def make(host: str = "127.0.0.1", info_hashes: tuple[str, ...] | list[str] = ()) -> OpenTracker:
        return cleanup.enter_context(
            OpenTracker(tmp_path / f"opentracker{next(counter)}", host=host, info_hashes=info_hashes)
        )

    return make


@pytest.fixture
def make_lt(cleanup: contextlib.ExitStack) -> Callable[..., LtSession]:
    peers.require_libtorrent()

    def make(listen_ip: str = "127.0.0.1", **kwargs: Any) -> LtSession:
        return cleanup.enter_context(LtSession(listen_ip, **kwargs))

    return make


@pytest.fixture
def make_aria2(tmp_path: Path, cleanup: contextlib.ExitStack) -> Callable[..., Aria2Peer]:
    peers.require_binary("aria2c")
    counter = iter(range(1000))

    def make(torrent: Path, save_dir: Path, **kwargs: Any) -> Aria2Peer:
        return cleanup.enter_context(
            Aria2Peer(tmp_path / f"aria2-{next(counter)}", torrent, save_dir, **kwargs)
        )

    return make


@pytest.fixture
def make_netns(cleanup: contextlib.ExitStack) -> Callable[[], Netns]:
    peers.require_root("a network namespace for Transmission")
    peers.require_binary("ip")

    def make() -> Netns:
        return cleanup.enter_context(Netns())

    return make


@pytest.fixture
def make_transmission(tmp_path: Path, cleanup: contextlib.ExitStack) -> Callable[..., TransmissionPeer]:
    peers.require_binary("transmission-daemon")
    peers.require_binary("transmission-remote")
    counter = iter(range(1000))

    def make(ns: Netns, **kwargs: Any) -> TransmissionPeer:
        return cleanup.enter_context(
            TransmissionPeer(ns, tmp_path / f"transmission{next(counter)}", **kwargs)
        )

    return make
