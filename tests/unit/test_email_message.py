"""The confirmation mail as a receiver parses it, whatever the customer's name or address."""

from __future__ import annotations

import email
from email import policy

import pytest

from orders.consumers.email import confirmation_message
from orders.errors import PermanentError

PAYLOAD = {"order_id": "o-1", "total_cents": 4900, "currency": "EUR",
           "lines": [{"sku": "mug", "name": "Enamel mug", "quantity": 2}]}


@pytest.mark.parametrize(("name", "address", "sent_to"), [
    ("Ada Lovelace", "ada@example.com", "ada@example.com"),
    ("José Núñez", "jose@example.com", "jose@example.com"),  # non-ASCII body and display name
    ("Ada", "ada@exämple.de", "ada@xn--exmple-cua.de"),  # the domain goes in its IDNA form
    ("Zoë", "zoë@bücher.example", "zoë@xn--bcher-kva.example"),  # non-ASCII local part: SMTPUTF8
])
def test_confirmation_parses_back_with_its_headers_and_body(name, address, sent_to):
    message = confirmation_message(mail_from="orders@orderflow.example", event_id="ev-1",
                                   payload={**PAYLOAD, "customer_name": name, "customer_email": address})

    raw = as_sent(message)
    parsed = parse(raw)

    assert parsed["Subject"] == "Your order o-1 is confirmed"
    assert parsed["Message-ID"] == "<ev-1.confirmation@orderflow>"
    assert parsed["X-Orderflow-Event"] == "ev-1"
    assert parsed["To"].addresses[0].addr_spec == sent_to
    assert parsed["To"].addresses[0].display_name == name
    body = email.message_from_bytes(raw, policy=policy.default).get_content()  # bytes, as received
    assert f"Hello {name}," in body and "2 x Enamel mug (mug)" in body and "Total: 49.00 EUR" in body


def as_sent(message):
    """The bytes smtplib would send: UTF-8 headers only when the envelope needs SMTPUTF8."""
    if isinstance(message, email.message.EmailMessage):
        return message.as_bytes(policy=message.policy.clone(utf8=True))
    return message.as_bytes()


def parse(raw):
    """The headers as a receiver reads them (they may be UTF-8: SMTPUTF8)."""
    return email.message_from_string(raw.decode("utf-8"), policy=policy.default)


LINE_BREAKS = ["\r\n", "\n", "\r", "\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c"]


@pytest.mark.parametrize("address", ["ada@example.com", "jürgen@example.de"])
@pytest.mark.parametrize("brk", LINE_BREAKS, ids=[f"U+{ord(c[-1]):04X}" for c in LINE_BREAKS])
def test_no_name_can_add_a_header(brk, address):
    """The name is shown in To; whatever it carries, the mail keeps exactly its own headers."""
    name = f"Bob{brk}Bcc: evil@example.com{brk}{brk}X-Evil: 1"
    message = confirmation_message(mail_from="orders@orderflow.example", event_id="ev-1",
                                   payload={**PAYLOAD, "customer_name": name, "customer_email": address})

    raw = as_sent(message)
    parsed = parse(raw)

    assert sorted(parsed.keys()) == sorted(
        ["Content-Type", "MIME-Version", "Content-Transfer-Encoding", "From", "To", "Subject",
         "Message-ID", "X-Orderflow-Event"])
    assert [a.addr_spec for a in parsed["To"].addresses] == [address]
    assert parsed["To"].addresses[0].display_name == "Bob Bcc: evil@example.com X-Evil: 1"
    header_block = raw.split(b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n", 1)[0]
    assert not any(ch in header_block.decode() for ch in "\x00\u2028\u2029\x85\x0b\x0c\x1c")


@pytest.mark.parametrize(("payload", "reason"), [
    ({**PAYLOAD, "customer_email": "not an address"}, "cannot receive mail"),
    ({**PAYLOAD, "customer_email": "ada@example.com\r\nBcc: evil@example.com"}, "cannot receive mail"),
    ({"order_id": "o-1", "customer_email": "ada@example.com"}, "the order.created payload lacks 'lines'"),
    ({**PAYLOAD, "customer_email": "ada@example.com", "total_cents": "lots"}, "payload cannot be read"),
    ({**PAYLOAD}, "the recipient address is missing"),
])
def test_a_payload_that_cannot_make_a_mail_is_a_permanent_error_with_a_reason(payload, reason):
    with pytest.raises(PermanentError, match=reason):
        confirmation_message(mail_from="orders@orderflow.example", event_id="ev-1", payload=payload)
