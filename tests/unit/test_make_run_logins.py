"""`make run` never starts Flower or the operator page without a login, and never with a fixed one."""

from __future__ import annotations

import stat
import subprocess

from devtools import run
from tests.support.processes import procfile_command


def test_generates_private_passwords_once_and_says_where(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "VAR_DIR", tmp_path)
    env: dict[str, str] = {}
    lines = run.logins(env)

    flower_password = (tmp_path / "flower-password").read_text().strip()
    admin_password = (tmp_path / "admin-password").read_text().strip()
    assert env["FLOWER_BASIC_AUTH"] == f"admin:{flower_password}"
    assert env["ORDERFLOW_ADMIN_PASSWORD"] == admin_password
    assert len(flower_password) >= 20 and flower_password != admin_password
    assert stat.S_IMODE((tmp_path / "admin-password").stat().st_mode) == 0o600
    assert any(str(tmp_path / "flower-password") in line for line in lines)
    assert not any(flower_password in line or admin_password in line for line in lines)

    again: dict[str, str] = {}
    run.logins(again)  # a restart keeps the same logins
    assert again == env


def test_configured_logins_are_used_as_given(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "VAR_DIR", tmp_path)
    env = {"FLOWER_BASIC_AUTH": "ops:given", "ORDERFLOW_ADMIN_PASSWORD": "given-too"}
    run.logins(env)
    assert env == {"FLOWER_BASIC_AUTH": "ops:given", "ORDERFLOW_ADMIN_PASSWORD": "given-too"}
    assert list(tmp_path.iterdir()) == []


def test_procfile_refuses_to_start_flower_without_a_login():
    done = subprocess.run(["sh", "-c", procfile_command("flower")], env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 1
    assert "refusing to start without FLOWER_BASIC_AUTH" in done.stderr
    assert "--basic-auth" not in procfile_command("flower")  # the password stays out of `ps`
