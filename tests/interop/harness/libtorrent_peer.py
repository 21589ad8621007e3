"""libtorrent (Python bindings 2.1.1) as a reference peer, in-process, with the settings PEERS.md asks for.

Defaults: TCP only (uTP off: it crawls on loopback), no DHT/LSD/UPnP/NAT-PMP, several connections per IP allowed
(every peer is 127.0.0.1), listening on ``listen_ip`` port 0 (the OS picks; read :attr:`LtSession.port`).
Pass ``dht=True`` for a DHT-enabled session set up as PEERS.md describes (no bootstrap routers, no ID/IP
restrictions); then :meth:`LtSession.add_dht_node` the other sessions' ``(ip, port)``.

Usage (in-process; the test's thread pumps the alerts inside each wait)::

    from interop.harness.libtorrent_peer import LtSession

    with LtSession() as seeder, LtSession() as leecher:      # listen_ip="127.0.0.1"
        hs = seeder.add(torrent.path, src.parent, seed=True)   # seed=True: expects full data, re-checks it
        seeder.wait_announced(hs, timeout=10)                 # so the tracker knows the seeder first
        hl = leecher.add(torrent.path, tmp_path / "dl")
        leecher.wait_complete(hl, timeout=60)                 # raises TimeoutError with the status
        leecher.stats(hl)   # {"progress": 1.0, "downloaded": .., "uploaded": .., "peers": .., "state": ..}
        # without a tracker: leecher.connect(hl, "127.0.0.1", seeder.port)

Each ``wait_*`` raises :class:`TimeoutError` including the torrent status and the last error alerts.

For benchmarks that need per-process CPU and RSS there is a subprocess runner, :mod:`interop.harness.lt_runner`
(``python lt_runner.py get|seed ...`` prints JSON lines). Use :func:`runner_command` to build its command line.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

RUNNER = Path(__file__).with_name("lt_runner.py")


def settings_pack(listen_ip: str = "127.0.0.1", port: int = 0, *, dht: bool = False) -> dict[str, Any]:
    """libtorrent settings for tests and benchmarks (see the module docstring)."""
    import libtorrent as lt

    host = f"[{listen_ip}]" if ":" in listen_ip else listen_ip
    s: dict[str, Any] = {
        "listen_interfaces": f"{host}:{port}",
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "enable_dht": dht,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification
        | lt.alert.category_t.storage_notification,
        "user_agent": "shoal-test-libtorrent",
        # Announce to every tracker and tier, quickly: tests are short.
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "min_reconnect_time": 1,
        "peer_connect_timeout": 5,
        "tracker_completion_timeout": 10,
        "tracker_receive_timeout": 5,
        # Closing a session waits this long for the answers to its "stopped" announces (default 5 s; over UDP
        # the answer never comes once it is closing). The announces are still sent.
        "stop_tracker_timeout": 1,
    }
    if dht:
        s.update(
            {
                "dht_bootstrap_nodes": "",
                "dht_restrict_routing_ips": False,
                "dht_restrict_search_ips": False,
                "dht_enforce_node_id": False,
                "dht_prefer_verified_node_ids": False,
            }
        )
    return s


class LtSession:
    """One libtorrent session; see the module docstring."""

    def __init__(
        self,
        listen_ip: str = "127.0.0.1",
        port: int = 0,
        *,
        dht: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> None:
        import libtorrent as lt

        self.lt = lt
        self.listen_ip = listen_ip
        pack = settings_pack(listen_ip, port, dht=dht)
        pack.update(settings or {})
        self.session = lt.session(pack)
        self.errors: list[str] = []
        self.announced: set[str] = set()  # hex v1 info-hashes with a tracker reply
        self._flushes: dict[str, int] = {}  # hex v1 info-hash -> cache_flushed_alerts seen
        deadline = time.monotonic() + 10
        while self.session.listen_port() == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"libtorrent did not listen on {listen_ip}: {self._drain_text()}")
            self.pump(0.05)
        self.port: int = int(self.session.listen_port())

    # -- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Abort the session (libtorrent stops its threads when the object goes away)."""
        s = getattr(self, "session", None)
        if s is not None:
            for h in s.get_torrents():
                s.remove_torrent(h)
            del self.session
            del s

    def __enter__(self) -> LtSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- torrents --------------------------------------------------------------------------------------------
    def add(
        self,
        torrent: Path | bytes,
        save_path: Path,
        *,
        seed: bool = False,
        seed_mode: bool = False,
        peers: list[tuple[str, int]] | None = None,
        upload_only: bool = False,
    ) -> Any:
        """Add a torrent; returns the ``torrent_handle``.

        ``seed``: the data is in ``save_path``; libtorrent checks it and then seeds (waits until checked).
        ``seed_mode``: trust the data without checking (benchmarks; libtorrent verifies pieces as it sends).
        ``peers``: connect to these (ip, port) directly too.
        """
        lt = self.lt
        save_path.mkdir(parents=True, exist_ok=True)
        atp = lt.add_torrent_params()
        if isinstance(torrent, bytes):
            atp.ti = lt.torrent_info(lt.bdecode(torrent))
        else:
            atp.ti = lt.torrent_info(str(torrent))
        atp.save_path = str(save_path)
        flags = atp.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
        if seed_mode:
            flags |= lt.torrent_flags.seed_mode
        if upload_only:
            flags |= lt.torrent_flags.upload_mode
        atp.flags = flags
        h = self.session.add_torrent(atp)
        if seed and not seed_mode:
            self.wait(lambda: h.status().is_seeding, timeout=60, what="seeder to check its data", handle=h)
        for ip, port in peers or []:
            h.connect_peer((ip, port))
        return h

    def connect(self, handle: Any, ip: str, port: int) -> None:
        handle.connect_peer((ip, port))

    def add_dht_node(self, ip: str, port: int) -> None:
        self.session.add_dht_node((ip, port))

    # -- waiting ---------------------------------------------------------------------------------------------
    def pump(self, timeout: float = 0.1) -> None:
        """Wait up to ``timeout`` for alerts and record errors and tracker replies."""
        lt = self.lt
        self.session.wait_for_alert(int(timeout * 1000))
        for a in self.session.pop_alerts():
            if isinstance(a, lt.tracker_reply_alert):
                self.announced.add(str(a.handle.info_hashes().v1))
            elif isinstance(a, lt.cache_flushed_alert):
                ih = str(a.handle.info_hashes().v1)
                self._flushes[ih] = self._flushes.get(ih, 0) + 1
            elif a.category() & lt.alert.category_t.error_notification:
                self.errors.append(f"{type(a).__name__}: {a.message()}")
                del self.errors[:-20]
                logger.debug("libtorrent: %s", a.message())

    def _drain_text(self) -> str:
        return "; ".join(self.errors[-5:])

    def wait(self, predicate: Any, *, timeout: float, what: str, handle: Any = None) -> None:
        """Pump alerts until ``predicate()`` is true, or raise TimeoutError with status and recent errors."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                status = self.stats(handle) if handle is not None else {}
                raise TimeoutError(
                    f"libtorrent: timed out after {timeout:g}s waiting for {what}; "
                    f"status {status}; errors: {self._drain_text()}"
                )
            self.pump(0.1)

    def wait_complete(self, handle: Any, *, timeout: float) -> dict[str, Any]:
        """Wait until the torrent has every piece (seeding) and its data is written; returns :meth:`stats`.

        libtorrent 2.1 reports a piece as had once it is hashed, possibly before its disk write: the files are
        complete only after :meth:`flush`, which this calls.
        """
        self.wait(
            lambda: handle.status().is_seeding, timeout=timeout, what="download to complete", handle=handle
        )
        self.flush(handle, timeout=timeout)
        return self.stats(handle)

    def flush(self, handle: Any, *, timeout: float = 30) -> None:
        """Wait until every block libtorrent has queued for this torrent is in its files.

        ``flush_cache`` queues a job that runs after the torrent's outstanding writes and posts cache_flushed_alert
        when done. (``save_resume_data(flush_disk_cache)`` is no such barrier: its alert is posted at once, and
        a comparison right after it once found a downloaded file that differed, in CI.) A cache_flushed_alert seen
        after this call started (libtorrent also flushes by itself when a torrent finishes) was posted by a job
        queued after the writes the caller is waiting for, so any new one will do.
        """
        ih = str(handle.info_hashes().v1)
        self.pump(0)
        seen = self._flushes.get(ih, 0)
        handle.flush_cache()
        self.wait(
            lambda: self._flushes.get(ih, 0) > seen,
            timeout=timeout,
            what="the disk cache to be flushed",
            handle=handle,
        )

    def wait_announced(self, handle: Any, *, timeout: float = 15) -> None:
        """Wait for a successful tracker reply for this torrent."""
        ih = str(handle.info_hashes().v1)
        self.wait(lambda: ih in self.announced, timeout=timeout, what="a tracker reply", handle=handle)

    def reannounce(self, handle: Any) -> None:
        handle.force_reannounce(0, -1)

    def stats(self, handle: Any) -> dict[str, Any]:
        st = handle.status()
        return {
            "state": str(st.state),
            "progress": float(st.progress),
            "downloaded": int(st.total_payload_download),
            "uploaded": int(st.total_payload_upload),
            "all_time_download": int(st.all_time_download),
            "all_time_upload": int(st.all_time_upload),
            "peers": int(st.num_peers),
            "seeds": int(st.num_seeds),
            "error": str(st.errc.message()) if st.errc.value() else "",
        }

    def peer_addresses(self, handle: Any) -> list[tuple[str, int]]:
        return [(str(p.ip[0]), int(p.ip[1])) for p in handle.get_peer_info()]


def runner_command(
    mode: str,
    torrent: Path,
    save_path: Path,
    *,
    listen_ip: str = "127.0.0.1",
    peers: list[tuple[str, int]] | None = None,
    seed_mode: bool = False,
    timeout: float = 300,
    python: str | None = None,
    connections_limit: int = 0,
    unchoke_slots: int = 0,
    disk_io_write_mode: str | None = None,
    trace: Path | None = None,
    trace_interval: float | None = None,
) -> list[str]:
    """The command line of :mod:`lt_runner` (``mode`` "get", "seed" or "many") for ``harness.proc.start``;
    ``trace``: the runner's benchmark diagnostics go to that file (``--trace``, every ``trace_interval`` s)."""
    cmd = [python or sys.executable, str(RUNNER), mode, str(torrent), str(save_path), "--listen", listen_ip]
    cmd += ["--timeout", str(timeout)]
    for ip, port in peers or []:
        cmd += ["--peer", f"{ip}:{port}"]
    if seed_mode:
        cmd.append("--seed-mode")
    if connections_limit:
        cmd += ["--connections-limit", str(connections_limit)]
    if unchoke_slots:
        cmd += ["--unchoke-slots", str(unchoke_slots)]
    if disk_io_write_mode:
        cmd += ["--disk-io-write-mode", disk_io_write_mode]
    if trace is not None:
        cmd += ["--trace", str(trace)]
        if trace_interval is not None:
            cmd += ["--trace-interval", str(trace_interval)]
    return cmd
