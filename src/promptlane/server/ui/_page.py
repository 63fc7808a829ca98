"""What every page shares: the session, CSRF, scopes, and rendering templates (autoescaped).

Logging in starts a session (see ``_sessions.py``): the browser holds a random session id in an HttpOnly,
SameSite=Strict cookie, never the API token. Every form and every script request of a logged-in page carries
the CSRF value bound to that session. Before the login (the login form itself) and on a ``--no-auth`` server
there is no session: the CSRF value is then a random one that must equal a second cookie (double submit):
another site can make a browser post a form, but cannot read or set that cookie.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..._unicode import escape_char, hidden_at
from ...errors import AuthError, PromptlaneError
from ...registry.store import TokenRecord, format_target
from ...registry.tokens import allows
from .._http import HttpError, status_for
from ..state import state
from ._public import public_text
from ._sessions import SESSION, resume_session, session_csrf

__all__ = ["CSRF", "SESSION", "Page", "csrf_ok", "new_csrf", "page", "redirect", "render", "with_csrf"]

log = logging.getLogger("promptlane.server")

CSRF = "promptlane_csrf"
"""The double-submit cookie, for forms shown without a session (the login form, ``--no-auth``)."""
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


def _reveal(value: object) -> Markup:
    """Text as a page shows it, with the characters it hides (bidi controls, zero-width and tag characters: see
    :func:`~promptlane._unicode.hidden_at`) shown as marked escapes, so that a reviewer sees what a model reads."""
    text = str(value)
    parts: list[str] = []
    last = 0
    for index in hidden_at(text):
        char = text[index]
        parts += [
            escape(text[last:index]),
            Markup('<span class="hidden-char" title="U+{:04X}, a character that shows as nothing">{}</span>').format(
                ord(char), escape_char(char)
            ),
        ]
        last = index + 1
    parts.append(escape(text[last:]))
    return Markup("").join(parts)


templates.filters["reveal"] = _reveal
templates.filters["target"] = format_target  # v3, or v3 90% / v4 10%
templates.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _short(value: str | None) -> str:
    """A fingerprint part's value as shown: a content hash by its first 12 digits, another value (a model,
    ``missing``) whole, none as ``-``."""
    if value is None:
        return "-"
    return value[:12] if re.fullmatch(r"[0-9a-f]{64}", value) else value


templates.filters["short"] = _short


@pass_context
def _public(context: Context, value: object) -> str:
    """An error message as a page shows it: file paths relative to the project root, no other server path."""
    viewer = context.get("page")
    return public_text(value, viewer.root if isinstance(viewer, Page) else None)


templates.filters["public"] = _public


class Page:
    """The request, who is looking, and what they may do."""

    def __init__(self, request: Request, token: TokenRecord | None, csrf: str) -> None:
        self.request = request
        self.token = token
        self.csrf = csrf
        self.registry = state(request).registry

    @property
    def root(self) -> Path:
        """The project root, which file paths in messages are shown relative to."""
        return self.registry.settings.root

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

    @property
    def identity(self) -> str:
        """Who the viewer is where a move needs a second person (``require_approval``): the token's name, as in
        the API, so a move asked for here cannot be approved with the same token anywhere. Without tokens, every
        browser is the same ``browser``."""
        return self.who if self.token is None else self.token.name


def render(page: Page, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(page=page, **context)
    return HTMLResponse(html, status_code=status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def new_csrf(request: Request) -> str:
    """The double-submit CSRF value of a browser without a session (a new one when it has none yet)."""
    return request.cookies.get(CSRF) or secrets.token_urlsafe(24)


def with_csrf(request: Request, response: Response, csrf: str) -> Response:
    """``response``, setting the double-submit CSRF cookie when the browser does not have it yet."""
    if request.cookies.get(CSRF) != csrf:
        secure = request.url.scheme == "https"
        response.set_cookie(CSRF, csrf, httponly=True, samesite="strict", secure=secure, path="/")
    return response


def csrf_ok(expected: str | None, given: object) -> bool:
    """Whether the CSRF value ``given`` (a form field or header) is ``expected``."""
    return bool(expected and isinstance(given, str) and given and hmac.compare_digest(expected, given))


Handler = Callable[[Page], Awaitable[Response]]


def page(scope: str, *, write: str | None = None) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """A page handler that needs ``scope`` to read and, for POST, ``write`` (default: ``scope``) and a valid
    CSRF value. Without a session the viewer goes to the login page; a scope it lacks is a 403 page."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            server = state(request)
            token = None
            if server.auth.enabled:
                session_id = request.cookies.get(SESSION)
                token = await resume_session(request, session_id) if session_id else None
                if token is None or session_id is None:
                    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    answer = redirect(f"/login?next={quote(here)}")
                    if session_id:
                        answer.delete_cookie(SESSION, path="/")  # ended: logged out, expired or revoked
                    return answer
                csrf = expected = session_csrf(session_id)
            else:
                csrf = new_csrf(request)
                expected = request.cookies.get(CSRF)
            viewer = Page(request, token, csrf)
            needed = (write or scope) if viewer.writing else scope
            try:
                if token is not None:
                    server.auth.allow(token, needed)
                if viewer.writing:
                    form = await request.form()
                    given = request.headers.get("x-csrf-token") or form.get("csrf")
                    if not csrf_ok(expected, given):
                        return render(viewer, "error.html", status=403, message="the form expired: reload the page")
                response = await handler(viewer)
            except AuthError as exc:
                response = render(viewer, "error.html", status=exc.status, message=str(exc))
            except (PromptlaneError, HttpError) as exc:
                response = render(viewer, "error.html", status=status_for(exc), message=str(exc))
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                response = render(viewer, "error.html", status=500, message="internal error (see the server log)")
            return response if token is not None else with_csrf(request, response, csrf)

        endpoint.__name__ = handler.__name__
        return endpoint

    return wrap
