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

import json

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from orders.errors import OrderflowError
from orders.place_order import place_order
from orders.queries import get_order
from shop.models import Feedback
from shop.orderflow import services
from tasks.notice_task import send_notice
from web.errors import STATUS_BY_ERROR


def error(status: int, code: str, message: str, details: object = None) -> JsonResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JsonResponse({"error": body}, status=status)


def orderflow_error(exc: OrderflowError) -> JsonResponse:
    status = next((s for cls, s in STATUS_BY_ERROR if isinstance(exc, cls)), 400)
    return error(status, exc.code, exc.message, exc.details)


def json_body(request: HttpRequest) -> object:
    try:
        return json.loads(request.body or b"null")
    except ValueError:
        return None


@csrf_exempt
@require_POST
def create_order(request: HttpRequest) -> JsonResponse:
    of = services()
    try:
        placed = place_order(session_factory=of.session_factory, gateway=of.gateway,
                             data=json_body(request), after_commit=of.after_commit)
    except OrderflowError as exc:
        return orderflow_error(exc)
    return JsonResponse({"order_id": placed.order_id, "event_id": placed.event_id}, status=201)


@require_GET
def show_order(request: HttpRequest, order_id: str) -> JsonResponse:
    try:
        return JsonResponse({"order": get_order(services().session_factory, order_id)})
    except OrderflowError as exc:
        return orderflow_error(exc)


@csrf_exempt
@require_POST
def leave_feedback(request: HttpRequest) -> JsonResponse:
    data = json_body(request)
    if not isinstance(data, dict) or not data.get("email") or not data.get("message"):
        return error(422, "invalid_feedback", "send {\"email\", \"message\"}")
    with transaction.atomic():
        feedback = Feedback.objects.create(email=data["email"], message=str(data["message"])[:2000])
        # Sent by Django's on_commit: only if this transaction commits, never inside it.
        send_notice.delay_on_commit(
            to=feedback.email, subject="Thanks for your feedback",
            body=f"We read every message. You wrote:\n\n{feedback.message}\n",
        )
    return JsonResponse({"feedback_id": feedback.id}, status=201)
