"""The Celery side of orderflow: `celery -A tasks worker -Q <queue>` finds the app as `tasks.app`.

Importing this package registers every task: one per declared durable
subscriber (tasks/consumer_tasks.py) and the plain notice task.
"""

from tasks import consumer_tasks, notice_task  # noqa: F401  (registers the tasks)
from tasks.celery_app import app

__all__ = ["app"]
