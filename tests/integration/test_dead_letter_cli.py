"""`orderflow dead-letters ...` against a real database, Redis, SMTP server and worker."""

from __future__ import annotations

import pytest

from cli.main import main
from tests.support.dead_letters import order_with_dead_email
from tests.support.orders import deliveries_of, revenue_rows, stock
from tests.support.waiting import wait_until


@pytest.fixture
def orderflow(database_url, monkeypatch, capsys):
    """Run the command as an operator would; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SHIPPING_DATABASE_URL", database_url)  # as the integration settings have it

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse's own errors
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.mark.both_brokers
def test_list_show_replay_sends_only_the_email_again(celery_app, runtime, worker, executions, smtp_sink,
                                                     orderflow):
    placed, email_id = order_with_dead_email(celery_app, runtime, smtp_sink)
    mugs = stock(runtime.session_factory, "mug")

    code, out, _ = orderflow("dead-letters", "list", "--consumer", "email", "--error", "550")
    assert code == 0
    header, row, footer = out.strip().splitlines()
    assert header.split()[:4] == ["ID", "SERVICE", "CONSUMER", "ATTEMPTS"]
    assert row.split()[:4] == [str(email_id), "orders", "email", "1"] and f"{placed.event_id}:email" in row
    assert footer == "1 dead delivery"

    code, out, _ = orderflow("dead-letters", "show", f"{placed.event_id}:email")
    assert code == 0
    assert placed.order_id in out and "SMTP 550" in out and "PermanentError" in out  # payload, error, tb

    runs_before = len(executions.runs)
    code, out, err = orderflow("dead-letters", "replay", str(email_id), "--by", "ada", "--reason", "fixed")
    assert (code, err) == (0, "")
    assert f"task {placed.event_id}:email sent to queue email" in out
    wait_until(lambda: deliveries_of(runtime.session_factory, placed.event_id)["email"].state == "succeeded",
               message="replayed email succeeded")

    assert executions.runs[runs_before:] == [("orders.email.send_confirmation", "email")]
    assert len(smtp_sink.messages()) == 1
    assert stock(runtime.session_factory, "mug") == mugs  # inventory did not run again
    assert revenue_rows(runtime.session_factory, placed.event_id) == 1
    code, out, _ = orderflow("dead-letters", "show", str(email_id))
    assert "replay" in out and "ada" in out and "fixed" in out
    assert orderflow("dead-letters", "list")[1].strip() == "no dead deliveries match"


def test_refusals_and_bad_arguments_are_one_line_and_nonzero(celery_app, runtime, worker, smtp_sink,
                                                              orderflow):
    placed, email_id = order_with_dead_email(celery_app, runtime, smtp_sink)
    inventory_id = deliveries_of(runtime.session_factory, placed.event_id)["inventory"].id

    for argv, says in [
        (["replay", str(inventory_id)], "already succeeded; refusing to replay it"),
        (["show", "424242"], "no delivery 424242"),
        (["replay", "banana"], "not a delivery id"),
        (["list", "--since", "last tuesday"], "cannot read time"),
        (["list", "--consumer", "fax"], "unknown consumer 'fax'"),
        (["replay"], "either one delivery id or --consumer"),
        (["discard", str(email_id)], "the following arguments are required: --reason"),
        (["list", "--limit", "many"], "invalid int value"),
        (["explode"], "invalid choice"),
    ]:
        code, out, err = orderflow("dead-letters", *argv)
        assert code != 0, argv
        assert len(err.strip().splitlines()) == 1 and says in err, (argv, err)
    assert deliveries_of(runtime.session_factory, placed.event_id)["inventory"].state == "succeeded"


def test_bulk_replay_by_consumer_and_discard(celery_app, runtime, worker, smtp_sink, orderflow):
    first, first_id = order_with_dead_email(celery_app, runtime, smtp_sink)
    second, second_id = order_with_dead_email(celery_app, runtime, smtp_sink)

    code, out, _ = orderflow("dead-letters", "discard", str(first_id), "--reason", "customer cancelled")
    assert code == 0 and f"discarded delivery {first_id}" in out
    code, out, _ = orderflow("dead-letters", "replay", "--consumer", "email", "--since", "1h", "--rate", "20")
    assert code == 0 and "1 replayed, 0 skipped" in out
    wait_until(lambda: deliveries_of(runtime.session_factory, second.event_id)["email"].state == "succeeded")
    assert deliveries_of(runtime.session_factory, first.event_id)["email"].state == "discarded"
    assert len(smtp_sink.messages()) == 1


def test_a_shipping_letter_is_listed_as_the_shipping_services_and_shown_with_its_event(
    celery_app, runtime, worker, orderflow, use_policies
):
    from dataclasses import replace

    from tasks import runtime as runtime_module
    from tasks.relay import relay_once
    from tests.support.orders import address, place

    # The carrier stays unavailable longer than the shipping policy's retries.
    runtime_module.change_settings(replace(runtime.settings, carrier_unavailable_attempts=99))
    use_policies({"shipping": {"max_retries": 1, "backoff_base": 0.1, "backoff_max": 0.2}})
    placed = place(runtime.session_factory, shipping_address=address(postcode="99999"))

    def shipping_dead() -> bool:
        relay_once(celery_app, runtime, grace_seconds=0)
        code, out, _ = orderflow("dead-letters", "list", "--consumer", "shipping")
        return code == 0 and "shipping" in out and "CarrierUnavailable" in out

    wait_until(shipping_dead, timeout=30, interval=0.3, message="the shipping delivery died")
    code, out, _ = orderflow("dead-letters", "list")
    [row] = [line for line in out.splitlines() if ":shipping" in line]
    assert row.split()[1:3] == ["shipping", "shipping"]
    code, out, _ = orderflow("dead-letters", "show", row.split()[0], "--service", "shipping")
    assert code == 0 and "order.reserved" in out and placed.order_id in out and "service:" in out
