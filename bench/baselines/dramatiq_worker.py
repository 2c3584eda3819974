"""Entry point for `dramatiq bench.baselines.dramatiq_worker:broker ...`.

The broker URL comes from the environment because each run uses its own Redis;
the readiness marker is only added on the worker side."""

import os

from bench.baselines.dramatiq_bare import ReadyMarker, create_broker

broker, _actors = create_broker(os.environ["BENCH_REDIS_URL"])
broker.add_middleware(ReadyMarker(os.environ.get("BENCH_WORKER_NAME", "worker")))
