"""Settings of the example shop: the same DATABASE_URL, REDIS_URL and SMTP_URL as orderflow."""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from config.settings import default_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = ["shop"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "shop_project.urls"
WSGI_APPLICATION = "shop_project.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One database for Django's tables and orderflow's (orders, outbox, deliveries).
DATABASE_URL = os.environ.get("DATABASE_URL") or default_database_url()
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def database_from_url(url: str) -> dict:
    """DATABASES["default"] for a sqlite:/// or postgresql:// URL (orderflow's format)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url.removeprefix("sqlite:///"),
                "OPTIONS": {"timeout": 30}}
    if parts.scheme.split("+")[0] in ("postgres", "postgresql"):
        return {"ENGINE": "django.db.backends.postgresql", "NAME": parts.path.lstrip("/"),
                "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
                "HOST": parts.hostname or "", "PORT": str(parts.port or "")}
    raise ValueError(f"unsupported DATABASE_URL scheme: {parts.scheme!r}")


DATABASES = {"default": database_from_url(DATABASE_URL)}

# Handed to orderflow's Settings (see shop/orderflow.py); Celery reads REDIS_URL itself
# (celeryconfig.py), so the views and `celery -A tasks worker` share one broker.
ORDERFLOW = {"DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL}
