"""The API's WSGI app: OpenAPI 3.1 document, local docs page, token authentication, rate limits
and problem documents; the endpoints live in ``controlcenter.api.routes``."""

from __future__ import annotations

import importlib
import math
from typing import Any

from flask import g, request
from flask.typing import ResponseReturnValue
from flask_openapi3.models.info import Info
from flask_openapi3.openapi import OpenAPI
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from controlcenter.api.auth import (
    AuthenticationRequiredError,
    journal_refusal,
    refusal_user,
    resolve_caller,
)
from controlcenter.api.encoding import OrjsonProvider
from controlcenter.api.problems import Problem, problem_doc, problem_response
from controlcenter.api.routes import ROUTE_MODULES
from controlcenter.api.services import ApiServices
from controlcenter.permissions import PermissionDeniedError
from controlcenter.ports import SelectionRefusedError
from controlcenter.security.ratelimit import RateLimiter

API_PREFIX = "/api/v1"
DOCS_PREFIX = API_PREFIX + "/docs"
OPENAPI_PATH = DOCS_PREFIX + "/openapi.json"
API_VERSION = "1.0.0"
BEARER = "bearer"
PUBLIC_PREFIXES = (DOCS_PREFIX,)
"""Served without a token: the OpenAPI document and its docs page."""


COMMON_PROBLEMS = {
    400: "The request does not fit this document (each problem's place and reason)",
    401: "No usable token: missing, malformed, unknown, expired, revoked (journaled)",
    403: "The token's user or scope does not allow this (journaled)",
    429: "Over the token's rate limit (see Retry-After)",
    503: "This center does not run the service",
}
"""Problem answers every operation may give."""


class ServiceUnavailableError(Exception):
    """A service this center does not run (answered 503)."""


class ControlCenterOpenAPI(OpenAPI):
    """flask-openapi3's app whose document names every problem answer as
    ``application/problem+json`` (what the API sends), on every operation."""

    def generate_spec_json(self) -> None:
        """Build the document, then state the problem answers each operation may give."""
        super().generate_spec_json()  # type: ignore[no-untyped-call]
        for path_item in self.spec_json.get("paths", {}).values():
            for operation in path_item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                public = not operation.get("security", True)
                for status, text in COMMON_PROBLEMS.items():
                    if public and status in (401, 403):
                        continue
                    responses[str(status)] = problem_doc(text)


def create_api(services: ApiServices) -> ControlCenterOpenAPI:
    """The API app (a Flask WSGI app) for ``services``; mount it at ``/api/``."""
    api = ControlCenterOpenAPI(
        __name__,
        info=Info(
            title=f"{services.site_name} control center API",
            version=API_VERSION,
            description=(
                "Tags, live values, history, alarms, journal, commands (select-before-operate "
                "through the one command pipeline), rules, devices and users. Every request "
                "needs an API token (`Authorization: Bearer cc_…`); errors are RFC 9457 "
                "problem documents."
            ),
        ),
        security_schemes={BEARER: {"type": "http", "scheme": "bearer"}},
        responses={401: Problem, 403: Problem, 429: Problem},
        doc_prefix=DOCS_PREFIX,
        doc_url="/openapi.json",
        validation_error_status=400,
        validation_error_model=Problem,
        validation_error_callback=_validation_problem,
    )
    api.json = OrjsonProvider(api)
    limiter = RateLimiter(services.rate)

    @api.before_request
    def authenticate() -> ResponseReturnValue | None:
        if any(request.path.startswith(prefix) for prefix in PUBLIC_PREFIXES):
            return None
        try:
            g.caller = resolve_caller(services.tokens)
        except AuthenticationRequiredError as err:
            journal_refusal(services.journal, 401, str(err))
            return problem_response(
                401, str(err), headers={"WWW-Authenticate": 'Bearer realm="controlcenter"'}
            )
        wait = limiter.take(g.caller.token.token_id)
        if wait > 0:
            return problem_response(
                429,
                f"more than {services.rate.rate_per_s:g} requests a second",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return None

    @api.errorhandler(PermissionDeniedError)
    def forbidden(error: PermissionDeniedError) -> ResponseReturnValue:
        journal_refusal(services.journal, 403, str(error), refusal_user(error))
        return problem_response(403, str(error))

    @api.errorhandler(PermissionError)
    def refused(error: PermissionError) -> ResponseReturnValue:
        # A service's own refusal (role, area) after the API's check let the request through.
        who = getattr(error, "user", None)
        journal_refusal(services.journal, 403, str(error), getattr(who, "name", ""))
        return problem_response(403, str(error))

    @api.errorhandler(AuthenticationRequiredError)
    def unauthenticated(error: AuthenticationRequiredError) -> ResponseReturnValue:
        journal_refusal(services.journal, 401, str(error))
        return problem_response(401, str(error))

    @api.errorhandler(ServiceUnavailableError)
    def unavailable(error: ServiceUnavailableError) -> ResponseReturnValue:
        return problem_response(503, str(error))

    @api.errorhandler(SelectionRefusedError)
    def refused_selection(error: SelectionRefusedError) -> ResponseReturnValue:
        return problem_response(409, str(error), kind="selection-refused")

    @api.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        return problem_response(error.code or 500, error.description or "")

    for name in ROUTE_MODULES:
        module = importlib.import_module(f"controlcenter.api.routes.{name}")
        module.register(api, services)
    return api


def _validation_problem(error: ValidationError) -> Any:
    """A request that does not fit the document: 400 with each problem's place and reason."""
    details = "; ".join(
        f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
        for issue in error.errors()[:10]
    )
    return problem_response(400, details, kind="invalid-request")


def available(service: Any, name: str) -> Any:
    """``service``, or ServiceUnavailableError when this center does not run it."""
    if service is None:
        raise ServiceUnavailableError(f"this center does not run {name}")
    return service
