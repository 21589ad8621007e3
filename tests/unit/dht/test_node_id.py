from __future__ import annotations

import random

import pytest

from shoal.dht.node_id import (
    bep42_id,
    bep42_valid,
    common_prefix_bits,
    crc32c,
    distance,
    is_local_ip,
    random_id_in_bucket,
)

# BEP 42 test vectors: IP, rand, example node id
VECTORS = [
    ("124.31.75.21", 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
    ("21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
    ("65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
    ("84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
    ("43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
]


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize(("ip", "rand", "example"), VECTORS)
def test_bep42_vectors_verify(ip: str, rand: int, example: str) -> None:
    assert bep42_valid(bytes.fromhex(example), ip)


@pytest.mark.parametrize(("ip", "rand", "example"), VECTORS)
def test_bep42_generated_ids_match_vectors(ip: str, rand: int, example: str) -> None:
    node_id = bep42_id(ip, random.Random(5), r=rand)
    # the first 21 bits and the last byte are fixed by the BEP; the rest is random
    assert node_id.hex()[:5] == example[:5]
    assert node_id[2] & 0xF8 == bytes.fromhex(example)[2] & 0xF8
    assert node_id[19] == rand
    assert bep42_valid(node_id, ip)


def test_bep42_rejects_id_for_another_ip() -> None:
    node_id = bytes.fromhex(VECTORS[0][2])
    assert not bep42_valid(node_id, "124.31.75.22") or not bep42_valid(node_id, "8.8.8.8")
    assert not bep42_valid(node_id, "8.8.8.8")
    assert not bep42_valid(node_id[:19], VECTORS[0][0])


def test_bep42_ipv6_round_trip() -> None:
    node_id = bep42_id("2001:db8::1", random.Random(1))
    assert bep42_valid(node_id, "2001:db8::1")
    assert not bep42_valid(node_id, "2a00:1450::1")


@pytest.mark.parametrize("ip", ["10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.1.1", "127.0.0.1", "::1"])
def test_local_addresses_are_exempt(ip: str) -> None:
    assert is_local_ip(ip)
    assert bep42_valid(b"\x00" * 20, ip)


def test_distance_and_prefix() -> None:
    a = b"\x00" * 20
    b = b"\x80" + b"\x00" * 19
    assert distance(a, b) == 1 << 159
    assert common_prefix_bits(a, b) == 0
    assert common_prefix_bits(a, a) == 160


def test_random_id_in_bucket_has_exact_prefix() -> None:
    rng = random.Random(3)
    own = bytes(range(20))
    for bits in (0, 1, 7, 40, 159):
        assert common_prefix_bits(own, random_id_in_bucket(own, bits, rng)) == bits
