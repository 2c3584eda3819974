"""The command line acts on the system `make run` started, with nothing exported; a closed pipe is quiet.

The state file is the one `make run` writes (devtools/local_system.py), here
pointing at this test's real database and broker (Redis, or a RabbitMQ vhost:
a replay must reach the system's own queues there too); the command runs as a
separate process, as an operator types it in a second terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT, mask_url
from devtools.local_system import write_state
from tests.support.dead_letters import order_with_dead_email
from tests.support.orders import states
from tests.support.waiting import wait_until


def orderflow(*argv: str, var_dir: Path, stdout: int = subprocess.PIPE,
              **env: str) -> subprocess.CompletedProcess[str]:
    unset = ("REDIS_URL", "BROKER_URL", "DATABASE_URL", "CI")
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run([sys.executable, "-m", "cli", *argv], cwd=PROJECT_ROOT, text=True, timeout=60,
                          stdout=stdout, stderr=subprocess.PIPE,
                          env={**clean, "ORDERFLOW_VAR_DIR": str(var_dir), **env})


def pretend_make_run_is_running(var_dir: Path, *, database_url: str, broker_url: str) -> None:
    var_dir.mkdir(parents=True, exist_ok=True)
    write_state(var_dir, {
        "supervisor_pid": os.getpid(), "ready": True,
        "urls": {"web": "http://127.0.0.1:1", "operator": "http://127.0.0.1:1/admin",
                 "flower": "http://127.0.0.1:2", "broker": broker_url, "database": database_url,
                 "smtp": "smtp://127.0.0.1:3"},
        "mail_dir": None, "summary": ["web      http://127.0.0.1:1"],
        "processes": {"web": {"pid": os.getpid(), "state": "running", "restarts": 0, "since": 0,
                              "ready": True}},
    })


@pytest.mark.both_brokers
def test_with_nothing_exported_the_cli_uses_the_running_system(
    tmp_path, celery_app, runtime, worker, smtp_sink, database_url, broker_url
):
    placed, email_id = order_with_dead_email(celery_app, runtime, smtp_sink)
    var_dir = tmp_path / "var"
    pretend_make_run_is_running(var_dir, database_url=database_url, broker_url=broker_url)

    listed = orderflow("dead-letters", "list", var_dir=var_dir)
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.startswith("orderflow: using the system make run started (pid ")
    assert str(email_id) in listed.stdout and "1 dead delivery" in listed.stdout

    # The replay goes to the system's broker, made as its workers made it (on RabbitMQ: the
    # quorum queue; the machine's default Redis would swallow it), and the worker delivers it.
    replayed = orderflow("dead-letters", "replay", str(email_id), "--reason", "fixed", var_dir=var_dir)
    assert replayed.returncode == 0, replayed.stderr
    assert f"sent to queue email on {mask_url(broker_url)}" in replayed.stdout, replayed.stdout
    wait_until(lambda: states(runtime.session_factory, placed.event_id)["email"] == "succeeded",
               message="the replayed email delivered")

    status = orderflow("status", var_dir=var_dir)
    assert status.returncode == 0, status.stderr
    assert "is ready" in status.stdout and "web      http://127.0.0.1:1" in status.stdout


def test_with_nothing_running_and_nothing_exported_it_says_so_in_one_line(tmp_path):
    for argv in (["dead-letters", "list"], ["status"]):
        done = orderflow(*argv, var_dir=tmp_path / "empty-var")
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "no local system is running" in done.stderr, done.stderr
        assert "6379" not in done.stderr


def test_a_closed_pipe_ends_the_command_quietly(tmp_path, database_url):
    reader, writer = os.pipe()
    os.close(reader)  # like `| head -1` that has already gone
    try:
        done = orderflow("dead-letters", "list", "--state", "dead", var_dir=tmp_path, stdout=writer,
                         DATABASE_URL=database_url)
    finally:
        os.close(writer)
    assert done.returncode == 0
    assert done.stderr == ""
