"""Endpoints for API tokens (admin scope). A token is registered by the hash of its secret: the client that
made the secret keeps it, and it never crosses the network."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..registry import tokens
from ..registry.wire import token_to_json
from . import schemas
from ._http import Endpoint, HttpError, checked, json_response, read_body
from .state import actor, state

__all__ = ["ENDPOINTS"]


async def list_tokens(request: Request) -> Response:
    records = await run_in_threadpool(state(request).registry.store.list_tokens)
    return json_response([token_to_json(record) for record in records])


async def create_token(request: Request) -> Response:
    body = await read_body(request, schemas.TokenIn)
    name, scopes = checked(tokens.check_token_name, body.name), checked(tokens.parse_scopes, body.scopes)
    store = state(request).registry.store
    record = await run_in_threadpool(
        lambda: store.create_token(name, scopes, body.secret_hash, created_by=actor(request, body.created_by))
    )
    return json_response(token_to_json(record), status=201)


async def revoke_token(request: Request) -> Response:
    name = checked(tokens.check_token_name, request.path_params["token"])
    given = request.query_params.get("by") or None
    if given is not None and (len(given) > schemas.ACTOR_MAX_LENGTH or "\x00" in given):
        raise HttpError(
            422, f"by: at most {schemas.ACTOR_MAX_LENGTH} characters, none of them NUL", kind="ValidationError"
        )
    by = actor(request, given)
    record = await run_in_threadpool(lambda: state(request).registry.store.revoke_token(name, revoked_by=by))
    state(request).auth.forget()
    return json_response(token_to_json(record))


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/tokens",
        list_tokens,
        "admin",
        "List tokens (never their secrets)",
        response=schemas.Token,
        response_list=True,
    ),
    Endpoint(
        "POST",
        "/api/v1/tokens",
        create_token,
        "admin",
        "Register a token by the sha256 of its secret",
        body=schemas.TokenIn,
        response=schemas.Token,
        status=201,
        errors=(409,),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/tokens/{token}",
        revoke_token,
        "admin",
        "Revoke a token",
        response=schemas.Token,
        errors=(404, 409),
        query={
            "by": {
                "type": "string",
                "maxLength": schemas.ACTOR_MAX_LENGTH,
                "pattern": schemas.NO_NUL,
                "description": "Who revokes it.",
            }
        },
    ),
]
