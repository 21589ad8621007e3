from __future__ import annotations

import random

from shoal.dht.tokens import TokenManager

IH = b"I" * 20


def test_token_valid_for_same_ip_and_hash_only() -> None:
    tm = TokenManager(random.Random(1), 0.0, rotation=300)
    token = tm.make("1.2.3.4", IH)
    assert tm.verify(token, "1.2.3.4", IH)
    assert not tm.verify(token, "1.2.3.5", IH)
    assert not tm.verify(token, "1.2.3.4", b"J" * 20)
    assert not tm.verify(b"", "1.2.3.4", IH)


def test_previous_secret_accepted_then_expires() -> None:
    tm = TokenManager(random.Random(1), 0.0, rotation=300)
    token = tm.make("::1", IH)
    tm.handle_timer(299.0)
    assert tm.verify(token, "::1", IH)
    tm.handle_timer(300.0)  # one rotation: still accepted
    assert tm.verify(token, "::1", IH)
    tm.handle_timer(600.0)  # two rotations: refused
    assert not tm.verify(token, "::1", IH)
