"""Validation never depends on ``assert`` (libtorrent audit F2): under ``python -O`` every parser gives the same
outcome (accepted, or the same error type) for every file of the committed fuzz corpora as it does normally."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fuzzkit import CORPUS_DIR, ROOT

SCRIPT = r"""
import json, sys
from pathlib import Path
from shoal.codec import bencode
from shoal.codec.magnet import Magnet
from shoal.codec.metainfo import InfoDict, Metainfo
from shoal.dht import krpc
from shoal.tracker.proto import http, udp
from shoal.wire.extension import decode_extension_handshake
from shoal.wire.messages import decode_frame

PARSERS = {
    "bencode": [lambda d: bencode.decode(d), lambda d: bencode.decode(d, strict=False),
                lambda d: bencode.raw_value(d, b"info")],
    "metainfo": [Metainfo.from_bytes, InfoDict.from_bytes],
    "magnet": [lambda d: Magnet.parse(d.decode("utf-8", "surrogateescape"))],
    "krpc": [krpc.decode],
    "tracker_http": [http.parse_announce, http.parse_scrape],
    "tracker_udp": [udp.decode_request, lambda d: udp.decode_announce_response(d, 12345)],
    "wire": [decode_frame],
    "extension": [lambda d: decode_extension_handshake(d[1:], max_metadata_size=1 << 20, max_reqq=500)],
}
out = {}
for target, fns in sorted(PARSERS.items()):
    for path in sorted((Path(sys.argv[1]) / target).iterdir()):
        data = path.read_bytes()
        for i, fn in enumerate(fns):
            try:
                fn(data)
                outcome = "ok"
            except Exception as exc:
                outcome = type(exc).__name__
            out[f"{target}/{path.name}/{i}"] = outcome
print(json.dumps(out))
"""


def _outcomes(*flags: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, *flags, "-c", SCRIPT, str(CORPUS_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    return dict(json.loads(proc.stdout))


def test_parsers_behave_the_same_under_python_O() -> None:
    normal = _outcomes()
    optimized = _outcomes("-O")
    assert normal, "no corpus files replayed"
    assert "AssertionError" not in normal.values()
    differ = {k: (normal[k], optimized.get(k)) for k in normal if normal[k] != optimized.get(k)}
    assert not differ, f"outcome changes under -O (validation by assert?): {differ}"
