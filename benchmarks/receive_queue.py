"""Who sets the pace of a download on loopback: the downloader's socket receive queue, sampled from ``/proc/net/tcp``.

When a downloader keeps up, its receive queue is near empty whenever it is sampled: the sender (or what feeds the
sender) sets the pace. When the downloader lags, the queue sits near the socket's receive buffer, megabytes deep,
and the sender waits for the window to open. :class:`ReceiveQueueSampler` reads the kernel's table every 50 ms
while a download runs (each read costs ~3 ms of CPU on this 24 GiB machine: the kernel walks its whole
connection hash table, sized by memory, however few sockets there are) and keeps, for each sample, the bytes queued at the downloader's end of its connections to
the seeders (the sockets whose remote port is a seeder's), summed; :func:`summary` says in what share of the
samples that was at least :data:`FULL_BYTES` ("lagging") and what it was on average.

The parsing is pure (:func:`downloader_queues`, tested with made-up tables in
``tests/unit/test_bench_receive_queue.py``); only the sampler reads ``/proc``. IPv4 and IPv6 tables are both read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

FULL_BYTES = 1 << 20  # a receive queue this deep means the downloader, not the sender, is behind
ESTABLISHED = "01"
TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def downloader_queues(table: str, seeder_ports: Iterable[int]) -> int | None:
    """The receive queues of the established sockets in ``table`` (the text of ``/proc/net/tcp`` or ``tcp6``) whose
    remote port is one of ``seeder_ports``, summed; None when there is no such socket (no connection yet)."""
    ports = set(seeder_ports)
    total: int | None = None
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or fields[3] != ESTABLISHED:
            continue
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if remote_port not in ports:
            continue
        rx_queue = int(fields[4].split(":", 1)[1], 16)
        total = rx_queue if total is None else total + rx_queue
    return total


def summary(samples: list[int]) -> str:
    """One phrase for a run: the share of samples at :data:`FULL_BYTES` or more, and the mean queue."""
    if not samples:
        return "receive queue: no samples"
    lagging = sum(1 for q in samples if q >= FULL_BYTES) / len(samples)
    mean_kib = sum(samples) / len(samples) / 1024
    return f"receive queue >= 1 MiB in {lagging:.0%} of {len(samples)} samples (mean {mean_kib:.0f} KiB)"


class ReceiveQueueSampler:
    """Samples :func:`downloader_queues` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, seeder_ports: Iterable[int], interval: float = 0.05) -> None:
        self.ports = list(seeder_ports)
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            total: int | None = None
            for path in TABLES:
                try:
                    queued = downloader_queues(path.read_text(), self.ports)
                except OSError:
                    continue
                if queued is not None:
                    total = queued if total is None else total + queued
            if total is not None:
                self.samples.append(total)
            time.sleep(self.interval)

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(5)
        return self.samples
