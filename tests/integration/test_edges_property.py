"""Property: whatever name and address a customer types, POST /orders answers 201 or a documented
4xx, and every accepted order's confirmation is sent or refused for good (a permanent reason) —
never retried for a reason that cannot change. Against a real database and real SMTP servers,
one without SMTPUTF8 and one with it.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from devtools.smtp_sink import SmtpSink
from orders.consumers.email import confirmation_sender
from orders.consumers.smtp_failures import NO_SMTPUTF8
from orders.errors import PermanentError
from tests.support.orders import order_input, outbox_event
from web import create_app

LOCAL = st.text(alphabet=string.ascii_letters + string.digits + ".+-_üéßø\n\r\x00 \"@\u2028", min_size=1,
                max_size=12)
DOMAIN = st.sampled_from(["example.com", "exämple.de", "bücher.example", "例え.jp", "xn--bcher-kva.example",
                          "example", "-bad-.com", "a..b", "münchen.de\n"])
NAME = st.text(max_size=30)  # every code point: letters, marks, emoji, CR/LF/NUL, U+2028, bidi...
unique = itertools.count()


@pytest.fixture
def utf8_sink(tmp_path):
    with SmtpSink(tmp_path / "utf8-mail", smtputf8=True) as sink:
        yield sink


def test_any_name_and_address_is_201_or_a_documented_4xx_and_its_mail_is_sent_or_permanently_refused(
    settings, runtime, smtp_sink, utf8_sink
):
    api = create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": None, "IN_PROCESS_EVENTS": False})
    client = api.test_client()
    servers = [(smtp_sink, replace(settings, smtp_url=smtp_sink.url)),
               (utf8_sink, replace(settings, smtp_url=utf8_sink.url))]

    @hypothesis_settings(max_examples=40, deadline=2000, database=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(local=LOCAL, domain=DOMAIN, name=NAME)
    def check(local: str, domain: str, name: str) -> None:
        address = f"{local}{next(unique)}@{domain}"
        response = client.post("/orders", json=order_input(customer_email=address, customer_name=name))

        if response.status_code != 201:
            assert 400 <= response.status_code < 500, response.json
            assert set(response.json) == {"error"} and {"code", "message"} <= set(response.json["error"])
            return
        event_id = response.json["event_id"]
        payload = outbox_event(runtime.session_factory, event_id).payload  # what the worker gets
        for sink, server_settings in servers:
            with confirmation_sender(server_settings) as send:
                try:
                    send(None, event_id, payload)
                except PermanentError as exc:  # a TransientError fails the test: nothing here can pass later
                    # The only message of its own an accepted order can have: a local part that needs
                    # SMTPUTF8, on the server that lacks it.
                    assert (exc.message, sink.smtputf8, local.isascii()) == (NO_SMTPUTF8, False, False)
                    continue
            marker = f"<{event_id}.confirmation@orderflow>".encode()
            assert any(marker in mail for mail in sink.messages()), "sent, so the server has it"

    check()
