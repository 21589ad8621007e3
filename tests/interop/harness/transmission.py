"""Transmission 3.00 (``transmission-daemon``) as a reference peer, inside its own network namespace.

Transmission 3.00 ignores peers at 127.0.0.0/8 learned from a tracker, so the daemon runs in a
:class:`~interop.harness.netns.Netns` and everything it talks to (tracker, seeders, leechers) must listen on
``netns.host_addr``; Transmission itself listens on ``netns.ns_addr:peer_port``. Its settings.json turns off
uTP (stalls against TCP-only peers), DHT, LPD, PEX and port forwarding, and ratio/idle limits (it seeds until
stopped). Its RPC listens on ``ns_addr:9091`` inside the namespace, white-listed for the two veth addresses;
the harness talks to it over HTTP from the host (JSON RPC with the X-Transmission-Session-Id dance), and
:meth:`TransmissionPeer.remote` runs ``transmission-remote`` inside the namespace for anything else.

Timing: Transmission 3.00 declares interest in a peer only at its 10-second rechoke pulse, so even a few-MiB
download takes 10-15 s after it connects (seen here: connected at 2 s, interested at 11 s, done at 14 s).
Give its waits at least 60 s.

Transmission 3.00 does not create 0-byte files: compare with ``content.assert_same_tree(..., skip_empty=True)``.
It predates BitTorrent v2: give it v1 torrents.

Usage::

    from interop.harness.netns import Netns
    from interop.harness.opentracker import OpenTracker
    from interop.harness.transmission import TransmissionPeer

    with Netns() as ns, OpenTracker(tmp_path / "ot", host=ns.host_addr, info_hashes=[t.info_hash]) as ot, \\
            TransmissionPeer(ns, tmp_path / "tr") as tr:
        # make the torrent with trackers=[ot.announce_url]; seeders listen on ns.host_addr
        tid = tr.add(t.path, tmp_path / "tr-dl")          # downloads into tmp_path/"tr-dl"/NAME
        tr.wait_complete(tid, timeout=60)                 # TimeoutError with status and log tail
        tr.progress(tid)                                  # 0.0 .. 1.0
        tr.torrent(tid)                                   # RPC fields: status, error, peersConnected, ...
        # seeding: tr.add(t.path, src.parent); tr.wait_complete(tid, timeout=30) waits for the check
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from . import proc
from .netns import Netns

logger = logging.getLogger(__name__)

RPC_PORT = 9091
FIELDS = [
    "id",
    "name",
    "status",
    "percentDone",
    "haveValid",
    "sizeWhenDone",
    "leftUntilDone",
    "error",
    "errorString",
    "peersConnected",
    "uploadedEver",
    "downloadedEver",
    "recheckProgress",
    "isFinished",
    "trackerStats",
]


class TransmissionPeer:
    """A transmission-daemon in ``netns``; see the module docstring."""

    def __init__(
        self,
        netns: Netns,
        workdir: Path,
        *,
        peer_port: int = 51413,
        settings: dict[str, Any] | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.netns = netns
        self.workdir = workdir
        self.config_dir = workdir / "config"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "transmission.log"
        self.peer_port = peer_port  # its own namespace: no other program uses it
        self.rpc_url = f"http://{netns.ns_addr}:{RPC_PORT}/transmission/rpc"
        self._session_id = ""
        conf: dict[str, Any] = {
            "bind-address-ipv4": netns.ns_addr,
            "bind-address-ipv6": "::1",
            "peer-port": peer_port,
            "peer-port-random-on-start": False,
            "port-forwarding-enabled": False,
            "utp-enabled": False,
            "dht-enabled": False,
            "lpd-enabled": False,
            "pex-enabled": False,
            "blocklist-enabled": False,
            "encryption": 1,
            "download-dir": str(workdir / "downloads"),
            "incomplete-dir-enabled": False,
            "rename-partial-files": False,
            "start-added-torrents": True,
            "ratio-limit-enabled": False,
            "idle-seeding-limit-enabled": False,
            "speed-limit-down-enabled": False,
            "speed-limit-up-enabled": False,
            "alt-speed-enabled": False,
            "download-queue-enabled": False,
            "seed-queue-enabled": False,
            "queue-stalled-enabled": False,
            "peer-limit-global": 200,
            "peer-limit-per-torrent": 60,
            "cache-size-mb": 4,
            "message-level": 2,
            "rpc-enabled": True,
            "rpc-bind-address": netns.ns_addr,
            "rpc-port": RPC_PORT,
            "rpc-authentication-required": False,
            "rpc-whitelist-enabled": True,
            "rpc-whitelist": f"127.0.0.1,{netns.host_addr},{netns.ns_addr}",
            "rpc-host-whitelist-enabled": False,
            "watch-dir-enabled": False,
            "umask": 18,
        }
        conf.update(settings or {})
        (self.config_dir / "settings.json").write_text(json.dumps(conf, indent=1))
        binary = shutil.which("transmission-daemon") or "transmission-daemon"
        self.process: subprocess.Popen[bytes] | None = netns.start(
            [binary, "-f", "-g", str(self.config_dir)], log_path=self.log_path
        )
        try:
            proc.wait_for(self._rpc_ready, timeout=start_timeout, what="transmission-daemon RPC")
        except BaseException:
            self.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the daemon (process group). The namespace is the caller's to close. Idempotent."""
        proc.stop(self.process, timeout=10)
        self.process = None

    def __enter__(self) -> TransmissionPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- RPC -------------------------------------------------------------------------------------------------
    def _rpc_ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"transmission-daemon exited: {proc.tail(self.log_path)}")
        try:
            self.rpc("session-get", fields=["version"])
            return True
        except OSError:
            return False

    def rpc(self, method: str, **arguments: Any) -> dict[str, Any]:
        """Call a Transmission RPC method; returns its ``arguments`` or raises RuntimeError on a failed result."""
        body = json.dumps({"method": method, "arguments": arguments}).encode()
        for _ in range(3):
            req = urllib.request.Request(
                self.rpc_url,
                body,
                {"Content-Type": "application/json", "X-Transmission-Session-Id": self._session_id},
            )
            try:
                with proc.http_open(req, timeout=10) as r:
                    reply = json.loads(r.read())
            except urllib.error.HTTPError as exc:
                if exc.code == 409:
                    self._session_id = exc.headers.get("X-Transmission-Session-Id", "")
                    continue
                raise
            if reply.get("result") != "success":
                raise RuntimeError(f"transmission rpc {method} failed: {reply.get('result')}")
            return dict(reply.get("arguments", {}))
        raise RuntimeError("transmission rpc kept answering 409")

    def remote(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``transmission-remote NS_ADDR:9091 ARGS...`` inside the namespace."""
        binary = shutil.which("transmission-remote") or "transmission-remote"
        return self.netns.run([binary, f"{self.netns.ns_addr}:{RPC_PORT}", *args])

    # -- torrents --------------------------------------------------------------------------------------------
    def add(self, torrent: Path | bytes, download_dir: Path, *, paused: bool = False) -> int:
        """Add a torrent (file or bytes) to download into / seed from ``download_dir``; returns its id.

        If the data is already in ``download_dir`` Transmission verifies it and then seeds.
        """
        download_dir.mkdir(parents=True, exist_ok=True)
        data = torrent if isinstance(torrent, bytes) else torrent.read_bytes()
        args = self.rpc(
            "torrent-add",
            metainfo=base64.b64encode(data).decode(),
            **{"download-dir": str(download_dir), "paused": paused},
        )
        entry = args.get("torrent-added") or args.get("torrent-duplicate")
        if not entry:
            raise RuntimeError(f"transmission did not add the torrent: {args}")
        return int(entry["id"])

    def verify(self, tid: int) -> None:
        self.rpc("torrent-verify", ids=[tid])

    def reannounce(self, tid: int) -> None:
        self.rpc("torrent-reannounce", ids=[tid])

    def torrent(self, tid: int) -> dict[str, Any]:
        """RPC fields of one torrent (see ``FIELDS``)."""
        got = self.rpc("torrent-get", ids=[tid], fields=FIELDS).get("torrents", [])
        if not got:
            raise RuntimeError(f"transmission has no torrent {tid}")
        return dict(got[0])

    def progress(self, tid: int) -> float:
        t = self.torrent(tid)
        return float(t["percentDone"]) if t["status"] not in (1, 2) else 0.0  # 1/2: queued/verifying

    def wait_complete(self, tid: int, *, timeout: float) -> dict[str, Any]:
        """Wait until every wanted byte is verified and it is not checking (seeders: after their check)."""

        def done() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"transmission-daemon exited: {proc.tail(self.log_path)}")
            t = self.torrent(tid)
            if t["error"] in (3,):  # local error (disk): give up at once
                raise RuntimeError(f"transmission local error: {t['errorString']}")
            return bool(t["leftUntilDone"] == 0 and t["status"] not in (1, 2) and t["sizeWhenDone"] > 0)

        try:
            proc.wait_for(
                done, timeout=timeout, what=f"transmission torrent {tid} to complete", interval=0.25
            )
        except TimeoutError as exc:
            t = self.torrent(tid)
            t.pop("trackerStats", None)
            raise TimeoutError(f"{exc}; status {t}; log: {proc.tail(self.log_path, 1500)}")
        return self.torrent(tid)
