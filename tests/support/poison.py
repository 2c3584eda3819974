"""The names of the test-only poison consumer (tests/support/poison_worker.py).

Apart from the worker module, so that a test can name them without importing the
worker module, whose import declares the consumer in this process's registry
(where it would then show in every list of declared consumers: the Procfile's).
"""

POISON_EVENT = "test.poison"
POISON_QUEUE = "poison"
POISON_TASK = "orders.poison.explode"
