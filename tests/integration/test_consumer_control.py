"""Pause/resume, the circuit breaker and dead-letter groups over a real worker, SMTP server,
Redis and database (SQLite and PostgreSQL); the operator's API, page, CLI and /metrics."""

from __future__ import annotations

import base64
import dataclasses
import threading
import time

import pytest

from cli.main import main
from outbox.rate_limit import RateLimiter
from outbox.status_feed import client as redis_client
from tasks import consumer_gate
from tasks import runtime as runtime_module
from tasks.relay import relay_once
from tests.support.orders import all_final, deliveries_of, place
from tests.support.waiting import wait_until
from web import create_app

PASSWORD = "s3cret-for-tests"
LOGIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}


@pytest.fixture
def client(settings, runtime):
    configured = dataclasses.replace(settings, admin_password=PASSWORD)
    return create_app({"ORDERFLOW_SETTINGS": configured, "AFTER_COMMIT": None}).test_client()


@pytest.fixture
def fast_breaker(runtime):
    """Open after 3 transient failures in a row, probe after 0.3 s (at most 1 s)."""
    runtime_module.change_settings(dataclasses.replace(
        runtime_module.current().settings, breaker_failures=3, breaker_probe_seconds=0.3,
        breaker_probe_max_seconds=1.0))
    consumer_gate.forget()
    yield
    consumer_gate.forget()


def email_state(session_factory, event_id: str) -> str | None:
    delivery = deliveries_of(session_factory, event_id).get("email")
    return delivery.state if delivery else None


def email_status(client) -> dict:
    return next(c for c in client.get("/admin/api/consumers", headers=LOGIN).json["consumers"]
                if c["consumer"] == "email")


def test_pause_holds_email_only_resume_delivers_it_once_audited(
    celery_app, runtime, worker, smtp_sink, client, fast_breaker, database_url, monkeypatch, capsys
):
    paused = client.post("/admin/api/consumers/email/pause",
                         json={"by": "ada", "reason": "provider maintenance"}, headers=LOGIN)
    assert paused.status_code == 200 and paused.json["consumer"]["status"] == "paused"
    assert client.post("/admin/api/consumers/email/pause", json={}, headers=LOGIN).status_code == 422
    unknown = client.post("/admin/api/consumers/nope/pause", json={"reason": "x"}, headers=LOGIN)
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "unknown_consumer"
    consumer_gate.forget()  # this worker process cached "running" for up to a second

    placed = [place(runtime.session_factory) for _ in range(3)]
    relay_once(celery_app, runtime, grace_seconds=0)
    for order in placed:
        wait_until(lambda o=order: deliveries_of(runtime.session_factory, o.event_id).get("inventory")
                   and {c: d.state for c, d in deliveries_of(runtime.session_factory, o.event_id).items()}
                   == {"email": "held", "inventory": "succeeded", "analytics": "succeeded"},
                   message="email held, the others delivered")
    shown = client.get(f"/orders/{placed[0].order_id}").json["order"]
    assert shown["events"][0]["deliveries"]["email"]["state"] == "held"
    assert shown["events"][0]["deliveries"]["email"]["attempts"] == 0, "holding spends no attempt"
    [email] = [c for c in client.get("/admin/api/consumers", headers=LOGIN).json["consumers"]
               if c["consumer"] == "email"]
    assert (email["status"], email["held"], email["paused_by"]) == ("paused", 3, "ada (web)")
    page = client.get("/admin", headers=LOGIN).get_data(as_text=True)
    assert 'data-consumer="email" data-status="paused" data-held="3"' in page
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'orderflow_consumer_status{consumer="email",status="paused"} 1.0' in metrics
    assert 'orderflow_consumer_held{consumer="email"} 3.0' in metrics
    assert smtp_sink.handler.attempts == []

    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["consumers", "resume", "email", "--by", "grace", "--reason", "maintenance over"]) == 0
    for order in placed:
        wait_until(lambda o=order: email_state(runtime.session_factory, o.event_id) == "succeeded",
                   message="email delivered after resume")
    assert len(smtp_sink.messages()) == 3
    assert all(deliveries_of(runtime.session_factory, o.event_id)["email"].attempts == 1 for o in placed)
    capsys.readouterr()
    assert main(["consumers", "list"]) == 0
    listing = capsys.readouterr().out
    assert any(line.split()[:3] == ["email", "running", "0"] for line in listing.splitlines()), listing
    audit = [(a["action"], a["actor"], a["reason"]) for a in email["audit"]]
    assert audit == [("pause", "ada (web)", "provider maintenance")]
    [email] = [c for c in client.get("/admin/api/consumers", headers=LOGIN).json["consumers"]
               if c["consumer"] == "email"]
    latest = [(a["action"], a["actor"]) for a in email["audit"]][:2]
    assert latest == [("resume", "grace"), ("pause", "ada (web)")]


def test_breaker_opens_on_451_holds_without_dead_letters_and_closes_on_a_probe(
    celery_app, runtime, worker, smtp_sink, client, fast_breaker, use_policies
):
    # Without the breaker this policy dead-letters within a second or two.
    use_policies({"email": {"max_retries": 2, "backoff_base": 0.1, "backoff_max": 0.2}})
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = -1, 451
    placed = [place(runtime.session_factory) for _ in range(8)]
    relay_once(celery_app, runtime, grace_seconds=0)
    wait_until(lambda: email_status(client)["status"].startswith("breaker"), message="email breaker open")
    wait_until(lambda: all(email_state(runtime.session_factory, o.event_id) == "held" for o in placed),
               timeout=30, message="every email held")
    assert email_status(client)["held"] >= 7  # all, but the one a probe may be running
    # open, or half-open for the instant a probe runs: not running, either way
    assert 'orderflow_consumer_status{consumer="email",status="running"} 0.0' in \
        client.get("/metrics").get_data(as_text=True)
    smtp_sink.handler.fail_first = 0  # the provider is back
    for order in placed:
        wait_until(lambda o=order: email_state(runtime.session_factory, o.event_id) == "succeeded",
                   timeout=30,
                   message="email delivered after the outage")
    assert len(smtp_sink.messages()) == 8
    assert client.get("/admin/api/dead-letters", headers=LOGIN).json["dead_letters"] == []
    email = email_status(client)
    assert email["status"] == "running"
    assert {a["action"] for a in email["audit"]} >= {"breaker_open", "breaker_closed"}


def test_groups_by_error_and_a_group_replay_acts_on_exactly_the_letters_listed(
    celery_app, runtime, worker, smtp_sink, client, use_policies
):
    unknown = [f"gone-{i}@example.com" for i in range(3)]
    policy = [f"blocked-{i}@example.com" for i in range(2)]
    smtp_sink.handler.fail_addresses.update({a: 550 for a in unknown} | {a: 554 for a in policy})
    first = [place(runtime.session_factory, customer_email=a) for a in unknown + policy]
    relay_once(celery_app, runtime, grace_seconds=0)
    for order in first:
        wait_until(lambda o=order: all_final(runtime.session_factory, o.event_id))
    found = client.get("/admin/api/dead-letters/groups", headers=LOGIN).json["groups"]
    listed = {g["count"]: g for g in found}
    assert sorted(listed) == [2, 3] and "550" in listed[3]["error"] and "554" in listed[2]["error"]
    group = listed[3]["group"]

    late = place(runtime.session_factory, customer_email="gone-late@example.com")  # same error, after listing
    smtp_sink.handler.fail_addresses["gone-late@example.com"] = 550
    relay_once(celery_app, runtime, grace_seconds=0)
    wait_until(lambda: all_final(runtime.session_factory, late.event_id))
    for address in unknown:  # the mailboxes exist now
        del smtp_sink.handler.fail_addresses[address]
    replayed = client.post(f"/admin/api/dead-letters/groups/{group}/replay", json={"by": "ada"},
                           headers=LOGIN)
    assert replayed.status_code == 202, replayed.json
    assert sorted(r["id"] for r in replayed.json["replayed"]) == sorted(listed[3]["ids"])
    for order in first[:3]:
        wait_until(lambda o=order: email_state(runtime.session_factory, o.event_id) == "succeeded")
    assert email_state(runtime.session_factory, late.event_id) == "dead", "died after the listing: left out"
    assert all(email_state(runtime.session_factory, o.event_id) == "dead" for o in first[3:])
    bad = client.post("/admin/api/dead-letters/groups/nonsense/replay", json={}, headers=LOGIN)
    assert bad.status_code == 422 and bad.json["error"]["code"] == "invalid_argument"


def test_the_lua_bucket_holds_every_thread_to_the_rate(redis_url):
    limiter = RateLimiter(redis_client(redis_url), f"email-{time.monotonic_ns()}", rate=5)
    granted: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + 3.0

    def hammer() -> None:
        while time.monotonic() < stop:
            if limiter.acquire(2).granted:
                with lock:
                    granted.append(time.monotonic())

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    most = max(sum(1 for t in granted if start <= t < start + 1.0) for start in granted)
    assert most <= 6 and 14 <= len(granted) <= 17, (most, len(granted))
