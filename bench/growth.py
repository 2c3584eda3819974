"""Growth: does placing, reading and relaying get slower as the tables grow?

Two PostgreSQL databases, one seeded with 10 k and one with 500 k orders (each
with 2 lines, its published outbox event, 3 succeeded deliveries and a revenue
row), seeded in SQL with generate_series (minutes faster than the use case).
Measured interleaved, through the Flask app in-process (no network, so only the
database part varies): POST /orders p50, GET /orders/<id> p50 for random old
orders, and one relay pass publishing the 150 events just placed, then idle relay
polls (median of 20: the query that must not scan published rows).
"""

from __future__ import annotations

import random
import sys
import time

from sqlalchemy import text

from bench.common import flush
from bench.producer import BODY
from bench.stats import percentile
from config.settings import Settings
from outbox.db import make_engine, make_session_factory
from tasks.runtime import Runtime

SEED_SQL = [
    "INSERT INTO orders (id, customer_email, customer_name, total_cents, currency, payment_id, created_at) "
    "SELECT md5(i || 'o')::uuid::text, 'buyer' || i || '@example.com', 'Bench', 4900, 'EUR', 'pay_' || i, "
    "now() - make_interval(secs => i) FROM generate_series(1, :n) i",
    "INSERT INTO order_lines (order_id, sku, quantity, unit_price_cents, fulfilment) "
    "SELECT md5(i || 'o')::uuid::text, s.sku, s.q, s.p, 'reserved' FROM generate_series(1, :n) i, "
    "(VALUES ('mug', 2, 1200), ('tee', 1, 2500)) s(sku, q, p)",
    "INSERT INTO outbox (id, event_type, aggregate_id, payload, created_at, published_at, publish_attempts) "
    "SELECT md5(i || 'e')::uuid::text, 'order.created', md5(i || 'o')::uuid::text, "
    "CAST('{\"order_id\": \"seeded\"}' AS json), now() - make_interval(secs => i), "
    "now() - make_interval(secs => i) + interval '50 milliseconds', 1 FROM generate_series(1, :n) i",
    "INSERT INTO deliveries (event_id, consumer, state, attempts, queue, created_at, updated_at) "
    "SELECT md5(i || 'e')::uuid::text, c, 'succeeded', 1, c, now(), now() FROM generate_series(1, :n) i, "
    "unnest(ARRAY['email', 'inventory', 'analytics']) c",
    "INSERT INTO analytics_revenue (event_id, order_id, amount_cents, currency, recorded_at) "
    "SELECT md5(i || 'e')::uuid::text, md5(i || 'o')::uuid::text, 4900, 'EUR', now() "
    "FROM generate_series(1, :n) i",
]


def seed(database_url: str, n: int) -> float:
    """Seed n historical orders; returns the seconds it took."""
    t0 = time.perf_counter()
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for sql in SEED_SQL:
                conn.execute(text(sql), {"n": n})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return time.perf_counter() - t0


class Target:
    """One database with its Flask test client and relay runtime."""

    def __init__(self, database_url: str, redis_url: str, n_seeded: int):
        from web import create_app

        settings = Settings(database_url=database_url, redis_url=redis_url)
        self.n_seeded = n_seeded
        self.api = create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": None}).test_client()
        self.engine = make_engine(database_url, pre_ping=False)
        self.runtime = Runtime(settings, make_session_factory(self.engine))

    def measure(self, app, rng: random.Random, n: int = 150) -> dict:  # type: ignore[no-untyped-def]
        post, get = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            response = self.api.post("/orders", data=BODY, content_type="application/json")
            post.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 201, response.json
        for _ in range(n):
            order_id = self.old_order_id(rng)
            t0 = time.perf_counter()
            response = self.api.get(f"/orders/{order_id}")
            get.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.json
        from tasks.relay import relay_once

        t0 = time.perf_counter()
        published = relay_once(app, self.runtime, grace_seconds=0)  # the n events placed above
        relay_ms = (time.perf_counter() - t0) * 1000
        assert published == n, f"relay published {published}, expected {n}"
        idle = []
        # One idle poll is ~1 ms of round trips (its query: one index page, 0.01 ms in EXPLAIN
        # ANALYZE on 500 k rows), so what is timed is mostly noise: take the median of many.
        for _ in range(100):
            t0 = time.perf_counter()
            assert relay_once(app, self.runtime, grace_seconds=0) == 0
            idle.append((time.perf_counter() - t0) * 1000)
        idle_ms = percentile(idle, 50)
        return {"post_p50_ms": percentile(post, 50), "get_p50_ms": percentile(get, 50),
                "relay_pass_ms": relay_ms, "relay_idle_ms": idle_ms}

    def old_order_id(self, rng: random.Random) -> str:
        i = rng.randint(1, self.n_seeded)
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT md5(:i || 'o')::uuid::text"), {"i": str(i)}).scalar_one()

    def close(self) -> None:
        self.engine.dispose()


def run(redis_url: str, small_url: str, large_url: str, *, small: int = 10_000, large: int = 500_000,
        repeat: int = 3) -> dict:
    from tasks import app

    app.conf.broker_url = redis_url
    seconds = {"small": seed(small_url, small), "large": seed(large_url, large)}
    print(f"[growth] seeded {small:,} orders in {seconds['small']:.0f}s, "
          f"{large:,} in {seconds['large']:.0f}s", file=sys.stderr, flush=True)
    targets = {f"{small:,} orders": Target(small_url, redis_url, small),
               f"{large:,} orders": Target(large_url, redis_url, large)}
    results: dict[str, list[dict]] = {name: [] for name in targets}
    rng = random.Random(6)
    try:
        for target in targets.values():  # warm-up: connections, caches, compiled statements
            target.measure(app, rng, n=20)
        for rep in range(1, repeat + 1):
            # Alternate which database goes first, so a drift in load favours neither.
            order = list(targets.items()) if rep % 2 else list(reversed(targets.items()))
            for name, target in order:
                flush(redis_url)
                r = target.measure(app, rng)
                results[name].append(r)
                print(f"[growth {rep}/{repeat}] {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()),
                      file=sys.stderr, flush=True)
    finally:
        for target in targets.values():
            target.close()
        flush(redis_url)
    return {"results": results, "seed_seconds": seconds}
