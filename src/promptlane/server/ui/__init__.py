"""The web UI at ``/``: server-rendered pages over the same registry as the API, for people who are not
engineers too. Logging in takes an API token and starts a session; the token's scopes apply as in the API. No
network at runtime: the templates, the stylesheet and the one small script are served by the app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..state import state
from . import browse, editor, evals
from ._headers import PageHeaders
from ._page import CSRF, SESSION, Page, csrf_ok, new_csrf, redirect, render, with_csrf
from ._sessions import end_session, policy, session_csrf, start_session

__all__ = ["ROUTES"]

_P = "/prompts/{name:path}"


async def login(request: Request) -> Response:
    server = state(request)
    if not server.auth.enabled:
        return redirect("/")
    view = Page(request, None, new_csrf(request))
    if not view.writing:
        target = _local(request.query_params.get("next") or "/")
        return with_csrf(request, render(view, "login.html", next=target), view.csrf)
    form = await request.form()
    target = _local(str(form.get("next") or "/"))
    if not csrf_ok(request.cookies.get(CSRF), form.get("csrf")):
        answer = render(view, "login.html", status=403, next=target, error="the form expired: try again")
        return with_csrf(request, answer, view.csrf)
    secret = str(form.get("token") or "").strip()
    token = await server.auth.lookup(secret) if secret else None
    if token is None:
        return render(view, "login.html", status=401, next=target, error="that token is unknown or revoked")
    if request.cookies.get(SESSION):  # logging in again: the session this browser had ends
        await end_session(request, request.cookies[SESSION])
    session_id = await start_session(request, token)
    response = redirect(target)
    secure = request.url.scheme == "https"
    max_age = int(policy(request).lifetime.total_seconds())
    response.set_cookie(SESSION, session_id, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/")
    response.delete_cookie("promptlane_token", path="/")  # the raw token an older version kept in the browser
    return response


async def logout(request: Request) -> Response:
    form = await request.form()
    response = redirect("/login")
    session_id = request.cookies.get(SESSION)
    if session_id and csrf_ok(session_csrf(session_id), form.get("csrf")):
        await end_session(request, session_id)  # the cookie's value stops working, wherever a copy of it is
        response.delete_cookie(SESSION, path="/")
    return response


def _local(target: str) -> str:
    """``target`` if it is a path on this site (never another site: no open redirect)."""
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _page(path: str, endpoint: Callable[[Request], Awaitable[Response]], methods: list[str] | None = None) -> Route:
    """A route of the UI: its responses carry the page headers (framing, sniffing, CSP, no caching)."""
    return Route(path, endpoint, methods=methods or ["GET"], middleware=[Middleware(PageHeaders)])


ROUTES: list[BaseRoute] = [
    _page("/", browse.prompts),
    _page("/login", login, ["GET", "POST"]),
    _page("/logout", logout, ["POST"]),
    _page(f"{_P}/-/diff", browse.diff),
    _page(f"{_P}/-/labels", browse.move_label, ["POST"]),
    _page(f"{_P}/-/labels/{{label}}/rollback", browse.rollback, ["POST"]),
    _page(f"{_P}/-/labels/{{label}}/approve", browse.approve, ["POST"]),
    _page(f"{_P}/-/labels/{{label}}/reject", browse.reject, ["POST"]),
    _page(f"{_P}/-/edit", editor.edit, ["GET", "POST"]),
    _page(f"{_P}/-/preview", editor.preview, ["POST"]),
    _page(f"{_P}/-/scenarios", evals.scenarios, ["GET", "POST"]),
    _page(_P, browse.prompt),
    _page("/runs", evals.runs),
    _page("/runs/compare", evals.compare),
    _page("/runs/{run_id}/progress", evals.progress),
    _page("/runs/{run_id}", evals.run_page),
    Mount(
        "/static",
        StaticFiles(directory=Path(__file__).parent / "static"),
        name="static",
        middleware=[Middleware(PageHeaders, cache="no-cache")],
    ),
]
