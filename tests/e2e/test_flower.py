"""Flower as the Procfile runs it, watching the Procfile's email worker: real processes on loopback.

Flower only sees events sent while it is connected, so each test places its
order after Flower reports the worker (from the worker's own heartbeats).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tasks
from devtools.ports import free_port, wait_for_port
from devtools.smtp_sink import SmtpSink
from orders.seed import seed_products
from outbox.db import make_engine, make_session_factory
from outbox.subscriptions import task_id_for
from tasks.publisher import publish_events
from tests.support import processes
from tests.support.browser import screenshot
from tests.support.databases import fresh_database
from tests.support.orders import outbox_event, place
from tests.support.redis_server import flush
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

EMAIL_TASK = "orders.email.send_confirmation"
# Short, deterministic backoff through the setting the policy reads.
POLICIES = {"email": {"max_retries": 2, "backoff_base": 0.2, "backoff_max": 0.5, "jitter": False}}


@dataclass
class Monitored:
    flower: str
    credentials: tuple[str, str]
    sink: SmtpSink
    session_factory: Any
    env: dict[str, str]
    log: Path
    processes: dict[str, Any]

    def get(self, path: str, *, auth: bool = True) -> tuple[int, bytes]:
        headers = {}
        if auth:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(self.flower + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:200])
        return json.loads(body)

    def task(self, task_id: str) -> dict[str, Any] | None:
        status, body = self.get(f"/api/task/info/{task_id}")
        return json.loads(body) if status == 200 else None

    def sees_worker(self) -> bool:
        workers = self.json("/workers?json=1")["data"]
        return any(w["hostname"].startswith("email@") and w["status"] for w in workers)

    def start_flower(self) -> None:
        self.processes["flower"] = processes.start("flower", self.env, self.log)
        wait_for_port(int(self.env["FLOWER_PORT"]), timeout=30)
        wait_until(self.sees_worker, timeout=30, interval=0.3, message="Flower sees the email worker")

    def place_order(self, *, fail_first: int, fail_code: int) -> str:
        """An order whose email meets the scripted SMTP answers; returns the email task id."""
        self.sink.handler.attempts.clear()
        self.sink.handler.fail_first, self.sink.handler.fail_code = fail_first, fail_code
        placed = place(self.session_factory)
        publish_events(tasks.app, [outbox_event(self.session_factory, placed.event_id)])
        return task_id_for(placed.event_id, "email")


@pytest.fixture(scope="module")
def monitored(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    tmp = tmp_path_factory.mktemp("flower")
    flush(redis_url)
    saved_broker = tasks.app.conf.broker_url
    tasks.app.conf.broker_url = redis_url
    password = secrets.token_urlsafe(12)
    with fresh_database("sqlite", tmp) as database_url, SmtpSink(tmp / "mail") as sink:
        session_factory = make_session_factory(make_engine(database_url))
        seed_products(session_factory)
        env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "SMTP_URL": sink.url,
               "ORDERFLOW_RETRY_POLICIES": json.dumps(POLICIES), "ORDERFLOW_VAR_DIR": str(tmp),
               "FLOWER_PORT": str(free_port()), "FLOWER_BASIC_AUTH": f"admin:{password}"}
        system = Monitored(f"http://127.0.0.1:{env['FLOWER_PORT']}", ("admin", password), sink,
                           session_factory, env, tmp / "processes.log", {})
        try:
            system.processes["email"] = processes.start("email", env, system.log)
            system.start_flower()
            yield system
        except AssertionError:
            raise AssertionError(system.log.read_text()[-5000:]) from None
        finally:
            for process in system.processes.values():
                processes.stop(process)
            tasks.app.conf.broker_url = saved_broker
            flush(redis_url)


def retried_events(metrics: str) -> float:
    return sum(float(value) for value in re.findall(
        r'^flower_events_total\{[^}]*type="task-retried"[^}]*\} ([0-9.]+)$', metrics, re.MULTILINE))


def test_api_needs_credentials_metrics_stay_open(monitored: Monitored):
    for path in ("/api/tasks", "/api/workers", "/tasks"):
        assert monitored.get(path, auth=False)[0] == 401, path
        assert monitored.get(path)[0] == 200, path
    wrong = Monitored(**{**monitored.__dict__, "credentials": ("admin", "guess")})
    assert wrong.get("/api/tasks")[0] == 401
    assert monitored.get("/metrics", auth=False)[0] == 200


def test_retried_twice_then_succeeded_shows_in_task_info_and_metrics(monitored: Monitored):
    before = retried_events(monitored.get("/metrics", auth=False)[1].decode())
    task_id = monitored.place_order(fail_first=2, fail_code=451)

    info = wait_until(lambda: (t := monitored.task(task_id)) and t["state"] == "SUCCESS" and t,
                      timeout=30, message="Flower shows the email task succeeded")
    assert (info["name"], info["retries"]) == (EMAIL_TASK, 2)
    assert len(monitored.sink.handler.attempts) == 3
    assert wait_until(lambda: retried_events(monitored.get("/metrics", auth=False)[1].decode())
                      - before == 2 or None, timeout=10, message="task-retried counted twice")


def test_gave_up_shows_failure_with_its_exception_and_in_the_failure_list(monitored: Monitored):
    task_id = monitored.place_order(fail_first=-1, fail_code=451)

    info = wait_until(lambda: (t := monitored.task(task_id)) and t["state"] == "FAILURE" and t,
                      timeout=30, message="Flower shows the email task failed")
    assert "TransientError" in info["exception"] and "SMTP 451" in info["exception"]
    assert info["retries"] == 2  # the policy's max_retries, then it gave up
    assert task_id in monitored.json("/api/tasks?state=FAILURE")
    assert task_id in monitored.json(f"/api/tasks?taskname={EMAIL_TASK}")


@pytest.mark.browser
def test_browser_logs_into_flower_and_finds_the_failed_task_row(monitored: Monitored, chromium):
    task_id = monitored.place_order(fail_first=-1, fail_code=550)
    wait_until(lambda: (t := monitored.task(task_id)) and t["state"] == "FAILURE",
               timeout=30, message="failed task known to Flower")
    user, password = monitored.credentials
    context = chromium.new_context(http_credentials={"username": user, "password": password})
    try:
        page = context.new_page()
        page.goto(f"{monitored.flower}/tasks", wait_until="domcontentloaded")
        row = page.locator("table tbody tr", has_text=task_id)
        row.wait_for(timeout=15000)
        text = row.inner_text()
        assert "FAILURE" in text and EMAIL_TASK in text, text
        screenshot(page, "flower-tasks-failed-row")
    finally:
        context.close()


def test_history_survives_a_flower_restart(monitored: Monitored):
    task_id = monitored.place_order(fail_first=0, fail_code=451)
    wait_until(lambda: (t := monitored.task(task_id)) and t["state"] == "SUCCESS",
               timeout=30, message="succeeded before the restart")
    processes.stop(monitored.processes["flower"])  # SIGTERM: Flower writes its state to --db
    monitored.start_flower()
    assert monitored.task(task_id)["state"] == "SUCCESS"
