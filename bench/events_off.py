"""`celery -A bench.events_off worker ...`: orderflow's app with task events OFF.

Only for measuring what monitoring costs (target: events on is at most 1.3x
slower). Production refuses to start without task events (tasks/safety.py);
this bench-only entry point removes exactly that one requirement and keeps
every other check (acks_late, reject_on_worker_lost, prefetch 1, JSON, limits).
"""

from celery import signals

from tasks import app
from tasks.celery_app import refuse_unsafe_settings
from tasks.safety import UnsafeSettings, problems

EVENT_SETTINGS = ("worker_send_task_events", "task_send_sent_event")

app.conf.worker_send_task_events = False
app.conf.task_send_sent_event = False
signals.worker_init.disconnect(refuse_unsafe_settings)


@signals.worker_init.connect
def _refuse_other_unsafe_settings(sender=None, **_kwargs):  # type: ignore[no-untyped-def]
    found = [p for p in problems(app) if not p.startswith(EVENT_SETTINGS)]
    if found:
        raise UnsafeSettings("orderflow (bench, events off): refusing to start: " + "; ".join(found))


__all__ = ["app"]
