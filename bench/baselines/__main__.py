"""`python -m bench.baselines --repeat 3`: run the baselines interleaved
(A B C A B C ...) against one private Redis and print median and min-max.

Interleaving spreads the noise of this shared 2-core machine over all
variants instead of letting one variant soak up a quiet or busy stretch."""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys

from bench.baselines import QUEUES, celery_bare, dramatiq_bare
from bench.common import start_redis

METRICS = (
    ("publish_per_s", "publish msg/s", "{:,.0f}"),
    ("executions_per_s", "executions/s", "{:,.0f}"),
    ("cpu_ms_per_execution", "worker CPU ms/exec", "{:.2f}"),
)


def variants(with_default_threads: bool) -> dict:
    v = {
        "celery prefork c=1": celery_bare.run_once,
        "dramatiq p=1 t=1": functools.partial(dramatiq_bare.run_once, threads=1),
    }
    if with_default_threads:
        v["dramatiq p=1 t=8 (default)"] = functools.partial(dramatiq_bare.run_once, threads=8)
    return v


def _median(values) -> float:
    return statistics.median(list(values))


def format_table(results: dict[str, list[dict]]) -> str:
    header = ["variant", *(label for _, label, _ in METRICS), "executions"]
    rows = []
    for name, runs in results.items():
        row = [name]
        for key, _, fmt in METRICS:
            med, lo, hi = (fmt.format(f(r[key] for r in runs)) for f in (_median, min, max))
            row.append(f"{med} ({lo}–{hi})")
        row.append(", ".join(str(r["executions"]) for r in runs))
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--events", type=int, default=2000, help="events; each is one message per queue")
    p.add_argument(
        "--no-default-threads",
        action="store_true",
        help="skip the Dramatiq default-threads variant",
    )
    p.add_argument("--json", metavar="PATH", help="also write raw per-run results here")
    args = p.parse_args(argv)

    todo = variants(not args.no_default_threads)
    results: dict[str, list[dict]] = {name: [] for name in todo}
    server = start_redis()
    try:
        for rep in range(1, args.repeat + 1):
            for name, run in todo.items():
                r = run(server.url, n_events=args.events)
                results[name].append(r)
                print(
                    f"[{rep}/{args.repeat}] {name}: "
                    + ", ".join(f"{k}={fmt.format(r[k])}" for k, _, fmt in METRICS),
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        server.stop()

    print(
        f"\n{args.events} events x {len(QUEUES)} queues = {args.events * len(QUEUES)} messages, "
        f"{args.repeat} interleaved runs; median (min–max)\n"
    )
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
