"""orderflow's own pipeline, as the Procfile runs it, timed like the baselines.

One run: fresh Redis DB and order tables, one `celery -A tasks worker -Q <queue>
--concurrency 1 --loglevel INFO` per queue (or N per queue for scale-out), the
relay and Flower; then 2,000 orders are placed through the real use case
(`place_order`, the same call `POST /orders` makes; on PostgreSQL its commit
NOTIFYs the relay, which publishes, as in production) as fast as 8 threads
can (as concurrent requests would), and the clock stops when all 6,000 deliveries are `succeeded` in
PostgreSQL. Afterwards every effect is counted: each order must have exactly
one delivery per consumer, one revenue row, one e-mail, and exactly its
quantities taken from stock.
"""

from __future__ import annotations

import contextlib
import email
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.common import SHIP_TO, WorkerSet, flush, python_m, wait_for
from bench.database import BENCH_STOCK, reset
from bench.load_sampler import LoadSampler
from bench.services import Sink, start_flower
from orders.payments import SimulatedGateway
from orders.place_order import place_order
from orders.subscriptions import ORDER_CREATED
from outbox import tracing
from outbox.db import make_engine, make_session_factory
from outbox.subscriptions import subscribers_of

LINES = [{"sku": "mug", "quantity": 2}, {"sku": "tee", "quantity": 1}]
# Orders are placed from this many threads at once: the Procfile's web serves 2 x 4 threads.
# One thread would measure the round-trip latency of one client on a loaded 2-core machine
# (each of its sequential database round trips waits to be scheduled), not the pipeline.
PRODUCER_THREADS = 8


def order_data(i: int) -> dict:
    return {"customer_email": f"buyer{i}@example.com", "customer_name": "Bench", "card_token": "tok_visa",
            "lines": LINES, "shipping_address": SHIP_TO}


def celery_app(broker_url: str, *, events: bool):  # type: ignore[no-untyped-def]
    """The project's app on `broker_url` (Redis or RabbitMQ), configured as its processes are."""
    import celeryconfig
    from config.settings import Settings, is_rabbitmq
    from tasks import app

    settings = (Settings(database_url="", broker_url=broker_url) if is_rabbitmq(broker_url)
                else Settings(database_url="", redis_url=broker_url))
    app.conf.update(celeryconfig.broker_conf(settings), task_send_sent_event=events)
    # Celery keeps its pools and queue declarations from their first use: made again here.
    app._pool = None
    app.__dict__.pop("amqp", None)
    return app


def order_created_queues() -> list[str]:
    """The consumers this bench measures: order.created's (the shipping chain has its own section)."""
    return [subscriber.queue for subscriber in subscribers_of(ORDER_CREATED)]


def start_system(workers: WorkerSet, extras: WorkerSet, env: dict[str, str], *, per_queue: int,
                 events: bool) -> list[str]:
    """Workers (+ relay, + Flower when events are on); returns the worker node names."""
    host = socket.gethostname()
    module = "tasks" if events else "bench.events_off"
    names = []
    for queue in order_created_queues():
        for i in range(per_queue):
            name = f"{queue}{i}@{host}"
            names.append(name)
            workers.spawn(name, python_m("celery", "-A", module, "worker", "-Q", queue, "-n", name,
                                         "--concurrency", "1", "--loglevel", "INFO"), env)
    extras.spawn("relay", python_m("tasks.relay"), env)
    if events:
        start_flower(extras, env)
    return names


def wait_ready(app, workers: WorkerSet, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    def all_pong() -> bool:
        workers.check_alive()
        replies = app.control.ping(destination=names, timeout=0.5, limit=len(names))
        return {n for r in replies for n in r} >= set(names)

    wait_for(all_pong, 120, "orderflow workers to answer ping", interval=0.1)


def place_all(session_factory, gateway: SimulatedGateway, n_orders: int, threads: int, *,  # type: ignore[no-untyped-def]
              traced: bool = False) -> None:
    """Place `n_orders` from `threads` threads at once, as concurrent requests to the web would.
    `traced`: each in the span `POST /orders` opens in web/routes.py (the order's trace)."""
    def place(i: int) -> None:
        place_order(session_factory=session_factory, gateway=gateway, data=order_data(i))

    def traced_place(i: int) -> None:
        with tracing.span("POST /orders", kind="server"):
            place(i)

    with ThreadPoolExecutor(threads) as pool:
        # list(): re-raise the first failure here
        list(pool.map(traced_place if traced else place, range(n_orders)))


def run_once(redis_url: str, database_url: str, sink: Sink, *, n_orders: int = 2000,
             per_queue: int = 1, events: bool = True, producer_threads: int = PRODUCER_THREADS,
             trace_to: str | None = None, broker_url: str | None = None) -> dict:
    """`trace_to`: an OTLP/HTTP endpoint every process (and the producer) sends its spans to.
    `broker_url`: run on that broker (RabbitMQ: an empty vhost) instead of `redis_url`."""
    flush(redis_url)
    engine = make_engine(database_url)
    session_factory = make_session_factory(engine)
    reset(session_factory=session_factory)
    sink.clear()
    app = celery_app(broker_url or redis_url, events=events)
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "SMTP_URL": sink.url,
           **({"BROKER_URL": broker_url} if broker_url else {})}
    if trace_to:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = trace_to
        tracing.configure(trace_to, "orderflow-bench")
    workers, extras = WorkerSet(), WorkerSet()
    expected = n_orders * len(order_created_queues())
    try:
        names = start_system(workers, extras, env, per_queue=per_queue, events=events)
        wait_ready(app, workers, names)
        time.sleep(0.5)  # let Flower subscribe to the event stream and the relay poll once
        gateway = SimulatedGateway()
        queues = order_created_queues()
        by_queue0 = workers.cpu_by_prefix(queues)
        cpu0, extra_cpu0 = workers.cpu_seconds(), extras.cpu_seconds()
        def done() -> bool:
            workers.check_alive()
            with engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM deliveries WHERE state = 'succeeded'")
                                    ).scalar_one() >= expected

        with LoadSampler(make_url(database_url).database or "") as load:
            t0, producer_cpu0 = time.perf_counter(), time.process_time()
            place_all(session_factory, gateway, n_orders, producer_threads, traced=bool(trace_to))
            t_placed = time.perf_counter()
            producer_cpu = time.process_time() - producer_cpu0
            wait_for(done, 600, f"{expected} succeeded deliveries", interval=0.05)
            t_done = time.perf_counter()
        cpu1, extra_cpu1 = workers.cpu_seconds(), extras.cpu_seconds()
        by_queue1 = workers.cpu_by_prefix(queues)
        time.sleep(0.5)  # a duplicate would show up now
        checks = verify_exactly_once(engine, sink, n_orders)
        messages = workers.count_log_lines("] received")  # Celery logs one line per message taken
        rss = workers.peak_rss_mb()
    finally:
        workers.stop()
        extras.stop()
        engine.dispose()
        app.conf.task_send_sent_event = True
        if trace_to:
            tracing.shutdown()
    return {
        "executions_per_s": expected / (t_done - t0),
        "orders_per_s": n_orders / (t_placed - t0),
        "producer_cpu_ms_per_order": producer_cpu * 1000 / n_orders,
        # PostgreSQL's backends for this database (the harness's own polling included).
        "postgres_cpu_ms_per_order": load.postgres_cpu_seconds * 1000 / n_orders,
        "machine_busy_percent": load.busy_percent,
        "cpu_ms_per_execution": (cpu1 - cpu0) * 1000 / expected,
        "extras_cpu_ms_per_execution": (extra_cpu1 - extra_cpu0) * 1000 / expected,
        "executions": expected,
        "messages": messages,
        "producer_threads": producer_threads,
        "deliveries_per_message": expected / messages if messages else 0.0,
        "cpu_ms_per_delivery_by_queue": {q: (by_queue1[q] - by_queue0[q]) * 1000 / n_orders for q in queues},
        "peak_rss_mb_max": max(rss),
        "peak_rss_mb_total": sum(rss),
        "worker_processes": len(rss),
        **checks,
    }


def verify_exactly_once(engine, sink: Sink, n_orders: int) -> dict:  # type: ignore[no-untyped-def]
    """Every effect happened once: raise AssertionError naming the first that did not."""
    consumers = len(order_created_queues())
    with engine.connect() as conn:
        q = lambda sql: conn.execute(text(sql)).scalar_one()  # noqa: E731
        states = dict(conn.execute(text("SELECT state, count(*) FROM deliveries GROUP BY state")).all())
        per_pair = q("SELECT count(*) FROM (SELECT event_id, consumer FROM deliveries "
                     "GROUP BY event_id, consumer HAVING count(*) > 1) d")
        redelivered = q("SELECT count(*) FROM deliveries WHERE attempts > 1")
        revenue_rows = q("SELECT count(*) FROM analytics_revenue")
        revenue_ok = q("SELECT (SELECT coalesce(sum(amount_cents), 0) FROM analytics_revenue) = "
                       "(SELECT coalesce(sum(total_cents), 0) FROM orders)")
        ordered = q("SELECT coalesce(sum(quantity), 0) FROM order_lines")
        taken = q(f"SELECT coalesce(sum({BENCH_STOCK} - stock), 0) FROM products")
        unreserved = q("SELECT count(*) FROM order_lines WHERE fulfilment IS DISTINCT FROM 'reserved'")
        orders = q("SELECT count(*) FROM orders")
    mails = sink.messages()
    mail_events = set()
    for path in mails:
        with path.open("rb") as f:
            mail_events.add(email.message_from_binary_file(f)["X-Orderflow-Event"])
    problems = []
    if orders != n_orders:
        problems.append(f"{orders} orders stored, expected {n_orders}")
    if states != {"succeeded": n_orders * consumers}:
        problems.append(f"delivery states {states}, expected {n_orders * consumers} succeeded")
    if per_pair:
        problems.append(f"{per_pair} (event, consumer) pairs with more than one record")
    if revenue_rows != n_orders or not revenue_ok:
        problems.append(f"{revenue_rows} revenue rows (sums equal: {revenue_ok}), expected {n_orders}")
    if taken != ordered or unreserved:
        problems.append(f"stock taken {taken} != ordered {ordered} ({unreserved} lines not reserved)")
    if len(mails) != n_orders or len(mail_events) != n_orders:
        problems.append(f"{len(mails)} mails for {len(mail_events)} events, expected {n_orders} each")
    if problems:
        raise AssertionError("exactly-once check failed: " + "; ".join(problems))
    return {"exactly_once": True, "redelivered": redelivered, "mails": len(mails)}


with contextlib.suppress(ImportError):  # only to fail early with a clear message
    import psycopg  # noqa: F401
