"""Hostile magnet URIs (case 27): only MagnetError, schemes filtered, counts capped, dn a safe name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import HOSTILE, corpus_files, load_target, mutate, peak_memory
from shoal.codec.magnet import Magnet
from shoal.config import Settings
from shoal.errors import MagnetError

TARGET = load_target("magnet")
SEEDS = [p.read_bytes() for p in corpus_files("magnet")]
HASH = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"

keys = st.sampled_from(["xt", "dn", "tr", "tr.1", "ws", "x.pe", "so", "XT", "x.pe.2", "", "kt"])
values = st.sampled_from(
    [
        f"urn:btih:{HASH}",
        "urn:btih:" + "A" * 32,
        "urn:btmh:1220" + "ab" * 32,
        "urn:btmh:1114" + "ab" * 32,
        "urn:btih:xyz",
        "../../x",
        "..",
        "%2e%2e",
        "%00",
        "%ff",
        "http://t/a",
        "udp://t:1",
        "file:///etc/passwd",
        "gopher://x",
        "javascript:alert(1)",
        "http://169.254.169.254/",
        "[::1]:6881",
        "1.2.3.4:0",
        "host:1",
        "0-999999999",
        "5-1",
        "-1",
        "0,1,,2",
        "\udcc9",
        "é",
        "\u202eexe.avi",
        "x" * 300,
    ]
) | st.text(max_size=20)


@HOSTILE
@given(st.lists(st.tuples(keys, values), max_size=8))
def test_structured_hostile_magnet(params: list[tuple[str, str]]) -> None:
    uri = "magnet:?" + "&".join(f"{k}={v}" for k, v in params)
    TARGET.TestOneInput(uri.encode("utf-8", "surrogateescape"))


@HOSTILE
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_magnets(seed: bytes, data: st.DataObject) -> None:
    TARGET.TestOneInput(mutate(seed, data.draw))


@HOSTILE
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    for uri in (text, "magnet:?" + text):
        try:
            Magnet.parse(uri)
        except MagnetError:
            pass


def test_fuzz_finding_magnet_lone_surrogate() -> None:
    """atheris found a lone surrogate in ``dn`` (undecodable bytes in sys.argv) raising UnicodeEncodeError."""
    with pytest.raises(MagnetError):
        Magnet.parse(f"magnet:?xt=urn:btih:{HASH}&dn=\udcc9h")
    with pytest.raises(MagnetError):
        Magnet.parse(f"magnet:?xt=urn:btih:{HASH}&tr=http://\udcc9/announce")


def test_ten_thousand_trackers_cost_nothing() -> None:
    s = Settings()
    uri = f"magnet:?xt=urn:btih:{HASH}" + "".join(f"&tr=http://t{i}.example/a" for i in range(3000))
    uri = uri[: s.max_magnet_length]
    m = Magnet.parse(uri, s)
    assert len(m.trackers) == s.max_trackers
    too_long = uri + "&tr=http://x/" + "a" * s.max_magnet_length
    with pytest.raises(MagnetError):
        Magnet.parse(too_long, s)
    assert peak_memory(lambda: Magnet.parse(uri, s)) < 8 * len(uri) + 1_000_000
