"""A network namespace made by the test: a second "host" reachable only from this machine.

Why: Transmission 3.00 ignores peers at 127.0.0.0/8 learned from a tracker, so it needs peers at another
address. :class:`Netns` makes namespace ``NS``, a veth pair and a private /30 of 10.0.0.0/8 chosen at random
(checked against the addresses already in use, under a lock file so parallel tests do not collide):

* ``host_addr`` (``10.A.B.C+1``) is on the host end: the tracker and every host-side peer listen there;
* ``ns_addr`` (``10.A.B.C+2``) is inside ``NS``: the namespaced program listens there;
* inside ``NS`` the only route is to the host end (plus the namespace's own loopback).

Only these two addresses are ever used; nothing is routed anywhere else. :meth:`close` (also run by ``with``) kills
every process still in the namespace and deletes it, which deletes the veth pair.

Usage::

    from interop.harness.netns import Netns

    with Netns() as ns:                       # needs root (tests call peers.require_root first)
        print(ns.name, ns.host_addr, ns.ns_addr)
        p = ns.start(["some-daemon", "--listen", ns.ns_addr], log_path=tmp_path / "d.log")
        ns.run(["ip", "addr"])               # one-shot command inside NS, returns CompletedProcess
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import random
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import proc

logger = logging.getLogger(__name__)

_LOCK_PATH = Path("/tmp/shoal-test-netns.lock")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=20)


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    with open(_LOCK_PATH, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _ip("-o", "-4", "addr", "show").stdout
    nets = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.append(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).network)
    return nets


class Netns:
    """A namespace with one veth pair to the host; see the module docstring."""

    def __init__(self, prefix: str = "shoal") -> None:
        self._rng = random.Random()
        tag = f"{os.getpid() % 100000:05d}{self._rng.randrange(1 << 16):04x}"
        self.name = f"{prefix}-{tag}"
        self.host_if = f"sh{tag}h"[:15]
        self.ns_if = f"sh{tag}n"[:15]
        self.host_addr = ""
        self.ns_addr = ""
        self._created = False
        self._procs: list[subprocess.Popen[Any]] = []
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        with _lock():
            used = _used_networks()
            for _ in range(100):
                base = ipaddress.IPv4Address(
                    (10 << 24) | (self._rng.randrange(200, 250) << 16) | (self._rng.randrange(256) << 8)
                )
                net = ipaddress.IPv4Network(
                    f"{ipaddress.IPv4Address(int(base) + 4 * self._rng.randrange(64))}/30"
                )
                if not any(net.overlaps(u) for u in used):
                    break
            else:
                raise RuntimeError("no free private /30 for a test namespace")
            hosts = list(net.hosts())
            self.host_addr, self.ns_addr = str(hosts[0]), str(hosts[1])
            _ip("netns", "add", self.name)
            self._created = True
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
        self.run(["ip", "link", "set", "lo", "up"], check=True)
        self.run(["ip", "addr", "add", f"{self.ns_addr}/30", "dev", self.ns_if], check=True)
        self.run(["ip", "link", "set", self.ns_if, "up"], check=True)
        logger.debug("netns %s: host %s <-> ns %s", self.name, self.host_addr, self.ns_addr)

    def route_to(self, addr: str) -> None:
        """Let the namespace reach ``addr`` (a host-side address of ANOTHER test namespace) through the host."""
        self.run(["ip", "route", "add", f"{addr}/32", "via", self.host_addr], check=True)

    def exec_args(self, cmd: Sequence[str]) -> list[str]:
        """``cmd`` wrapped to run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(
        self, cmd: Sequence[str], *, check: bool = False, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside the namespace and return its result (text output)."""
        return subprocess.run(
            self.exec_args(cmd), check=check, capture_output=True, text=True, timeout=timeout
        )

    def start(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a long-running program inside the namespace (own process group; stopped by :meth:`close`)."""
        p = proc.start(self.exec_args(cmd), **kwargs)
        self._procs.append(p)
        return p

    def close(self) -> None:
        """Stop the programs started here, kill anything left in the namespace, delete it. Idempotent."""
        for p in self._procs:
            proc.stop(p, timeout=5)
        self._procs.clear()
        if not self._created:
            with contextlib.suppress(Exception):
                _ip("link", "del", self.host_if, check=False)
            return
        pids = _ip("netns", "pids", self.name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.host_if, check=False)
        self._created = False

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
