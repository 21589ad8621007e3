"""A real opentracker (Debian build) for a test: HTTP and UDP on one port, allow-listed info-hashes.

The Debian build refuses info-hashes not in its allow-list, so every torrent a test uses must be allowed, either
when starting (``info_hashes=``) or later with :meth:`OpenTracker.allow` (rewrites ``allow.txt`` and sends SIGHUP,
which makes opentracker re-read it). It announces with ``interval`` ~1800 s, so a peer that announced before the
seeder did will not hear of it for a long time: start (and wait for the announce of) the seeder first, or
force a re-announce.

Usage::

    from interop.harness.opentracker import OpenTracker

    with OpenTracker(tmp_path / "ot", info_hashes=[ih_hex]) as ot:        # host="127.0.0.1" by default
        ot.announce_url        # "http://127.0.0.1:PORT/announce"
        ot.udp_url             # "udp://127.0.0.1:PORT/announce"
        ot.allow(other_ih_hex)
        ot.scrape(ih_hex)      # {"complete": .., "incomplete": .., "downloaded": ..} over HTTP

``host`` may be a :class:`~interop.harness.netns.Netns` ``host_addr`` so namespaced peers (Transmission) reach it.
Command line: ``opentracker -i HOST -p PORT -P PORT -w allow.txt -d DIR -u nobody`` (``-i`` before ``-p``/``-P``;
``-w`` is relative to the ``-d`` directory it chroots into). A port taken meanwhile by someone else makes it exit;
it is retried on a new port.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from shoal.codec.bencode import decode

from . import proc

logger = logging.getLogger(__name__)


class OpenTracker:
    """A running opentracker process; see the module docstring."""

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        info_hashes: Iterable[str] = (),
        binary: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.workdir = workdir
        self.binary = binary or shutil.which("opentracker") or "opentracker"
        self._allowed: list[str] = []
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        # opentracker chroots into workdir and drops to "nobody": it must be able to read allow.txt there.
        os.chmod(workdir, 0o755)
        self.log_path = workdir / "opentracker.log"
        self._write_allow(info_hashes)
        try:
            self._start(start_timeout)
            if self._allowed:
                # It opens its port first and reads the allow-list in a thread: wait until the list is in force.
                last = self._allowed[-1]
                proc.wait_for(
                    lambda: self._probe_allowed(last), timeout=start_timeout, what="opentracker's allow-list"
                )
        except BaseException:
            self.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------------------------
    def _start(self, timeout: float) -> None:
        last = ""
        for _attempt in range(5):
            port = proc.free_port(self.host, udp=True)
            p = proc.start(
                [
                    self.binary,
                    "-i",
                    self.host,
                    "-p",
                    str(port),
                    "-P",
                    str(port),
                    "-w",
                    "allow.txt",
                    "-d",
                    str(self.workdir),
                    "-u",
                    "nobody",
                ],
                log_path=self.log_path,
            )
            try:
                proc.wait_for(
                    lambda p=p, port=port: p.poll() is not None or proc.tcp_open(self.host, port),  # type: ignore[misc]
                    timeout=timeout,
                    what=f"opentracker on {self.host}:{port}",
                )
            except TimeoutError:
                proc.stop(p)
                raise
            if p.poll() is None:
                self.process, self.port = p, port
                logger.debug("opentracker on %s:%d (pid %d)", self.host, port, p.pid)
                return
            last = proc.tail(self.log_path)
            proc.stop(p)
        raise RuntimeError(f"opentracker did not start on {self.host}: {last}")

    def close(self) -> None:
        """Stop opentracker (process group). Idempotent."""
        proc.stop(self.process, timeout=5)
        self.process = None

    def __enter__(self) -> OpenTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- allow-list ------------------------------------------------------------------------------------------
    def _write_allow(self, info_hashes: Iterable[str]) -> None:
        for ih in info_hashes:
            ih = ih.lower()
            if len(ih) != 40 or any(c not in "0123456789abcdef" for c in ih):
                raise ValueError(f"opentracker allow-list wants 40 hex digits (a v1 info-hash), got {ih!r}")
            if ih not in self._allowed:
                self._allowed.append(ih)
        path = self.workdir / "allow.txt"
        path.write_text("".join(f"{ih}\n" for ih in self._allowed))
        os.chmod(path, 0o644)

    def allow(self, *info_hashes: str) -> None:
        """Add hex v1 info-hashes to the allow-list and make opentracker re-read it (SIGHUP)."""
        self._write_allow(info_hashes)
        if info_hashes and self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGHUP)
            # opentracker reloads asynchronously; wait until it accepts the last one.
            last = self._allowed[-1]
            proc.wait_for(
                lambda: self._probe_allowed(last),
                timeout=5,
                what=f"opentracker to reload its allow-list with {last}",
            )

    # -- urls and queries ------------------------------------------------------------------------------------
    @property
    def announce_url(self) -> str:
        return f"http://{self.host}:{self.port}/announce"

    @property
    def udp_url(self) -> str:
        return f"udp://{self.host}:{self.port}/announce"

    def _probe_allowed(self, ih_hex: str) -> bool:
        """Announce a probe peer (port 1) and withdraw it at once; False while the hash is refused."""
        q = {
            "info_hash": bytes.fromhex(ih_hex),
            "peer_id": b"-XX0000-harnessprobe",
            "port": "1",
            "uploaded": "0",
            "downloaded": "0",
            "left": "0",
            "numwant": "0",
            "compact": "1",
        }
        base = f"http://{self.host}:{self.port}/announce?"
        try:
            with proc.http_open(base + urllib.parse.urlencode(q), timeout=5) as r:
                body = bytes(r.read())
        except (ConnectionError, TimeoutError):
            # the SIGHUP that makes opentracker re-read its allow-list can land while it serves the probe, and it
            # resets that connection (seen in CI): not an answer yet, ask again
            return False
        if b"failure reason" in body:
            return False
        q["event"] = "stopped"
        try:
            with proc.http_open(base + urllib.parse.urlencode(q), timeout=5) as r:
                r.read()
        except (ConnectionError, TimeoutError):
            pass  # the hash is allowed: the probe peer's withdrawal is best effort (it is dropped after its interval)
        return True

    def scrape(self, ih_hex: str) -> dict[str, int]:
        """Scrape one info-hash over HTTP: ``{"complete", "incomplete", "downloaded"}`` (zeros if unknown)."""
        url = f"http://{self.host}:{self.port}/scrape?info_hash={urllib.parse.quote(bytes.fromhex(ih_hex))}"
        with proc.http_open(url, timeout=5) as r:
            body = decode(r.read())
        files = body.get(b"files", {}) if isinstance(body, dict) else {}
        entry = files.get(bytes.fromhex(ih_hex), {})
        return {k: int(entry.get(k.encode(), 0)) for k in ("complete", "incomplete", "downloaded")}
