"""MSE/PE answering side: the DH exchange, synchronisation, torrent lookup and plaintext selection, byte by byte."""

from __future__ import annotations

import random

import pytest

from helpers import INFO_HASH, MseInitiator
from shoal.errors import DisconnectReason, PeerProtocolError
from shoal.wire.handshake import PREFIX
from shoal.wire.mse import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    KEY_SIZE,
    MAX_PAD,
    RC4,
    CipherFactory,
    MseResponder,
    P,
    req2_hash,
)

HANDSHAKE = PREFIX + bytes(8) + INFO_HASH + b"-XX0000-" + bytes(12)


def lookup(h: bytes) -> bytes | None:
    return INFO_HASH if h == req2_hash(INFO_HASH) else None


def feed(r: MseResponder, data: bytes, chunk: int) -> bytes:
    out = b""
    for i in range(0, len(data), chunk):
        r.receive_data(data[i : i + chunk])
        out += r.data_to_send()
    return out


def test_rc4_known_answer() -> None:
    assert RC4(b"Key", discard=0).crypt(b"Plaintext").hex() == "bbf316e8d940af0ad3"
    assert RC4(b"Secret", discard=0).crypt(b"Attack at dawn").hex() == "45a01f645fc35b383552544b9bf5"


@pytest.mark.parametrize("chunk", [1, 7, 4096])
@pytest.mark.parametrize("ia", [b"", HANDSHAKE])
def test_handshake_agrees_on_plaintext(chunk: int, ia: bytes) -> None:
    a = MseInitiator(random.Random(1))
    r = MseResponder(lookup, random.Random(2))
    reply = feed(r, a.step1(), chunk)
    assert len(reply) >= KEY_SIZE and not r.done
    trailing = b"\x00\x00\x00\x01\x02"  # the peer's first plaintext message, right behind
    reply2 = feed(r, a.step3(reply[:KEY_SIZE], ia=ia) + trailing, chunk)
    assert r.done and not r.plaintext and r.info_hash == INFO_HASH
    select, after = a.read_reply(reply[KEY_SIZE:] + reply2)
    assert select == CRYPTO_PLAINTEXT and after == b""
    assert r.payload() == ia + trailing
    r.receive_data(b"more")
    assert r.payload() == b"more"


@pytest.mark.parametrize("chunk", [1, 3, 68])
def test_plain_handshake_passes_through(chunk: int) -> None:
    r = MseResponder(lookup, random.Random(2))
    assert feed(r, HANDSHAKE, chunk) == b""
    assert r.done and r.plaintext and r.payload() == HANDSHAKE


def test_padding_up_to_the_limit_is_accepted() -> None:
    a = MseInitiator(random.Random(3))
    r = MseResponder(lookup, random.Random(4))
    reply = feed(r, a.step1(pad=MAX_PAD), 100)
    feed(r, a.step3(reply[:KEY_SIZE], pad_c=MAX_PAD), 100)
    assert r.done


def fails(data: list[bytes], r: MseResponder | None = None) -> PeerProtocolError:
    r = r or MseResponder(lookup, random.Random(5))
    with pytest.raises(PeerProtocolError) as info:
        for d in data:
            r.receive_data(d)
    assert info.value.reason is DisconnectReason.BAD_HANDSHAKE and not info.value.ban
    return info.value


def test_unknown_torrent_is_refused() -> None:
    a = MseInitiator(random.Random(1), info_hash=b"\xee" * 20)
    r = MseResponder(lookup, random.Random(2))
    r.receive_data(a.step1())
    assert "no torrent" in str(fails([a.step3(r.data_to_send()[:KEY_SIZE])], r))


def fresh_rc4(key: bytes, position: int) -> RC4:
    return RC4(key, discard=position)  # a new state started where the handshake's left off


@pytest.mark.parametrize("stream_cipher", [None, fresh_rc4])
@pytest.mark.parametrize("chunk", [1, 4096])
def test_rc4_only_gets_an_rc4_stream(chunk: int, stream_cipher: CipherFactory | None) -> None:
    """Transmission's default offers RC4 only: the stream after the handshake is RC4 both ways."""
    a = MseInitiator(random.Random(1))
    r = MseResponder(lookup, random.Random(2), stream_cipher=stream_cipher)
    reply = feed(r, a.step1(), chunk)
    step3 = a.step3(reply[:KEY_SIZE], provide=CRYPTO_RC4, ia=HANDSHAKE[:30])
    reply2 = feed(r, step3 + a.enc.crypt(HANDSHAKE[30:]), chunk)
    assert r.done and r.rc4_stream and r.crypto == CRYPTO_RC4
    select, after = a.read_reply(reply[KEY_SIZE:] + reply2)
    assert select == CRYPTO_RC4 and after == b""
    assert r.payload() == HANDSHAKE
    assert r.decryptor is not None and r.encryptor is not None
    assert r.decryptor.crypt(a.enc.crypt(b"next message")) == b"next message"
    assert a.dec.crypt(r.encryptor.crypt(b"our answer")) == b"our answer"
    buf = bytearray(a.enc.crypt(b"in place"))
    r.decryptor.crypt_into(memoryview(buf))
    assert buf == b"in place"


@pytest.mark.parametrize("provide", [0, CRYPTO_RC4])
def test_nothing_we_speak_is_refused(provide: int) -> None:
    a = MseInitiator(random.Random(1))
    r = MseResponder(lookup, random.Random(2), allow_rc4=False)
    r.receive_data(a.step1())
    assert "offers nothing" in str(fails([a.step3(r.data_to_send()[:KEY_SIZE], provide=provide)], r))


def test_wrong_verification_constant() -> None:
    a = MseInitiator(random.Random(1))
    r = MseResponder(lookup, random.Random(2))
    r.receive_data(a.step1())
    fails([a.step3(r.data_to_send()[:KEY_SIZE], vc=b"\x01" * 8)], r)


def test_pad_c_over_the_limit() -> None:
    a = MseInitiator(random.Random(1))
    r = MseResponder(lookup, random.Random(2))
    r.receive_data(a.step1())
    fails([a.step3(r.data_to_send()[:KEY_SIZE], pad_c=0, pad_c_len=MAX_PAD + 1)], r)


def test_no_synchronisation_within_the_padding() -> None:
    r = MseResponder(lookup, random.Random(2))
    a = MseInitiator(random.Random(1))
    r.receive_data(a.step1(pad=0))
    assert r.data_to_send()
    r.receive_data(bytes(MAX_PAD + 19))
    assert not r.done  # one byte short of the window: could still come
    fails([b"\x00"], r)


@pytest.mark.parametrize("ya", [0, 1, P - 1, P, (1 << (8 * KEY_SIZE)) - 1])
def test_public_key_out_of_range(ya: int) -> None:
    fails([ya.to_bytes(KEY_SIZE, "big")])


def test_a_wrong_protocol_string_is_treated_as_encrypted() -> None:
    r = MseResponder(lookup, random.Random(2))
    r.receive_data(b"\x13BitTorrent Protocol")  # differs at byte 12: not the plain handshake
    assert not r.done and not r.plaintext and r.data_to_send() == b""


def test_the_answer_goes_out_before_ia_arrives() -> None:
    """libtorrent writes IA (its handshake) as a second segment, which its Nagle holds until our next ACK:
    the answer must not wait for IA (it would wait for a delayed ACK, ~40 ms)."""
    a = MseInitiator(random.Random(1))
    r = MseResponder(lookup, random.Random(2))
    r.receive_data(a.step1())
    reply = r.data_to_send()
    step3 = a.step3(reply[:KEY_SIZE], ia=HANDSHAKE)
    r.receive_data(step3[: -len(HANDSHAKE)])
    select, _ = a.read_reply(reply[KEY_SIZE:] + r.data_to_send())
    assert select == CRYPTO_PLAINTEXT and not r.done
    r.receive_data(step3[-len(HANDSHAKE) :])
    assert r.done and r.payload() == HANDSHAKE and r.data_to_send() == b""
