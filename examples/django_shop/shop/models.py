from django.db import models


class Feedback(models.Model):
    """A Django model change that enqueues a task the simple way (delay_on_commit)."""

    email = models.EmailField()
    message = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
