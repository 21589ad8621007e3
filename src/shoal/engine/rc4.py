"""RC4 for MSE streams: OpenSSL's (through ctypes, ~400 MB/s) when the process can load it, else pure Python.

Only peers that offer nothing but RC4 (Transmission's default) get an RC4 stream; everyone else agrees on
plaintext (:mod:`shoal.wire.mse`). CPython's own ``hashlib`` already links ``libcrypto``, so the library is almost
always there; the low-level ``RC4_set_key`` / ``RC4`` functions are deprecated in OpenSSL 3 but still exported.
Where they are not, :class:`shoal.wire.mse.RC4` (pure Python, ~5 MB/s) keeps such peers working, slowly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Iterator

from shoal.wire.mse import RC4, Cipher

logger = logging.getLogger(__name__)

_KEY_STRUCT = 2048  # RC4_KEY is 2 + 256 ints (1032 bytes where RC4_INT is 32-bit); room to spare


class OpenSslRC4:
    """One RC4 key stream in an OpenSSL ``RC4_KEY``."""

    __slots__ = ("_key", "_lib")

    def __init__(self, lib: ctypes.CDLL, key: bytes, position: int) -> None:
        self._lib = lib
        self._key = ctypes.create_string_buffer(_KEY_STRUCT)
        lib.RC4_set_key(self._key, len(key), key)
        if position:
            self.crypt(bytes(position))

    def crypt(self, data: bytes | bytearray | memoryview) -> bytes:
        n = len(data)
        out = ctypes.create_string_buffer(n)
        self._lib.RC4(self._key, ctypes.c_size_t(n), bytes(data), out)
        return out.raw

    def crypt_into(self, buf: bytearray | memoryview) -> None:
        n = len(buf)
        if not n:
            return
        arr = (ctypes.c_char * n).from_buffer(buf)
        try:
            self._lib.RC4(self._key, ctypes.c_size_t(n), arr, arr)
        finally:
            del arr  # release the buffer export at once (a bytearray cannot resize while it is held)


def _names() -> Iterator[str]:
    yield "libcrypto.so.3"
    yield "libcrypto.so.1.1"
    found = ctypes.util.find_library("crypto")  # runs ldconfig: only when the usual names fail
    if found:
        yield found


@functools.cache
def _libcrypto() -> ctypes.CDLL | None:
    for name in _names():
        try:
            lib = ctypes.CDLL(name)
            lib.RC4_set_key.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
            lib.RC4_set_key.restype = None
            lib.RC4.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
            lib.RC4.restype = None
        except (OSError, AttributeError):
            continue
        probe = OpenSslRC4(lib, b"Key", 0)
        if probe.crypt(b"Plaintext") == bytes.fromhex("bbf316e8d940af0ad3"):
            return lib
    logger.info("OpenSSL RC4 not available: MSE RC4 streams use pure Python (slow)")
    return None


def rc4_stream(key: bytes, position: int) -> Cipher:
    """The fastest RC4 this process has for an MSE stream (:data:`shoal.wire.mse.CipherFactory`); the library
    is loaded on the first call, i.e. only once a peer that speaks nothing but RC4 shows up."""
    lib = _libcrypto()
    if lib is None:
        return RC4(key, discard=position)
    return OpenSslRC4(lib, key, position)
