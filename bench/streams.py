"""Live status at scale: the API's latency with 0, 100, 1,000 and 5,000 open streams.

    python -m bench.streams            # alone (~3 min); `make bench` runs it too

The system as the Procfile runs it — gunicorn (`--workers 2 --threads 4
--worker-class gthread`), the stream server (`python -m live`), the relay, one
Celery worker per queue — on PostgreSQL and a private Redis, with an SMTP sink
answering 451 to every message and a long email backoff, so the watched orders
stay `retrying` and their streams stay open. The watchers are asyncio clients
in processes of their own (`python -m devtools.watchers`, one per level), spread
over WATCHED_ORDERS orders: in this process they would take the GIL from the
client whose latency is measured. Each repetition opens 0, 100, 1,000, 5,000 streams in turn and, at each
level, sends REQUESTS sequential `POST /orders` on a keep-alive connection
(as section 1 does); the ratio of p50 and p99 to the same repetition's 0-stream
level is the verdict (≤ 1.5). Also measured at each level: the stream server's
established connections to Redis and PostgreSQL, and its resident memory.
Writes docs/bench/streams.json and rewrites BENCHMARKS.md (bench/report.py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import time
from pathlib import Path

import psutil

from bench.common import (
    REPO_ROOT,
    SHIP_TO,
    Worker,
    WorkerSet,
    free_port,
    measure_section,
    python_m,
    rewrite_report,
    start_redis,
    tree_cpu_seconds,
    wait_for,
)
from bench.database import throwaway_database
from bench.producer import GUNICORN_OPTS, post_many, start_relay
from bench.services import port_answers
from bench.stats import percentile, ratio_summary, summary
from devtools.watchers import raise_open_files

LEVELS = (0, 100, 1000, 5000)
WATCHED_ORDERS = 100
REQUESTS = 120
WARMUP = 20
TARGET_RATIO = 1.5


def start_system(procs: WorkerSet, redis_url: str, database_url: str) -> tuple[int, int, int]:
    """The Procfile's processes; (API port, stream server port, stream server pid)."""
    sink_port, api_port, stream_port = free_port(), free_port(), free_port()
    procs.spawn("smtp", python_m("devtools.smtp_sink", "--port", str(sink_port), "--fail-first", "-1",
                                 "--fail-code", "451", "--dir", procs.logdir), {})
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
           # Retries far apart: the watched orders stay "retrying" without a retry storm that
           # would load the machine more at each level than at the one before.
           "ORDERFLOW_RETRY_POLICIES": json.dumps(
               {"email": {"max_retries": 100, "backoff_base": 120, "backoff_max": 240}}),
           "DELIVERY_BATCH_MAX": "1", "STREAM_MAX_OPEN": str(max(LEVELS) + 100),
           "STREAM_MAX_PER_CLIENT": str(max(LEVELS) + 100), "STREAM_PUBLIC_URL": f"http://127.0.0.1:{stream_port}"}
    start_relay(procs, env)
    for queue in ("email", "inventory", "analytics"):
        procs.spawn(queue, python_m("celery", "-A", "tasks", "worker", "-Q", queue, "-n", f"{queue}@%h",
                                    "--concurrency", "1", "--loglevel", "INFO"), env)
    procs.spawn("web", python_m("gunicorn", "--bind", f"127.0.0.1:{api_port}", *GUNICORN_OPTS,
                                "web:create_app()"), env)
    stream = procs.spawn("stream", python_m("live", "--port", str(stream_port)), env)
    wait_for(lambda: procs.check_alive() or (port_answers(api_port) and port_answers(stream_port)), 60,
             "gunicorn and the stream server")
    return api_port, stream_port, stream.proc.pid


def place(api_port: int, n: int) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)
    body = json.dumps({"customer_email": "watched@example.com", "card_token": "tok_visa",
                       "lines": [{"sku": "mug", "quantity": 1}],
                       "shipping_address": SHIP_TO})
    ids = []
    try:
        for _ in range(n):
            conn.request("POST", "/orders", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            ids.append(json.loads(response.read())["order"]["id"])
    finally:
        conn.close()
    return ids


def email_state(api_port: int, order_id: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)
    try:
        conn.request("GET", f"/orders/{order_id}")
        return json.loads(conn.getresponse().read())["order"]["events"][0]["deliveries"]["email"]["state"]
    finally:
        conn.close()


def held_connections(pid: int, port: int) -> int:
    return sum(1 for c in psutil.Process(pid).net_connections(kind="tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def streaming(watchers: Worker) -> int:
    """How many of a watcher process's streams are open and showed the current state."""
    found = re.findall(r"streaming=(\d+) refused=(\d+) ended=(\d+) closed=(\d+)", watchers.log_tail(5))
    if not found:
        return 0
    open_now, refused, ended, closed = map(int, found[-1])
    if refused or ended or closed:
        raise AssertionError(f"watchers: {refused} refused, {ended} ended, {closed} closed")
    return open_now


def sweep(api_port: int, stream_port: int, pid: int, orders: list[str], redis_port: int,
          pg_port: int) -> list[dict]:
    """One repetition: every level in turn, the streams of the previous level kept open."""
    rows = []
    crowds = WorkerSet()
    held = 0
    urls = [f"http://127.0.0.1:{stream_port}/orders/{o}/events" for o in orders]
    try:
        for level in LEVELS:
            if level > held:
                watchers = crowds.spawn(f"watchers-{level}", python_m(
                    "devtools.watchers", *urls, "--count", str(level - held), "--seconds", "900"), {})
                wait_for(lambda w=watchers, n=level - held: crowds.check_alive() or streaming(w) == n,
                         120, f"{level - held} more streams open")
                held = level
            time.sleep(2.0)  # let the connect burst settle: what is measured is streams held open
            cpu_before, clock_before = tree_cpu_seconds(pid), time.monotonic()
            samples = post_many(api_port, "/orders", REQUESTS)
            busy = (tree_cpu_seconds(pid) - cpu_before) / (time.monotonic() - clock_before)
            rows.append({"streams": level, "p50_ms": percentile(samples, 50),
                         "p99_ms": percentile(samples, 99),
                         "redis_connections": held_connections(pid, redis_port),
                         "database_connections": held_connections(pid, pg_port),
                         "rss_mb": psutil.Process(pid).memory_info().rss / 2**20,
                         "stream_server_cpu_percent": busy * 100})
            print(f"bench.streams: {rows[-1]}", flush=True)
        for watchers in crowds.workers:
            streaming(watchers)  # none refused, ended or closed while measuring
    finally:
        crowds.stop()
    return rows


def run(*, repeat: int = 3) -> dict:
    raise_open_files(max(LEVELS) + 1024)
    server = start_redis()
    procs = WorkerSet()
    try:
        with throwaway_database() as database_url:
            api_port, stream_port, pid = start_system(procs, server.url, database_url)
            post_many(api_port, "/orders", WARMUP)
            orders = place(api_port, WATCHED_ORDERS)
            wait_for(lambda: all(email_state(api_port, o) == "retrying" for o in orders), 120,
                     "the watched orders' email retrying")
            redis_port = int(server.url.rsplit(":", 1)[1].split("/")[0])
            pg_port = int(database_url.split("@", 1)[1].split("/")[0].split(":")[1])
            sweeps = []
            for rep in range(1, repeat + 1):
                print(f"bench.streams: repetition {rep}/{repeat}", flush=True)
                sweeps.append(sweep(api_port, stream_port, pid, orders, redis_port, pg_port))
                procs.check_alive()
    finally:
        procs.stop()
        server.stop()
    return {"levels": list(LEVELS), "watched_orders": WATCHED_ORDERS, "requests": REQUESTS, "sweeps": sweeps}


def section(res: dict, verdicts: list[str]) -> list[str]:
    """BENCHMARKS.md's section 7 (bench/report.py calls it when docs/bench/streams.json exists)."""
    sweeps, levels = res["sweeps"], res["levels"]

    def at(level: int, key: str) -> list[float]:
        return [s[levels.index(level)][key] for s in sweeps]

    rows, worst = [], 0.0
    for level in levels:
        p50r, p99r = (ratio_summary(at(level, k), at(0, k)) for k in ("p50_ms", "p99_ms"))
        worst = max(worst, p50r["median"], p99r["median"]) if level else worst
        first = sweeps[0][levels.index(level)]
        per_stream = ((first["rss_mb"] - sweeps[0][0]["rss_mb"]) * 1024 / level) if level else None
        rows.append(f"| {level:,} | {_fmt(at(level, 'p50_ms'))} | {_fmt(at(level, 'p99_ms'))} | "
                    f"{_ratio(p50r)} | {_ratio(p99r)} | {_range(at(level, 'redis_connections'))} | "
                    f"{_range(at(level, 'database_connections'))} | {first['rss_mb']:.0f} | "
                    f"{'–' if per_stream is None else f'{per_stream:.1f}'} | "
                    f"{_fmt(at(level, 'stream_server_cpu_percent'))} |")
    top = max(levels)
    ok = worst <= TARGET_RATIO
    redis_held = _range([s[-1]["redis_connections"] for s in sweeps])
    pg_held = _range([s[-1]["database_connections"] for s in sweeps])
    verdicts.append(f"7. Live status streams, worst p50/p99 ratio to 0 streams up to {top:,} open = "
                    f"{worst:.2f} (target ≤ {TARGET_RATIO}): **{'met' if ok else 'missed'}**; stream server "
                    f"connections: Redis {redis_held}, PostgreSQL {pg_held} at {top:,} streams")
    meta = res.get("meta", {})
    return [
        "", "## 7. Live status streams: the API with thousands of watchers", "",
        f"Command: `{meta.get('command', 'python -m bench.streams')}` — started {meta.get('started', '?')}, "
        f"took {meta.get('minutes', '?')} min; load average {meta.get('load_start', '?')} at start. "
        f"{len(sweeps)} repetitions; each opens 0, then 100, 1,000 and {top:,} streams (kept open from one "
        f"level to the next) over {res['watched_orders']} orders whose email keeps retrying (SMTP 451), "
        f"and at each level sends {res['requests']} sequential `POST /orders` to gunicorn as the Procfile "
        "runs it. "
        "Ratios are per repetition against its own 0-stream level (median and range). Connections are the "
        "stream server's established TCP connections to Redis and PostgreSQL. Memory is the stream server's "
        "resident set in the first repetition; per stream = its growth from 0 streams / streams (KiB). "
        "Stream server CPU % is its CPU time while the POSTs ran / their wall time (the streams idle: "
        "keep-alives and one re-read of the watched orders per `SSE_KEEPALIVE_SECONDS`, 15 s).",
        "",
        "| open streams | POST p50 ms | POST p99 ms | p50 / 0 streams | p99 / 0 streams | Redis conns | "
        "PostgreSQL conns | stream server RSS MiB | KiB per stream | stream server CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def _fmt(values: list[float]) -> str:
    s = summary(values)
    return f"{s['median']:.1f} ({s['min']:.1f}–{s['max']:.1f})"


def _ratio(s: dict) -> str:
    return f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f})"


def _range(values: list[float]) -> str:
    low, high = int(min(values)), int(max(values))
    return str(low) if low == high else f"{low}–{high}"


def measure_and_save(charts: Path, *, repeat: int, command: str) -> dict:
    """Measure, and keep the result in <charts>/streams.json (bench/report.py renders it)."""
    return measure_section("streams", lambda: run(repeat=repeat), charts, command=command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--charts", default=str(REPO_ROOT / "docs" / "bench"))
    parser.add_argument("--out", default=str(REPO_ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    charts = Path(args.charts)
    command = (os.environ.get("BENCH_COMMAND") or "python -m bench.streams").strip()
    measure_and_save(charts, repeat=args.repeat, command=command)
    print(rewrite_report(charts, Path(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
