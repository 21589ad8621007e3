from __future__ import annotations

from pathlib import Path

import pytest

from shoal.errors import ConfigError
from shoal.trackerd.config import load_config, parse_hostport, read_info_hashes, read_passkeys


def test_load_config(tmp_path: Path) -> None:
    f = tmp_path / "t.toml"
    f.write_text('http = "127.0.0.1:0"\ninterval = 600\nfull-scrape = true\nip_rate = 5\n')
    cfg = load_config(f)
    assert (cfg.http, cfg.interval, cfg.full_scrape, cfg.ip_rate) == ("127.0.0.1:0", 600, True, 5.0)
    f.write_text("bogus = 1\n")
    with pytest.raises(ConfigError, match="unknown tracker config key 'bogus'"):
        load_config(f)
    f.write_text('interval = "x"\n')
    with pytest.raises(ConfigError, match="must be a number"):
        load_config(f)
    f.write_text("private = 1\n")
    with pytest.raises(ConfigError, match="true or false"):
        load_config(f)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.toml")


def test_allow_and_passkey_files(tmp_path: Path) -> None:
    f = tmp_path / "allow"
    f.write_text("# comment\n" + "ab" * 20 + "\n\n")
    assert read_info_hashes(f) == {b"\xab" * 20}
    f.write_text("ab" * 19 + "\n")
    with pytest.raises(ConfigError, match="line 1"):
        read_info_hashes(f)
    k = tmp_path / "keys"
    k.write_text("abc123\n")
    assert read_passkeys(k) == {"abc123"}
    k.write_text("a/b\n")
    with pytest.raises(ConfigError):
        read_passkeys(k)


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:80") == ("127.0.0.1", 80)
    assert parse_hostport("[::1]:80") == ("::1", 80)
    assert parse_hostport(":80") == ("0.0.0.0", 80)
    for bad in ("x", "h:99999", "h:p"):
        with pytest.raises(ConfigError):
            parse_hostport(bad)
