"""The Celery app and its consumers: `celery -A tasks worker -Q <queue>`."""

from tasks import notifications  # noqa: F401  (registers orders.notifications.*)
from tasks.celery_app import app
from tasks.consumers import analytics, email, inventory  # noqa: F401  (registers the tasks)

__all__ = ["app"]
