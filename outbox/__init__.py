"""The reliable-delivery machinery, reusable by any application.

Outbox rows and the relay's claim, subscriptions, delivery records, retry
policies and the decisions taken on a failure, dead letters, reconciliation,
in-process dispatch, monitoring. It knows nothing of orders, Celery or Flask:
the application declares its subscribers (see orders/subscriptions.py) and
the Celery adapters in tasks/ apply what this package decides.
"""
