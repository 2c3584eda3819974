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


@signals.worker_init.connect
def declare_every_queue(sender=None, **_kwargs):  # type: ignore[no-untyped-def]
    """RabbitMQ: make every configured queue exist before the worker starts consuming.

    Celery's native delayed delivery (quorum queues) binds ALL configured queues to its
    exchanges at start-up, and a queue no process declared yet ("celery", or a consumer
    whose worker runs elsewhere) fails that step: "Native delayed delivery will not be
    available" for the whole worker. Declaring is idempotent; a broker still away is
    left to Celery's own connection retries.
    """
    from tasks.broker_setup import declare_queues

    declare_queues(sender.app if sender is not None else app)
