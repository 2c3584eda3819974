"""Start-up checks: a worker or relay refuses to run with settings that lose or repeat work."""

from __future__ import annotations

from celery import Celery

from config.settings import Settings
from outbox.retention import declared_horizon, retention_problem
from outbox.subscriptions import all_consumers, policy_for

REQUIRED = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "worker_send_task_events": True,
    "task_send_sent_event": True,
    "task_serializer": "json",
}


# The prefork pool notices a dead child process on a 5 s timer, then waits worker_lost_wait.
POOL_CHECK_SECONDS = 5.0


class UnsafeSettings(SystemExit):
    """SystemExit, so that Celery's signal dispatch lets it through and the process stops."""


def problems(app: Celery, settings: Settings | None = None) -> list[str]:
    """What is unsafe in the Celery configuration `app` runs with, together with `settings`."""
    conf = app.conf
    settings = settings or Settings()
    found = [f"{key} must be {want!r} (is {conf.get(key)!r})"
             for key, want in REQUIRED.items() if conf.get(key) != want]
    if set(conf.get("accept_content") or []) != {"json"}:
        found.append(f"accept_content must be ['json'] (is {conf.get('accept_content')!r})")
    visibility = (conf.get("broker_transport_options") or {}).get("visibility_timeout", 3600)
    time_limit = conf.get("task_time_limit") or 0
    if not time_limit:
        found.append("task_time_limit must be set: an endless task holds its message forever")
    overrides = settings.retry_policies
    for consumer in all_consumers():
        cap = policy_for(consumer, overrides).backoff_max
        if cap + time_limit >= visibility:
            found.append(
                f"{consumer}: backoff cap {cap:g}s + task_time_limit {time_limit}s must stay below "
                f"broker_transport_options['visibility_timeout'] {visibility}s, or Redis runs "
                "the message twice"
            )
    lost_wait = conf.get("worker_lost_wait") or 10
    if time_limit and lost_wait + POOL_CHECK_SECONDS >= time_limit:
        found.append(
            f"worker_lost_wait {lost_wait:g}s + {POOL_CHECK_SECONDS:g}s (the pool's dead-process check) "
            f"must stay below task_time_limit {time_limit}s, or a killed worker's task times out "
            "first and its message is acknowledged, not redelivered"
        )
    found += _retention_problems(settings, visibility=visibility, time_limit=time_limit)
    unknown = sorted(set(settings.rate_limits) - set(all_consumers()))
    if unknown:
        found.append(f"ORDERFLOW_RATE_LIMITS names unknown consumer(s) {', '.join(unknown)}: "
                     f"one of {', '.join(all_consumers())}")
    # A held message waits up to the probe cap plus one probe interval (its jitter).
    hold_max = settings.breaker_probe_max_seconds + settings.breaker_probe_seconds
    if hold_max + time_limit >= visibility:
        found.append(
            f"ORDERFLOW_BREAKER_PROBE_MAX_SECONDS + ORDERFLOW_BREAKER_PROBE_SECONDS ({hold_max:g}s) + "
            f"task_time_limit {time_limit}s must stay below the visibility timeout {visibility}s, or "
            "Redis runs a held message twice"
        )
    if settings.lease_seconds <= time_limit:
        found.append(f"ORDERFLOW_LEASE_SECONDS {settings.lease_seconds:g} must exceed "
                     f"task_time_limit {time_limit}")
    return found


def _retention_problems(settings: Settings, *, visibility: float, time_limit: float) -> list[str]:
    """Pruning a delivery record before its last message can arrive would let it run twice."""
    horizon = declared_horizon(retry_overrides=settings.retry_policies, task_time_limit=time_limit,
                               visibility_timeout=visibility,
                               reconcile_after=settings.reconcile_after_seconds)
    problem = retention_problem(settings.retention_seconds, horizon)
    return [problem] if problem else []


def check_or_exit(app: Celery, settings: Settings | None = None) -> Settings:
    """The settings to run with, or one line saying why not (a bad value, an unsafe combination)."""
    if settings is None:
        try:
            settings = Settings.from_env()
        except ValueError as exc:
            raise UnsafeSettings(f"orderflow: refusing to start: {exc}") from None
    found = problems(app, settings)
    if found:
        raise UnsafeSettings("orderflow: refusing to start: " + "; ".join(found))
    return settings
