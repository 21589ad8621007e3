from __future__ import annotations

import pytest

from shoal.errors import PeerProtocolError
from shoal.wire.extension import ExtensionHandshake, decode_extension_handshake, encode_extension_handshake

MAX_MD = 4 * 1024 * 1024


def decode(raw: bytes, max_reqq: int = 2000) -> ExtensionHandshake:
    return decode_extension_handshake(raw, max_metadata_size=MAX_MD, max_reqq=max_reqq)


def test_literal_libtorrent_style() -> None:
    raw = (
        b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e"
        b"11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi500e11:upload_onlyi1e"
        b"1:v17:libtorrent/2.0.116:yourip4:\x7f\x00\x00\x01e"
    )
    hs = decode(raw)
    assert hs.m["ut_metadata"] == 2 and hs.m["ut_pex"] == 1 and hs.m["lt_donthave"] == 7
    assert hs.metadata_size == 31235 and hs.p == 6881 and hs.reqq == 500 and hs.upload_only
    assert hs.v == "libtorrent/2.0.11" and hs.yourip == b"\x7f\x00\x00\x01"
    assert hs.raw[b"complete_ago"] == -1


def test_encode_round_trip() -> None:
    raw = encode_extension_handshake(
        {"ut_metadata": 1, "ut_pex": 2},
        p=51413,
        reqq=250,
        yourip=b"\x01\x02\x03\x04",
        metadata_size=99,
        upload_only=True,
    )
    hs = decode(raw)
    assert (hs.m, hs.p, hs.reqq, hs.yourip, hs.metadata_size, hs.upload_only, hs.v) == (
        {"ut_metadata": 1, "ut_pex": 2},
        51413,
        250,
        b"\x01\x02\x03\x04",
        99,
        True,
        "Shoal 0.1.0",
    )


def test_metadata_size_limit_one_past() -> None:
    assert decode(b"d13:metadata_sizei%dee" % MAX_MD).metadata_size == MAX_MD
    assert decode(b"d13:metadata_sizei%dee" % (MAX_MD + 1)).metadata_size is None  # ignored, not fatal
    assert decode(b"d13:metadata_sizei0ee").metadata_size is None
    assert decode(b"d13:metadata_sizei-5ee").metadata_size is None


def test_reqq_clamped() -> None:
    assert decode(b"d4:reqqi2001ee").reqq == 2000
    assert decode(b"d4:reqqi0ee").reqq == 1
    assert decode(b"d4:reqqi-9ee").reqq == 1


def test_bad_fields_ignored() -> None:
    hs = decode(b"d1:md1:ai0e1:bi256e1:ci-1e1:d3:str1:ei255ee1:pi70000e1:v3:\xff\xfe\xfd6:yourip3:abce")
    assert hs.m == {"e": 255}
    assert hs.p is None and hs.yourip is None
    assert hs.v is not None
    assert decode(b"d1:mi5e1:pi0ee").m == {}


def test_client_name_cut() -> None:
    hs = decode(b"d1:v200:" + b"x" * 200 + b"e")
    assert hs.v == "x" * 64


def test_unsorted_keys_accepted() -> None:
    assert decode(b"d1:pi1e1:md6:ut_pexi3eee").m == {"ut_pex": 3}


@pytest.mark.parametrize(
    "raw", [b"", b"le", b"i1e", b"d1:m", b"d1:md1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:adeeeeeeeeeeee"]
)
def test_not_a_dictionary(raw: bytes) -> None:
    with pytest.raises(PeerProtocolError):
        decode(raw)


def test_merge() -> None:
    first = decode(b"d1:md11:ut_metadatai1e6:ut_pexi2ee1:v3:abce")
    second = decode(b"d1:md6:ut_pexi0e5:lt_xxi9eee")
    merged = first.merge(second)
    assert merged.m == {"ut_metadata": 1, "lt_xx": 9}
    assert merged.v == "abc"
