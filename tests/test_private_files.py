"""Private files and secret hygiene (issue 10, items 1, 3 and 6), without servers."""

from __future__ import annotations

import os
import stat

import pytest

from logpipe.common.broker import redact
from logpipe.common.broker.tls import check_tls_options
from logpipe.common.errors import ConfigError
from logpipe.common.listen import exposure_warning, is_loopback
from logpipe.common.private import check_private, private_dir, read_secret, write_private


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_private_files_are_created_0600_in_0700_dirs_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        d = private_dir(tmp_path / "a" / "b")
        f = write_private(d / "secret.url", "redis://u:pw@h:1/0\n")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a") == 0o700 and _mode(d) == 0o700 and _mode(f) == 0o600
    assert read_secret(f) == "redis://u:pw@h:1/0"
    assert not [p for p in d.iterdir() if p.name != "secret.url"]  # no temp file left


def test_secret_files_open_to_others_are_refused_naming_the_fix(tmp_path):
    f = tmp_path / "indexer.url"
    f.write_text("redis://u:pw@h:1/0")
    f.chmod(0o640)
    with pytest.raises(ConfigError) as err:
        read_secret(f, "broker URL file")
    assert str(f) in str(err.value) and f"chmod 600 {f}" in str(err.value)
    assert "0640" in str(err.value)
    f.chmod(0o600)
    check_private(f)
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret(tmp_path / "missing.url")


def test_a_shipper_config_holding_a_password_must_be_private(tmp_path):
    from logpipe.shipper.config import load_config

    cfg = tmp_path / "shipper.toml"
    cfg.write_text('[shipper]\nredis = "redis://:hunter2hunter2@broker:6379/0"\n\n'
                   '[[input]]\ninput = "file"\npaths = ["/var/log/x"]\n')
    cfg.chmod(0o644)
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert f"chmod 600 {cfg}" in str(err.value) and "hunter2" not in str(err.value)
    cfg.chmod(0o600)
    assert load_config(cfg).redis.endswith("@broker:6379/0")
    # Without a password in it, the file may stay world-readable.
    cfg.write_text('[shipper]\nredis = "/etc/logpipe/shipper.url"\n\n'
                   '[[input]]\ninput = "file"\npaths = ["/var/log/x"]\n')
    cfg.chmod(0o644)
    assert load_config(cfg).redis == "/etc/logpipe/shipper.url"


def test_redact_hides_passwords_and_key_passphrases():
    url = "rediss://logpipe-shipper:s3cret@h:6380/0?ssl_keyfile=/k&ssl_password=ph&x=1"
    shown = redact(url)
    assert "s3cret" not in shown and "ssl_password=***" in shown and "ph&" not in shown
    assert shown.startswith("rediss://logpipe-shipper:***@h:6380/0?ssl_keyfile=/k")


def test_tls_options_checked_before_connecting(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    check_tls_options(f"rediss://:p@h:1/0?ssl_ca_certs={ca}")
    with pytest.raises(ConfigError, match="use rediss://"):
        check_tls_options(f"redis://:p@h:1/0?ssl_ca_certs={ca}")
    with pytest.raises(ConfigError, match=r"nope\.pem: the CA file given by ssl_ca_certs"):
        check_tls_options(f"rediss://h:1/0?ssl_ca_certs={tmp_path / 'nope.pem'}")
    with pytest.raises(ConfigError, match="unknown broker URL option ssl_ca_cert "):
        check_tls_options(f"rediss://h:1/0?ssl_ca_cert={ca}")
    key = tmp_path / "client.key"
    key.write_text("k")
    key.chmod(0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {key}"):
        check_tls_options(f"rediss://h:1/0?ssl_certfile={ca}&ssl_keyfile={key}")
    key.chmod(0o600)
    with pytest.raises(ConfigError, match="both ssl_certfile and ssl_keyfile"):
        check_tls_options(f"rediss://h:1/0?ssl_keyfile={key}")


def test_exposure_warning_only_off_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.7") and not is_loopback("::")
    assert exposure_warning("127.0.0.1", "metrics", "x") is None
    message = exposure_warning("0.0.0.0", "the metrics endpoint :9100", "anyone reads figures")
    assert "0.0.0.0" in message and "no authentication" in message and "anyone reads" in message
