"""One pipeline run for bench/ab.py, in the tree given by the working directory and PYTHONPATH.

`python bench/ab_one_run.py orderflow|traced|bare N` prints `RESULT {json}` (`traced`: every
process sends its spans to BENCH_OTLP_ENDPOINT, for bench/tracing_cost.py). It is a
script, not a module of `bench`, because the earlier commit's tree has no
bench/ab.py: it imports only what both trees' harnesses have.
"""

import json
import os
import sys

sys.path.pop(0)  # this file's directory: the tree under test comes from PYTHONPATH

from bench.common import start_redis  # noqa: E402
from bench.database import throwaway_database  # noqa: E402
from bench.services import smtp_sink  # noqa: E402

KEPT = ("executions_per_s", "cpu_ms_per_execution", "deliveries_per_message", "orders_per_s")


def main() -> None:
    variant, n_orders = sys.argv[1], int(sys.argv[2])
    server = start_redis()
    try:
        if variant == "bare":
            from bench.baselines import celery_bare

            result = celery_bare.run_once(server.url, n_events=n_orders)
        else:
            from bench import pipeline

            traced = {"trace_to": os.environ["BENCH_OTLP_ENDPOINT"]} if variant == "traced" else {}
            with throwaway_database() as db, smtp_sink() as sink:
                result = pipeline.run_once(server.url, db, sink, n_orders=n_orders, **traced)
    finally:
        server.stop()
    print("RESULT", json.dumps({key: result.get(key) or 0.0 for key in KEPT}))


if __name__ == "__main__":
    main()
