"""The registry server: an ASGI app (Starlette) exposing a registry as JSON under ``/api/v1``.

Processes are stateless: any number can serve one database. Every endpoint checks the caller's token scope
first; errors are JSON (``{"error": ..., "type": ...}``) with the status the error calls for, never a
traceback; the OpenAPI document is at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from .. import __version__
from ..errors import PromptlaneError
from ..registry import Registry
from . import gate, prompts, runs, tokens
from ._http import Endpoint, HttpError, error_response, json_response
from .auth import Auth, LoopbackOnly
from .cache import ServerCache
from .limits import BodyLimit
from .openapi import openapi_document
from .state import ServerState, state

__all__ = ["ENDPOINTS", "create_app"]

log = logging.getLogger("promptlane.server")

# gate's route first: a prompt's own route (`/prompts/{name}`, any path) would take its path too.
ENDPOINTS: Sequence[Endpoint] = [*gate.ENDPOINTS, *prompts.ENDPOINTS, *runs.ENDPOINTS, *tokens.ENDPOINTS]


def _guarded(endpoint: Endpoint) -> Any:
    """The handler behind the token check, with every error answered as JSON. A query parameter the operation
    does not take is refused (422), as the document states: a misspelt filter must not answer as if unfiltered."""
    handler, scope, known = endpoint.handler, endpoint.scope, frozenset(endpoint.query)

    async def guarded(request: Request) -> Response:
        try:
            request.state.token = await state(request).auth.check(request, scope)
            unknown = sorted(set(request.query_params) - known)
            if unknown:
                takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
                raise HttpError(422, f"unknown query parameter {unknown[0][:40]!r}: {takes}", kind="ValidationError")
            return await handler(request)
        except (PromptlaneError, HttpError) as exc:
            return error_response(exc)
        except Exception:
            # A bug: logged here with its traceback (never the request's headers), a plain 500 for the client.
            log.exception("%s %s failed", request.method, request.url.path)
            return json_response({"error": "internal error (see the server log)", "type": "InternalError"}, status=500)

    guarded.__name__ = handler.__name__
    return guarded


def _route_path(path: str) -> str:
    return path.replace("{name}", "{name:path}")


def _routes(endpoints: Sequence[Endpoint]) -> list[Route]:
    """One route per path, answering each of its methods, so that a 405 lists them all in ``Allow``."""
    by_path: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        by_path.setdefault(endpoint.path, {})[endpoint.method] = _guarded(endpoint)
    routes = []
    for path, handlers in by_path.items():

        async def dispatch(request: Request, handlers: dict[str, Any] = handlers) -> Response:
            method = "GET" if request.method == "HEAD" else request.method  # Starlette adds HEAD to a GET
            return await handlers[method](request)

        name = "_".join(handler.__name__ for handler in handlers.values())
        routes.append(Route(_route_path(path), dispatch, methods=list(handlers), name=name))
    return routes


def create_app(
    registry: Registry,
    *,
    auth: bool = True,
    cache_ttl: float = 1.0,
    token_ttl: float = 5.0,
    ui: bool = True,
    max_body_bytes: int | None = None,
) -> Starlette:
    """The server for ``registry``.

    Args:
        registry: A local registry (SQLite or PostgreSQL) to serve.
        auth: Check tokens (False: every call allowed; ``promptlane serve`` allows it on loopback only).
        cache_ttl: Seconds a label's resolution is kept in memory; moves made through another server process
            are served within this time (moves through this process at once).
        token_ttl: Seconds a token lookup is kept; a revocation through another process applies within it.
        ui: Serve the web UI at ``/`` (the API stays under ``/api/v1``).
        max_body_bytes: Largest request body (default: the ``server_max_body_bytes`` setting).
    """
    if registry.remote is not None:
        raise PromptlaneError("a server serves a database (sqlite:// or postgresql://), not another server")
    server = ServerState(
        registry=registry,
        cache=ServerCache(registry, ttl=cache_ttl),
        auth=Auth(registry.store, enabled=auth, ttl=token_ttl),
    )
    document = openapi_document(ENDPOINTS, auth=auth)

    async def openapi(request: Request) -> Response:
        return json_response(document)

    async def health(request: Request) -> Response:
        return json_response({"status": "ok", "version": __version__})

    routes = _routes(ENDPOINTS)
    routes += [
        Route("/api/v1/openapi.json", openapi, methods=["GET"]),
        Route("/api/v1/health", health, methods=["GET"]),
    ]
    if ui:
        from .ui import ROUTES

        routes += ROUTES

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        message = "method not allowed" if status == 405 else f"no such endpoint: {request.url.path}"
        headers = getattr(exc, "headers", None)  # a 405's Allow
        if ui and not request.url.path.startswith("/api/"):  # a person's browser
            from .ui._headers import PAGE_HEADERS

            page = f"<!doctype html><title>{status}</title><p>{html.escape(message)}</p><p><a href='/'>promptlane</a>"
            return HTMLResponse(page, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
        return json_response({"error": message, "type": "HttpError"}, status=status, headers=headers)

    limit = registry.settings.server_max_body_bytes if max_body_bytes is None else max_body_bytes
    middleware = [Middleware(BodyLimit, max_bytes=limit)]
    if not auth:
        middleware.append(Middleware(LoopbackOnly))
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found}, middleware=middleware)
    app.state.promptlane = server
    return app
