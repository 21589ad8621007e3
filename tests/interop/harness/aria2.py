"""aria2 1.36 (``aria2c``) as a reference peer: seed or download one torrent, progress over its JSON-RPC.

aria2 has no uTP; DHT, LPD and PEX are switched off; files are allocated with ``falloc`` (its default writes zeros
first); every socket is bound to ``listen_ip`` (``--interface``). Its JSON-RPC listens on loopback only.
QUIRK: aria2 1.36 sends UDP tracker announces through its DHT socket; with DHT off it fails them with "udp is
not supported yet". Give aria2 an HTTP tracker URL (or a torrent listing both).

Usage::

    from interop.harness.aria2 import Aria2Peer

    # seeding: the data is in save_dir (the parent of the torrent's name); aria2 hash-checks it first (-V)
    with Aria2Peer(tmp_path / "a2s", torrent.path, src.parent, seed=True) as seeder:
        seeder.wait_seeding(timeout=30)
        ...
    # downloading: exits by itself once complete (unless keep_seeding=True)
    with Aria2Peer(tmp_path / "a2d", torrent.path, tmp_path / "dl") as leecher:
        leecher.wait_complete(timeout=60)       # raises TimeoutError / RuntimeError with the log tail
        leecher.progress()                      # 0.0 .. 1.0 (1.0 also after it exited with code 0)

``listen_ip`` must be an address the other peers reach: "127.0.0.1", or a Netns ``host_addr`` when a
namespaced Transmission is in the swarm. ``port`` is the BitTorrent listen port (free one from the OS by default).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from . import proc

logger = logging.getLogger(__name__)


class Aria2Peer:
    """One ``aria2c`` process handling one torrent; see the module docstring."""

    def __init__(
        self,
        workdir: Path,
        torrent: Path,
        save_dir: Path,
        *,
        seed: bool = False,
        keep_seeding: bool = False,
        listen_ip: str = "127.0.0.1",
        port: int | None = None,
        extra_args: list[str] | tuple[str, ...] = (),
        binary: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.workdir = workdir
        self.seed = seed
        workdir.mkdir(parents=True, exist_ok=True)
        save_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "aria2.log"
        self.listen_ip = listen_ip
        self.port = port or proc.free_port(listen_ip, udp=False)
        self.rpc_port = proc.free_port("127.0.0.1")
        cmd = [
            binary or shutil.which("aria2c") or "aria2c",
            f"--dir={save_dir}",
            f"--interface={listen_ip}",
            f"--listen-port={self.port}",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--file-allocation=falloc",
            "--auto-file-renaming=false",
            "--allow-overwrite=true",
            "--check-certificate=false",
            "--bt-max-peers=0",
            "--bt-tracker-connect-timeout=5",
            "--bt-tracker-timeout=10",
            "--enable-rpc=true",
            "--rpc-listen-all=false",
            f"--rpc-listen-port={self.rpc_port}",
            "--summary-interval=0",
            "--console-log-level=warn",
            f"--log={workdir / 'aria2-debug.log'}",
            "--log-level=notice",
        ]
        if seed:
            cmd += ["--check-integrity=true", "--seed-ratio=0.0", "--bt-seed-unverified=false"]
        elif keep_seeding:
            cmd += ["--seed-ratio=0.0"]
        else:
            cmd += ["--seed-time=0"]
        cmd += [*extra_args, str(torrent)]
        self.cmd = cmd
        self.process: subprocess.Popen[bytes] | None = proc.start(cmd, log_path=self.log_path)
        try:
            proc.wait_for(
                lambda: self._exited() or proc.tcp_open("127.0.0.1", self.rpc_port),
                timeout=start_timeout,
                what="aria2 JSON-RPC to answer",
            )
            if self._exited() and not self._succeeded():
                raise RuntimeError(f"aria2c exited at start: {proc.tail(self.log_path)}")
        except BaseException:
            self.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------------------------
    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def _succeeded(self) -> bool:
        return self.process is not None and self.process.returncode == 0

    def close(self) -> None:
        """Stop aria2 (process group). Idempotent."""
        proc.stop(self.process, timeout=5)

    def __enter__(self) -> Aria2Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- RPC -------------------------------------------------------------------------------------------------
    def rpc(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": "h", "method": method, "params": list(params)}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.rpc_port}/jsonrpc", body, {"Content-Type": "application/json"}
        )
        with proc.http_open(req, timeout=5) as r:
            return json.loads(r.read())["result"]

    def status(self) -> dict[str, Any]:
        """The torrent's aria2 status (``status``, ``completedLength``, ``totalLength``, ``connections``...)."""
        keys = [
            "gid",
            "status",
            "completedLength",
            "totalLength",
            "connections",
            "errorMessage",
            "uploadLength",
        ]
        for group in (self.rpc("aria2.tellActive", keys), self.rpc("aria2.tellStopped", 0, 10, keys)):
            if group:
                return dict(group[0])
        waiting = self.rpc("aria2.tellWaiting", 0, 10, keys)
        return dict(waiting[0]) if waiting else {}

    def progress(self) -> float:
        if self._exited():
            return 1.0 if self._succeeded() and not self.seed else 0.0
        try:
            st = self.status()
        except OSError:
            return 0.0
        total = int(st.get("totalLength", 0))
        return int(st.get("completedLength", 0)) / total if total else 0.0

    # -- waiting ---------------------------------------------------------------------------------------------
    def wait_complete(self, *, timeout: float) -> None:
        """Wait until the download is complete (aria2 exits 0, or with ``keep_seeding`` reaches 100%)."""

        def done() -> bool:
            if self._exited():
                if not self._succeeded():
                    raise RuntimeError(
                        f"aria2c exited with {self.process.returncode if self.process else None}: "
                        f"{proc.tail(self.log_path)}"
                    )
                return True
            return self.progress() >= 1.0

        try:
            proc.wait_for(done, timeout=timeout, what="aria2 download", interval=0.2)
        except TimeoutError as exc:
            raise TimeoutError(
                f"{exc}; progress {self._safe_progress():.3f}; log: {proc.tail(self.log_path)}"
            )

    def wait_seeding(self, *, timeout: float) -> None:
        """Wait until a seeder has checked its data (100% complete, still running)."""

        def ready() -> bool:
            if self._exited():
                raise RuntimeError(f"aria2c seeder exited: {proc.tail(self.log_path)}")
            st = self.status()
            total = int(st.get("totalLength", 0))
            return bool(total) and int(st.get("completedLength", 0)) == total and st.get("status") == "active"

        proc.wait_for(ready, timeout=timeout, what="aria2 seeder to check its data", interval=0.2)

    def _safe_progress(self) -> float:
        try:
            return self.progress()
        except Exception:
            return -1.0
