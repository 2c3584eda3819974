"""The Flask JSON API. `create_app()` is the factory; gunicorn runs `web:create_app()`."""

from web.app import create_app

__all__ = ["create_app"]
