"""Bearer tokens: who is calling, and whether their scopes allow the call.

A token is looked up by the sha256 of its secret; the answer is kept for a few seconds so the hot path costs a
hash and a dict lookup. A revoked token stops working at once on the process that revoked it, and within
``ttl`` seconds on the others. Secrets are never logged or echoed.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import AuthError
from ..registry.tokens import allows, hash_secret

if TYPE_CHECKING:
    from ..registry.store import Store, TokenRecord

__all__ = ["Auth", "LoopbackOnly"]

_SCHEME = "bearer "
_CACHE_LIMIT = 10_000


class Auth:
    """Checks requests' tokens against the store.

    Args:
        store: Where tokens are kept.
        enabled: False for ``--no-auth`` (every call allowed).
        ttl: Seconds a token lookup is cached.
    """

    def __init__(self, store: Store, *, enabled: bool = True, ttl: float = 5.0) -> None:
        self.store = store
        self.enabled = enabled
        self.ttl = ttl
        self._known: dict[str, tuple[float, TokenRecord | None]] = {}
        self._lock = threading.Lock()

    async def check(self, request: Request, scope: str | None) -> TokenRecord | None:
        """The caller's token, if its scopes allow ``scope``.

        Raises:
            AuthError: 401 without a valid token, 403 when its scopes do not allow the call.
        """
        if not self.enabled or scope is None:
            return None
        header = request.headers.get("authorization", "")
        if not header[: len(_SCHEME)].lower() == _SCHEME or not header[len(_SCHEME) :].strip():
            raise AuthError("this call needs a token: send 'Authorization: Bearer <token>'")
        token = await self.lookup(header[len(_SCHEME) :].strip())
        if token is None:
            raise AuthError("the token is unknown or revoked")
        return self.allow(token, scope)

    async def lookup(self, secret: str) -> TokenRecord | None:
        """The active token whose secret is ``secret``, or None."""
        digest = hash_secret(secret)
        now = time.monotonic()
        cached = self._known.get(digest)
        if cached is not None and cached[0] > now:
            token = cached[1]
        else:
            token = await run_in_threadpool(self.store.token_by_hash, digest)
            with self._lock:
                if len(self._known) >= _CACHE_LIMIT:
                    self._known.clear()
                self._known[digest] = (now + self.ttl, token)
        return token if token is not None and token.active else None

    @staticmethod
    def allow(token: TokenRecord, scope: str) -> TokenRecord:
        """``token`` if its scopes allow ``scope``; AuthError 403 otherwise."""
        if not allows(token.scopes, scope):
            granted = ", ".join(sorted(token.scopes))
            raise AuthError(f"token {token.name!r} ({granted}) does not allow this: it needs {scope}", status=403)
        return token

    def forget(self) -> None:
        """Drop cached lookups (after a revocation on this process)."""
        with self._lock:
            self._known.clear()


_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _hostname(netloc: str) -> str:
    """``127.0.0.1:8750`` -> ``127.0.0.1``; ``[::1]:8750`` -> ``[::1]``."""
    if netloc.startswith("["):
        return netloc.split("]", 1)[0] + "]"
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class LoopbackOnly:
    """For a server without tokens (``--no-auth``, loopback only): refuse what a web page in the developer's
    browser could send it. A request must name a loopback host (a page on another site that resolves its own
    name to 127.0.0.1, DNS rebinding, names that site), and a write from a page must come from this server's own
    origin (browsers send ``Origin`` with every cross-site write; the CLI and the SDK send none)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
            host = headers.get("host", "")
            origin = headers.get("origin")
            problem = None
            if _hostname(host.lower()) not in _LOOPBACK_NAMES:
                problem = f"this server (no tokens) answers only requests to a loopback address, not to {host!r}"
            elif (
                scope["method"] not in _SAFE_METHODS
                and origin is not None
                and origin.lower()
                not in (
                    f"http://{host.lower()}",
                    f"https://{host.lower()}",
                )
            ):
                problem = f"a write from the page {origin!r} to this server (no tokens) is refused"
            if problem is not None:
                body = json.dumps({"error": problem, "type": "AuthError"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 403,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
