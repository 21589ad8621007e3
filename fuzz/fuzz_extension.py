"""Fuzz target: BEP 10 extension payloads: the extended handshake, ut_metadata (BEP 9) and ut_pex (BEP 11).

The first byte picks the parser, the rest is the payload. Only ``PeerProtocolError`` may come out. Checked on top:

* extended handshake: ``metadata_size`` is within ``1..max_metadata_size``, ``reqq`` within ``1..max_reqq``, ids
  in ``1..255`` (cases 23, 25);
* ut_metadata: a data message carries exactly the bytes of its piece; a :class:`MetadataFetcher` fed a stream of
  hostile messages from several peers never returns info that fails the hash (case 26) and never holds more than
  ``max_metadata_size`` bytes;
* ut_pex: at most ``max_peers`` added and dropped peers, ports in range (case 23).

Run: ``.venv/bin/python fuzz/fuzz_extension.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/extension``
"""

from __future__ import annotations

import hashlib

from shoal.errors import PeerProtocolError
from shoal.testing.fuzzing import run
from shoal.wire.extension import decode_extension_handshake
from shoal.wire.metadata import MetadataData, MetadataFetcher, decode_metadata_message, metadata_piece_length
from shoal.wire.pex import decode_pex

MAX_METADATA = 64 * 1024
MAX_REQQ = 2000
MAX_PEX = 50
INFO = b"d6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:" + b"\x01" * 20 + b"e"
INFO_HASH = hashlib.sha1(INFO).digest()


def _handshake(payload: bytes) -> None:
    hs = decode_extension_handshake(payload, max_metadata_size=MAX_METADATA, max_reqq=MAX_REQQ)
    assert hs.metadata_size is None or 0 < hs.metadata_size <= MAX_METADATA
    assert hs.reqq is None or 1 <= hs.reqq <= MAX_REQQ
    assert all(0 < v <= 255 for v in hs.m.values())
    assert hs.p is None or 0 < hs.p <= 0xFFFF


def _metadata(payload: bytes) -> None:
    msg = decode_metadata_message(payload, max_metadata_size=MAX_METADATA)
    if isinstance(msg, MetadataData):
        assert 0 < msg.total_size <= MAX_METADATA
        assert len(msg.data) == metadata_piece_length(msg.total_size, msg.piece)


def _fetch(stream: bytes) -> None:
    """A sequence of ut_metadata payloads, each ``peer byte, 2-byte length, payload``, into one fetcher."""
    fetcher = MetadataFetcher(INFO_HASH, MAX_METADATA)
    pos = 0
    now = 0.0
    while pos + 3 <= len(stream):
        peer = stream[pos] % 4
        n = int.from_bytes(stream[pos + 1 : pos + 3], "big")
        payload = stream[pos + 3 : pos + 3 + n]
        pos += 3 + n
        now += 1.0
        fetcher.set_size(len(INFO) if peer == 0 else n, peer)
        fetcher.next_request(peer, now)
        try:
            msg = decode_metadata_message(payload, max_metadata_size=MAX_METADATA)
            if isinstance(msg, MetadataData):
                result = fetcher.on_data(peer, msg.piece, msg.total_size, msg.data)
                if result is not None and result.info is not None:
                    assert hashlib.sha1(result.info).digest() == INFO_HASH, (
                        "accepted metadata with a wrong hash"
                    )
        except PeerProtocolError:
            fetcher.peer_lost(peer)
        assert (fetcher.total_size or 0) <= MAX_METADATA


def _pex(payload: bytes) -> None:
    msg = decode_pex(payload, max_peers=MAX_PEX)
    assert len(msg.added) <= MAX_PEX and len(msg.dropped) <= MAX_PEX
    for peer in msg.added:
        assert 0 <= peer.addr.port <= 0xFFFF and 0 <= peer.flags <= 0xFF
    for addr in msg.dropped:
        assert 0 <= addr.port <= 0xFFFF


PARSERS = (_handshake, _metadata, _fetch, _pex)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    try:
        PARSERS[data[0] % len(PARSERS)](data[1:])
    except PeerProtocolError:
        pass


if __name__ == "__main__":
    run(TestOneInput)
