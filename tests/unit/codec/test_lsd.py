from __future__ import annotations

import pytest

from shoal.codec.lsd import LsdAnnounce, decode_announce, encode_announce
from shoal.errors import LocalProtocolError, RemoteProtocolError

IH = bytes(range(20))


def test_round_trip_with_cookie() -> None:
    (data,) = encode_announce([IH, b"\xff" * 20], 6881, cookie=b"abcd")
    assert data.startswith(b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n")
    assert data.endswith(b"\r\n\r\n")
    assert decode_announce(data) == LsdAnnounce(6881, (IH, b"\xff" * 20), b"abcd")


def test_ipv6_host_header() -> None:
    (data,) = encode_announce([IH], 1, v6=True)
    assert b"Host: [ff15::efc0:988f]:6771\r\n" in data


def test_many_hashes_split_into_datagrams_within_max_size() -> None:
    hashes = [i.to_bytes(20, "big") for i in range(100)]
    datagrams = encode_announce(hashes, 6881, max_size=1400)
    assert len(datagrams) > 1 and all(len(d) <= 1400 for d in datagrams)
    got = [h for d in datagrams for h in decode_announce(d, max_infohashes=100).info_hashes]
    assert got == hashes


def test_header_names_are_case_insensitive() -> None:
    data = (
        b"BT-SEARCH * HTTP/1.1\r\nhost: x\r\nPORT: 7\r\nINFOHASH: "
        + IH.hex().upper().encode()
        + b"\r\n\r\n\r\n"
    )
    assert decode_announce(data) == LsdAnnounce(7, (IH,), None)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"BT-SEARCH * HTTP/1.1\r\nPort: 7\r\n\r\n",  # no infohash
        b"BT-SEARCH * HTTP/1.1\r\nInfohash: " + IH.hex().encode() + b"\r\n\r\n",  # no port
        b"BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: " + IH.hex().encode() + b"\r\n",
        b"BT-SEARCH * HTTP/1.1\r\nPort: 65536\r\nInfohash: " + IH.hex().encode() + b"\r\n",
        b"BT-SEARCH * HTTP/1.1\r\nPort: 99999999999999999999\r\nInfohash: " + IH.hex().encode() + b"\r\n",
        b"BT-SEARCH * HTTP/1.1\r\nPort: 7\r\nInfohash: xyz\r\n",
        b"BT-SEARCH * HTTP/1.1\r\nPort: 7\r\ngarbage line\r\n",
        b"BT-SEARCH * HTTP/1.1\r\nPort: 7\r\nInfohash: " + IH.hex().encode() + b"\r\n" + b"x" * 1400,
    ],
)
def test_malformed(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_announce(data)


def test_infohash_count_limit_one_past() -> None:
    hashes = [i.to_bytes(20, "big") for i in range(5)]
    (data,) = encode_announce(hashes, 1)
    assert len(decode_announce(data, max_infohashes=5).info_hashes) == 5
    with pytest.raises(RemoteProtocolError):
        decode_announce(data, max_infohashes=4)


def test_encoder_refuses_bad_values() -> None:
    with pytest.raises(LocalProtocolError):
        encode_announce([IH], 0)
    with pytest.raises(LocalProtocolError):
        encode_announce([b"short"], 1)
