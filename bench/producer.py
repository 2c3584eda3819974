"""Producer latency: POST p50 / p99 over HTTP against gunicorn + PostgreSQL + Redis.

Three variants served by one gunicorn (`bench/producer_app.py`, started with
the Procfile's options), measured interleaved: orderflow as the Procfile runs it
on PostgreSQL (the commit NOTIFYs `python -m tasks.relay`, which publishes; no
in-process fast path), the same insert with no events, and the direct-call
design against an SMTP sink that takes 50 ms per message. One client, sequential
requests on a keep-alive connection. The relay runs throughout (it publishes
every orderflow event to Redis); no consumer workers run: this measures what
the request costs, not the pipeline. For orderflow, how long each event waited
between its commit and its publication (`publish_lag_*`) is read back from the outbox.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from collections.abc import Callable

from sqlalchemy import text

from bench.common import SHIP_TO, WorkerSet, flush, free_port, python_m, wait_for
from bench.database import reset
from bench.services import Sink, port_answers
from bench.stats import percentile
from outbox.clock import utcnow
from outbox.db import make_engine

VARIANTS = {
    "orderflow": "/orders",
    "no events": "/bench/orders/no-events",
    "direct call": "/bench/orders/direct",
}
BODY = json.dumps({"customer_email": "ada@example.com", "customer_name": "Ada", "card_token": "tok_visa",
                   "lines": [{"sku": "mug", "quantity": 2}, {"sku": "tee", "quantity": 1}],
                   "shipping_address": SHIP_TO})
GUNICORN_OPTS = ["--workers", "2", "--threads", "4", "--worker-class", "gthread"]  # as the Procfile


def start_gunicorn(procs: WorkerSet, env: dict[str, str]) -> int:
    port = free_port()
    argv = python_m("gunicorn", "--bind", f"127.0.0.1:{port}", *GUNICORN_OPTS, "--access-logfile", "-",
                    "bench.producer_app:create_app()")
    procs.spawn("gunicorn", argv, env)
    wait_for(lambda: procs.check_alive() or port_answers(port), 60, "gunicorn")
    return port


def start_relay(procs: WorkerSet, env: dict[str, str]) -> None:
    """The Procfile's `relay`, listening before the first request."""
    relay = procs.spawn("relay", python_m("tasks.relay"), env)
    wait_for(lambda: procs.check_alive() or "listening for" in relay.log_tail(), 60, "relay")


def publish_lag(database_url: str, since: object, expected: int) -> dict[str, float]:
    """Wait until the relay has published the `expected` events committed after `since`;
    their commit-to-publish delays (ms)."""
    engine = make_engine(database_url)
    query = text("SELECT extract(epoch FROM published_at - created_at) * 1000 FROM outbox "
                 "WHERE created_at >= :since")
    try:
        def lags() -> list[float]:
            with engine.connect() as conn:
                return [float(x) if x is not None else -1.0
                        for x in conn.scalars(query, {"since": since})]
        wait_for(lambda: len(got := lags()) == expected and min(got) >= 0, 60, "relay published all")
        done = lags()
    finally:
        engine.dispose()
    return {"publish_lag_p50_ms": percentile(done, 50), "publish_lag_p99_ms": percentile(done, 99)}


def post_many(port: int, path: str, n: int) -> list[float]:
    """n sequential POSTs; latencies in ms. Every answer must be 201."""
    sent = iter(range(n))
    return post_while(port, lambda: next(sent, None) is not None, path=path)


def post_while(port: int, going: Callable[[], bool], *, path: str = "/orders") -> list[float]:
    """Sequential POSTs on one keep-alive connection while `going()`; latencies in ms. Every answer
    must be 201."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    latencies = []
    try:
        while going():
            t0 = time.perf_counter()
            conn.request("POST", path, BODY, headers)
            response = conn.getresponse()
            body = response.read()
            latencies.append((time.perf_counter() - t0) * 1000)
            if response.status != 201:
                raise AssertionError(f"POST {path}: {response.status} {body[:300]!r}")
    finally:
        conn.close()
    return latencies


def run(redis_url: str, database_url: str, sink: Sink, *, requests: int = 250, repeat: int = 3,
        warmup: int = 20) -> dict[str, list[dict]]:
    flush(redis_url)
    reset(engine_url=database_url)
    sink.clear()
    # The production default: PUBLISH_MODE=auto is the relay, woken by NOTIFY, on PostgreSQL.
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "SMTP_URL": sink.url,
           "PUBLISH_MODE": "auto"}
    procs = WorkerSet()
    results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    try:
        start_relay(procs, env)
        port = start_gunicorn(procs, env)
        for path in VARIANTS.values():  # both gunicorn workers warm, connections pooled
            post_many(port, path, warmup)
        for rep in range(1, repeat + 1):
            for name, path in VARIANTS.items():
                since = utcnow()
                samples = post_many(port, path, requests)
                r = {"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99),
                     "requests": len(samples)}
                if name == "orderflow":
                    r.update(publish_lag(database_url, since, requests))
                results[name].append(r)
                print(f"[producer {rep}/{repeat}] {name}: p50 {r['p50_ms']:.1f} ms, "
                      f"p99 {r['p99_ms']:.1f} ms", file=sys.stderr, flush=True)
        expected_mails = warmup + requests * repeat
        if len(sink.messages()) != expected_mails:
            raise AssertionError(f"direct call sent {len(sink.messages())} mails, expected {expected_mails}")
    finally:
        procs.stop()
    return results
