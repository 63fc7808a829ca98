"""The web UI at ``/``: server-rendered pages over the same registry as the API, for people who are not
engineers too. Logging in takes an API token; its scopes apply as in the API. No network at runtime: the
templates, the stylesheet and the one small script are served by the app."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..state import state
from . import browse, editor, evals
from ._page import SESSION, Page, csrf_ok, new_csrf, redirect, render, with_csrf

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
    given = form.get("csrf")
    if not csrf_ok(request, given if isinstance(given, str) else None):
        answer = render(view, "login.html", status=403, next=target, error="the form expired: try again")
        return with_csrf(request, answer, view.csrf)
    secret = str(form.get("token") or "").strip()
    token = await server.auth.lookup(secret) if secret else None
    if token is None:
        return render(view, "login.html", status=401, next=target, error="that token is unknown or revoked")
    response = redirect(target)
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION, secret, httponly=True, samesite="strict", secure=secure, path="/")
    return response


async def logout(request: Request) -> Response:
    form = await request.form()
    given = form.get("csrf")
    response = redirect("/login")
    if csrf_ok(request, given if isinstance(given, str) else None):
        response.delete_cookie(SESSION, path="/")
    return response


def _local(target: str) -> str:
    """``target`` if it is a path on this site (never another site: no open redirect)."""
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


ROUTES: list[BaseRoute] = [
    Route("/", browse.prompts),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route(f"{_P}/-/diff", browse.diff),
    Route(f"{_P}/-/labels", browse.move_label, methods=["POST"]),
    Route(f"{_P}/-/labels/{{label}}/rollback", browse.rollback, methods=["POST"]),
    Route(f"{_P}/-/edit", editor.edit, methods=["GET", "POST"]),
    Route(f"{_P}/-/preview", editor.preview, methods=["POST"]),
    Route(f"{_P}/-/scenarios", evals.scenarios, methods=["GET", "POST"]),
    Route(_P, browse.prompt),
    Route("/runs", evals.runs),
    Route("/runs/compare", evals.compare),
    Route("/runs/{run_id}/progress", evals.progress),
    Route("/runs/{run_id}", evals.run_page),
    Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
]
