"""Notifications: a plain Celery task, for side effects that may be enqueued the simple way.

Enqueued by an embedding project, e.g. a Django view with
`send_notice.delay_on_commit(...)` (Celery's Django task class provides it when
DJANGO_SETTINGS_MODULE is set). Runs on the `notifications` queue of the same
`celery -A tasks worker`. Unlike the outbox consumers there is no delivery
record: a message lost before it reaches the broker is lost, and a redelivered
one sends the notice again.
"""

from __future__ import annotations

from orders import notices
from orders.errors import TransientError
from tasks import runtime
from tasks.celery_app import app

QUEUE = "notifications"


@app.task(
    name="orders.notifications.send_notice",
    autoretry_for=(TransientError,),
    # Without retry_backoff Celery would wait default_retry_delay (180 s) between tries.
    retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=5,
)
def send_notice(*, to: str, subject: str, body: str) -> None:
    settings = runtime.current().settings
    notices.send_notice(smtp_url=settings.smtp_url, mail_from=settings.mail_from,
                        to=to, subject=subject, body=body)
