"""Fuzz target: KRPC datagrams (BEP 5, 32, 42, 43, 51): the decoder and a whole ``DhtNode`` receiving them.

Only ``KrpcError`` may come out of :func:`shoal.dht.krpc.decode`; nothing at all may come out of
``DhtNode.receive_datagram`` (a UDP handler must survive any datagram, case 28). Checked on top:

* a decoded message re-encodes to something that decodes to the same message;
* every datagram the node sends is a valid KRPC message no larger than ``dht_max_datagram_size``, and an error
  reply is never sent for a response or an error (no ping-pong).

The input is a sequence of datagrams: ``source byte, 2-byte length, datagram``; the source byte picks one of a few
IPv4/IPv6 addresses so the rate limiter and routing table see repeat senders.

Run: ``.venv/bin/python fuzz/fuzz_krpc.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/krpc``
"""

from __future__ import annotations

import random

from shoal.config import Settings
from shoal.dht import krpc
from shoal.dht.node import DhtNode
from shoal.errors import KrpcError
from shoal.testing.fuzzing import run

SETTINGS = Settings()
SOURCES = [("10.0.0.1", 6881), ("10.0.0.2", 1), ("192.168.1.9", 65535), ("2001:db8::1", 6881), ("::1", 4000)]
NODE_ID = bytes(range(20))


def _decode(data: bytes) -> None:
    try:
        msg = krpc.decode(data)
    except KrpcError:
        return
    assert krpc.decode(krpc.encode(msg)) == msg


def _node(stream: bytes) -> None:
    node = DhtNode(SETTINGS, random.Random(0), 0.0, node_id=NODE_ID)
    now = 0.0
    pos = 0
    while pos + 3 <= len(stream):
        addr = SOURCES[stream[pos] % len(SOURCES)]
        n = int.from_bytes(stream[pos + 1 : pos + 3], "big")
        datagram = stream[pos + 3 : pos + 3 + n]
        pos += 3 + n
        now += 0.5
        node.receive_datagram(datagram, addr, now)
        node.handle_timer(now)
        for out, _ in node.datagrams_to_send(now):
            assert len(out) <= SETTINGS.dht_max_datagram_size, f"sent a datagram of {len(out)} bytes"
            sent = krpc.decode(out, max_size=SETTINGS.dht_max_datagram_size)
            if isinstance(sent, krpc.Error):
                assert b"1:y1:r" not in datagram and b"1:y1:e" not in datagram, (
                    "answered a reply with an error"
                )
        while node.next_event() is not None:
            pass


def TestOneInput(data: bytes) -> None:
    _decode(data)
    _node(data)


if __name__ == "__main__":
    run(TestOneInput)
