"""Which reference peers are on this machine, and the rule for when one is missing.

Locally a test that needs a missing peer skips, naming what to install. Under ``CI=true`` a missing peer is a
failure: CI must prove interop, never skip it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

BINARIES = {
    "transmission-daemon": "transmission-daemon",
    "transmission-remote": "transmission-cli",
    "transmission-show": "transmission-cli",
    "transmission-create": "transmission-cli",
    "aria2c": "aria2",
    "opentracker": "opentracker",
    "mktorrent": "mktorrent",
    "redis-server": "redis-server",
    "ip": "iproute2",
    "openssl": "openssl",
    "mount": "mount",
    "umount": "mount",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip locally, fail under CI."""
    if in_ci():
        pytest.fail(f"reference peer missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(
            f"{name} not installed (Debian package {BINARIES.get(name, name)}; run scripts/install-peers.sh)"
        )
        raise AssertionError("unreachable")
    return path


def require_libtorrent():  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("libtorrent") is None:
        missing("libtorrent wheel not installed (pip install -e '.[test]')")
    import libtorrent

    return libtorrent


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        missing(f"{what} needs root (network namespaces)")
