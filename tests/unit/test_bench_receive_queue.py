"""benchmarks/receive_queue.py: the downloader's receive queue out of /proc/net/tcp text (pure, made-up tables)."""

from __future__ import annotations

from benchmarks.receive_queue import FULL_BYTES, downloader_queues, summary

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def row(local_port: int, remote_port: int, state: str, rx_queue: int, tx_queue: int = 0) -> str:
    return (
        f"   0: 0100007F:{local_port:04X} 0100007F:{remote_port:04X} {state} {tx_queue:08X}:{rx_queue:08X}"
        " 00:00000000 00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1\n"
    )


def test_only_established_sockets_facing_a_seeder_count() -> None:
    table = (
        HEADER
        + row(6881, 0, "0A", 0)  # a listening socket
        + row(40000, 6881, "01", 3 * FULL_BYTES, tx_queue=17)  # the downloader's end: counted
        + row(6881, 40000, "01", 0, tx_queue=5 * FULL_BYTES)  # the seeder's end: its send queue is not ours
        + row(40001, 9999, "01", 777)  # another connection
        + row(40002, 6881, "06", 999)  # TIME_WAIT
    )
    assert downloader_queues(table, [6881]) == 3 * FULL_BYTES


def test_several_seeders_add_up_and_no_connection_is_none() -> None:
    table = HEADER + row(40000, 6881, "01", 100) + row(40001, 6882, "01", 23)
    assert downloader_queues(table, [6881, 6882]) == 123
    assert downloader_queues(table, [7000]) is None
    assert downloader_queues(HEADER, [6881]) is None


def test_summary_gives_the_lagging_share_and_the_mean() -> None:
    assert summary([0, FULL_BYTES, 2 * FULL_BYTES, 1024]) == (
        "receive queue >= 1 MiB in 50% of 4 samples (mean 768 KiB)"
    )
    assert summary([]) == "receive queue: no samples"
