"""Handlers: what each consumer does with an event. Called by the thin tasks in `tasks/`."""
