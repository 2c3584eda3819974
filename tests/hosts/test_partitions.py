"""Every guarantee across hosts, with the network cut (tests/hosts/conftest.py builds the hosts).

Effects are checked exactly: stock, revenue rows, one mail per event. Each test runs on
Redis and on RabbitMQ (the `broker_kind` parameter). Run as root with `pytest -m hosts -s`
to read what each cut does.
"""

from __future__ import annotations

import signal
import time

from sqlalchemy import func, select

from orders.queries import list_products
from outbox.models import Delivery
from tests.support.http import place_many
from tests.support.orders import deliveries_of, order_input, place
from tests.support.tally import emails_per_event, settled, tally
from tests.support.waiting import wait_until

CONSUMERS = ("email", "inventory", "analytics")
# What a worker cut off mid-delivery logs once it can talk again.
LATE_SIGNS = ("redelivery ignored", "succeeded in", "database unavailable", "retry", "Connected",
              # The worker's main process ends the late attempt itself: its timers, held up while
              # it could not reach the broker, fire once the link is back.
              "Hard time limit")


def mug_order(_i: int) -> dict:
    return order_input(lines=[{"sku": "mug", "quantity": 1}])


def mugs(db) -> int:
    return next(p["stock"] for p in list_products(db) if p["sku"] == "mug")


def published_per_relay(*relays) -> list[int]:
    return [sum(int(line.split("relay published ")[1].split()[0]) for line in relay.text().splitlines()
                if "relay published " in line) for relay in relays]


def attempts_spent(db) -> dict[int, int]:
    with db() as session:
        rows = session.execute(select(Delivery.attempts, func.count()).group_by(Delivery.attempts)).all()
    return {attempts: count for attempts, count in rows}


def test_two_relays_on_two_hosts_publish_each_event_once(cluster, db, mail_sink):
    say = cluster.say
    web = cluster.web(cluster.front)
    relays = [cluster.relay(cluster.front, DELIVERY_BATCH_MAX="1"),
              cluster.relay(cluster.work1, DELIVERY_BATCH_MAX="1")]
    say("relays on front and work1 share one outbox; no worker yet: every message stays queued")
    answers = place_many(web, 60, make=mug_order)
    assert {a.status for a in answers} == {201}
    wait_until(lambda: tally(db, []).unpublished == 0, timeout=30, message="every event published")
    per_relay = published_per_relay(*relays)
    say(f"60 orders placed through the web on front: published by front's relay {per_relay[0]}, "
        f"by work1's relay {per_relay[1]}")
    for consumer in CONSUMERS:
        ids = cluster.queued_task_ids(consumer)
        assert len(ids) == len(set(ids)) == 60, f"{consumer}: {len(ids)} messages, {len(set(ids))} distinct"
    say("each queue holds 60 messages, 60 distinct task ids: each event published once")
    assert sum(per_relay) == 60

    for consumer in CONSUMERS:
        cluster.worker(cluster.work2, consumer)
    wait_until(lambda: settled(db, 180), timeout=90, message="180 deliveries final")
    figures = tally(db, mail_sink.messages())
    say(f"workers on work2: {figures}")
    assert figures.deliveries == {"succeeded": 180}
    assert figures.emails == 60 and figures.duplicate_emails == 0 and figures.revenue_rows == 60
    assert mugs(db) == 100 - 60


def test_a_worker_host_cut_off_mid_batch_longer_than_its_lease(cluster, db, mail_sink, stalling):
    say = cluster.say
    on_rabbitmq = cluster.broker.kind == "rabbitmq"
    # On RabbitMQ the broker itself hands back what a silent host held (its heartbeats stop):
    # the reconciler is pushed out of reach, so that it cannot be what saves the delivery.
    relay = cluster.relay(cluster.front, **({"RECONCILE_AFTER_SECONDS": "600"} if on_rabbitmq else {}))
    cut_off = cluster.worker(cluster.work1, "email")
    stalling.open.clear()  # the SMTP server holds every client at MAIL FROM: nothing accepted yet
    placed = [place(db) for _ in range(6)]
    ids = [p.event_id for p in placed]

    def email_states() -> dict[str, str]:
        return {e: deliveries_of(db, e)["email"].state for e in ids if "email" in deliveries_of(db, e)}

    wait_until(lambda: stalling.waiting >= 1 and "running" in email_states().values(), timeout=30,
               message="work1's email worker in the middle of its work")
    running = [e for e, s in email_states().items() if s == "running"]
    cluster.lab.cut(cluster.work1)
    cut_at = time.monotonic()
    say(f"CUT work1 while its worker holds {len(running)} delivery(ies) running (lease 9 s)")
    stalling.open.set()
    rescuer = cluster.worker(cluster.work2, "email")
    say("an email worker starts on work2; " + (
        "RabbitMQ requeues what work1 held once its heartbeats stop (BROKER_HEARTBEAT 4 s); "
        "reconciler out of reach (600 s)" if on_rabbitmq
        else "the reconciler (12 s) republishes what work1 holds"))
    if on_rabbitmq:  # when RabbitMQ gave up on work1, as the forwarder in front of it saw
        forwarder = cluster.broker.forwarder
        assert forwarder is not None
        dropped = wait_until(lambda: [t for t, host in forwarder.closed_by_server
                                      if host == cluster.work1.address and t > cut_at], timeout=30,
                             message="RabbitMQ closes work1's connections")
        say(f"RabbitMQ closed work1's connection {dropped[0] - cut_at:.1f}s after the cut (its heartbeats "
            "stopped) and requeued what it held")
    wait_until(lambda: any(e in rescuer.text() for e in running), timeout=60,
               message="what work1 held handed to work2")
    say(f"what work1 held reached work2 {time.monotonic() - cut_at:.1f}s after the cut")
    wait_until(lambda: set(email_states().values()) == {"succeeded"} and len(email_states()) == 6,
               timeout=90, message="every email delivered by work2")
    say(f"work2 completed all 6 emails {time.monotonic() - cut_at:.1f}s after the cut")
    if on_rabbitmq:
        assert "reconciler republished" not in relay.text()
        waits = rescuer.text().count("running elsewhere")
        say("the reconciler republished nothing; " + (
            f"work2 found the requeued delivery still leased {waits} time(s) and waited for its lease"
            if waits else "work2 took the requeued delivery once its lease had run out"))
    before = {e: (d.state, d.attempts) for e in ids for d in [deliveries_of(db, e)["email"]]}
    assert emails_per_event(mail_sink.messages()) == {e: 1 for e in ids}

    logged = len(cut_off.text())
    cluster.lab.heal(cluster.work1)
    say(f"HEAL work1 after {time.monotonic() - cut_at:.1f}s cut off")
    if "Hard time limit" in cut_off.text()[:logged]:
        say("work1's worker had ended its attempt itself while cut off (hard time limit)")
    else:
        wait_until(lambda: any(word in cut_off.text()[logged:] for word in LATE_SIGNS), timeout=60,
                   message="work1's worker acts again after the link returns")
    late = [line for line in cut_off.text()[logged:].splitlines()
            if "event=" in line or "Task " in line or "time limit" in line]
    for line in late[:6]:
        say(f"work1 late: {line.split('] ', 1)[-1][:200]}")
    wait_until(lambda: stalling.waiting == 0, timeout=30, message="no client left at the SMTP server")
    after = {e: (d.state, d.attempts) for e in ids for d in [deliveries_of(db, e)["email"]]}
    assert after == before, "work1's late attempt changed a delivery record"
    assert emails_per_event(mail_sink.messages()) == {e: 1 for e in ids}, "one mail per event"
    say("after the link returned: every record as before, one mail per event")


def test_the_relays_host_cut_off_between_commit_and_publish(cluster, db, mail_sink):
    say = cluster.say
    first = cluster.relay(cluster.front)
    for consumer in CONSUMERS:
        cluster.worker(cluster.work2, consumer)
    first.kill_group(signal.SIGSTOP)  # front's relay has not published yet ...
    placed = [place(db, lines=[{"sku": "mug", "quantity": 1}]) for _ in range(10)]
    assert tally(db, []).unpublished == 10
    cluster.lab.cut(cluster.front)  # ... and its host drops off the network
    first.kill_group(signal.SIGCONT)
    say("10 orders committed, none published; CUT front (its relay's host)")
    started = time.monotonic()
    second = cluster.relay(cluster.work1)
    wait_until(lambda: settled(db, 30), timeout=60, message="30 deliveries final")
    # Inventory's follow-up (order.reserved, written with its effect) is published too: 20 events.
    wait_until(lambda: tally(db, []).unpublished == 0, timeout=30, message="every follow-up published")
    say(f"work1's relay published {published_per_relay(second)[0]} events; all 30 deliveries final "
        f"{time.monotonic() - started:.1f}s after it started")
    cluster.lab.heal(cluster.front)
    say("HEAL front: its relay finds nothing left to publish")
    wait_until(lambda: "relay could not publish" in first.text() or published_per_relay(first)[0] == 0,
               timeout=10)
    figures = tally(db, mail_sink.messages())
    assert figures.deliveries == {"succeeded": 30}
    assert figures.emails == 10 and figures.duplicate_emails == 0 and figures.revenue_rows == 10
    assert mugs(db) == 100 - 10
    assert published_per_relay(first) == [0] and published_per_relay(second) == [2 * len(placed)]
    assert {p.event_id for p in placed} == set(emails_per_event(mail_sink.messages()))


def test_the_database_unreachable_for_20s_from_the_workers(cluster, db, mail_sink):
    say = cluster.say
    cluster.relay(cluster.front)
    for _ in range(10):
        place(db, lines=[{"sku": "mug", "quantity": 1}])
    wait_until(lambda: tally(db, []).unpublished == 0, timeout=30, message="published, waiting in the broker")
    db_address = list(cluster.store.links)[1]
    cluster.lab.cut(cluster.store, db_address)
    cut_at = time.monotonic()
    say(f"CUT PostgreSQL ({db_address}); the broker on the same host stays up; workers start on work2")
    workers = [cluster.worker(cluster.work2, consumer) for consumer in CONSUMERS]
    wait_until(lambda: all("database unavailable" in w.text() for w in workers), timeout=30,
               message="every worker met the unreachable database")
    wait_until(lambda: time.monotonic() - cut_at >= 20, timeout=30, interval=0.5)
    cluster.lab.heal(cluster.store, db_address)
    healed_at = time.monotonic()
    retries = sum(w.text().count("database unavailable") for w in workers)
    say(f"HEAL PostgreSQL after {healed_at - cut_at:.1f}s; the workers retried {retries} times meanwhile")
    wait_until(lambda: settled(db, 30), timeout=120, interval=0.5, message="30 deliveries final")
    say(f"all 30 deliveries final {time.monotonic() - healed_at:.1f}s after the database returned")
    figures = tally(db, mail_sink.messages())
    assert figures.deliveries == {"succeeded": 30}
    assert attempts_spent(db) == {1: 30}, "an unreachable database spends no attempt"
    assert figures.emails == 10 and figures.duplicate_emails == 0 and figures.revenue_rows == 10
    assert mugs(db) == 100 - 10
