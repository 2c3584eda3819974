"""RabbitMQ: the pipeline beside bare Celery on RabbitMQ, and the relay's publish rate with confirms.

Runs on the machine's RabbitMQ (BENCH_RABBITMQ_URL, default
amqp://guest:guest@127.0.0.1:5672/), in vhosts made for the run with
`rabbitmqctl` and deleted after it; without them the section is skipped and
says why. Each repetition runs, interleaved:

- pipeline: bare Celery on RabbitMQ (defaults: classic queues, early acks, no
  confirms; no-op tasks that INCR a Redis counter) and orderflow on RabbitMQ as
  `BROKER_URL=amqp://...` runs it (quorum queues, confirms, late acks, workers,
  relay, Flower), same orders as bench/pipeline.py, effects checked exactly once;
- relay: `relay_once` passes with confirms pipelined (tasks/confirms.py), the
  same passes with one confirm per message (the publisher before), and an
  `apply_async` loop with confirms (celeryconfig's `confirm_publish`), for the
  same committed events, one message per delivery; each run checks that exactly
  3 messages per event reached the queues.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from kombu import Connection

import tasks.publisher
from bench import pipeline, relay_rate
from bench.baselines import celery_bare
from bench.database import reset
from bench.services import Sink
from config.settings import Settings
from outbox.db import make_engine, make_session_factory
from outbox.subscriptions import all_consumers
from tasks.runtime import Runtime

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
BARE, ORDERFLOW = "bare Celery on RabbitMQ (defaults)", "orderflow on RabbitMQ (events on, Flower)"
PIPELINED = "relay, confirms pipelined"
ONE_BY_ONE = "relay, one confirm per message (before)"
LOOP = "apply_async loop, confirms"
RELAY_VARIANTS = (PIPELINED, ONE_BY_ONE, LOOP)


def server_url() -> str:
    return os.environ.get("BENCH_RABBITMQ_URL") or DEFAULT_URL


def missing_reason() -> str | None:
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl not found (the section makes a vhost per run)"
    try:
        Connection(server_url(), connect_timeout=2).ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any failure means "no RabbitMQ here"
        return f"RabbitMQ does not answer at {urlsplit(server_url()).hostname} ({type(exc).__name__})"
    return None


def ctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip()


@contextlib.contextmanager
def vhost(prefix: str) -> Iterator[str]:
    """The amqp:// URL of a new vhost, deleted with its queues afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(server_url())
    ctl("add_vhost", name)
    try:
        ctl("set_permissions", "-p", name, parts.username or "guest", ".*", ".*", ".*")
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True, timeout=60)


def ready_messages(url: str, queues: list[str]) -> int:
    with Connection(url, connect_timeout=5) as conn:
        channel = conn.channel()
        return sum(channel.queue_declare(queue=q, passive=True).message_count for q in queues)


def purge(url: str, queues: list[str]) -> None:
    with Connection(url, connect_timeout=5) as conn:
        channel = conn.channel()
        for q in queues:
            with contextlib.suppress(Exception):
                channel.queue_purge(q)


def relay_passes(app, runtime: Runtime, n: int, *, pipelined: bool) -> float:  # type: ignore[no-untyped-def]
    """`relay_once` until the outbox is empty; `pipelined=False` puts back py-amqp's wait per publish."""
    confirmed = tasks.publisher.confirmed
    if not pipelined:
        tasks.publisher.confirmed = lambda producer, **_: contextlib.nullcontext()  # type: ignore[assignment,misc]
    try:
        return relay_rate.timed_passes(app, runtime, n)
    finally:
        tasks.publisher.confirmed = confirmed  # type: ignore[assignment]


def relay_once_each(url: str, database_url: str, runtime: Runtime, n_events: int) -> dict[str, dict]:
    app = pipeline.celery_app(url, events=True)
    queues = all_consumers()
    measured: dict[str, dict] = {}
    for variant in RELAY_VARIANTS:
        purge(url, queues)
        reset(session_factory=runtime.session_factory)
        relay_rate.seed_unpublished(database_url, n_events)
        if variant == LOOP:
            elapsed, n = relay_rate.apply_async_loop(app, runtime)
        else:
            elapsed, n = relay_passes(app, runtime, n_events, pipelined=variant == PIPELINED), n_events
        messages = ready_messages(url, queues)
        if n != n_events or messages != 3 * n_events:
            raise AssertionError(f"{variant}: {messages} messages queued for {n} events, "
                                 f"expected {3 * n_events}")
        measured[variant] = {"events_per_s": n / elapsed, "messages": messages}
    purge(url, queues)
    return measured


def run(redis_url: str, database_url: str, sink: Sink, *, n_orders: int = 1000, n_events: int = 1000,
        repeat: int = 3) -> dict:
    reason = missing_reason()
    if reason is not None:
        print(f"[rabbitmq] skipped: {reason}", file=sys.stderr, flush=True)
        return {"skipped": reason}
    results: dict = {"server": ctl("version"), "pipeline": {BARE: [], ORDERFLOW: []},
                     "relay": {v: [] for v in RELAY_VARIANTS}}
    engine = make_engine(database_url, pre_ping=False)
    try:
        with vhost("bench_bare") as bare_url, vhost("bench_orderflow") as of_url, \
                vhost("bench_relay") as relay_url:
            runtime = Runtime(Settings(database_url=database_url, redis_url=redis_url, broker_url=relay_url,
                                       delivery_batch_max=1), make_session_factory(engine))
            todo: dict[str, Callable[[], dict]] = {
                BARE: lambda: celery_bare.run_once(redis_url, n_events=n_orders, broker_url=bare_url),
                ORDERFLOW: lambda: pipeline.run_once(redis_url, database_url, sink, n_orders=n_orders,
                                                     broker_url=of_url),
            }
            for rep in range(1, repeat + 1):
                for name, once in todo.items():
                    r = once()
                    results["pipeline"][name].append(r)
                    print(f"[rabbitmq {rep}/{repeat}] {name}: {r['executions_per_s']:,.0f} executions/s",
                          file=sys.stderr, flush=True)
                for name, r in relay_once_each(relay_url, database_url, runtime, n_events).items():
                    results["relay"][name].append(r)
                    print(f"[rabbitmq {rep}/{repeat}] {name}: {r['events_per_s']:,.0f} events/s",
                          file=sys.stderr, flush=True)
    finally:
        engine.dispose()
        pipeline.celery_app(redis_url, events=True)  # the sections after this one run on Redis
    return results


def section(res: dict, verdicts: list[str]) -> list[str]:
    """BENCHMARKS.md's section 10 and its verdict (bench/report.py calls it)."""
    from bench.report import col, fmt, verdict
    from bench.stats import ratio_summary, summary

    if "skipped" in res:
        verdicts.append(f"10. RabbitMQ: not measured ({res['skipped']})")
        return ["", "## 10. RabbitMQ", "", f"Skipped: {res['skipped']}.", ""]
    pipe, relay = res["pipeline"], res["relay"]

    vs_bare = ratio_summary(col(pipe[ORDERFLOW], "executions_per_s"), col(pipe[BARE], "executions_per_s"))
    vs_loop = ratio_summary(col(relay[PIPELINED], "events_per_s"), col(relay[LOOP], "events_per_s"))
    verdicts.append(
        f"10. RabbitMQ: pipeline, orderflow / bare Celery on RabbitMQ = {fmt(vs_bare, '{:.2f}')}× "
        "(target ≥ 1.0): "
        f"{verdict(vs_bare['median'] >= 1.0)}; relay with confirms / apply_async loop with confirms = "
        f"{fmt(vs_loop, '{:.1f}')}× (target ≥ 3): {verdict(vs_loop['median'] >= 3)}")
    bare = col(pipe[BARE], "executions_per_s")
    loop = col(relay[LOOP], "events_per_s")
    prows = []
    for name, runs in pipe.items():
        packed = (fmt(summary(col(runs, "deliveries_per_message")), "{:.1f}")
                  if "deliveries_per_message" in runs[0] else "1")
        once = "yes" if all(r.get("exactly_once", True) for r in runs) else "NO"
        prows.append(f"| {name} | {runs[0]['executions']:,} | {packed} | "
                     f"{fmt(summary(col(runs, 'executions_per_s')))} | "
                     f"{fmt(ratio_summary(col(runs, 'executions_per_s'), bare), '{:.2f}')} | "
                     f"{fmt(summary(col(runs, 'cpu_ms_per_execution')), '{:.2f}')} | {once} |")
    rrows = [f"| {name} | {fmt(summary(col(runs, 'events_per_s')))} | "
             f"{fmt(summary([3 * x for x in col(runs, 'events_per_s')]))} | "
             f"{fmt(ratio_summary(col(runs, 'events_per_s'), loop), '{:.1f}')} |"
             for name, runs in relay.items()]
    return [
        "",
        "## 10. RabbitMQ",
        "",
        f"RabbitMQ {res['server']}, the machine's server, a vhost per variant made for the run "
        "(`bench/rabbitmq.py`). **Pipeline**: "
        f"{pipe[ORDERFLOW][0]['executions'] // 3:,} orders as in section 2, orderflow run as "
        "`BROKER_URL=amqp://...` runs it (durable quorum queues, publisher confirms, late acks, prefetch 1, "
        "task events, Flower connected; effects checked exactly once), against bare Celery on RabbitMQ "
        "with its defaults (classic queues, early acks, no confirms, no-op tasks) measured in the same "
        "repetitions.",
        "",
        "| variant | executions | executions per message | per second | / bare Celery on RabbitMQ | "
        "worker CPU ms / execution | exactly once checked |",
        "|---|---|---|---|---|---|---|",
        *prows,
        "",
        f"**Relay publish rate with confirms**: {relay[PIPELINED][0]['messages'] // 3:,} committed events, "
        "one message per delivery. `relay_once` passes with the confirms pipelined (a pass publishes all its "
        "messages, then waits once for every confirm: `tasks/confirms.py`); the same passes with py-amqp's "
        "one confirm per message (what the relay did before); an `apply_async` loop with "
        "`confirm_publish` (each publish waits for its confirm), no database at all. Every run checks "
        "that exactly 3 messages per event reached the queues.",
        "",
        "| variant | events/s | messages/s | / apply_async loop |",
        "|---|---|---|---|",
        *rrows,
    ]
