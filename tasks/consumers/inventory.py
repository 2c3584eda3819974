from __future__ import annotations

from typing import Any

from orders.consumers import inventory
from tasks.celery_app import app
from tasks.delivery import DeliveryTask


@app.task(base=DeliveryTask, bind=True, consumer="inventory", name="orders.inventory.reserve_stock")
def reserve_stock(self: DeliveryTask, event_id: str, payload: dict[str, Any]) -> str:
    return self.deliver(event_id, lambda session: inventory.reserve_stock(session, payload))
