"""The systemd units in deploy/systemd (issue 10, item 7): `systemd-analyze verify` accepts them
without a warning, and they run the agent and the indexer as dedicated users in a sandbox with
their broker URL handed over as a credential, never written into the unit or argv."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = {"logpipe-shipper.service": ("logpipe-shipper", "shipper.url"),
         "logpipe-indexer.service": ("logpipe-indexer", "indexer.url"),
         "logpipe-alerts.service": ("logpipe-alerts", "smtp.auth")}
CREDENTIAL_ENV = {"shipper.url": "LOGPIPE_REDIS_URL_FILE", "indexer.url": "LOGPIPE_REDIS_URL_FILE",
                  "smtp.auth": "LOGPIPE_SMTP_AUTH_FILE"}


def _settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.parametrize("name", sorted(UNITS))
def test_units_are_sandboxed_with_dedicated_users_and_credentials(name):
    user, credential = UNITS[name]
    text = (ROOT / "deploy" / "systemd" / name).read_text()
    s = _settings(text)
    assert s["User"] == [user] and s["Group"] == [user]
    assert s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"]
    state = f"/var/lib/{user}"
    assert s["ReadWritePaths"] == [state] and s["StateDirectoryMode"] == ["0700"]
    assert s["UMask"] == ["0077"] and s["CapabilityBoundingSet"] == [""]
    assert f"{credential}:/etc/logpipe/credentials/{credential}" in s["LoadCredential"]
    assert f"{CREDENTIAL_ENV[credential]}=%d/{credential}" in s["Environment"]
    assert "--redis" not in s["ExecStart"][0] and "password" not in s["ExecStart"][0]
    assert not re.search(r"rediss?://[^\s]*:[^\s]*@", text), "a password in the unit"


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (Debian package systemd; ./run tests "
                    "installs it)")
    logpipe = Path(sys.executable).parent / "logpipe"
    assert logpipe.exists(), "the venv's logpipe entry point"
    for name in UNITS:  # ExecStart must name an existing binary: the one of this checkout
        text = (ROOT / "deploy" / "systemd" / name).read_text()
        (tmp_path / name).write_text(text.replace("/opt/logpipe/.venv/bin/logpipe", str(logpipe)))
    verify = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in UNITS)],
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    for name in UNITS:
        security = subprocess.run([analyze, "security", "--offline=yes", str(tmp_path / name)],
                                  capture_output=True, text=True, timeout=120)
        found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", security.stdout)
        assert found, security.stdout[-2000:] + security.stderr
        assert float(found.group(1)) < 3.0, f"{name}: exposure {found.group(1)}"
