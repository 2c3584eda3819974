"""What `make run` starts on a fresh machine, and what it leaves to the URLs it is given."""

from __future__ import annotations

import pytest

from devtools import run
from devtools.ports import free_port


@pytest.fixture(autouse=True)
def var_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "VAR_DIR", tmp_path)
    return tmp_path


def test_a_fresh_machine_gets_local_redis_postgresql_and_smtp_on_remembered_ports(var_dir):
    first = run.plan({"PATH": "/usr/bin"})
    assert first.servers == ["smtp", "redis", "postgres"]
    assert first.apps == run.APP_PROCESSES
    port = first.env["LOCAL_POSTGRES_PORT"]
    assert first.env["DATABASE_URL"] == f"postgresql://postgres@127.0.0.1:{port}/orderflow"
    assert first.env["REDIS_URL"] == f"redis://127.0.0.1:{first.env['LOCAL_REDIS_PORT']}/0"
    again = run.plan({"PATH": "/usr/bin"})  # a restart: the URLs printed last time still hold
    assert {k: again.env[k] for k in ("DATABASE_URL", "REDIS_URL", "SMTP_URL")} == {
        k: first.env[k] for k in ("DATABASE_URL", "REDIS_URL", "SMTP_URL")}
    assert (var_dir / "ports.json").exists()


def test_given_urls_are_used_and_sqlite_stays_supported(var_dir):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: a local one is started
    planned = run.plan({"DATABASE_URL": f"sqlite:///{var_dir}/o.sqlite3", "SMTP_URL": "smtp://mail:25",
                        "REDIS_URL": dead_redis})
    assert planned.servers == ["redis"]
    assert planned.env["DATABASE_URL"].startswith("sqlite:///")
    assert planned.env["REDIS_URL"] != dead_redis


def test_servers_only_starts_no_application_process():
    assert run.plan({}, servers_only=True).apps == []
