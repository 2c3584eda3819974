"""A downstream outage, with the real processes: relay and Celery workers, a real SMTP server,
PostgreSQL and Redis. The email provider goes away; the breaker holds confirmations instead of
burning their attempts, a probe finds it back, and a rate limit spreads the backlog out."""

from __future__ import annotations

import json
import os
import signal
import time

from sqlalchemy import func, select

from outbox import consumer_control
from outbox.models import ConsumerState, Delivery
from tests.support.orders import deliveries_of, place
from tests.support.tally import emails_per_event
from tests.support.waiting import wait_until

# Would dead-letter within about 10 s without a breaker (4 attempts, 1-3 s apart).
IMPATIENT_EMAIL = json.dumps({
    "email": {"max_retries": 3, "backoff_base": 1.0, "backoff_max": 3.0},
    "inventory": {"max_retries": 5, "backoff_base": 0.2, "backoff_max": 1.0},
    "analytics": {"max_retries": 3, "backoff_base": 0.2, "backoff_max": 1.0},
})
BREAKER = {"ORDERFLOW_BREAKER_FAILURES": "5", "ORDERFLOW_BREAKER_PROBE_SECONDS": "2",
           "ORDERFLOW_BREAKER_PROBE_MAX_SECONDS": "4", "ORDERFLOW_RETRY_POLICIES": IMPATIENT_EMAIL}


def states(db, consumer: str) -> dict[str, int]:
    with db() as session:
        return dict(session.execute(select(Delivery.state, func.count()).where(Delivery.consumer == consumer)
                                    .group_by(Delivery.state)).all())


def breaker_state(db) -> str:
    with db() as session:
        row = session.get(ConsumerState, "email")
        return row.breaker if row else "closed"


def test_451_for_a_while_holds_emails_no_dead_letters_others_not_slowed(procs, db, mail_sink):
    procs.relay(**BREAKER)
    for consumer in ("email", "inventory", "analytics"):
        procs.worker(consumer, **BREAKER)
    mail_sink.handler.fail_first, mail_sink.handler.fail_code = -1, 451
    outage_started = time.monotonic()

    placed, slow = [], []
    for _ in range(20):  # 20 orders over about 10 s, all inside the outage
        order = place(db)
        placed.append(order)
        started = time.monotonic()
        wait_until(lambda o=order: {c: d.state for c, d in deliveries_of(db, o.event_id).items()
                                    if c != "email"} == {"inventory": "succeeded", "analytics": "succeeded"},
                   timeout=10, message="inventory and analytics delivered during the outage")
        slow.append(time.monotonic() - started)
        time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))  # pacing the orders, not waiting on them
    wait_until(lambda: breaker_state(db) != "closed", timeout=10, message="email breaker open")
    attempts_in_outage = len(mail_sink.handler.attempts)
    outage = time.monotonic() - outage_started
    assert states(db, "email").get("dead", 0) == 0
    assert attempts_in_outage <= len(placed) // 2, (attempts_in_outage, outage)
    assert max(slow) < 5.0, f"inventory/analytics slowed by the email outage: {max(slow):.1f}s"

    mail_sink.handler.fail_first = 0  # the provider is back
    wait_until(lambda: states(db, "email") == {"succeeded": len(placed)}, timeout=60,
               message="every confirmation delivered after the outage")
    assert emails_per_event(mail_sink.messages()) == {o.event_id: 1 for o in placed}, "each exactly once"
    assert breaker_state(db) == "closed"
    actions = [a["action"] for a in consumer_control.audit_trail(db, "email")]
    assert "breaker_open" in actions and actions[-1] == "breaker_closed"


def test_550_for_one_address_is_dead_and_the_breaker_stays_closed(procs, db, mail_sink):
    procs.relay(**BREAKER)
    procs.worker("email", **BREAKER)
    mail_sink.handler.fail_addresses["nobody@example.com"] = 550
    rejected = [place(db, customer_email="nobody@example.com") for _ in range(8)]  # more than 5 in a row
    fine = [place(db) for _ in range(4)]
    wait_until(lambda: states(db, "email") == {"dead": 8, "succeeded": 4}, timeout=40,
               message="rejected ones dead, the others delivered")
    assert all(deliveries_of(db, o.event_id)["email"].attempts == 1 for o in rejected)
    assert breaker_state(db) == "closed"
    assert len(mail_sink.messages()) == len(fine)


def test_rate_limit_across_two_workers_drains_a_held_backlog_at_the_rate(procs, db, mail_sink):
    env = {**BREAKER, "ORDERFLOW_BREAKER_PROBE_SECONDS": "1", "ORDERFLOW_RATE_LIMITS": '{"email": 5}'}
    procs.relay(**env)
    procs.worker("email", **env)
    procs.worker("email", **env)
    consumer_control.pause(db, "email", actor="test", reason="build a backlog")
    placed = [place(db) for _ in range(40)]
    wait_until(lambda: states(db, "email") == {"held": 40}, timeout=60, message="40 confirmations held")

    consumer_control.resume(db, "email", actor="test", reason="let it drain")
    wait_until(lambda: states(db, "email") == {"succeeded": 40}, timeout=60, message="backlog drained")
    times = sorted(mail_sink.handler.attempts)
    assert len(times) == 40 and emails_per_event(mail_sink.messages()) == {o.event_id: 1 for o in placed}
    most = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert most <= 6, f"{most} messages within one second at the SMTP server"
    assert times[-1] - times[0] >= 7.0, f"40 at 5/s took only {times[-1] - times[0]:.1f}s"


def test_worker_killed_while_probing_nothing_lost_or_doubled_breaker_not_stuck(
    procs, db, mail_sink, stalling
):
    env = {**BREAKER, "ORDERFLOW_BREAKER_FAILURES": "2", "ORDERFLOW_BREAKER_PROBE_SECONDS": "1"}
    procs.relay(**env)
    worker = procs.worker("email", **env)
    mail_sink.handler.fail_first, mail_sink.handler.fail_code = -1, 451
    placed = [place(db) for _ in range(5)]
    wait_until(lambda: breaker_state(db) == "open", timeout=30, message="breaker open")

    stalling.open.clear()  # the next probe hangs at MAIL FROM: killed in the middle of probing
    mail_sink.handler.fail_first = 0
    wait_until(lambda: breaker_state(db) == "half_open" and stalling.waiting, timeout=30,
               message="a probe in the middle of its delivery")
    [child] = worker.children()
    os.kill(child, signal.SIGKILL)
    stalling.open.set()

    wait_until(lambda: states(db, "email") == {"succeeded": 5}, timeout=90,
               message="every confirmation delivered after the kill")
    once = {o.event_id: 1 for o in placed}
    assert emails_per_event(mail_sink.messages()) == once, "nothing lost or doubled"
    assert breaker_state(db) == "closed"
