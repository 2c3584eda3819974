"""Validated input of the use cases (pydantic)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError

from orders.errors import InvalidOrder

MAX_QUANTITY = 1000
MAX_LINES = 50


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class PlaceOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    customer_email: EmailStr
    customer_name: str = Field(default="", max_length=200)
    card_token: str = Field(min_length=1, max_length=64)
    lines: list[OrderLineIn] = Field(min_length=1, max_length=MAX_LINES)


def parse_place_order(data: object) -> PlaceOrderIn:
    """Validate raw input, turning pydantic's error into InvalidOrder naming each field."""
    try:
        return PlaceOrderIn.model_validate(data)
    except ValidationError as exc:
        raise InvalidOrder("invalid order", details=field_errors(exc)) from None


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
