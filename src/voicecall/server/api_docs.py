"""The control API's OpenAPI contract: every error answer documented as RFC 9457 problem+json.

Routes declare the error statuses they can really give with :func:`problems`; every route gets
401 (bearer token) and 503 (standby instance, store unavailable) on top. :func:`install_openapi`
then finishes the document: the ``Problem`` schema under ``application/problem+json``, the
bearer security scheme, and no FastAPI default "422 HTTPValidationError" (our 422s are problems
too, and routes that cannot give one do not document one).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

PROBLEM_JSON = "application/problem+json"
_REF = "#/components/schemas/Problem"

_WHY: dict[int, str] = {
    400: "The body is not valid JSON (or not UTF-8)",
    401: "Missing or wrong bearer token (api.token)",
    403: "Refused by the outbound policy (`rule` names the setting or list)",
    404: "No such call, number or route",
    409: "The call is not in a state that allows this (not answered yet, or ended)",
    415: "The body is not JSON (send Content-Type: application/json)",
    422: "Invalid parameters or body (the detail names the field)",
    429: "A limit is reached: max_concurrent_calls or an outbound limit (`rule` names it)",
    502: "The telephony provider refused or failed the request",
    503: "Standby instance, or the store is unavailable; retry later",
    504: "The caller did not answer in time (the call may still be live)",
}
#: statuses every /api route can answer
ALWAYS = (401, 503)


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field("about:blank", description="Always about:blank: see title and status")
    title: str = Field(description="The error class, e.g. UnknownCall, OutboundRefused")
    status: int = Field(description="The HTTP status code")
    detail: str | None = Field(None, description="What went wrong, naming the field or rule")
    rule: str | None = Field(
        None,
        description="For 403/429 policy refusals: the rule, e.g. outbound.allowed_countries",
    )


def problems(
    *statuses: int, success: dict[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can answer these statuses (plus 401 and 503), after
    ``success`` (other documented non-error answers)."""
    out: dict[int | str, dict[str, Any]] = dict(success or {})
    for status in sorted({*statuses, *ALWAYS}):
        out[status] = {
            "description": _WHY[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": _REF}}},
        }
    return out


def install_openapi(api: FastAPI, *, public_paths: frozenset[str]) -> None:
    """Replace ``api.openapi`` with the finished contract (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        doc = get_openapi(
            title=api.title,
            version=api.version,
            description=api.description,
            routes=api.routes,
        )
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "api.token (required when the server has one)",
            }
        }
        for path, operations in doc.get("paths", {}).items():
            if path in public_paths:
                continue
            for operation in operations.values():
                operation["security"] = [{"bearerAuth": []}]
                responses = operation.get("responses", {})
                default_422 = responses.get("422", {}).get("content", {}).get("application/json")
                if default_422 is not None:  # FastAPI's own, for a route that cannot give it
                    del responses["422"]
        if "HTTPValidationError" in schemas and "HTTPValidationError" not in str(doc["paths"]):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        api.openapi_schema = doc
        return doc

    api.openapi = openapi  # type: ignore[method-assign]


def query_names(api: FastAPI) -> dict[tuple[str, str], frozenset[str]]:
    """``(METHOD, path template) -> query parameter names`` from the OpenAPI document."""
    out: dict[tuple[str, str], frozenset[str]] = {}
    for path, operations in api.openapi().get("paths", {}).items():
        for method, op in operations.items():
            names = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
            out[(method.upper(), path)] = frozenset(names)
    return out
