"""The one Celery app. `celery -A tasks worker -Q email` finds it as `tasks.app`."""

from __future__ import annotations

from celery import Celery, signals

from tasks.safety import check_or_exit


def create_celery_app() -> Celery:
    app = Celery("orderflow")
    # Settings are read lazily by Celery, on first use, from celeryconfig.py.
    app.config_from_object("celeryconfig")
    return app


app = create_celery_app()


@signals.worker_init.connect
def refuse_unsafe_settings(sender=None, **_kwargs):  # type: ignore[no-untyped-def]
    check_or_exit(sender.app if sender is not None else app)
