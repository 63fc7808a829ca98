"""The OpenAPI 3.1 document, built from the same endpoint list that builds the routes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from .. import __version__
from ..registry.store import MAX_VERSION
from ._http import Endpoint
from .schemas import Error

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
_ERRORS = {
    400: "The request cannot be answered as asked (a run id prefix that matches several runs)",
    401: "No token, or an unknown or revoked one",
    403: "The token's scopes do not allow this",
    404: "Not found",
    409: "Refused: the gate (with the problems), a name in use, or a conflicting move",
    422: "The request is invalid (the message names the field)",
    503: "The database cannot be reached",
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _path(endpoint: Endpoint) -> tuple[str, list[dict[str, Any]]]:
    parameters = []
    for name, kind in _PARAM.findall(endpoint.path):
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 1, "maximum": MAX_VERSION} if kind == "int" else {"type": "string"}
        )
        if name == "name":
            schema = {"type": "string", "description": "The prompt's name; it may contain `/` (`support/reply`)."}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", endpoint.path), parameters


def openapi_document(endpoints: Sequence[Endpoint], *, auth: bool) -> dict[str, Any]:
    """The API's OpenAPI document."""
    components: dict[str, Any] = {}
    error = {"application/json": {"schema": _schema(Error, components)}}
    paths: dict[str, Any] = {}
    for endpoint in endpoints:
        path, parameters = _path(endpoint)
        for name, schema in endpoint.query.items():
            schema = dict(schema)
            required = bool(schema.pop("required", False))
            parameter = {"name": name, "in": "query", "required": required, "schema": schema}
            if schema.get("type") == "array":
                parameter |= {"style": "form", "explode": True}
            parameters.append(parameter)
        if endpoint.etag:
            parameters.append(
                {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
            )
        success: dict[str, Any] = {"description": "OK"}
        if endpoint.response is not None:
            schema = _schema(endpoint.response, components)
            if endpoint.response_list:
                schema = {"type": "array", "items": schema}
            success["content"] = {"application/json": {"schema": schema}}
        elif endpoint.status != 204:
            success["content"] = {"application/json": {"schema": {"type": "object"}}}
        responses: dict[str, Any] = {str(endpoint.status): success}
        if endpoint.status == 201 and endpoint.method == "POST" and endpoint.response is not None:
            responses["200"] = {**success, "description": "Already there"}
        if endpoint.etag:
            responses["304"] = {"description": "Not modified (the If-None-Match ETag still matches)"}
        statuses = {422, 503, *endpoint.errors} | ({401, 403} if auth and endpoint.scope else set())
        for status in sorted(statuses):
            responses[str(status)] = {"description": _ERRORS.get(status, "Error"), "content": error}
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": endpoint.handler.__name__,
            "parameters": parameters,
            "responses": responses,
        }
        if endpoint.scope:
            operation["description"] = f"Needs a token with the `{endpoint.scope}` scope."
            if auth:
                operation["security"] = [{"token": [endpoint.scope]}]
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(endpoint.body, components)}},
            }
        paths.setdefault(path, {})[endpoint.method.lower()] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "promptlane registry", "version": __version__},
        "paths": paths,
        "components": {"schemas": components},
    }
    if auth:
        document["components"]["securitySchemes"] = {"token": {"type": "http", "scheme": "bearer"}}
    return document
