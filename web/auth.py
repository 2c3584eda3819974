"""HTTP basic auth for the operator page and /admin/api: user `admin`, password from the environment.

No password configured (ORDERFLOW_ADMIN_PASSWORD unset) means the operator
endpoints are off (503), never open and never a built-in default. `make run`
generates one into var/ and prints where it is.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, ServiceUnavailable, Unauthorized

ADMIN_USER = "admin"
REALM = "orderflow operator"


def check(password: str | None) -> str:
    """The authenticated user, or an HTTP error (401 asks the browser for credentials)."""
    if not password:
        raise ServiceUnavailable("the operator pages are disabled: set ORDERFLOW_ADMIN_PASSWORD")
    given = request.authorization
    if (given is None or given.type != "basic" or given.username != ADMIN_USER
            or not hmac.compare_digest((given.password or "").encode(), password.encode())):
        raise Unauthorized("log in as user 'admin' with the ORDERFLOW_ADMIN_PASSWORD password",
                           www_authenticate=WWWAuthenticate("basic", {"realm": REALM}))
    return ADMIN_USER


def form_token(password: str) -> str:
    """Anti-CSRF token for the page's forms. Derived from the password, so every gunicorn
    worker agrees without shared state; a browser auto-sends basic credentials, a token it
    cannot read from another site it cannot."""
    return hmac.new(password.encode(), b"orderflow-admin-form", hashlib.sha256).hexdigest()


def check_form(password: str | None) -> None:
    if not password:  # `check` refused the request already; never derive a token from nothing
        raise ServiceUnavailable("the operator pages are disabled: set ORDERFLOW_ADMIN_PASSWORD")
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise Forbidden("cross-site form post refused")
    if not hmac.compare_digest(request.form.get("csrf_token", ""), form_token(password)):
        raise Forbidden("missing or stale form token: reload the page and try again")

