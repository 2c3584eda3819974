from __future__ import annotations

from typing import Any

from orders.consumers import inventory
from tasks.celery_app import app
from tasks.delivery import BatchItems, DeliveryTask


@app.task(base=DeliveryTask, bind=True, consumer="inventory", name="orders.inventory.reserve_stock")
def reserve_stock(self: DeliveryTask, event_id: str | None = None, payload: dict[str, Any] | None = None,
                  batch: BatchItems | None = None) -> Any:
    return self.handle(event_id, payload, batch,
                       lambda session, _event_id, payload: inventory.reserve_stock(session, payload))
