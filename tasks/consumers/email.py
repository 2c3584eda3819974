from __future__ import annotations

from typing import Any

from orders.consumers import email
from tasks import runtime
from tasks.celery_app import app
from tasks.delivery import DeliveryTask


@app.task(base=DeliveryTask, bind=True, consumer="email", name="orders.email.send_confirmation")
def send_confirmation(self: DeliveryTask, event_id: str, payload: dict[str, Any]) -> str:
    settings = runtime.current().settings
    return self.deliver(
        event_id,
        lambda _session: email.send_confirmation(
            smtp_url=settings.smtp_url, mail_from=settings.mail_from,
            event_id=event_id, payload=payload,
        ),
    )
