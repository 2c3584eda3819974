"""No second Celery app: the project uses orderflow's `tasks.app`.

Imported once Django's settings module is known (DJANGO_SETTINGS_MODULE is set
by manage.py / wsgi.py before anything imports this), so Celery installs its
Django fix-up: tasks get `delay_on_commit`. The worker stays
`celery -A tasks worker -Q ...` and needs no Django at all.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_project.settings")

from tasks import app  # noqa: E402

__all__ = ["app"]
