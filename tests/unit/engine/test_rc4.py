"""The engine's RC4 for MSE streams: OpenSSL's when loadable, and the same key stream as the pure-Python one."""

from __future__ import annotations

from shoal.engine.rc4 import OpenSslRC4, rc4_stream
from shoal.wire.mse import RC4, RC4_DISCARD


def test_fast_rc4_matches_the_pure_python_key_stream() -> None:
    data = bytes(range(256)) * 40
    slow = RC4(b"k" * 20)
    slow.crypt(bytes(7))
    fast = rc4_stream(b"k" * 20, RC4_DISCARD + 7)  # picks up where a handshake left the key stream
    assert isinstance(
        fast, OpenSslRC4
    )  # CPython's hashlib links libcrypto: it is there on every test machine
    assert fast.crypt(data[:1000]) == slow.crypt(data[:1000])  # continues across calls
    buf = bytearray(data)
    view = memoryview(buf)
    fast.crypt_into(view[3:5000])
    view.release()
    assert bytes(buf[3:5000]) == slow.crypt(data[3:5000])
    assert buf[:3] == data[:3] and buf[5000:] == data[5000:]
    buf += b"x"  # no buffer export left behind
    fast.crypt_into(bytearray())
