"""Magnet URIs (BEP 9, BEP 53) and hostile magnets (RELIABILITY-CASES.md case 27)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.codec.magnet import Magnet
from shoal.config import Settings
from shoal.errors import MagnetError
from shoal.types import PeerAddr

V1 = bytes(range(20))
V2 = bytes(range(32))
HEX = V1.hex()


def test_hex_and_base32_btih() -> None:
    a = Magnet.parse(f"magnet:?xt=urn:btih:{HEX}")
    b = Magnet.parse("magnet:?xt=urn:btih:" + base64.b32encode(V1).decode())
    c = Magnet.parse("magnet:?xt=urn:btih:" + base64.b32encode(V1).decode().lower())
    assert a.info_hash_v1 == b.info_hash_v1 == c.info_hash_v1 == V1
    assert a.info_hash == V1


def test_btmh_and_hybrid() -> None:
    m = Magnet.parse(f"magnet:?xt=urn:btmh:1220{V2.hex()}")
    assert m.info_hash_v2 == V2
    assert m.info_hash_v1 is None
    assert m.info_hash == V2[:20]
    h = Magnet.parse(f"magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:1220{V2.hex()}")
    assert (h.info_hash_v1, h.info_hash_v2) == (V1, V2)


def test_all_parameters_round_trip() -> None:
    uri = (
        f"magnet:?xt=urn:btih:{HEX}&dn=My%20Film&tr=udp%3A%2F%2Ft1%3A80&tr.1=http://t2/announce"
        "&ws=https%3A%2F%2Fseed%2Ff&x.pe=1.2.3.4:6881&x.pe=[::1]:7000&so=0,2,4-6&foo=bar"
    )
    m = Magnet.parse(uri)
    assert m.display_name == "My Film"
    assert m.trackers == ["udp://t1:80", "http://t2/announce"]
    assert m.web_seeds == ["https://seed/f"]
    assert m.peers == [PeerAddr("1.2.3.4", 6881), PeerAddr("::1", 7000)]
    assert m.select_only == ((0, 0), (2, 2), (4, 6))
    assert [m.selects(i) for i in range(8)] == [True, False, True, False, True, True, True, False]
    assert Magnet.parse(m.to_uri()) == m


@given(
    v1=st.none() | st.binary(min_size=20, max_size=20),
    v2=st.binary(min_size=32, max_size=32),
    dn=st.none() | st.text(alphabet="abcXYZ019-_\u00e9\u00fc%&=+", min_size=1, max_size=20),
    trackers=st.lists(
        st.sampled_from(["http://a/announce", "udp://b:1", "https://c/x?y=1&z=2"]), unique=True
    ),
)
def test_round_trip_property(v1: bytes | None, v2: bytes, dn: str | None, trackers: list[str]) -> None:
    m = Magnet(v1, v2, dn, trackers)
    assert Magnet.parse(m.to_uri()) == m


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("http://example.com", "not a magnet"),
        ("magnet:?dn=x", "no usable xt"),
        ("magnet:?xt=urn:ed2k:abcd", "no usable xt"),
        (f"magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{'f' * 40}", "two different"),
        (f"magnet:?xt=urn:btih:{HEX[:-1]}", "39 characters"),
        ("magnet:?xt=urn:btih:" + "z" * 40, "not hex"),
        ("magnet:?xt=urn:btih:" + "1" * 32, "not base32"),
        ("magnet:?xt=urn:btmh:1114" + "00" * 20, "unsupported multihash"),
        ("magnet:?xt=urn:btmh:1220" + "00" * 31, "62 characters"),
        (f"magnet:?xt=urn:btih:{HEX}&so=0-999999999", "beyond max_file_count"),
        (f"magnet:?xt=urn:btih:{HEX}&so=5-1", "reversed"),
        (f"magnet:?xt=urn:btih:{HEX}&so=a", "bad so"),
        (f"magnet:?xt=urn:btih:{HEX}&x.pe=1.2.3.4:0", "bad peer"),
        (f"magnet:?xt=urn:btih:{HEX}&x.pe=no-port", "bad peer"),
        (f"magnet:?xt=urn:btih:{HEX}&dn=%ff", "not valid utf-8"),
        (f"magnet:?xt=urn:btih:{HEX}&so=\u00b2", "bad so"),  # a superscript passes str.isdigit
        (f"magnet:?xt=urn:btih:{HEX}&x.pe=1.2.3.4:\uff11", "bad peer"),
    ],
)
def test_hostile_magnets(uri: str, match: str) -> None:
    with pytest.raises(MagnetError, match=match):
        Magnet.parse(uri)


def test_filtered_trackers_and_names() -> None:
    uri = (
        f"magnet:?xt=urn:btih:{HEX}&dn=..%2F..%2Fx&tr=file:///etc/passwd&tr=gopher://g&tr=udp://ok:1"
        "&ws=ftp://f&ws=http://169.254.169.254/"
    )
    m = Magnet.parse(uri)
    assert m.display_name == ".._.._x"
    assert m.trackers == ["udp://ok:1"]
    assert m.web_seeds == ["http://169.254.169.254/"]  # address policy is the fetcher's job (case 39)
    assert Magnet.parse(f"magnet:?xt=urn:btih:{HEX}&dn=..").display_name is None


def test_tracker_cap_one_past() -> None:
    s = Settings(max_trackers=3)
    uri = f"magnet:?xt=urn:btih:{HEX}" + "".join(f"&tr=http://t{i}/a" for i in range(1000))
    assert len(Magnet.parse(uri, s).trackers) == 3


def test_peer_and_web_seed_caps() -> None:
    uri = f"magnet:?xt=urn:btih:{HEX}" + "".join(f"&x.pe=10.0.0.{i}:1&ws=http://w{i}/" for i in range(5))
    m = Magnet.parse(uri, Settings(max_magnet_peers=2, max_web_seeds=4))
    assert len(m.peers) == 2
    assert len(m.web_seeds) == 4


def test_length_limit_one_past() -> None:
    uri = f"magnet:?xt=urn:btih:{HEX}"
    assert Magnet.parse(uri, Settings(max_magnet_length=len(uri)))
    with pytest.raises(MagnetError, match="max_magnet_length"):
        Magnet.parse(uri, Settings(max_magnet_length=len(uri) - 1))


@given(st.text(max_size=200))
def test_garbage_only_raises_magnet_error(text: str) -> None:
    try:
        Magnet.parse("magnet:?" + text)
    except MagnetError:
        pass


def test_skeleton_completed_with_fetched_info() -> None:
    from shoal.codec import bencode
    from shoal.codec.metainfo import Metainfo
    from shoal.errors import MetainfoError
    from torrent_factory import build, content

    data = build({("a",): content(30000), ("b",): content(7)}, "hybrid", trackers=[["udp://t:1"]])
    m = Metainfo.from_bytes(data)
    raw = bencode.raw_value(data, b"info")
    assert raw is not None
    skeleton = Magnet.parse(Magnet.from_metainfo(m).to_uri() + "&ws=http://w/")
    full = skeleton.with_info(raw)
    assert (full.info_hash_v1, full.info_hash_v2, full.info) == (m.info_hash_v1, m.info_hash_v2, m.info)
    assert full.trackers == [["udp://t:1"]]
    assert full.web_seeds == ["http://w/"]
    v2_only = Magnet(info_hash_v2=m.info_hash_v2)
    assert v2_only.with_info(raw).info_hash == m.info_hash_v1  # hybrid: the v1 hash is the wire hash
    with pytest.raises(MetainfoError, match="does not match v1"):
        Magnet(info_hash_v1=bytes(20)).with_info(raw)
    with pytest.raises(MetainfoError, match="does not match v2"):
        Magnet(info_hash_v2=bytes(32)).with_info(raw)
