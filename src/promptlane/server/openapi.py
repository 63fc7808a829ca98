"""The OpenAPI 3.1 document, built from the same endpoint list that builds the routes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from .. import __version__
from ..registry.store import MAX_VERSION
from ..spec import NAME_MAX_LENGTH, NAME_PATTERN
from ._http import Endpoint
from .schemas import LABEL_PATTERN, MAX_JSON_INT, NO_NUL, TOKEN_NAME_PATTERN, Error

__all__ = ["PATH_PARAMETERS", "openapi_document"]

_REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
_ERRORS = {
    400: "The request cannot be answered as asked (a run id prefix that matches several runs)",
    408: "The request body did not arrive in time",
    401: "No token, or an unknown or revoked one",
    403: "The token's scopes do not allow this",
    404: "Not found",
    409: "Refused: the gate (with the problems), a name in use, or a conflicting move",
    413: "The request body is over the server's limit (server_max_body_bytes)",
    415: "The body is not sent as application/json",
    422: "The request is invalid (the message names the field)",
    503: "The database cannot be reached",
}


def _schema(model: type[BaseModel], components: dict[str, Any], *, request: bool = False) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF)
    defs = {**schema.pop("$defs", {}), model.__name__: schema}
    if request:
        for part in defs.values():
            _as_read(part)
    components.update(defs)
    return {"$ref": _REF.format(model=model.__name__)}


def _as_read(schema: Any) -> None:
    """State in a request body's schema what the server checks in every body before its model
    (``_http.read_body``): no string holds a NUL character, integers fit 64 bits, and keys a model ignores
    are JSON like the rest (:data:`~promptlane.server.schemas.JsonValue`)."""
    if isinstance(schema, list):
        for item in schema:
            _as_read(item)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind == "string" and "pattern" not in schema and "enum" not in schema and "const" not in schema:
        schema["pattern"] = NO_NUL
    elif kind == "integer":
        schema.setdefault("minimum", -MAX_JSON_INT)
        schema.setdefault("maximum", MAX_JSON_INT)
    elif kind == "object" and "additionalProperties" not in schema and "patternProperties" not in schema:
        schema["additionalProperties"] = {"$ref": _REF.format(model="JsonValue")}
        schema["propertyNames"] = {"pattern": NO_NUL}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "$defs"):
            for item in value.values():
                _as_read(item)
        elif isinstance(value, (dict, list)) and key not in ("enum", "const", "default", "examples"):
            _as_read(value)


PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "name": {
        "type": "string",
        "minLength": 1,
        "maxLength": NAME_MAX_LENGTH,
        "pattern": NAME_PATTERN.pattern,
        "description": "The prompt's name; it may contain `/` (`support/reply`).",
    },
    "number": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
    "label": {"type": "string", "pattern": LABEL_PATTERN, "not": {"const": "latest"}},
    "run_id": {"type": "string", "pattern": "^[0-9a-f]{1,32}$", "description": "A run's id, or a unique prefix."},
    "token": {"type": "string", "pattern": TOKEN_NAME_PATTERN, "description": "The token's name."},
}
"""What each path parameter takes: the handlers refuse anything else (422 naming the parameter)."""


def _path(endpoint: Endpoint) -> tuple[str, list[dict[str, Any]]]:
    parameters = []
    for name, _kind in _PARAM.findall(endpoint.path):
        parameters.append({"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]})
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
        if endpoint.accepted is not None:
            waiting = {"application/json": {"schema": _schema(endpoint.accepted, components)}}
            responses["202"] = {"description": "Waits for approval by someone else", "content": waiting}
        if endpoint.etag:
            responses["304"] = {"description": "Not modified (the If-None-Match ETag still matches)"}
        statuses = {422, 503, *endpoint.errors} | ({401, 403} if auth and endpoint.scope else set())
        if endpoint.body is not None:
            statuses |= {408, 413, 415}
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
                "content": {"application/json": {"schema": _schema(endpoint.body, components, request=True)}},
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
