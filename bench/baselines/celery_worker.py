"""Entry point for `celery -A bench.baselines.celery_worker worker ...`.

The URLs come from the environment because each run uses its own Redis (and, in the RabbitMQ
section, its own vhost)."""

import os

from bench.baselines.celery_bare import create_app

app = create_app(os.environ["BENCH_REDIS_URL"], safe=bool(os.environ.get("BENCH_CELERY_SAFE")),
                 broker_url=os.environ.get("BENCH_BROKER_URL") or None)
