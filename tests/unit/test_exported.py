"""The public surface of ``shoal``: everything in ``__all__`` exists, and nothing else is advertised."""

from __future__ import annotations

import shoal


def test_all_names_resolve() -> None:
    for name in shoal.__all__:
        assert getattr(shoal, name) is not None, name


def test_all_is_sorted_and_unique() -> None:
    assert len(set(shoal.__all__)) == len(shoal.__all__)
    assert sorted(shoal.__all__) == shoal.__all__


def test_public_api_shape() -> None:
    assert issubclass(shoal.ConfigError, shoal.ShoalError)
    assert hasattr(shoal.Session, "add")
    assert hasattr(shoal.Session, "__aenter__")
    assert {"wait_complete", "pause", "resume", "status", "set_file_priorities", "set_rate_limits"} <= set(
        dir(shoal.Torrent)
    )
    assert hasattr(shoal.alerts, "TorrentFinished")
    assert shoal.TorrentState("seeding") is shoal.TorrentState.SEEDING


def test_unknown_attribute() -> None:
    try:
        shoal.nope  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
