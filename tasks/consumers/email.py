from __future__ import annotations

from typing import Any

from orders.consumers import email
from tasks import runtime
from tasks.celery_app import app
from tasks.delivery import BatchItems, DeliveryTask


@app.task(base=DeliveryTask, bind=True, consumer="email", name="orders.email.send_confirmation")
def send_confirmation(self: DeliveryTask, event_id: str | None = None, payload: dict[str, Any] | None = None,
                      batch: BatchItems | None = None) -> Any:
    settings = runtime.current().settings
    # One SMTP connection for every mail of this message (one, or a batch).
    with email.SmtpSession(settings.smtp_url) as smtp:
        def send(_session: object, event_id: str, payload: dict[str, Any]) -> None:
            email.send_confirmation(smtp=smtp, mail_from=settings.mail_from, event_id=event_id,
                                    payload=payload)

        return self.handle(event_id, payload, batch, send, effects_in_database=False)
