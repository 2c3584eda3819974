"""Plain notices (a subject and a body to one address), sent by the `notifications` task.

This is the simple path: a Celery task enqueued with `delay_on_commit` from a
Django view, with Celery's own retries and no delivery record. See the README
("outbox or delay_on_commit?") for what it does not guarantee.
"""

from __future__ import annotations

from email.message import EmailMessage

from orders.consumers.email import send_message
from orders.mail_addresses import mailbox, recipient
from orders.text import one_line


def send_notice(*, smtp_url: str, mail_from: str, to: str, subject: str, body: str) -> None:
    # `to` and `subject` may come straight from a form: checked and kept on one line.
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = mailbox("", recipient(to))
    message["Subject"] = one_line(subject)
    message.set_content(body)
    send_message(smtp_url=smtp_url, message=message)
