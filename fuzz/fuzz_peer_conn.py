"""Fuzz target: a whole ``PeerConnection`` fed a hostile byte stream (libtorrent's ``peer_conn`` fuzzer idea).

The first input byte picks the side (initiator or acceptor) and whether the torrent is known (magnet mode, no
piece count); the rest is what the peer sends, cut into chunks the way a socket might. We answer the way the
engine would: ``accept()`` on ``HandshakeReceived``, a few requests once unchoked. Violations must come out as a
terminal ``ProtocolViolation`` or ``ConnectionClosed`` *event*; ``next_event``/``receive_data`` may raise nothing.
Checked on top:

* nothing is delivered after the terminal event;
* every ``BlockReceived`` is a block we requested, at most ``max_request_length`` long (case 19);
* the peer's queued requests never exceed ``max_pending_requests`` (case 20);
* the receive buffer stays below ``max_message_size`` plus one read chunk (case 15).

Run: ``.venv/bin/python fuzz/fuzz_peer_conn.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/peer_conn``
"""

from __future__ import annotations

from shoal.config import Settings
from shoal.testing.fuzzing import run
from shoal.wire import events as ev
from shoal.wire.connection import PeerConnection

SETTINGS = Settings(max_message_size=64 * 1024, max_pending_requests=20)
INFO_HASH = b"I" * 20
OUR_ID = b"-SH0100-ourpeerid000"
PIECE_LENGTH = 32 * 1024
NUM_PIECES = 10
TOTAL = PIECE_LENGTH * NUM_PIECES - 1000
TERMINAL = (ev.ProtocolViolation, ev.ConnectionClosed)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0], data[1:]
    initiator = bool(mode & 1)
    known = not (mode & 2)
    chunk = 5 + (mode >> 2) * 97
    conn = PeerConnection(
        INFO_HASH if initiator or known else None,
        OUR_ID,
        initiator=initiator,
        num_pieces=NUM_PIECES if known else None,
        piece_length=PIECE_LENGTH if known else None,
        total_length=TOTAL if known else None,
        settings=SETTINGS,
    )
    if initiator:
        conn.initiate()
    requested: set[tuple[int, int, int]] = set()
    finished = False
    now = 0.0
    for pos in range(0, len(body) + 1, chunk):
        now += 0.25
        conn.receive_data(body[pos : pos + chunk] or b"", now)  # the last call is end of stream
        assert conn.buffered_bytes <= SETTINGS.max_message_size + 4 + chunk
        while (event := conn.next_event()) is not None:
            assert not finished, f"{event!r} after the terminal event"
            if isinstance(event, TERMINAL):
                finished = True
            elif isinstance(event, ev.HandshakeReceived):
                if event.info_hash != INFO_HASH:
                    return  # the listener drops an unknown info-hash (accept() refuses a different one)
                conn.accept(INFO_HASH, NUM_PIECES, piece_length=PIECE_LENGTH, total_length=TOTAL)
            elif isinstance(event, ev.PeerUnchoked) and known and not requested:
                for offset in (0, 16384):
                    conn.request(0, offset, 16384)
                    requested.add((0, offset, 16384))
            elif isinstance(event, ev.BlockReceived):
                key = (event.piece, event.offset, len(event.data))
                assert key in requested, f"unrequested block {key} delivered"
                assert len(event.data) <= SETTINGS.max_request_length
            assert len(conn.peer_requests) <= SETTINGS.max_pending_requests
        conn.data_to_send()
        conn.handle_timer(now)
        if finished:
            return


if __name__ == "__main__":
    run(TestOneInput)
