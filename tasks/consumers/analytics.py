from __future__ import annotations

from typing import Any

from orders.consumers import analytics
from tasks.celery_app import app
from tasks.delivery import DeliveryTask


@app.task(base=DeliveryTask, bind=True, consumer="analytics", name="orders.analytics.record_revenue")
def record_revenue(self: DeliveryTask, event_id: str, payload: dict[str, Any]) -> str:
    return self.deliver(event_id, lambda session: analytics.record_revenue(session, event_id, payload))
