"""Internationalized addresses through the real pipeline (relay, worker, SMTP server).

`ada@exämple.de` gets its mail (the domain in IDNA form); `jürgen@example.de` is dead after ONE
attempt with the reason when the server lacks SMTPUTF8, and an operator's replay delivers it once
the server offers SMTPUTF8.
"""

from __future__ import annotations

import email

from cli.main import main
from orders.consumers.smtp_failures import NO_SMTPUTF8
from tasks.relay import relay_once
from tests.support.orders import all_final, deliveries_of, place
from tests.support.waiting import wait_until


def deliver(celery_app, runtime, address: str):
    placed = place(runtime.session_factory, customer_email=address, customer_name="Jürgen Ölmann")
    relay_once(celery_app, runtime, grace_seconds=0)
    wait_until(lambda: all_final(runtime.session_factory, placed.event_id), message="deliveries final")
    return placed, deliveries_of(runtime.session_factory, placed.event_id)["email"]


def test_a_unicode_domain_gets_its_mail(celery_app, runtime, worker, smtp_sink):
    placed, delivery = deliver(celery_app, runtime, "ada@exämple.de")

    assert (delivery.state, delivery.attempts) == ("succeeded", 1)
    [raw] = smtp_sink.messages()
    received = email.message_from_bytes(raw)
    assert received["To"].endswith("<ada@xn--exmple-cua.de>")
    assert received["Message-ID"] == f"<{placed.event_id}.confirmation@orderflow>"


def test_a_non_ascii_local_part_is_dead_at_once_without_smtputf8_and_replayed_once_offered(
    celery_app, runtime, worker, smtp_sink, database_url, monkeypatch, capsys
):
    assert not smtp_sink.smtputf8  # the sink's default, like many servers
    placed, delivery = deliver(celery_app, runtime, "jürgen@example.de")

    assert (delivery.state, delivery.attempts) == ("dead", 1)  # no retry for what cannot change
    assert delivery.last_error == f"PermanentError: {NO_SMTPUTF8}"
    assert smtp_sink.messages() == [] and smtp_sink.handler.attempts == []

    smtp_sink.stop()
    smtp_sink.smtputf8 = True  # the operator turns SMTPUTF8 on, then replays
    smtp_sink.start()
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["dead-letters", "replay", str(delivery.id), "--by", "ops", "--reason", "SMTPUTF8 on"]) == 0
    capsys.readouterr()

    wait_until(lambda: deliveries_of(runtime.session_factory, placed.event_id)["email"].state == "succeeded",
               message="replayed email succeeded")
    [raw] = smtp_sink.messages()
    assert "To: Jürgen Ölmann <jürgen@example.de>".encode() in raw


def test_a_non_ascii_local_part_is_delivered_when_the_server_offers_smtputf8(
    celery_app, runtime, worker, smtp_sink
):
    smtp_sink.stop()
    smtp_sink.smtputf8 = True
    smtp_sink.start()

    _, delivery = deliver(celery_app, runtime, "jürgen@example.de")

    assert (delivery.state, delivery.attempts) == ("succeeded", 1)
    assert len(smtp_sink.messages()) == 1
