"""The BitTorrent peer wire protocol, sans-IO (bytes and ``now`` in; bytes and events out).

* :mod:`~shoal.wire.connection` ``PeerConnection``: one connection's state machine (start here);
* :mod:`~shoal.wire.events`     what it reports (``BlockReceived``, ``PeerChoked``, ``ProtocolViolation`` ...);
* :mod:`~shoal.wire.messages`   one dataclass per message, ``encode()``, the decode table keyed by id;
* :mod:`~shoal.wire.framing`    ``FrameReader``: length-prefixed frames with limits checked before buffering;
* :mod:`~shoal.wire.handshake`  BEP 3 handshake, reserved bits, BEP 20 peer ids, BEP 6 allowed-fast set;
* :mod:`~shoal.wire.extension`  BEP 10 extended handshake;
* :mod:`~shoal.wire.metadata`   BEP 9 ut_metadata messages, ``MetadataFetcher``, ``MetadataServer``;
* :mod:`~shoal.wire.pex`        BEP 11 ut_pex messages, caps and rate limit.

The lying-peer harness for tests is :mod:`shoal.testing.fake_peer`.
"""
