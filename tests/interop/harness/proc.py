"""Process, port and waiting helpers shared by every harness module.

Rules this module enforces for the whole harness:

* every child runs in its own process group (``start_new_session=True``) and :func:`stop` kills the group, so a
  daemon that forks cannot outlive the test;
* every wait takes a timeout and raises :class:`TimeoutError` naming what it waited for;
* ports come from the OS (bind port 0, read it, release it); callers that then hand the port to another program
  must retry if that program finds it taken (see :func:`free_port`).

Usage::

    from interop.harness.proc import start, stop, wait_for, free_port

    port = free_port("127.0.0.1", udp=True)      # free for TCP and UDP at once
    p = start(["sleep", "100"], log_path=tmp_path / "sleep.log")
    try:
        wait_for(lambda: p.poll() is None, timeout=5, what="sleep to start")
    finally:
        stop(p)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1", *, udp: bool = False) -> int:
    """A port number the OS just gave out on ``host`` (TCP; also free for UDP when ``udp``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
            if not udp:
                return port
            with socket.socket(family, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for tcp and udp on {host} after 50 tries")


def start(
    cmd: Sequence[str],
    *,
    log_path: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdout: Any = None,
    stdin: Any = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new process group; stdout+stderr go to ``log_path`` unless ``stdout`` is given."""
    log: Any = subprocess.DEVNULL
    if log_path is not None:
        log = open(log_path, "ab")  # noqa: SIM115 - the child owns it; closed right after Popen
    try:
        return subprocess.Popen(
            list(cmd),
            stdin=stdin,
            stdout=stdout if stdout is not None else log,
            stderr=log if log_path is not None else subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    finally:
        if log_path is not None:
            log.close()


def stop(p: subprocess.Popen[Any] | None, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
    """Signal the process group of ``p`` (``sig``, then SIGKILL after ``timeout``) and reap it."""
    if p is None:
        return None
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout)
    # Children that left the group leader behind (daemons) still share the group id: kill them too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    for f in (p.stdin, p.stdout, p.stderr):
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()
    return p.returncode


def wait_for(predicate: Callable[[], T], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """Call ``predicate`` until it returns something truthy (returned), or raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on (host, port)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, limit: int = 2000) -> str:
    """The last ``limit`` characters of a log file, for error messages."""
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_open(req: str | urllib.request.Request, timeout: float = 5.0) -> Any:
    """``urlopen`` that never uses an environment proxy (test addresses are local).

    A socket error while sending the request comes out of urllib wrapped in ``URLError``; it is raised here as the
    socket error itself (``ConnectionResetError``, ``TimeoutError``...), so callers can catch what they mean.
    HTTP error statuses still raise ``HTTPError`` (its ``reason`` is the status text, not an ``OSError``).
    """
    try:
        return _OPENER.open(req, timeout=timeout)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, OSError):
            raise exc.reason from exc
        raise
