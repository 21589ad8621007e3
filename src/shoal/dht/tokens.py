"""Announce tokens (BEP 5): an HMAC-SHA1 over (IP, info-hash) keyed by a secret that rotates.

A token handed out to an IP stays valid for between one and two rotation periods: the current and the previous
secret are accepted (RELIABILITY case 31). Secrets come from the injected ``rng``; the adapter passes
``random.SystemRandom()`` so they are unpredictable, tests pass a seeded ``random.Random``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random

TOKEN_LENGTH = 8
SECRET_LENGTH = 20


class TokenManager:
    def __init__(self, rng: random.Random, now: float, rotation: float = 300.0) -> None:
        self._rng = rng
        self.rotation = rotation
        self._current = self._new_secret()
        self._previous = self._new_secret()
        self.next_rotation = now + rotation

    def _new_secret(self) -> bytes:
        return self._rng.getrandbits(SECRET_LENGTH * 8).to_bytes(SECRET_LENGTH, "big")

    @staticmethod
    def _token(secret: bytes, ip: str, info_hash: bytes) -> bytes:
        try:
            packed = ipaddress.ip_address(ip).packed
        except ValueError:
            packed = ip.encode()
        return hmac.new(secret, packed + info_hash, hashlib.sha1).digest()[:TOKEN_LENGTH]

    def handle_timer(self, now: float) -> None:
        if now >= self.next_rotation:
            self._previous, self._current = self._current, self._new_secret()
            self.next_rotation = now + self.rotation

    def make(self, ip: str, info_hash: bytes) -> bytes:
        return self._token(self._current, ip, info_hash)

    def verify(self, token: bytes, ip: str, info_hash: bytes) -> bool:
        return any(
            hmac.compare_digest(token, self._token(secret, ip, info_hash))
            for secret in (self._current, self._previous)
        )
