"""The stream server: `GET /orders/<id>/events` for thousands of watchers, on one event loop.

    python -m live --port 8001          # the Procfile's `stream` process

A process of its own (aiohttp), so an open stream never holds anything the API
needs: gunicorn keeps `POST /orders`, `/orders/<id>/page` and the rest. One
subscription to the delivery updates per process (`feed.py`), fanned out in
memory to the streams of each order (`hub.py`); the database is read through a
small thread pool (`reader.py`), so a process holds a constant number of broker
and database connections whatever the number of streams. It loads neither
Celery nor Flask (tests/unit/test_layers.py).
"""
