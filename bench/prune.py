"""Pruning a large database while it serves: `orderflow prune`'s rate, and what it does to POST /orders.

One PostgreSQL database seeded in SQL (generate_series: minutes faster than the use case)
with N orders spread evenly over the last 60 days, each with its published `order.created`
event (a realistic payload) and 3 succeeded delivery records, ids random like uuid4's.
With the default 30-day retention, the older half is past it. gunicorn (the Procfile's
options) and the relay run against it, and one client POSTs /orders back to back the
whole time. Windows alternate: W seconds without pruning, then one `orderflow prune
--max-seconds W` (the command an operator runs, in a subprocess: the real code path,
batches and pauses included), and so on until the 30 days are gone. Each prune window's
POST p99 is divided by the p99 of the window just before it (same machine load).

Seeding loads the three tables with their indexes and keys dropped, then builds each
index once (bulk loading into random-key B-trees is what makes seeding slow), then
VACUUM ANALYZE, as autovacuum would have left a database that old.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable

from sqlalchemy import text

from bench.common import REPO_ROOT, WorkerSet, python_m
from bench.producer import post_while, start_gunicorn, start_relay
from bench.stats import percentile
from outbox.db import make_engine

DAYS = 60
TABLES = ["orders", "outbox", "deliveries"]
SEED_SQL = [
    # Age of order i: i/n of 60 days; ids from md5, as random as uuid4's.
    "INSERT INTO orders (id, customer_email, customer_name, total_cents, currency, payment_id, created_at) "
    "SELECT md5(i || 'o')::uuid::text, 'buyer' || i || '@example.com', 'Bench Buyer', 4900, 'EUR', "
    "'pay_' || i, now() - interval '1 day' * (:days * i::float8 / :n) FROM generate_series(1, :n) i",
    "INSERT INTO outbox (id, event_type, aggregate_id, payload, created_at, published_at, publish_attempts) "
    "SELECT md5(i || 'e')::uuid::text, 'order.created', md5(i || 'o')::uuid::text, "
    "json_build_object('schema_version', 1, 'event_id', md5(i || 'e')::uuid::text, "
    "'order_id', md5(i || 'o')::uuid::text, 'customer_email', 'buyer' || i || '@example.com', "
    "'customer_name', 'Bench Buyer', 'total_cents', 4900, 'currency', 'EUR', 'lines', "
    "json_build_array(json_build_object('sku', 'mug', 'quantity', 2, 'unit_price_cents', 1200), "
    "json_build_object('sku', 'tee', 'quantity', 1, 'unit_price_cents', 2500))), t, "
    "t + interval '50 milliseconds', 1 "
    "FROM (SELECT i, now() - interval '1 day' * (:days * i::float8 / :n) t FROM generate_series(1, :n) i) s",
    "INSERT INTO deliveries (event_id, consumer, state, attempts, queue, task_id, created_at, updated_at) "
    "SELECT o.id, c, 'succeeded', 1, c, o.id || ':' || c, o.published_at, "
    "o.published_at + interval '1 second' "
    "FROM outbox o, unnest(ARRAY['email', 'inventory', 'analytics']) c",
]
PRUNED = re.compile(r"pruned (\d+) outbox event\(s\), (\d+) delivery record\(s\), (\d+) attempt error\(s\), "
                    r"(\d+) audit row\(s\) in (\d+) batch\(es\), ([\d.]+)s")
NOTHING = re.compile(r"nothing to prune: .* \(([\d.]+)s\)")


def seed(database_url: str, n: int) -> float:
    """Seed n orders over the last 60 days; returns the seconds it took."""
    t0 = time.perf_counter()
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
            restore = drop_keys_and_indexes(conn)
            for sql in SEED_SQL:
                conn.execute(text(sql), {"n": n, "days": DAYS})
                print(f"[prune] seeded: {sql.split('(')[0].strip()} ({time.perf_counter() - t0:.0f}s)",
                      file=sys.stderr, flush=True)
            for statement in restore:
                conn.execute(text(statement))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"VACUUM ANALYZE {', '.join(TABLES)}"))
    finally:
        engine.dispose()
    return time.perf_counter() - t0


def drop_keys_and_indexes(conn) -> list[str]:  # type: ignore[no-untyped-def]
    """Drop the tables' indexes, keys and the foreign keys pointing at them; returns the
    statements that put every one back, in an order that works."""
    tables = {"t": TABLES}
    foreign = conn.execute(text(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND confrelid::regclass::text = ANY(:t)"), tables).all()
    keys = conn.execute(text(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype IN ('p', 'u') AND conrelid::regclass::text = ANY(:t)"), tables).all()
    indexes = conn.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:t) AND schemaname = 'public' "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint)"), tables).all()
    for table, name, _ in [*foreign, *keys]:
        conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        conn.execute(text(f'DROP INDEX "{name}"'))
    return ([f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}' for table, name, definition in keys]
            + [definition for _, definition in indexes]
            + [f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
               for table, name, definition in foreign])


def prune_window(env: dict[str, str], port: int, seconds: float) -> tuple[dict, list[float]]:
    """One `orderflow prune --max-seconds` run, POSTing all along; what it printed, the latencies."""
    t0 = time.perf_counter()
    process = subprocess.Popen(python_m("cli", "prune", "--max-seconds", str(seconds)), env=env,
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    latencies = post_while(port, lambda: process.poll() is None)
    out, err = process.communicate()
    found = PRUNED.search(out)
    nothing = NOTHING.search(out)
    if process.returncode or not (found or nothing):
        raise AssertionError(f"orderflow prune exited {process.returncode}: {out}{err}")
    events, records, errors, actions, batches, took = (
        found.groups() if found else ("0", "0", "0", "0", "1", nothing.group(1)))  # type: ignore[union-attr]
    done = {"events": int(events), "rows": int(events) + int(records) + int(errors) + int(actions),
            "batches": int(batches), "prune_seconds": float(took),
            "process_seconds": time.perf_counter() - t0, "printed": out.strip()}
    return done, latencies


def old_events(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM outbox WHERE published_at < now() - interval '30 days'")).scalar_one())
    finally:
        engine.dispose()


def run(redis_url: str, database_url: str, *, orders: int = 1_000_000, window: float = 15.0,
        max_windows: int = 40) -> dict:
    seed_seconds = seed(database_url, orders)
    to_prune = old_events(database_url)
    print(f"[prune] seeded {orders:,} orders in {seed_seconds:.0f}s; {to_prune:,} events past 30 days",
          file=sys.stderr, flush=True)
    # The relay's own pruner would start on the seeded rows: give it a retention nothing is past.
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "PUBLISH_MODE": "auto",
           "ORDERFLOW_RETENTION": "3650d"}
    cli_env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
               "PYTHONPATH": str(REPO_ROOT)}
    cli_env.pop("ORDERFLOW_RETENTION", None)  # the default 30 days
    procs = WorkerSet()
    windows: list[dict] = []
    try:
        start_relay(procs, env)
        port = start_gunicorn(procs, env)
        post_while(port, _for_seconds(3))  # both gunicorn workers warm, connections pooled
        pruned = 0
        for _ in range(max_windows):
            calm = post_while(port, _for_seconds(window))
            done, busy = prune_window(cli_env, port, window)
            pruned += done["events"]
            windows.append({**done, "calm_p50_ms": percentile(calm, 50), "calm_p99_ms": percentile(calm, 99),
                            "prune_p50_ms": percentile(busy, 50), "prune_p99_ms": percentile(busy, 99),
                            "prune_max_ms": max(busy), "calm_requests": len(calm),
                            "prune_requests": len(busy)})
            w = windows[-1]
            print(f"[prune] window {len(windows)}: {done['events']:,} events ({done['rows']:,} rows) in "
                  f"{done['prune_seconds']:.1f}s; POST p99 {w['calm_p99_ms']:.1f} ms calm, "
                  f"{w['prune_p99_ms']:.1f} ms pruning", file=sys.stderr, flush=True)
            if done["events"] == 0 or pruned >= to_prune:
                break
        left = old_events(database_url)
    finally:
        procs.stop()
    return {"orders": orders, "seed_seconds": seed_seconds, "to_prune": to_prune, "left": left,
            "window_seconds": window, "windows": windows}


def _for_seconds(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() < deadline
