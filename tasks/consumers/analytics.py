from __future__ import annotations

from typing import Any

from orders.consumers import analytics
from tasks.celery_app import app
from tasks.delivery import BatchItems, DeliveryTask


@app.task(base=DeliveryTask, bind=True, consumer="analytics", name="orders.analytics.record_revenue")
def record_revenue(self: DeliveryTask, event_id: str | None = None, payload: dict[str, Any] | None = None,
                   batch: BatchItems | None = None) -> Any:
    return self.handle(event_id, payload, batch, analytics.record_revenue)
