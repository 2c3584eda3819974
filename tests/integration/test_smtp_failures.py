"""Each row of docs/failures.md (email), against a real SMTP server: one message's problem is a
PermanentError with a reason a person understands; the server's is a TransientError."""

from __future__ import annotations

import pytest

from devtools.ports import free_port
from devtools.smtp_sink import SmtpSink
from orders.consumers.email import SmtpSession, confirmation_message
from orders.consumers.smtp_failures import NO_SMTPUTF8
from orders.errors import PermanentError, TransientError
from tests.support.refusing_smtp import greeting_only, refusing_sink

LINES = [{"sku": "mug", "name": "Enamel mug", "quantity": 1}]


def mail(address: str, *, name: str = "Ada", event_id: str = "ev-1", lines: list | None = None):
    payload = {"order_id": "o-1", "total_cents": 1200, "currency": "EUR", "lines": lines or LINES,
               "customer_email": address, "customer_name": name}
    return confirmation_message(mail_from="orders@orderflow.example", event_id=event_id, payload=payload)


def test_unicode_domain_is_sent_in_its_idna_form(mail_dir):
    with refusing_sink(mail_dir) as sink, SmtpSession(sink.url) as smtp:
        smtp.send(mail("ada@exämple.de"))

    assert sink.handler.rcpt_seen == ["ada@xn--exmple-cua.de"]
    [received] = sink.messages()
    assert b"To: Ada <ada@xn--exmple-cua.de>" in received


def test_non_ascii_local_part_without_smtputf8_is_permanent_and_the_session_goes_on(mail_dir):
    with SmtpSink(mail_dir, smtputf8=False) as sink, SmtpSession(sink.url) as smtp:
        with pytest.raises(PermanentError, match=f"^{NO_SMTPUTF8}$"):
            smtp.send(mail("jürgen@example.de"))
        assert sink.handler.attempts == []  # refused before anything was sent
        smtp.send(mail("ada@example.com", event_id="ev-2"))  # same connection, next message

    [received] = sink.messages()
    assert b"<ev-2.confirmation@orderflow>" in received


def test_non_ascii_local_part_with_smtputf8_is_delivered_in_utf8(mail_dir):
    with SmtpSink(mail_dir, smtputf8=True) as sink, SmtpSession(sink.url) as smtp:
        smtp.send(mail("jürgen@exämple.de", name="Jürgen"))

    [received] = sink.messages()
    assert "To: Jürgen <jürgen@xn--exmple-cua.de>".encode() in received


@pytest.mark.parametrize(("reply", "error", "reason"), [
    ("550 5.1.1 no such user", PermanentError, "the mail server refused the recipient (SMTP 550"),
    ("553 5.1.3 bad address syntax", PermanentError, "the mail server refused the recipient (SMTP 553"),
    ("450 4.2.0 greylisted, try again", TransientError, "try again later (SMTP 450"),
    ("451 4.7.1 greylisted", TransientError, "try again later (SMTP 451"),
    ("452 4.2.2 mailbox full", TransientError, "try again later (SMTP 452"),
])
def test_a_refused_recipient_is_permanent_on_5xx_and_transient_on_4xx(mail_dir, reply, error, reason):
    with refusing_sink(mail_dir, recipients={"ada@example.com": reply}) as sink, \
            SmtpSession(sink.url) as smtp, pytest.raises(error) as raised:
        smtp.send(mail("ada@example.com"))
    assert raised.type is error and reason in str(raised.value)


@pytest.mark.parametrize(("reply", "error", "reason"), [
    ("553 5.7.1 sender not allowed", PermanentError, "the mail server refused the message (SMTP 553"),
    ("451 4.3.0 try later", TransientError, "try again later (SMTP 451"),
    ("421 4.3.2 shutting down", TransientError, "try again later (SMTP 421"),
])
def test_a_refused_sender_is_permanent_on_5xx_and_transient_on_4xx(mail_dir, reply, error, reason):
    with refusing_sink(mail_dir, mail_from=reply) as sink, SmtpSession(sink.url) as smtp, \
            pytest.raises(error) as raised:
        smtp.send(mail("ada@example.com"))
    assert raised.type is error and reason in str(raised.value)


def test_a_message_too_large_for_the_server_is_permanent(mail_dir):
    big = [{"sku": f"sku-{i}", "name": "x" * 80, "quantity": 1} for i in range(50)]
    with SmtpSink(mail_dir, size_limit=2000) as sink, SmtpSession(sink.url) as smtp:
        with pytest.raises(PermanentError, match=r"too large for the mail server \(SMTP 552"):
            smtp.send(mail("ada@example.com", lines=big))
        smtp.send(mail("ada@example.com", event_id="ev-small"))  # the server is fine for others
    assert len(sink.messages()) == 1


@pytest.mark.parametrize(("code", "error", "reason"), [
    (554, PermanentError, "the mail server refused the message (SMTP 554"),
    (552, PermanentError, "too large for the mail server (SMTP 552"),
    (550, PermanentError, "the mail server refused the message (SMTP 550"),
    (451, TransientError, "try again later (SMTP 451"),
    (421, TransientError, "try again later (SMTP 421"),
])
def test_the_reply_to_data_is_permanent_on_5xx_and_transient_on_4xx(mail_dir, code, error, reason):
    with SmtpSink(mail_dir, fail_first=-1, fail_code=code) as sink, SmtpSession(sink.url) as smtp, \
            pytest.raises(error) as raised:
        smtp.send(mail("ada@example.com"))
    assert raised.type is error and reason in str(raised.value)


@pytest.mark.parametrize("greeting", [b"554 5.3.2 no service here", b"421 4.3.2 too busy"])
def test_a_session_refused_at_the_greeting_is_transient_whatever_its_code(greeting):
    with greeting_only(greeting) as url, SmtpSession(url) as smtp, \
            pytest.raises(TransientError, match="refused the session"):
        smtp.send(mail("ada@example.com"))


def test_a_refused_connection_is_transient():
    with SmtpSession(f"smtp://127.0.0.1:{free_port()}") as smtp, \
            pytest.raises(TransientError, match="SMTP unreachable"):
        smtp.send(mail("ada@example.com"))
