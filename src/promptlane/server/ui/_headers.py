"""The headers every web UI response carries: no framing by other sites (clickjacking), no content sniffing,
a content security policy that lets a page load only this server's own stylesheet and script, and pages kept
out of caches (they show what a token may see)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PAGE_HEADERS", "PageHeaders"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
"""Header -> value, on every page (and, with ``cache-control: no-cache`` instead, on the static files)."""


class PageHeaders:
    """ASGI middleware setting :data:`PAGE_HEADERS` on every response of ``app`` (replacing any of the same
    name). ``cache`` is the ``cache-control`` value: ``no-store`` for pages, ``no-cache`` for static files,
    which may be kept but are checked again (their ETag) before use."""

    def __init__(self, app: ASGIApp, *, cache: str = "no-store") -> None:
        self.app = app
        headers = {**PAGE_HEADERS, "cache-control": cache}
        self._raw = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()]
        self._names = {key for key, _ in self._raw}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self._names]
                message = {**message, "headers": kept + self._raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)
