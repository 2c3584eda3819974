"""The cross-service chain: orders shipped per second (exactly once), and POST -> shipped latency.

    python -m bench.chain             # alone (~3 min): `make bench-chain`

The processes as the Procfile runs them — both relays (orders and shipping),
one Celery worker per queue (email, inventory, analytics, customer_mail,
fulfilment, shipping) — on two throwaway PostgreSQL databases (orders and
shipping) and a private Redis, with an SMTP sink. Each repetition:

1. **throughput**: ORDERS orders placed at once (place_order from PRODUCER_THREADS
   threads, as the web would), timed from the first placement until the last order is
   `shipped`. Exactly once is checked, not assumed: one shipment per order in the
   shipping database, one booking per order at the carrier, one "has shipped" mail per
   order, stock taken exactly;
2. **latency at half that rate**: LATENCY_ORDERS orders placed at a steady half of the
   throughput just measured; each order's latency is from its `created_at` (the commit
   of POST's transaction) to its order.shipped event's `created_at` (the commit that
   made it `shipped`): both written by the same database clock.

Writes docs/bench/chain.json and rewrites BENCHMARKS.md (bench/report.py, section 11).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import text

from bench.common import (
    REPO_ROOT,
    SHIP_TO,
    WorkerSet,
    measure_section,
    python_m,
    rewrite_report,
    start_redis,
    wait_for,
)
from bench.database import reset, throwaway_database
from bench.services import smtp_sink
from bench.stats import percentile, summary
from orders.payments import SimulatedGateway
from orders.place_order import place_order
from outbox.db import make_engine, make_session_factory

ORDERS = 600
LATENCY_ORDERS = 200
PRODUCER_THREADS = 8
QUEUES = ("email", "inventory", "analytics", "customer_mail", "fulfilment", "shipping")
SHIPPING_TABLES = ("shipments", "outbox", "deliveries", "delivery_errors", "dead_letter_actions")


def order_data(i: int) -> dict:
    return {"customer_email": f"chain{i}@example.com", "customer_name": "Bench", "card_token": "tok_visa",
            "lines": [{"sku": "mug", "quantity": 1}], "shipping_address": SHIP_TO}


def start_system(procs: WorkerSet, env: dict[str, str]) -> None:
    procs.spawn("relay", python_m("tasks.relay"), env)
    procs.spawn("shipping_relay", python_m("tasks.relay", "--service", "shipping"), env)
    for queue in QUEUES:
        procs.spawn(queue, python_m("celery", "-A", "tasks", "worker", "-Q", queue, "-n", f"{queue}@bench",
                                    "--concurrency", "1", "--loglevel", "WARNING"), env)


def shipped_count(orders_engine) -> int:  # type: ignore[no-untyped-def]
    with orders_engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM orders WHERE status = 'shipped'")).scalar_one())


def warm_up(session_factory, orders_engine, procs: WorkerSet) -> None:  # type: ignore[no-untyped-def]
    """One order through the whole chain: every worker has imported, connected and answered."""
    place_order(session_factory=session_factory, gateway=SimulatedGateway(), data=order_data(-1))
    wait_for(lambda: procs.check_alive() or shipped_count(orders_engine) == 1, 120,
             "the warm-up order shipped")


def throughput(session_factory, orders_engine, ship_engine, sink,  # type: ignore[no-untyped-def]
               carrier_ledger: str, procs: WorkerSet) -> dict:
    gateway = SimulatedGateway()
    base = shipped_count(orders_engine)
    stock0 = _stock(orders_engine)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(PRODUCER_THREADS) as pool:
        list(pool.map(lambda i: place_order(session_factory=session_factory, gateway=gateway,
                                            data=order_data(i)), range(ORDERS)))
    wait_for(lambda: procs.check_alive() or shipped_count(orders_engine) - base >= ORDERS, 600,
             f"{ORDERS} orders shipped", interval=0.05)
    seconds = time.perf_counter() - t0
    wait_for(lambda: _mails(sink, "has shipped") >= base + ORDERS, 120, "every shipped mail")
    with ship_engine.connect() as conn:
        shipments = conn.execute(text("SELECT count(*), count(DISTINCT order_id) FROM shipments")).one()
    from shipping.carrier import SimulatedCarrier

    return {"orders": ORDERS, "seconds": round(seconds, 3), "shipped_per_s": round(ORDERS / seconds, 1),
            "exactly_once": {
                "shipments": int(shipments[0]) - base, "distinct_orders": int(shipments[1]) - base,
                "carrier_bookings": len(SimulatedCarrier(carrier_ledger).bookings()) - base,
                "shipped_mails": _mails(sink, "has shipped") - base,
                "stock_taken": stock0 - _stock(orders_engine)}}


def latency(session_factory, orders_engine, procs: WorkerSet, rate: float) -> dict:  # type: ignore[no-untyped-def]
    """LATENCY_ORDERS orders at `rate` per second, paced from one thread (placing is fast)."""
    gateway = SimulatedGateway()
    ids: list[str] = []
    t0 = time.perf_counter()
    for i in range(LATENCY_ORDERS):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        ids.append(place_order(session_factory=session_factory, gateway=gateway,
                               data=order_data(ORDERS + i)).order_id)
    query = text("SELECT extract(epoch FROM e.created_at - o.created_at) FROM orders o "
                 "JOIN outbox e ON e.aggregate_id = o.id AND e.event_type = 'order.shipped' "
                 "WHERE o.id = ANY(:ids)")

    def latencies() -> list[float]:
        with orders_engine.connect() as conn:
            return [float(v) * 1000 for v in conn.execute(query, {"ids": ids}).scalars()]

    wait_for(lambda: procs.check_alive() or len(latencies()) == len(ids), 300, "the paced orders shipped")
    found = latencies()
    return {"rate_per_s": round(rate, 1), "orders": len(ids), "p50_ms": round(percentile(found, 50), 1),
            "p99_ms": round(percentile(found, 99), 1), "max_ms": round(max(found), 1)}


def run(*, repeat: int = 2) -> dict:
    server = start_redis()
    procs = WorkerSet()
    ledgers = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    reps = []
    try:
        with throwaway_database("chain") as orders_url, throwaway_database("ship") as ship_url, \
                smtp_sink() as sink:
            orders_engine, ship_engine = make_engine(orders_url), make_engine(ship_url)
            session_factory = make_session_factory(orders_engine)
            for rep in range(1, repeat + 1):
                print(f"bench.chain: repetition {rep}/{repeat}", flush=True)
                reset(session_factory=session_factory)
                with ship_engine.begin() as conn:
                    conn.execute(text(f"TRUNCATE {', '.join(SHIPPING_TABLES)}"))
                sink.clear()
                carrier = str(ledgers / f"carrier-{rep}.sqlite3")
                env = {"REDIS_URL": server.url, "DATABASE_URL": orders_url,
                       "SHIPPING_DATABASE_URL": ship_url, "SMTP_URL": sink.url, "CARRIER_LEDGER": carrier,
                       "PAYMENTS_LEDGER": str(ledgers / "payments.sqlite3")}
                procs = WorkerSet()  # its own log directory (stop() removes it)
                start_system(procs, env)
                try:
                    warm_up(session_factory, orders_engine, procs)
                    measured = throughput(session_factory, orders_engine, ship_engine, sink, carrier, procs)
                    measured["latency"] = latency(session_factory, orders_engine, procs,
                                                  measured["shipped_per_s"] / 2)
                finally:
                    procs.stop()
                reps.append(measured)
            orders_engine.dispose()
            ship_engine.dispose()
    finally:
        procs.stop()
        server.stop()
    return {"orders": ORDERS, "latency_orders": LATENCY_ORDERS, "repetitions": reps}


def _stock(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT stock FROM products WHERE sku = 'mug'")).scalar_one())


def _mails(sink, needle: str) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for path in sink.messages() if needle in path.read_text(errors="replace"))


def section(res: dict, verdicts: list[str]) -> list[str]:
    """BENCHMARKS.md's section 11 (bench/report.py calls it when docs/bench/chain.json exists)."""
    reps = res["repetitions"]
    exact = all(r["exactly_once"] == {"shipments": res["orders"], "distinct_orders": res["orders"],
                                      "carrier_bookings": res["orders"], "shipped_mails": res["orders"],
                                      "stock_taken": res["orders"]} for r in reps)
    rate = summary([r["shipped_per_s"] for r in reps])
    p50 = summary([r["latency"]["p50_ms"] for r in reps])
    p99 = summary([r["latency"]["p99_ms"] for r in reps])
    verdicts.append(f"11. Cross-service chain: {rate['median']:.1f} orders shipped/s, exactly once: "
                    f"**{'yes' if exact else 'NO'}**; POST -> shipped at half that rate: p50 "
                    f"{p50['median']:.0f} ms, p99 {p99['median']:.0f} ms")
    meta = res.get("meta", {})
    rows = [f"| {i} | {r['shipped_per_s']} | {once['shipments']} / {once['carrier_bookings']}"
            f" / {once['shipped_mails']} / {once['stock_taken']} | "
            f"{r['latency']['rate_per_s']} | {r['latency']['p50_ms']} | {r['latency']['p99_ms']} | "
            f"{r['latency']['max_ms']} |" for i, r in enumerate(reps, 1) for once in [r["exactly_once"]]]
    return [
        "", "## 11. The cross-service chain: placed -> reserved -> shipped", "",
        f"Command: `{meta.get('command', 'python -m bench.chain')}` — started {meta.get('started', '?')}, "
        f"took {meta.get('minutes', '?')} min; load average {meta.get('load_start', '?')} at start. "
        f"Per repetition: {res['orders']} orders placed at once through the whole chain (inventory, "
        "order.reserved, the shipping service on its own database with its own relay, shipment.booked, "
        "fulfilment, order.shipped, the shipped mail), one worker per queue; then "
        f"{res['latency_orders']} orders paced at half the rate just measured, each timed from its commit "
        "to the commit that made it `shipped` (docs/workflow.md). Exactly once is counted: shipments / "
        "carrier bookings / shipped mails / stock taken, each must equal the orders placed.",
        "",
        "| repetition | orders shipped/s | shipments / bookings / mails / stock | paced rate /s | "
        "p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]


def measure_and_save(charts: Path, *, repeat: int, command: str) -> dict:
    return measure_section("chain", lambda: run(repeat=repeat), charts, command=command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--charts", default=str(REPO_ROOT / "docs" / "bench"))
    parser.add_argument("--out", default=str(REPO_ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    charts = Path(args.charts)
    command = (os.environ.get("BENCH_COMMAND") or "python -m bench.chain").strip()
    result = measure_and_save(charts, repeat=args.repeat, command=command)
    print(json.dumps(result, indent=2))
    print(rewrite_report(charts, Path(args.out)))
    return 0



if __name__ == "__main__":
    sys.exit(main())
