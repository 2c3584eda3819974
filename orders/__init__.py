"""orderflow's order service: use cases, models and handlers, free of Flask and Celery."""
