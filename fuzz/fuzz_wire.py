"""Fuzz target: peer-wire bytes (BEP 3/6/10): the handshake and the length-prefixed message stream.

The input is split as the network might split it (chunk sizes come from the first byte), fed to a
:class:`shoal.wire.framing.FrameReader` with a small ``max_message_size``, and every complete frame is decoded with
:func:`shoal.wire.messages.decode_message`. Only ``PeerProtocolError`` may come out. Checked on top:

* the reader's buffer never grows past ``max_message_size`` plus its initial capacity (case 15);
* a decoded message re-encodes to exactly the frame it came from;
* a 68-byte prefix either decodes as a handshake that re-encodes identically, or raises.

Run: ``.venv/bin/python fuzz/fuzz_wire.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/wire``
"""

from __future__ import annotations

from shoal.errors import PeerProtocolError
from shoal.testing.fuzzing import run
from shoal.wire.framing import KEEPALIVE_ID, FrameReader
from shoal.wire.handshake import HANDSHAKE_SIZE, decode_handshake, encode_handshake
from shoal.wire.messages import decode_message

MAX_MESSAGE_SIZE = 16 * 1024 + 13
CAPACITY = 4096


def _handshake(data: bytes) -> None:
    try:
        hs = decode_handshake(data[:HANDSHAKE_SIZE])
    except PeerProtocolError:
        return
    assert encode_handshake(hs.info_hash, hs.peer_id, hs.reserved) == data[:HANDSHAKE_SIZE]


def _stream(data: bytes) -> None:
    chunk = 1 + (data[0] % 64) if data else 1
    reader = FrameReader(MAX_MESSAGE_SIZE, capacity=CAPACITY)
    pos = 0
    try:
        while pos < len(data):
            reader.feed(data[pos : pos + chunk])
            pos += chunk
            assert reader.capacity <= MAX_MESSAGE_SIZE + 4 + CAPACITY, f"buffer grew to {reader.capacity}"
            while (frame := reader.next_frame()) is not None:
                msg_id, start, end = frame
                payload = bytes(reader.buffer[start:end])
                msg = decode_message(msg_id, payload)
                if msg_id == KEEPALIVE_ID:
                    assert msg.encode() == b"\x00\x00\x00\x00"
                else:
                    assert msg.encode() == (len(payload) + 1).to_bytes(4, "big") + bytes([msg_id]) + payload
    except PeerProtocolError:
        pass


def TestOneInput(data: bytes) -> None:
    _handshake(data)
    _stream(data)
    if len(data) > HANDSHAKE_SIZE:
        _stream(data[HANDSHAKE_SIZE:])


if __name__ == "__main__":
    run(TestOneInput)
