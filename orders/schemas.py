"""Validated input of the use cases (pydantic)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, ValidationError
from pydantic_core import PydanticCustomError

from orders.errors import InvalidOrder
from orders.text import forbidden_characters

MAX_QUANTITY = 1000
MAX_LINES = 50


def _plain_text(value: str) -> str:
    found = forbidden_characters(value)
    if found:
        raise PydanticCustomError(
            "control_characters",
            "must not contain control characters or line breaks (found {found})",
            {"found": ", ".join(found)})
    return value


# A person's name: one line of printable text (orders/text.py says which characters are refused).
Name = Annotated[str, Field(max_length=200), AfterValidator(_plain_text)]


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


# One line of printable text, not blank (an address line, a city).
AddressText = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S"), AfterValidator(_plain_text)]


class ShippingAddressIn(BaseModel):
    """Where the carrier takes the parcel. The shipping service books with exactly these
    fields (shipping/carrier.py): a postcode the carrier cannot serve is a rejected booking."""

    model_config = ConfigDict(extra="forbid", strict=True)

    line1: AddressText
    city: AddressText
    # Letters, digits, spaces and dashes, as postcodes are written across countries.
    postcode: str = Field(min_length=2, max_length=16, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]*[A-Za-z0-9]$")
    # ISO 3166-1 alpha-2, upper case: "FR", "GB".
    country: str = Field(pattern=r"^[A-Z]{2}$")


class PlaceOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    customer_email: EmailStr
    customer_name: Name = ""
    card_token: str = Field(min_length=1, max_length=64)
    lines: list[OrderLineIn] = Field(min_length=1, max_length=MAX_LINES)
    shipping_address: ShippingAddressIn


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
