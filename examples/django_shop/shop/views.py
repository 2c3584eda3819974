"""Two ways to cause a side effect from a Django view.

- `create_order`: orderflow's use case. Payment first, then the order and its
  event in one transaction (the outbox), then one message per consumer queue.
  Nothing may be lost: the relay publishes what the fast path missed.
- `leave_feedback`: a Django model change, then `send_notice.delay_on_commit`.
  Simple, and the task is only sent if the transaction commits; but a crash
  (or a broker outage) between the commit and the send loses it, and there is
  no task id to follow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from werkzeug.exceptions import RequestEntityTooLarge

from orders.place_order import place_order
from orders.queries import get_order
from shop.models import Feedback
from shop.orderflow import services
from tasks.notice_task import send_notice
from web.errors import describe, error_body
from web.json_input import order_input, parse_json

View = Callable[..., JsonResponse]


def api_errors(view: View) -> View:
    """Answer whatever the view raises exactly as orderflow's API does (web/errors.py's mapping)."""
    @functools.wraps(view)
    def answer(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
        try:
            return view(request, *args, **kwargs)
        except RequestDataTooBig:  # DATA_UPLOAD_MAX_MEMORY_SIZE: the API's 413 (Django says 400)
            found = describe(RequestEntityTooLarge())
        except Exception as exc:
            found = describe(exc)
        response = JsonResponse(found.body, status=found.status)
        for name, value in found.headers:
            response[name] = value
        return response
    return answer


@csrf_exempt
@require_POST
@api_errors
def create_order(request: HttpRequest) -> JsonResponse:
    of = services()
    placed = place_order(session_factory=of.session_factory, gateway=of.gateway,
                         data=order_input(request.body, mimetype=request.content_type),
                         after_commit=of.after_commit)
    return JsonResponse({"order_id": placed.order_id, "event_id": placed.event_id}, status=201)


@require_GET
@api_errors
def show_order(request: HttpRequest, order_id: str) -> JsonResponse:
    return JsonResponse({"order": get_order(services().session_factory, order_id)})


@csrf_exempt
@require_POST
@api_errors
def leave_feedback(request: HttpRequest) -> JsonResponse:
    data = parse_json(request.body, mimetype=request.content_type)
    if not isinstance(data, dict) or not data.get("email") or not data.get("message"):
        return JsonResponse(error_body("invalid_feedback", "send {\"email\", \"message\"}"), status=422)
    with transaction.atomic():
        feedback = Feedback.objects.create(email=data["email"], message=str(data["message"])[:2000])
        # Sent by Django's on_commit: only if this transaction commits, never inside it.
        send_notice.delay_on_commit(
            to=feedback.email, subject="Thanks for your feedback",
            body=f"We read every message. You wrote:\n\n{feedback.message}\n",
        )
    return JsonResponse({"feedback_id": feedback.id}, status=201)
