"""The ports `make run` remembers in var/, and the state file the command line reads."""

from __future__ import annotations

import os
import socket
import stat

from devtools.local_system import find_running, write_state
from devtools.ports import free_port, remembered_port


def test_a_remembered_port_is_reused_while_free_and_replaced_when_taken(tmp_path):
    memory = tmp_path / "var" / "ports.json"
    preferred = free_port()
    first = remembered_port("redis", memory, preferred=preferred)
    assert first == preferred
    assert remembered_port("redis", memory, preferred=free_port()) == first  # a restart: same URL

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first))
        taken.listen()
        other = remembered_port("redis", memory)
    assert other != first
    assert remembered_port("redis", memory) == other  # and the new one is what is kept
    assert remembered_port("postgres", memory) not in (0, other)


def state(pid: int) -> dict:
    return {"supervisor_pid": pid, "ready": True,
            "urls": {"web": "http://127.0.0.1:1", "operator": "http://127.0.0.1:1/admin",
                     "flower": "http://127.0.0.1:2", "broker": "redis://127.0.0.1:3/0",
                     "database": "postgresql://postgres@127.0.0.1:4/orderflow", "smtp": "smtp://127.0.0.1:5"},
            "mail_dir": "/x/var/mail", "summary": ["web      http://127.0.0.1:1"],
            "processes": {"email": {"pid": os.getpid(), "state": "running", "restarts": 2,
                                    "since": 0.0, "ready": True}}}


def test_the_running_system_is_found_with_its_urls_and_processes(tmp_path):
    write_state(tmp_path, state(os.getpid()))
    system = find_running(tmp_path)
    assert system is not None and system.ready
    assert system.environment() == {"REDIS_URL": "redis://127.0.0.1:3/0",
                                    "DATABASE_URL": "postgresql://postgres@127.0.0.1:4/orderflow",
                                    "SMTP_URL": "smtp://127.0.0.1:5", "FLOWER_URL": "http://127.0.0.1:2"}
    email = system.processes["email"]
    assert email.alive and email.restarts == 2
    assert any(line.startswith("email") and "ready" in line and "2 restart(s)" in line
               for line in system.status_lines())
    assert stat.S_IMODE((tmp_path / "system.json").stat().st_mode) == 0o600  # it holds the real URLs


def test_a_system_on_rabbitmq_hands_its_broker_over_as_broker_url(tmp_path):
    # Under REDIS_URL a replay would take the amqp:// URL for a plain broker and declare the
    # queues without their quorum arguments: RabbitMQ refuses (PRECONDITION_FAILED).
    on_rabbitmq = state(os.getpid())
    on_rabbitmq["urls"]["broker"] = "amqp://guest:guest@127.0.0.1:5672/shop"
    write_state(tmp_path, on_rabbitmq)
    system = find_running(tmp_path)
    assert system is not None
    env = system.environment()
    assert env["BROKER_URL"] == "amqp://guest:guest@127.0.0.1:5672/shop" and "REDIS_URL" not in env


def test_nothing_is_found_when_make_run_is_not_running(tmp_path):
    assert find_running(tmp_path) is None
    dead = 2**22 + 12345  # above pid_max's default: no such process
    write_state(tmp_path, state(dead))
    assert find_running(tmp_path) is None  # left behind by a make run that was killed
