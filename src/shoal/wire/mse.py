"""Message Stream Encryption (MSE/PE), the answering side (sans-IO).

libtorrent (and most clients) open every outgoing connection with an MSE handshake first and reconnect in
plaintext only after that fails, which costs the downloader about a second (its reconnect delay) before the first
block. :class:`MseResponder` answers the handshake so the first connection is used: the Diffie-Hellman exchange,
the synchronisation on ``HASH('req1', S)``, the torrent named by ``HASH('req2', SKEY)``, then ``crypto_select``:
plaintext whenever the peer offers it (libtorrent does), RC4 when that is all it offers (Transmission's default
"encryption preferred"; refusing it is no option, as Transmission's plaintext retry after a failure in this phase
comes RC4-scrambled). RC4 for the handshake bytes is :class:`RC4` (pure Python, ~1 ms per handshake); for an RC4
stream the adapter may inject a fast implementation (``stream_cipher``, started at the key-stream position the
handshake reached) and takes over ``decryptor`` / ``encryptor`` when the handshake is done.

The exchange (A: the peer that connected, B: us)::

    A->B  Ya (96 bytes), PadA (0-512 bytes)
    B->A  Yb (96 bytes), PadB (0-512 bytes)
    A->B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
          ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
    B->A  ENCRYPT(VC, crypto_select, len(PadD), PadD) (sent as soon as len(IA) is read), then the payload
          stream (plaintext or RC4)

``S`` is the DH secret (prime P of 768 bits, generator 2), ``SKEY`` the info-hash, ``VC`` 8 zero bytes, HASH is
SHA-1, ENCRYPT is RC4 keyed with ``HASH('keyA', S, SKEY)`` (A to B) or ``HASH('keyB', S, SKEY)`` (B to A) with
the first 1024 bytes of key stream discarded. ``IA`` (initial payload, usually the BitTorrent handshake, often
empty) is returned decrypted with whatever followed it, for the peer connection to read next.

Shape: ``receive_data(data)`` (raises :class:`~shoal.errors.PeerProtocolError` on a bad handshake),
``data_to_send()``, then ``done``, ``info_hash``, ``payload()`` (already decrypted) and, for an RC4 stream,
``decryptor`` and ``encryptor`` to apply to everything after. A stream that starts with the plaintext BitTorrent
handshake is recognised at once (``plaintext``), and all of it is handed on untouched. Everything the responder
buffers is bounded by the protocol's own lengths (at most ~1.2 KiB before IA, IA at most 64 KiB).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Protocol

from shoal.errors import DisconnectReason, PeerProtocolError
from shoal.wire.handshake import PREFIX

P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22"
    "514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6"
    "F44C42E9A63A36210000000000090563",
    16,
)
"""The 768-bit prime of the MSE spec (not quite Oakley group 1: it ends ...A63A36210000000000090563); generator 2."""
G = 2
KEY_SIZE = 96  # bytes of Ya, Yb and S
PRIVATE_KEY_BITS = 160  # the spec asks for at least 128; more than ~180 adds nothing
MAX_PAD = 512  # PadA, PadB, PadC, PadD are 0-512 bytes
VC = bytes(8)
CRYPTO_PLAINTEXT = 0x01
CRYPTO_RC4 = 0x02
RC4_DISCARD = 1024

_SYNC, _SKEY, _PROVIDE, _PADC, _IA, _DONE = range(6)


def sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def req2_hash(info_hash: bytes) -> bytes:
    """``HASH('req2', SKEY)``: how an MSE handshake names its torrent (a listener maps these to torrents)."""
    return sha1(b"req2", info_hash)


class Cipher(Protocol):
    """A stream cipher's state: each call continues the key stream."""

    def crypt(self, data: bytes | bytearray | memoryview) -> bytes: ...

    def crypt_into(self, buf: bytearray | memoryview) -> None:
        """Encrypt or decrypt ``buf`` in place."""
        ...


CipherFactory = Callable[[bytes, int], Cipher]
"""``(key, position)``: an RC4 state for ``key`` whose first ``position`` bytes of key stream are used up."""


class RC4:
    """The RC4 stream cipher in pure Python: fine for handshakes, ~5 MB/s for a stream (a fallback only)."""

    __slots__ = ("_i", "_j", "_s", "position")

    def __init__(self, key: bytes, discard: int = RC4_DISCARD) -> None:
        self.position = 0  # bytes of key stream used so far (the discarded ones included)
        s = list(range(256))
        j = 0
        n = len(key)
        for i in range(256):
            j = (j + s[i] + key[i % n]) & 0xFF
            s[i], s[j] = s[j], s[i]
        self._s, self._i, self._j = s, 0, 0
        if discard:
            self.crypt(bytes(discard))

    def crypt(self, data: bytes | bytearray | memoryview) -> bytes:
        s, i, j = self._s, self._i, self._j
        out = bytearray(len(data))
        for k, byte in enumerate(data):
            i = (i + 1) & 0xFF
            si = s[i]
            j = (j + si) & 0xFF
            sj = s[j]
            s[i] = sj
            s[j] = si
            out[k] = byte ^ s[(si + sj) & 0xFF]
        self._i, self._j = i, j
        self.position += len(out)
        return bytes(out)

    def crypt_into(self, buf: bytearray | memoryview) -> None:
        buf[:] = self.crypt(buf)


def _fail(message: str) -> PeerProtocolError:
    return PeerProtocolError(f"encrypted handshake: {message}", DisconnectReason.BAD_HANDSHAKE)


class MseResponder:
    """One incoming connection's MSE handshake (or the plain BitTorrent handshake it turns out to be).

    ``skey_for(h)`` returns the info-hash whose ``req2_hash`` is ``h``, or None for a torrent we do not have.
    ``rng`` draws the private key and PadB (pass ``random.SystemRandom()``; tests pass a seeded ``Random``).
    ``stream_cipher`` makes the RC4 states for an RC4 stream after the handshake (default: the handshake's own
    pure-Python :class:`RC4` continues); with ``allow_rc4=False`` a peer that offers only RC4 is refused.
    """

    def __init__(
        self,
        skey_for: Callable[[bytes], bytes | None],
        rng: random.Random,
        *,
        stream_cipher: CipherFactory | None = None,
        allow_rc4: bool = True,
    ) -> None:
        self._skey_for = skey_for
        self._rng = rng
        self._stream_cipher = stream_cipher
        self._allow_rc4 = allow_rc4
        self._buf = bytearray()
        self._out = bytearray()
        self._state = -1  # -1: not known yet whether this is MSE at all
        self.plaintext = False
        self.info_hash: bytes | None = None
        self._secret = b""
        self._private = 0
        self._decrypt: RC4 | None = None
        self._encrypt: RC4 | None = None
        self._keys = (b"", b"")
        self._need = 0
        self._payload = b""
        self.crypto = 0  # the crypto_select we answered (CRYPTO_PLAINTEXT or CRYPTO_RC4)
        self.decryptor: Cipher | None = None  # for an RC4 stream: what comes after the handshake
        self.encryptor: Cipher | None = None

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def rc4_stream(self) -> bool:
        """The handshake agreed on RC4: everything after it goes through ``decryptor`` / ``encryptor``."""
        return self.decryptor is not None

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def payload(self) -> bytes:
        """What the peer sent after the handshake (decrypted IA first), for the BitTorrent connection; once."""
        data, self._payload = self._payload, b""
        return data

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._state == _DONE:
            self._payload += self.decryptor.crypt(data) if self.decryptor is not None else bytes(data)
            return
        self._buf += data
        if self._state == -1:
            head = bytes(self._buf[: len(PREFIX)])
            if PREFIX.startswith(head):
                if len(head) < len(PREFIX):
                    return  # could still be either: wait for the rest of the protocol string
                self.plaintext = True
                self._finish(bytes(self._buf))
                return
            if len(self._buf) < KEY_SIZE:
                return
            self._answer_key()
        self._advance()

    # --- steps -----------------------------------------------------------------------------------------------

    def _answer_key(self) -> None:
        ya = int.from_bytes(self._buf[:KEY_SIZE], "big")
        if not 1 < ya < P - 1:
            raise _fail("public key out of range")
        rng = self._rng
        self._private = rng.getrandbits(PRIVATE_KEY_BITS) | (1 << (PRIVATE_KEY_BITS - 1))
        yb = pow(G, self._private, P)
        self._secret = pow(ya, self._private, P).to_bytes(KEY_SIZE, "big")
        self._out += yb.to_bytes(KEY_SIZE, "big")
        self._out += rng.randbytes(rng.randrange(MAX_PAD + 1))
        del self._buf[:KEY_SIZE]
        self._state = _SYNC

    def _advance(self) -> None:
        buf = self._buf
        while True:
            state = self._state
            if state == _SYNC:
                sync = sha1(b"req1", self._secret)
                at = buf.find(sync, 0, MAX_PAD + len(sync))
                if at < 0:
                    if len(buf) >= MAX_PAD + len(sync):
                        raise _fail(f"no synchronisation hash within {MAX_PAD} bytes of padding")
                    return
                del buf[: at + len(sync)]
                self._state = _SKEY
            elif state == _SKEY:
                if len(buf) < 20:
                    return
                mask = sha1(b"req3", self._secret)
                wanted = bytes(a ^ b for a, b in zip(buf[:20], mask, strict=True))
                skey = self._skey_for(wanted)
                if skey is None:
                    raise _fail("it names no torrent of ours")
                self.info_hash = skey
                self._keys = (sha1(b"keyA", self._secret, skey), sha1(b"keyB", self._secret, skey))
                self._decrypt, self._encrypt = RC4(self._keys[0]), RC4(self._keys[1])
                del buf[:20]
                self._state = _PROVIDE
            elif state == _PROVIDE:
                if len(buf) < 14:
                    return
                assert self._decrypt is not None
                head = self._decrypt.crypt(buf[:14])
                del buf[:14]
                if head[:8] != VC:
                    raise _fail("wrong verification constant")
                provide = int.from_bytes(head[8:12], "big")
                pad = int.from_bytes(head[12:14], "big")
                if pad > MAX_PAD:
                    raise _fail(f"PadC of {pad} bytes exceeds {MAX_PAD}")
                if provide & CRYPTO_PLAINTEXT:
                    self.crypto = CRYPTO_PLAINTEXT
                elif provide & CRYPTO_RC4 and self._allow_rc4:
                    self.crypto = CRYPTO_RC4
                else:
                    raise _fail(f"crypto_provide {provide:#x} offers nothing we speak")
                self._need = pad
                self._state = _PADC
            elif state == _PADC:
                if len(buf) < self._need + 2:
                    return
                assert self._decrypt is not None
                tail = self._decrypt.crypt(buf[: self._need + 2])
                del buf[: self._need + 2]
                self._need = int.from_bytes(tail[-2:], "big")  # len(IA)
                # Answer now, before IA arrives: libtorrent writes IA (its handshake) separately right after,
                # and with Nagle on its side that segment waits for our ACK; data from us carries one at once
                # instead of a delayed ACK 40 ms later.
                assert self._encrypt is not None
                reply = VC + self.crypto.to_bytes(4, "big") + (0).to_bytes(2, "big")  # no PadD
                self._out += self._encrypt.crypt(reply)
                self._state = _IA
            elif state == _IA:
                if len(buf) < self._need:
                    return
                assert self._decrypt is not None and self._encrypt is not None
                ia = self._decrypt.crypt(buf[: self._need])
                del buf[: self._need]
                rest = bytes(buf)
                if self.crypto == CRYPTO_RC4:
                    rest = self._decrypt.crypt(rest)
                    make = self._stream_cipher
                    if make is None:
                        self.decryptor, self.encryptor = self._decrypt, self._encrypt
                    else:
                        self.decryptor = make(self._keys[0], self._decrypt.position)
                        self.encryptor = make(self._keys[1], self._encrypt.position)
                self._finish(ia + rest)
                return
            else:
                return

    def _finish(self, payload: bytes) -> None:
        self._payload = payload
        self._buf = bytearray()
        self._decrypt = self._encrypt = None
        self._keys = (b"", b"")
        self._secret = b""
        self._private = 0
        self._state = _DONE
