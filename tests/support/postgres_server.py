"""The PostgreSQL the tests use when TEST_POSTGRES_URL is unset: one embedded server per run.

Started on first use (a unit-only run never pays for it), with a throwaway data
directory; stopped and deleted when the test process exits (and, being started
through devtools.local_postgres, ended by the kernel if the test process is killed).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

from devtools import local_postgres
from devtools.ports import free_port

_lock = threading.Lock()
_server: local_postgres.LocalPostgres | None = None


def embedded_postgres_url() -> str:
    """The admin URL (database `postgres`) of this test run's embedded server."""
    global _server
    with _lock:
        if _server is None:
            root = Path(tempfile.mkdtemp(prefix="orderflow-test-postgres-"))
            _server = local_postgres.start(root / "data", free_port(), throwaway=True,
                                           log=root / "postgres.log")
            atexit.register(_stop, _server, root)
        return _server.url


def _stop(server: local_postgres.LocalPostgres, root: Path) -> None:
    server.stop()
    shutil.rmtree(root, ignore_errors=True)
