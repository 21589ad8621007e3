from __future__ import annotations

import pytest

from shoal.config import Settings
from shoal.errors import TrackerError
from shoal.tracker.client import check_redirect, check_url


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("http://tracker.example/announce", "http://127.0.0.1:9091/transmission/rpc"),
        ("http://tracker.example/announce", "http://192.168.1.1/announce"),
        ("http://tracker.example/announce", "http://169.254.169.254/latest/meta-data"),
        ("http://tracker.example/announce", "http://[::1]/announce"),
        ("http://tracker.example/announce", "http://localhost/announce"),
        ("http://8.8.8.8/announce", "http://10.0.0.1/announce"),
        ("http://tracker.example/announce", "file:///etc/passwd"),
        ("http://tracker.example/announce", "udp://tracker.example:80/announce"),
    ],
)
def test_redirects_refused_case_39(source: str, target: str) -> None:
    with pytest.raises(TrackerError):
        check_redirect(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("http://tracker.example/announce", "https://tracker.example/announce"),
        ("http://127.0.0.1:1/announce", "http://127.0.0.1:2/announce"),  # local to local is fine
        ("http://10.0.0.1/announce", "http://10.0.0.2/announce"),
    ],
)
def test_redirects_allowed(source: str, target: str) -> None:
    check_redirect(source, target)


def test_check_url() -> None:
    s = Settings()
    assert check_url("udp://t.example:6969/announce", s)[:3] == ("udp", "t.example", 6969)
    assert check_url("http://127.0.0.1:1/abc/announce", s)[0] == "http"
    for bad in (
        "http://127.0.0.1:1/rpc",
        "http://localhost/x",
        "ftp://x/announce",
        "http:///announce",
        "http://x:99999/",
    ):
        with pytest.raises(TrackerError):
            check_url(bad, s)
    assert check_url("http://127.0.0.1:1/rpc", s.with_(tracker_ssrf_mitigation=False))[0] == "http"
