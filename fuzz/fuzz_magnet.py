"""Fuzz target: magnet URIs (BEP 9, 53) through ``Magnet.parse``.

The input bytes are decoded as UTF-8 with surrogate escapes (so invalid UTF-8 reaches the parser as lone
surrogates) and parsed with and without a ``magnet:?`` prefix. Only ``MagnetError`` may come out. Checked on top
(case 27): an info-hash is present and has the right size; trackers are http/https/udp only and at most
``max_trackers``; web seeds http/https only; peers at most ``max_magnet_peers`` with ports 1-65535; ``dn`` is a safe
file name; ``to_uri()`` parses back to the same magnet.

Run: ``.venv/bin/python fuzz/fuzz_magnet.py -max_total_time=600 /tmp/corpus tests/fuzz/corpus/magnet``
"""

from __future__ import annotations

from shoal.codec.magnet import Magnet
from shoal.config import Settings
from shoal.errors import MagnetError
from shoal.testing.fuzzing import run

SETTINGS = Settings(max_trackers=5, max_web_seeds=3, max_magnet_peers=4, max_file_count=1000)


def _check(m: Magnet) -> None:
    assert m.info_hash_v1 is not None or m.info_hash_v2 is not None
    assert m.info_hash_v1 is None or len(m.info_hash_v1) == 20
    assert m.info_hash_v2 is None or len(m.info_hash_v2) == 32
    assert len(m.info_hash) == 20
    assert len(m.trackers) <= SETTINGS.max_trackers
    assert all(t.lower().startswith(("http://", "https://", "udp://")) for t in m.trackers), m.trackers
    assert len(m.web_seeds) <= SETTINGS.max_web_seeds
    assert all(w.lower().startswith(("http://", "https://")) for w in m.web_seeds), m.web_seeds
    assert len(m.peers) <= SETTINGS.max_magnet_peers
    assert all(0 < p.port <= 0xFFFF for p in m.peers)
    if m.display_name is not None:
        name = m.display_name
        assert name not in ("", ".", "..") and "/" not in name and "\\" not in name and "\x00" not in name, (
            name
        )


def _parse(uri: str) -> None:
    try:
        m = Magnet.parse(uri, SETTINGS)
    except MagnetError:
        return
    _check(m)
    again = Magnet.parse(m.to_uri(), SETTINGS)
    assert again.info_hash == m.info_hash
    assert again.trackers == m.trackers


def TestOneInput(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    _parse(text)
    _parse("magnet:?" + text)


if __name__ == "__main__":
    run(TestOneInput)
