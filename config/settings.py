"""Every setting of orderflow, read from the environment with local defaults.

This is the only module that reads the environment. `Settings.from_env()` is
called by the entry points (bootstrap.py, celeryconfig.py, `python -m
tasks.relay`, the CLI), never by a module at import time, so tests and
embedding projects can build their own `Settings(...)` instead. A value that
cannot be read raises ValueError with one line naming the variable: the
entry points turn it into "refusing to start".
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def var_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where local state lives (SQLite file, mail, passwords): ORDERFLOW_VAR_DIR or ./var."""
    env = os.environ if environ is None else environ
    return Path(env.get("ORDERFLOW_VAR_DIR") or PROJECT_ROOT / "var")


def environment() -> dict[str, str]:
    """A copy of the process environment, for an entry point that completes it before
    building its Settings (the CLI finding `make run`'s system)."""
    return dict(os.environ)


def operator_name(environ: Mapping[str, str] | None = None) -> str:
    """Who runs a CLI command, for the audit trail: $USER, else the login name, else ""."""
    env = os.environ if environ is None else environ
    try:
        import getpass

        return env.get("USER") or getpass.getuser()
    except Exception:  # no user database entry (some containers)
        return ""


def default_database_url(environ: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{var_dir(environ) / 'orderflow.sqlite3'}"


# The two services: the shop (orders/, DATABASE_URL) and shipping (shipping/), each with its
# own database, its own outbox and its consumers' delivery records.
ORDERS, SHIPPING = "orders", "shipping"


def default_shipping_database_url(database_url: str, environ: Mapping[str, str] | None = None) -> str:
    """Beside the orders database: a second database on the same PostgreSQL server
    (`<name>_shipping`), or a second SQLite file in the var directory (what `make run` uses
    when SHIPPING_DATABASE_URL is unset)."""
    if is_postgresql(database_url):
        parts = urlsplit(database_url)
        name = parts.path.lstrip("/") or "postgres"
        return urlunsplit(parts._replace(path=f"/{name}_shipping"))
    return f"sqlite:///{var_dir(environ) / 'shipping.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=default_database_url)
    # SHIPPING_DATABASE_URL: the shipping service's database. "" = the same database as
    # DATABASE_URL (its tables are there too); `make run` gives it a second one
    # (default_shipping_database_url).
    shipping_database_url: str = ""
    # The simulated carrier's and payment gateway's own records (SQLite files), shared by
    # every process as a real carrier or gateway would be; "" = in this process's memory.
    carrier_ledger: str = ""
    payments_ledger: str = ""
    # Postcode 99999: the simulated carrier is unavailable for this many attempts of a booking.
    carrier_unavailable_attempts: int = 3
    # How long the simulated carrier takes to answer a booking (after it booked: the window in
    # which a killed worker leaves a booking the carrier made and the shipping database lacks).
    carrier_latency_seconds: float = 0.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    # BROKER_URL: the Celery broker. Empty = REDIS_URL (Redis stays the default); an
    # amqp:// URL runs everything on RabbitMQ (celeryconfig.py, tasks/safety.py).
    broker_url: str = ""
    # RabbitMQ only: "quorum" (replicated, the default) or "classic" per-consumer queues.
    rabbitmq_queue_type: str = "quorum"
    # RabbitMQ only: the server's consumer_timeout (rabbitmq.conf, default 30 min): a delivery
    # not acked within it closes the worker's channel. The safety checks compare against it.
    rabbitmq_consumer_timeout: float = 1800.0
    # RabbitMQ only: AMQP heartbeat. A worker host cut off is noticed (and its unacked
    # messages handed to another worker) about this long after it went silent.
    broker_heartbeat: int = 30
    smtp_url: str = "smtp://127.0.0.1:8025"
    mail_from: str = "orders@orderflow.example"
    # Who publishes right after commit (PUBLISH_MODE): "fast_path" (a thread in the web
    # process), "relay" (the relay, woken by NOTIFY on PostgreSQL), or "auto": the relay
    # on PostgreSQL, the fast path on SQLite (which has no NOTIFY).
    publish_mode: str = "auto"
    # With the fast path on, the relay leaves events younger than this to it, so both do
    # not publish them; without it there is nothing to race and the relay takes them at once.
    relay_grace_seconds: float = 2.0
    relay_poll_seconds: float = 0.5
    relay_batch_size: int = 200
    # While the workers are behind (tasks/backlog.py) the relay publishes at most once per
    # linger, so that what piled up meanwhile goes out together and batches form.
    relay_linger_seconds: float = 0.05
    # Most deliveries of one consumer packed into one message (1 = one message per delivery).
    delivery_batch_max: int = 50
    payment_timeout_seconds: float = 2.0
    # The reconciler republishes a delivery still not final this long after its event was
    # published (lost from Redis). Must exceed every backoff cap + task time limit.
    reconcile_after_seconds: float = 600.0
    reconcile_poll_seconds: float = 5.0
    # Events published longer ago than this are no longer looked at.
    reconcile_horizon_seconds: float = 7 * 24 * 3600.0
    # The operator pages and /admin/api need it (HTTP basic auth, user `admin`); unset = disabled.
    admin_password: str | None = field(default=None, repr=False)
    # Where the operator page links a task to (`<flower_url>/task/<task id>`).
    flower_url: str = "http://127.0.0.1:5555"
    # A comment line on an idle Server-Sent Events stream, so proxies keep it open
    # and a closed client is noticed.
    sse_keepalive_seconds: float = 15.0
    # --- the stream server (live/, `python -m live`): GET /orders/<id>/events ---
    # Where browsers reach it: the order page's EventSource and the API's redirect point
    # here. "" = the same origin (a proxy routes /orders/*/events to the stream server).
    stream_public_url: str = "http://127.0.0.1:8001"
    # Open streams one stream server process holds at most, and per client address;
    # beyond them it answers 503 / 429 with Retry-After.
    stream_max_open: int = 10_000
    stream_max_per_client: int = 50
    # Threads reading the database for the streams: also the most database connections
    # one stream server process opens.
    stream_db_threads: int = 4
    # --- delivery: what the Celery configuration and the safety checks are built from ---
    # A message taken but not acked is handed out again after this long (Redis). Every
    # backoff cap plus the task time limit must stay below it (tasks/safety.py checks).
    broker_visibility_timeout: int = 3600
    task_soft_time_limit: int = 50
    task_time_limit: int = 60
    # How long the pool waits after a child process died before it reports WorkerLostError.
    worker_lost_wait: float = 10.0
    # How long a running delivery is leased to one worker before another copy may run it.
    lease_seconds: float = 90.0
    # Per-consumer overrides of the retry policies declared in orders/subscriptions.py,
    # e.g. {"email": {"max_retries": 3, "backoff_base": 1, "backoff_max": 3}}.
    retry_policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # --- retention (outbox/retention.py): how long finished outbox rows and delivery records stay ---
    # Must exceed the retry horizon (tasks/safety.py refuses a shorter one): a delivery record
    # pruned before its last possible redelivery would let that message run twice.
    retention_seconds: float = 30 * 86400.0
    # How often the relay process prunes (tasks/pruner.py), and rows per batch.
    prune_interval_seconds: float = 3600.0
    prune_batch_size: int = 500
    # OpenTelemetry (outbox/tracing.py): off unless an OTLP/HTTP endpoint is given.
    otel_endpoint: str | None = None
    otel_service_name: str = "orderflow"
    # --- a downstream outage (outbox/breaker.py, outbox/rate_limit.py, tasks/consumer_gate.py) ---
    # Transient failures in a row that open a consumer's circuit breaker (0: no breaker).
    breaker_failures: int = 5
    # First wait before a probe once open; doubles after each failed probe, up to the max.
    # Held messages (open breaker, paused consumer) look again about this often.
    breaker_probe_seconds: float = 5.0
    breaker_probe_max_seconds: float = 120.0
    # Deliveries per second per consumer, all workers on all hosts together: {"email": 5}.
    rate_limits: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls(database_url="")
        database_url = normalize_database_url(env.get("DATABASE_URL") or default_database_url(env))
        return cls(
            database_url=database_url,
            shipping_database_url=normalize_database_url(env.get("SHIPPING_DATABASE_URL") or ""),
            carrier_ledger=env.get("CARRIER_LEDGER") or str(var_dir(env) / "carrier.sqlite3"),
            payments_ledger=env.get("PAYMENTS_LEDGER") or str(var_dir(env) / "payments.sqlite3"),
            carrier_unavailable_attempts=parse_number(
                "CARRIER_UNAVAILABLE_ATTEMPTS", env, defaults.carrier_unavailable_attempts, integer=True,
                minimum=0),
            carrier_latency_seconds=parse_number("CARRIER_LATENCY_SECONDS", env,
                                                 defaults.carrier_latency_seconds, minimum=0),
            redis_url=env.get("REDIS_URL") or defaults.redis_url,
            broker_url=env.get("BROKER_URL") or "",
            rabbitmq_queue_type=parse_queue_type(env.get("RABBITMQ_QUEUE_TYPE") or "quorum"),
            rabbitmq_consumer_timeout=float(
                env.get("RABBITMQ_CONSUMER_TIMEOUT", defaults.rabbitmq_consumer_timeout)),
            broker_heartbeat=int(env.get("BROKER_HEARTBEAT", defaults.broker_heartbeat)),
            smtp_url=env.get("SMTP_URL") or defaults.smtp_url,
            mail_from=env.get("MAIL_FROM") or defaults.mail_from,
            publish_mode=parse_publish_mode(env.get("PUBLISH_MODE") or defaults.publish_mode),
            relay_grace_seconds=float(env.get("RELAY_GRACE_SECONDS", defaults.relay_grace_seconds)),
            relay_poll_seconds=float(env.get("RELAY_POLL_SECONDS", defaults.relay_poll_seconds)),
            relay_batch_size=int(env.get("RELAY_BATCH_SIZE", defaults.relay_batch_size)),
            relay_linger_seconds=float(env.get("RELAY_LINGER_SECONDS", defaults.relay_linger_seconds)),
            delivery_batch_max=parse_positive_int(
                env.get("DELIVERY_BATCH_MAX") or str(defaults.delivery_batch_max), name="DELIVERY_BATCH_MAX"),
            reconcile_after_seconds=float(
                env.get("RECONCILE_AFTER_SECONDS", defaults.reconcile_after_seconds)
            ),
            reconcile_poll_seconds=float(
                env.get("RECONCILE_POLL_SECONDS", defaults.reconcile_poll_seconds)
            ),
            reconcile_horizon_seconds=float(
                env.get("RECONCILE_HORIZON_SECONDS", defaults.reconcile_horizon_seconds)
            ),
            admin_password=env.get("ORDERFLOW_ADMIN_PASSWORD") or None,
            flower_url=(env.get("FLOWER_URL") or defaults.flower_url).rstrip("/"),
            sse_keepalive_seconds=float(env.get("SSE_KEEPALIVE_SECONDS", defaults.sse_keepalive_seconds)),
            stream_public_url=env.get("STREAM_PUBLIC_URL", defaults.stream_public_url).rstrip("/"),
            stream_max_open=parse_positive_int(
                env.get("STREAM_MAX_OPEN") or str(defaults.stream_max_open), name="STREAM_MAX_OPEN"),
            stream_max_per_client=parse_positive_int(
                env.get("STREAM_MAX_PER_CLIENT") or str(defaults.stream_max_per_client),
                name="STREAM_MAX_PER_CLIENT"),
            stream_db_threads=parse_positive_int(
                env.get("STREAM_DB_THREADS") or str(defaults.stream_db_threads), name="STREAM_DB_THREADS"),
            broker_visibility_timeout=int(
                env.get("BROKER_VISIBILITY_TIMEOUT", defaults.broker_visibility_timeout)),
            task_soft_time_limit=int(env.get("TASK_SOFT_TIME_LIMIT", defaults.task_soft_time_limit)),
            task_time_limit=int(env.get("TASK_TIME_LIMIT", defaults.task_time_limit)),
            worker_lost_wait=float(env.get("WORKER_LOST_WAIT", defaults.worker_lost_wait)),
            lease_seconds=float(env.get("ORDERFLOW_LEASE_SECONDS", defaults.lease_seconds)),
            retry_policies=parse_retry_policies(env.get("ORDERFLOW_RETRY_POLICIES") or "{}"),
            retention_seconds=parse_duration(env.get("ORDERFLOW_RETENTION") or "30d",
                                             name="ORDERFLOW_RETENTION"),
            prune_interval_seconds=parse_duration(env.get("ORDERFLOW_PRUNE_INTERVAL") or "1h",
                                                  name="ORDERFLOW_PRUNE_INTERVAL"),
            otel_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            otel_service_name=env.get("OTEL_SERVICE_NAME") or defaults.otel_service_name,
            prune_batch_size=parse_positive_int(env.get("ORDERFLOW_PRUNE_BATCH") or "500",
                                                name="ORDERFLOW_PRUNE_BATCH"),
            breaker_failures=parse_number("ORDERFLOW_BREAKER_FAILURES", env, defaults.breaker_failures,
                                          integer=True, minimum=0),
            breaker_probe_seconds=parse_number("ORDERFLOW_BREAKER_PROBE_SECONDS", env,
                                               defaults.breaker_probe_seconds, minimum=0.1),
            breaker_probe_max_seconds=parse_number("ORDERFLOW_BREAKER_PROBE_MAX_SECONDS", env,
                                                   defaults.breaker_probe_max_seconds, minimum=0.1),
            rate_limits=parse_rate_limits(env.get("ORDERFLOW_RATE_LIMITS") or "{}"),
        )

    def database_url_for(self, service: str) -> str:
        """The database holding `service`'s outbox and its consumers' delivery records."""
        if service == SHIPPING and self.shipping_database_url:
            return self.shipping_database_url
        return self.database_url

    @property
    def database_urls(self) -> dict[str, str]:
        """Each service's database (the shipping service's may be the orders one)."""
        return {ORDERS: self.database_url, SHIPPING: self.database_url_for(SHIPPING)}

    @property
    def uses_fast_path(self) -> bool:
        """Whether the web process publishes each event itself right after commit."""
        if self.publish_mode == "auto":
            return not is_postgresql(self.database_url)
        return self.publish_mode == "fast_path"

    @property
    def broker(self) -> str:
        """The Celery broker URL: BROKER_URL, else REDIS_URL."""
        return self.broker_url or self.redis_url

    @property
    def on_rabbitmq(self) -> bool:
        return is_rabbitmq(self.broker)

    @property
    def status_feed_url(self) -> str:
        """Where live delivery states are announced (outbox/status_feed.py): Redis pub/sub with
        a Redis broker; PostgreSQL NOTIFY with RabbitMQ; "" (none: the stream polls the
        database) with RabbitMQ and SQLite, so no Redis is ever needed beside RabbitMQ."""
        if not self.on_rabbitmq:
            return self.broker
        return self.database_url if is_postgresql(self.database_url) else ""

    @property
    def effective_relay_grace_seconds(self) -> float:
        """The grace exists only to let the fast path go first; without it, none."""
        return self.relay_grace_seconds if self.uses_fast_path else 0.0


PUBLISH_MODES = ("auto", "fast_path", "relay")


def parse_publish_mode(value: str) -> str:
    mode = value.strip().lower()
    if mode not in PUBLISH_MODES:
        raise ValueError(f"PUBLISH_MODE must be one of {', '.join(PUBLISH_MODES)}, not {value!r}")
    return mode


QUEUE_TYPES = ("quorum", "classic")


def parse_queue_type(value: str) -> str:
    kind = value.strip().lower()
    if kind not in QUEUE_TYPES:
        raise ValueError(f"RABBITMQ_QUEUE_TYPE must be one of {', '.join(QUEUE_TYPES)}, not {value!r}")
    return kind


def is_rabbitmq(url: str) -> bool:
    return url.startswith(("amqp://", "amqps://", "pyamqp://"))


def parse_retry_policies(value: str) -> dict[str, dict[str, Any]]:
    """ORDERFLOW_RETRY_POLICIES: a JSON object of consumer -> {field: value}."""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
        raise ValueError("ORDERFLOW_RETRY_POLICIES must be a JSON object of consumer -> "
                         f"{{field: value}}, not {value!r}")
    return parsed


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str, *, name: str = "duration") -> float:
    """`30d`, `12h`, `90m`, `0s` or plain seconds, as seconds; anything else is a ValueError naming `name`."""
    found = _DURATION.match(value.strip().lower())
    if not found:
        raise ValueError(f"{name} must be a duration like 30d, 12h, 90m or 0s, not {value!r}")
    amount, unit = found.groups()
    return float(amount) * _DURATION_UNITS[unit]


def format_duration(seconds: float) -> str:
    """The largest whole unit that says it exactly: 2592000 -> `30d`, 5400 -> `90m`."""
    for unit in ("d", "h", "m"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_positive_int(value: str, *, name: str) -> int:
    """A whole number >= 1; else a ValueError naming the variable."""
    try:
        parsed = int(value)
    except ValueError:
        parsed = 0
    if parsed < 1:
        raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")
    return parsed
def parse_number(name: str, env: Mapping[str, str], default: float, *, minimum: float,
                 integer: bool = False) -> Any:
    """A number from the environment, at least `minimum`; else ValueError naming the variable."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or value != value:  # NaN
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"{name} must be {kind} >= {minimum:g}, not {raw!r}")
    return value


def parse_rate_limits(value: str) -> dict[str, float]:
    """ORDERFLOW_RATE_LIMITS: a JSON object of consumer -> deliveries per second (> 0)."""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf")
        for v in parsed.values()
    ):
        raise ValueError("ORDERFLOW_RATE_LIMITS must be a JSON object of consumer -> deliveries per "
                         f"second above 0, e.g. {{\"email\": 5}}, not {value!r}")
    return {str(k): float(v) for k, v in parsed.items()}


def is_postgresql(url: str) -> bool:
    return url.startswith(("postgresql", "postgres:"))


def normalize_database_url(url: str) -> str:
    """Accept the usual `postgres://` / `postgresql://` spellings and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def mask_url(url: str) -> str:
    """The URL with its password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
