"""Baselines: bare Celery and bare Dramatiq running no-op tasks.

Each backend module exposes `run_once(redis_url, n_events=2000) -> dict`, so a
later `bench/run.py` can interleave them with the real pipeline.
"""

QUEUES = ("email", "inventory", "analytics")
