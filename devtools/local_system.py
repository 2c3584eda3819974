"""The running local system, as `make run` describes it in var/system.json.

`make run` (devtools/run.py) writes the file whenever a process starts, exits
or becomes ready, and removes it when it stops. Anything started from the
project (the CLI, a test) reads it with `find_running()` to learn which broker
and database that system uses, and the state of each of its processes:

    system = find_running()          # None: no `make run` is running for this var/
    if system is not None:
        os.environ.update(system.environment())  # REDIS_URL or BROKER_URL, DATABASE_URL, SMTP_URL...
        print("\\n".join(system.status_lines()))

The file holds the real URLs (the CLI must connect with them), so it is
readable by its owner only, like the passwords beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import is_rabbitmq

STATE_FILE = "system.json"
NOT_RUNNING = "no local system is running (start one with `make run`)"


@dataclass(frozen=True)
class ProcessState:
    name: str
    pid: int | None
    state: str  # "running", "restarting" (waiting out its backoff) or "stopped"
    restarts: int
    since: float  # epoch seconds of its latest start
    ready: bool  # answered its readiness check (HTTP, Celery ping, ...) since that start

    @property
    def alive(self) -> bool:
        return self.pid is not None and pid_alive(self.pid)

    def line(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if self.state == "running" and self.alive:
            health = "ready" if self.ready else "starting"
            up = f"up {format_duration(now - self.since)}"
            text = f"{self.name:<13} {health:<10} pid {self.pid:<8} {up}"
        else:
            text = f"{self.name:<13} {self.state:<10}"
        return text + (f", {self.restarts} restart(s)" if self.restarts else "")


@dataclass(frozen=True)
class LocalSystem:
    var_dir: Path
    supervisor_pid: int
    ready: bool  # every process answered its readiness check at least once
    urls: dict[str, str]  # web, operator, flower, broker, database, smtp
    mail_dir: str | None  # where the local SMTP sink stores mail (None: SMTP_URL given)
    summary: tuple[str, ...]  # the lines `make run` printed under "ready"
    processes: dict[str, ProcessState]

    @property
    def broker_url(self) -> str:
        return self.urls["broker"]

    @property
    def database_url(self) -> str:
        return self.urls["database"]

    def environment(self) -> dict[str, str]:
        """The variables a command needs to act on this system. The broker goes under the name
        `make run` read it from: BROKER_URL for RabbitMQ (REDIS_URL would make a replay declare
        plain queues where quorum ones exist, and the broker refuses), REDIS_URL for Redis."""
        broker = self.urls["broker"]
        found = {"BROKER_URL" if is_rabbitmq(broker) else "REDIS_URL": broker,
                 "DATABASE_URL": self.urls["database"],
                 "SMTP_URL": self.urls["smtp"], "FLOWER_URL": self.urls["flower"]}
        if self.urls.get("shipping_database"):  # the shipping service's, when make run gave it one
            found["SHIPPING_DATABASE_URL"] = self.urls["shipping_database"]
        return found

    def status_lines(self) -> list[str]:
        head = "ready" if self.ready else "starting"
        lines = [f"make run (pid {self.supervisor_pid}) is {head}", *self.summary, ""]
        return lines + [p.line() for p in self.processes.values()]


def state_path(var_dir: Path | None = None) -> Path:
    if var_dir is None:
        from config.settings import var_dir as default_var_dir

        var_dir = default_var_dir()
    return var_dir / STATE_FILE


def find_running(var_dir: Path | None = None) -> LocalSystem | None:
    """The system `make run` runs with this var/ directory, or None when it is not running."""
    path = state_path(var_dir)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not pid_alive(int(raw.get("supervisor_pid", 0))):
        return None  # a file left by a `make run` that was killed: nothing runs
    return LocalSystem(
        var_dir=path.parent, supervisor_pid=int(raw["supervisor_pid"]), ready=bool(raw.get("ready")),
        urls=dict(raw.get("urls", {})), mail_dir=raw.get("mail_dir"),
        summary=tuple(raw.get("summary", ())),
        processes={name: ProcessState(name=name, pid=p.get("pid"), state=p.get("state", "stopped"),
                                      restarts=int(p.get("restarts", 0)), since=float(p.get("since", 0)),
                                      ready=bool(p.get("ready")))
                   for name, p in raw.get("processes", {}).items()},
    )


def write_state(var_dir: Path, state: dict[str, Any]) -> None:
    """Replace the state file in one step (a reader never sees half of it), owner-only."""
    path = state_path(var_dir)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle, indent=2)
    tmp.replace(path)


def clear_state(var_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(var_dir).unlink()


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user (the PostgreSQL server, as root)
        return True
    return True


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
