"""Throwaway PostgreSQL databases for the benchmarks: created, migrated, seeded, dropped.

The admin URL is BENCH_POSTGRES_URL (default: the machine's `test` database on
127.0.0.1:5432); every benchmark database is `orderflow_bench_<random>` and is
dropped in `finally`, whatever happens.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config.settings import mask_url, normalize_database_url
from orders.migrate import upgrade
from orders.seed import seed_products
from outbox.db import SessionFactory, make_engine, make_session_factory

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Enough stock that every benchmark order is `reserved`: then "stock taken" must equal
# "quantity ordered" exactly, which is how the benchmark sees a double inventory effect.
BENCH_STOCK = 1_000_000_000
DATA_TABLES = ("order_lines", "orders", "outbox", "deliveries", "analytics_revenue", "delivery_errors",
               "dead_letter_actions", "customers")


def admin_url() -> str:
    return normalize_database_url(os.environ.get("BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL))


@contextmanager
def throwaway_database(label: str = "") -> Iterator[str]:
    """A migrated, seeded PostgreSQL database; yields its URL, drops it afterwards."""
    name = f"orderflow_bench_{label}{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise SystemExit(f"bench: cannot create a database via {mask_url(admin_url())}: {exc}") from exc
    url = make_url(admin_url()).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        engine = make_engine(url)
        try:
            seed_products(make_session_factory(engine))
            reset(engine_url=url)
        finally:
            engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def reset(*, engine_url: str | None = None, session_factory: SessionFactory | None = None) -> None:
    """Empty the order data and refill the stock, so every run starts alike."""
    engine = make_engine(engine_url) if engine_url else session_factory.kw["bind"]  # type: ignore[union-attr]
    try:
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(DATA_TABLES)}"))
            conn.execute(text("UPDATE products SET stock = :s"), {"s": BENCH_STOCK})
    finally:
        if engine_url:
            engine.dispose()
