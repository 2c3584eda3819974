"""The example Django project. Its Celery app is orderflow's own (see celery.py)."""

from shop_project.celery import app as celery_app

__all__ = ["celery_app"]
