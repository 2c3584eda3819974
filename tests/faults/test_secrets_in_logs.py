"""Operator surfaces refuse unauthenticated requests, and no password or secret appears in
what the processes log, even while things go wrong.

Every URL carries a password: Redis (the server requires it), PostgreSQL (trust
auth accepts any) and SMTP (the sink offers no STARTTLS, so every email attempt
fails and is logged); the operator page and Flower have their logins. Redis is
also killed and restarted mid-run, so that connection errors are logged by the
web, the relay and the workers.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from devtools.ports import free_port, wait_for_port
from outbox.models import Delivery
from tests.support.http import place_many
from tests.support.processes import OwnedRedis, procfile_command
from tests.support.waiting import wait_until

REDIS_SECRET = "redis-S3cret-9f2c"
DB_SECRET = "db-S3cret-71ab"
SMTP_SECRET = "smtp-S3cret-4e0d"
ADMIN_SECRET = "admin-S3cret-58d1"
FLOWER_SECRET = "flower-S3cret-c3a7"
SECRETS = (REDIS_SECRET, DB_SECRET, SMTP_SECRET, ADMIN_SECRET, FLOWER_SECRET)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def owned_redis(tmp_path: Path) -> Iterator[OwnedRedis]:
    server = OwnedRedis(tmp_path / "redis", password=REDIS_SECRET).start()
    yield server
    server.kill()


@pytest.fixture
def process_database_url(pg_url: str) -> str:
    return make_url(pg_url).set(password=DB_SECRET).render_as_string(hide_password=False)


@pytest.fixture
def process_smtp_url(mail_sink) -> str:  # type: ignore[no-untyped-def]
    return f"smtp://mailer:{SMTP_SECRET}@127.0.0.1:{mail_sink.port}"


def test_operator_surfaces_refuse_strangers_and_no_secret_reaches_a_log(procs, db, owned_redis, tmp_path):
    procs.env.update(ORDERFLOW_ADMIN_PASSWORD=ADMIN_SECRET, FLOWER_BASIC_AUTH=f"admin:{FLOWER_SECRET}",
                     FLOWER_PORT=str(free_port()), ORDERFLOW_VAR_DIR=str(tmp_path / "var"))
    web = procs.web()
    procs.relay()
    procs.start("flower", ["sh", "-c", procfile_command("flower")])
    flower = f"http://127.0.0.1:{procs.env['FLOWER_PORT']}"
    wait_for_port(int(procs.env["FLOWER_PORT"]), timeout=30)

    for url, user, secret in ((f"{web}/admin", "admin", ADMIN_SECRET),
                              (f"{web}/admin/api/dead-letters", "admin", ADMIN_SECRET),
                              (f"{flower}/api/workers", "admin", FLOWER_SECRET),
                              (f"{flower}/workers", "admin", FLOWER_SECRET)):
        assert status(url) == 401, url
        assert status(url, basic(user, "guess")) == 401, url
        assert status(url, basic(user, secret)) == 200, url

    workers = [procs.worker(c) for c in ("email", "inventory", "analytics")]
    assert {a.status for a in place_many(web, 3, threads=3)} == {201}

    def every_worker_began_every_delivery() -> bool:  # 3 orders x 3 consumers, batched or not
        with db() as session:
            return len(session.scalars(select(Delivery)).all()) == 9

    wait_until(every_worker_began_every_delivery, timeout=30, message="every worker got its messages")

    owned_redis.kill()
    published_before = procs.logs().count("relay published")
    assert {a.status for a in place_many(web, 2, threads=2)} == {201}  # fast path fails, logs it
    wait_until(lambda: all("Connection to broker lost" in w.text() or "Cannot connect" in w.text()
                           for w in workers), timeout=30, message="workers noticed Redis went away")
    owned_redis.start()
    wait_until(lambda: procs.logs().count("relay published") > published_before, timeout=60,
               message="the relay published once Redis was back")

    logs = procs.logs()
    assert "redis://:**@127.0.0.1" in logs, "URLs are logged, masked"
    # The server answered but offers no STARTTLS: a failure of the session (transient), named as such.
    assert "the mail server lacks what the session needs" in logs, "the failing email was logged"
    for secret in SECRETS:
        assert secret not in logs, f"{secret} leaked into the logs"
    with db() as session:
        recorded = " ".join(f"{d.last_error} {d.traceback}" for d in session.scalars(select(Delivery)))
    for secret in SECRETS:
        assert secret not in recorded, f"{secret} leaked into a delivery record"
