"""What every page shares: the login cookie, CSRF, scopes, and rendering templates (autoescaped).

The token a person logs in with is kept in an HttpOnly, SameSite=Strict cookie, so page scripts cannot read it
and other sites cannot send it. Every form and every script request carries a CSRF value that must equal a
second cookie (double submit): another site can make a browser post a form, but cannot read or set that cookie.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ...errors import AuthError, PromptlaneError
from ...registry.store import TokenRecord, format_target
from ...registry.tokens import allows
from .._http import HttpError, status_for
from ..state import state

__all__ = ["SESSION", "Page", "csrf_ok", "new_csrf", "page", "redirect", "render", "with_csrf"]

log = logging.getLogger("promptlane.server")

SESSION = "promptlane_token"
CSRF = "promptlane_csrf"
_FOLDER = Path(__file__).parent

templates = Environment(
    loader=FileSystemLoader(_FOLDER / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["q"] = lambda value: quote(str(value), safe="/")
templates.filters["show"] = lambda value: (
    value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
)
templates.filters["target"] = format_target  # v3, or v3 90% / v4 10%
templates.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M") if value else "-"


class Page:
    """The request, who is looking, and what they may do."""

    def __init__(self, request: Request, token: TokenRecord | None, csrf: str) -> None:
        self.request = request
        self.token = token
        self.csrf = csrf
        self.registry = state(request).registry

    @property
    def writing(self) -> bool:
        """Whether the request may change something: every method but GET and HEAD (which Starlette answers
        for any GET route) needs the write scope and the CSRF value."""
        return self.request.method not in ("GET", "HEAD")

    def may(self, scope: str) -> bool:
        """Whether the viewer's token allows ``scope`` (everything, without auth)."""
        return self.token is None or allows(self.token.scopes, scope)

    @property
    def who(self) -> str:
        """The actor recorded for a change made from the browser."""
        return "browser" if self.token is None else f"browser (token {self.token.name})"


def render(page: Page, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(page=page, **context)
    return HTMLResponse(html, status_code=status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def new_csrf(request: Request) -> str:
    """The session's CSRF value (a new one when the browser has none yet)."""
    return request.cookies.get(CSRF) or secrets.token_urlsafe(24)


def with_csrf(request: Request, response: Response, csrf: str) -> Response:
    """``response``, setting the CSRF cookie when the browser does not have it yet."""
    if request.cookies.get(CSRF) != csrf:
        secure = request.url.scheme == "https"
        response.set_cookie(CSRF, csrf, httponly=True, samesite="strict", secure=secure, path="/")
    return response


def csrf_ok(request: Request, given: str | None) -> bool:
    expected = request.cookies.get(CSRF)
    return bool(expected and given and hmac.compare_digest(expected, given))


Handler = Callable[[Page], Awaitable[Response]]


def page(scope: str, *, write: str | None = None) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """A page handler that needs ``scope`` to read and, for POST, ``write`` (default: ``scope``) and a valid
    CSRF value. Without a login the viewer goes to the login page; a scope it lacks is a 403 page."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            server = state(request)
            csrf = new_csrf(request)
            token = None
            if server.auth.enabled:
                secret = request.cookies.get(SESSION)
                token = await server.auth.lookup(secret) if secret else None
                if token is None:
                    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return redirect(f"/login?next={quote(here)}")
            viewer = Page(request, token, csrf)
            needed = (write or scope) if viewer.writing else scope
            try:
                if token is not None:
                    server.auth.allow(token, needed)
                if viewer.writing:
                    form = await request.form()
                    given = request.headers.get("x-csrf-token") or form.get("csrf")
                    if not csrf_ok(request, given if isinstance(given, str) else None):
                        return render(viewer, "error.html", status=403, message="the form expired: reload the page")
                response = await handler(viewer)
            except AuthError as exc:
                response = render(viewer, "error.html", status=exc.status, message=str(exc))
            except (PromptlaneError, HttpError) as exc:
                response = render(viewer, "error.html", status=status_for(exc), message=str(exc))
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                response = render(viewer, "error.html", status=500, message="internal error (see the server log)")
            return with_csrf(request, response, csrf)

        endpoint.__name__ = handler.__name__
        return endpoint

    return wrap
