"""The registry over HTTP: a Store backed by a ``promptlane serve`` server.

Reads and writes map onto the server's JSON API (``/api/v1``). Label moves do not: over HTTP they go through
the server's gate (:meth:`HttpStore.move_label_gated`, :meth:`promote`, :meth:`rollback_gated`), which checks the
requirements this project sends against the runs the server holds. Errors come back as the same exceptions a
local store raises, with the server's message; a server that cannot be reached (or answers 5xx) is a
:class:`~promptlane.errors.RegistryUnavailableError`, which the SDK answers from its caches.

Every answer is read whole, and at most ``max_answer`` bytes of it. The application path (resolve, snapshot,
versions) also has a total deadline, ``timeout`` seconds for the whole request (connect, TLS, send, head and
body), so a server dripping its answer cannot hold ``get``; and anything it answers that is not what was asked
(another shape, content that does not match its content hash, another version or label, an error that is not
the API's, a redirect) is an outage too, never a version served.

HTTP goes through the standard library (:mod:`._transport`: kept-alive connections shared by threads, TLS
verified against the system's certificates, proxies from the environment, redirects never followed), so the
SDK installs no HTTP client. Imported only for ``http(s)://`` registries.
"""

from __future__ import annotations

import functools
import http.client
import inspect
import json
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlencode

from .. import errors
from ..errors import AuthError, NotFoundError, RegistryError, RegistryUnavailableError
from ._transport import Transport, basic_auth, deadline, parse_origin
from .gate import GateError, GateReport, GateRequirements
from .runs import CaseResult, RunRecord
from .store import LabelEvent, LabelRequest, LabelState, PromptSummary, PromptVersion, Target, TokenRecord
from .wire import (
    event_from_json,
    gate_report_from_json,
    label_from_json,
    request_from_json,
    run_from_json,
    run_to_json,
    snapshot_from_json,
    summary_from_json,
    target_from_json,
    target_out,
    token_from_json,
    version_from_json,
)

__all__ = ["MAX_ANSWER", "HttpStore", "Resolved", "Snapshot"]

_API = "/api/v1"
_PAGE = 500
_CHUNK = 64 * 1024
MAX_ANSWER = 64 * 1024 * 1024
"""Bytes of one answer the client reads at most (a longer one is an outage, not a memory exhaustion)."""
Snapshot = dict[str, tuple[dict[int, int], list[PromptVersion]]]
"""Every prompt at a label: its target and the versions the target names."""
# Errors the server reports by type name; anything else is a RegistryError with the server's message.
_ERRORS: dict[str, type[errors.PromptlaneError]] = {
    name: getattr(errors, name)
    for name in (
        "ApprovalError",
        "ConfigError",
        "IncludeError",
        "LabelError",
        "NotFoundError",
        "RegistryError",
        "SpecError",
        "TemplateError",
        "TemplateRenderError",
        "TemplateSecurityError",
        "TemplateSyntaxError",
        "TokenError",
        "VariableError",
    )
}


def prompt_path(name: str) -> str:
    """``/api/v1/prompts/support/reply`` (a name's slashes stay: the API separates sub-resources with ``/-/``)."""
    return f"{_API}/prompts/{quote(name, safe='/')}"


@dataclass(frozen=True)
class Resolved:
    """A label as the server resolved it: its target, its heaviest version, and the ETag to revalidate with."""

    target: dict[int, int]
    version: PromptVersion
    etag: str | None


class HttpStore:
    """A :class:`~promptlane.registry.store.Store` on a registry server.

    Args:
        url: The server, ``http://host:8750`` (a path prefix is kept).
        token: An API token (``PROMPTLANE_TOKEN``); None for a server started with ``--no-auth``.
        timeout: Seconds the application path (resolve, snapshot, versions) waits for the server, in all: a
            total deadline for each request, not a bound on each read.
        write_timeout: Seconds other calls (push, runs, label moves) wait for each read or write.
        max_answer: Bytes of one answer read at most; a longer answer is a RegistryUnavailableError.
    """

    remote = True

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 2.0,
        write_timeout: float = 60.0,
        max_answer: int = MAX_ANSWER,
    ):
        self.url = url.rstrip("/")
        origin = parse_origin(self.url)  # ValueError: the registry names the URL
        self.deadline = _seconds(timeout)
        self.write_timeout = _seconds(write_timeout)
        self.max_answer = max_answer
        # identity: an answer is bounded by the bytes that cross the network (no decompression bombs).
        self._headers = {"Accept": "application/json", "Accept-Encoding": "identity", "User-Agent": "promptlane"}
        self._has_token = bool(token)
        if token:
            if not (token.isascii() and token.isprintable()) or " " in token:
                raise errors.ConfigError("the API token holds characters an HTTP header cannot carry", key="token")
            self._headers["Authorization"] = f"Bearer {token}"
        elif origin.userinfo:  # http://user:password@host: for a server behind a proxy that asks for them
            self._headers["Authorization"] = basic_auth(origin.userinfo)
        self._transport = Transport(origin)

    def close(self) -> None:
        """Close the connections."""
        self._transport.close()

    # --- plumbing ------------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        fast: bool = False,
    ) -> _Answer:
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None}, doseq=True)
        sent = {
            **self._headers,
            **({"Content-Type": "application/json"} if body is not None else {}),
            **(headers or {}),
        }
        content = None if body is None else json.dumps(body, default=str).encode()
        try:
            with (
                deadline(self.deadline if fast else None, each=self.deadline if fast else self.write_timeout),
                self._transport.open(method, f"{path}?{query}" if query else path, headers=sent, body=content) as r,
            ):
                answer = _Answer(r.status, r.reason, r.headers, self._read(r))
        except TimeoutError:
            raise RegistryUnavailableError(f"registry server {self.url} did not answer in time") from None
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryUnavailableError(f"registry server {self.url} cannot be reached: {_why(exc)}") from None
        status = answer.status_code
        if status < 300 or status == 304:
            return answer
        if status < 400:
            location = str(answer.headers.get("Location", ""))[:200]
            raise RegistryUnavailableError(
                f"registry server {self.url} answered {status} {answer.reason_phrase}, a redirect to {location!r}: "
                "the client follows no redirect (a token goes only to the server it is for); use the server's own URL"
            )
        raise self._error(answer, fast=fast)

    def _read(self, response: http.client.HTTPResponse) -> bytes:
        """The whole body: at most ``max_answer`` bytes, as they arrive (each read within the deadline)."""
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise RegistryUnavailableError(
                f"registry server {self.url} answered with Content-Encoding {encoding!r}, asked for identity"
            )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_answer:
            raise self._too_long()
        chunks: list[bytes] = []
        size = 0
        while chunk := response.read(_CHUNK):
            size += len(chunk)
            if size > self.max_answer:
                raise self._too_long()
            chunks.append(chunk)
        if response.length:  # http.client leaves a body cut short by a closed connection to its reader
            raise http.client.IncompleteRead(b"".join(chunks), response.length)
        return b"".join(chunks)

    def _too_long(self) -> RegistryUnavailableError:
        return RegistryUnavailableError(
            f"registry server {self.url} answered more than {self.max_answer} bytes, the most a client reads"
        )

    def _error(self, response: _Answer, *, fast: bool = False) -> errors.PromptlaneError:
        try:
            data = response.json()
        except (ValueError, RecursionError):
            data = {}
        message = data.get("error") if isinstance(data, dict) else None
        status = response.status_code
        if not isinstance(message, str) or not message:
            # Not the API's error shape: a proxy, another server, a wrong URL. Say where it came from.
            message = f"registry server {self.url}: {status} {response.reason_phrase} (is this a promptlane server?)"
            if fast and status not in (401, 403):  # the application keeps serving what it has, and says why
                return RegistryUnavailableError(message)
            data = {}
        if status in (401, 403):
            hint = " (no token given: set PROMPTLANE_TOKEN, or pass token=)" if not self._has_token else ""
            return AuthError(f"registry server {self.url}: {message}{hint}", status=status)
        if status >= 500 or status == 429:  # down, overloaded or rate limiting: an outage, not a usage error
            return RegistryUnavailableError(f"registry server {self.url}: {message}")
        if status == 404:
            return NotFoundError(message)
        if status == 409 and data.get("type") == "GateError":
            return GateError.from_message(message, data.get("problems") or [])
        return _ERRORS.get(str(data.get("type")), RegistryError)(message)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs).json()

    def _unchanged(self, answer: _Answer, etag: str | None) -> bool:
        """Whether ``answer`` is a 304 to a request that sent ``etag`` (a 304 to nothing is not an answer)."""
        if answer.status_code == 304:
            if not etag:
                raise ValueError("304 Not Modified to a request without an ETag")
            return True
        if answer.status_code != 200:
            raise ValueError(f"{answer.status_code} {answer.reason_phrase} where 200 was expected")
        return False

    # --- prompts and versions ------------------------------------------------------------------------------

    def list_prompts(self) -> list[PromptSummary]:
        return [summary_from_json(item) for item in self._json("GET", f"{_API}/prompts")]

    def get_version(self, name: str, number: int) -> PromptVersion:
        data = self._json("GET", f"{prompt_path(name)}/-/versions/{number}", fast=True)
        return version_from_json(data, name=name, number=number)

    def latest_number(self, name: str) -> int:
        return int(self._json("GET", prompt_path(name))["latest"])

    def list_versions(self, name: str) -> list[PromptVersion]:
        return [version_from_json(item) for item in self._json("GET", f"{prompt_path(name)}/-/versions")]

    def push_version(
        self, name: str, spec: Mapping[str, Any], content_hash: str, *, message: str | None, author: str | None
    ) -> tuple[PromptVersion, bool]:
        body = {"spec": spec, "content_hash": content_hash, "message": message, "author": author}
        data = self._json("POST", f"{prompt_path(name)}/-/versions", body=body)
        return version_from_json(data["version"]), bool(data["created"])

    def push_batch(
        self, specs: Sequence[tuple[str, Mapping[str, Any]]], *, message: str | None, author: str | None
    ) -> list[tuple[PromptVersion, bool, int]]:
        """Store prompt specs all or nothing, in one request (the server freezes them in one transaction):
        (version, created, the prompt's newest number) for each, in order."""
        body = {
            "versions": [{"name": n, "spec": dict(spec)} for n, spec in specs],
            "message": message,
            "author": author,
        }
        data = self._json("POST", f"{_API}/push", body=body)
        answers = []
        for (name, _), item in zip(specs, data["versions"], strict=True):
            version = version_from_json(item["version"], name=name)
            answers.append((version, bool(item["created"]), int(item["latest"])))
        return answers

    # --- labels --------------------------------------------------------------------------------------------

    def get_label(self, name: str, label: str) -> LabelState:
        return label_from_json(self._json("GET", f"{prompt_path(name)}/-/labels/{quote(label)}", fast=True))

    def list_labels(self, name: str) -> list[LabelState]:
        return [label_from_json(item) for item in self._json("GET", f"{prompt_path(name)}/-/labels")]

    def label_events(self, name: str, label: str | None = None) -> Sequence[LabelEvent]:
        data = self._json("GET", f"{prompt_path(name)}/-/history", params={"label": label})
        return [event_from_json(item) for item in data]

    def move_label(self, name: str, label: str, target: Target, **_: Any) -> LabelEvent:
        raise RegistryError("over HTTP, labels move through the server's gate: use Registry.set_label")

    def rollback_label(self, name: str, label: str, **_: Any) -> LabelEvent:
        raise RegistryError("over HTTP, labels move through the server's gate: use Registry.rollback")

    def move_label_gated(
        self,
        name: str,
        label: str,
        target: Target,
        *,
        kind: str,
        reason: str | None,
        force: bool,
        actor: str | None,
        gated: bool,
        requirements: GateRequirements,
    ) -> LabelEvent | LabelRequest:
        """Point ``label`` at ``target`` through the server's gate (409 -> GateError); a label that requires
        approval answers the pending request."""
        body = {
            "target": target_out(target),
            "kind": kind,
            "reason": reason,
            "force": force,
            "actor": actor,
            "gated": gated,
            "requirements": _requirements(requirements),
        }
        return _moved(self._json("PUT", f"{prompt_path(name)}/-/labels/{quote(label)}", body=body))

    def rollback_gated(
        self,
        name: str,
        label: str,
        *,
        reason: str | None,
        force: bool,
        actor: str | None,
        requirements: GateRequirements,
    ) -> LabelEvent | LabelRequest:
        """Roll ``label`` back through the server's gate."""
        body = {"reason": reason, "force": force, "actor": actor, "requirements": _requirements(requirements)}
        return _moved(self._json("POST", f"{prompt_path(name)}/-/labels/{quote(label)}/rollback", body=body))

    def promote(
        self,
        name: str,
        label: str,
        *,
        version: int | None,
        reason: str | None,
        actor: str | None,
        requirements: GateRequirements,
    ) -> LabelEvent | LabelRequest:
        """Promote ``version`` (or the newest that passes) to ``label`` through the server's gate."""
        body = {"version": version, "reason": reason, "actor": actor, "requirements": _requirements(requirements)}
        return _moved(self._json("POST", f"{prompt_path(name)}/-/labels/{quote(label)}/promote", body=body))

    def label_requests(self, name: str | None) -> list[LabelRequest]:
        """The moves waiting for approval (of one prompt, or all)."""
        path = f"{prompt_path(name)}/-/requests" if name is not None else f"{_API}/requests"
        data = self._json("GET", path)
        if not isinstance(data, list):
            raise ValueError(f"asked for pending moves, got {str(data)[:80]}")
        return [request_from_json(item) for item in data]

    def approve_request(
        self, name: str, label: str, *, request: int | None, reason: str | None, actor: str | None
    ) -> LabelEvent:
        """Approve the move of ``label`` waiting for approval, through the server's gate."""
        body = {"request": request, "reason": reason, "actor": actor}
        return event_from_json(self._json("POST", f"{prompt_path(name)}/-/labels/{quote(label)}/approve", body=body))

    def reject_request(
        self, name: str, label: str, *, request: int | None, reason: str | None, actor: str | None
    ) -> LabelRequest:
        """Reject the move of ``label`` waiting for approval."""
        body = {"request": request, "reason": reason, "actor": actor}
        return request_from_json(self._json("POST", f"{prompt_path(name)}/-/labels/{quote(label)}/reject", body=body))

    def gate_report(self, name: str, *, version: int | None, label: str) -> GateReport:
        """The server's gate verdict on ``version`` (None: the newest) for ``label``, part by part, by the server's
        requirements (its scenario files, else what the newest complete run saw)."""
        params = {"label": label, "version": version}
        return gate_report_from_json(self._json("GET", f"{prompt_path(name)}/-/gate", params=params), name=name)

    # --- the application path ------------------------------------------------------------------------------

    def resolve(self, name: str, label: str, *, etag: str | None = None) -> Resolved | None:
        """Where ``label`` points and its heaviest version; None when ``etag`` still matches (304)."""
        response = self._call(
            "GET",
            f"{prompt_path(name)}/-/resolve",
            params={"label": label},
            headers={"If-None-Match": etag} if etag else None,
            fast=True,
        )
        if self._unchanged(response, etag):
            return None
        data = response.json()
        if not isinstance(data, dict) or data.get("label") != label:
            raise ValueError(f"asked where {name}:{label} points, got {str(data)[:80]}")
        target = target_from_json(data.get("target"))
        version = version_from_json(data.get("version"), name=name)
        if version.number not in target:
            raise ValueError(f"{name}:{label} points at {sorted(target)}, the answer carries v{version.number}")
        return Resolved(target, version, response.headers.get("ETag"))

    def snapshot(self, label: str, *, etag: str | None = None) -> tuple[Snapshot, str | None] | None:
        """Every prompt at ``label`` with the versions it points at, checked (see
        :func:`~promptlane.registry.wire.snapshot_from_json`); None when ``etag`` still matches."""
        response = self._call(
            "GET",
            f"{_API}/snapshot",
            params={"label": label},
            headers={"If-None-Match": etag} if etag else None,
            fast=True,
        )
        if self._unchanged(response, etag):
            return None
        return snapshot_from_json(response.json(), label), response.headers.get("ETag")

    # --- runs ----------------------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> None:
        self._call("POST", f"{_API}/runs", body=run_to_json(record))

    def add_cases(self, run_id: str, cases: Sequence[CaseResult]) -> None:
        if cases:
            self._call("POST", f"{_API}/runs/{quote(run_id)}/cases", body={"cases": [c.to_json() for c in cases]})

    def update_run(self, record: RunRecord) -> None:
        self._call("PUT", f"{_API}/runs/{quote(record.id)}", body=run_to_json(record))

    def heartbeat_run(self, run_id: str) -> None:
        self._call("POST", f"{_API}/runs/{quote(run_id)}/heartbeat")

    def get_run(self, run_id: str) -> RunRecord:
        if not run_id.strip():
            raise NotFoundError("no run id given")
        return run_from_json(self._json("GET", f"{_API}/runs/{quote(run_id.strip())}"))

    def list_runs(self, name: str | None = None, *, version: int | None = None, limit: int = 50) -> list[RunRecord]:
        data = self._json("GET", f"{_API}/runs", params={"prompt": name, "version": version, "limit": limit})
        return [run_from_json(item) for item in data]

    def run_cases(self, run_id: str, *, statuses: Sequence[str] | None = None) -> Iterator[CaseResult]:
        after = 0
        while True:
            params: dict[str, Any] = {"after": after, "limit": _PAGE}
            if statuses:
                params["status"] = list(statuses)
            page = self._json("GET", f"{_API}/runs/{quote(run_id)}/cases", params=params)
            for item in page["cases"]:
                yield CaseResult.from_json(item)
            after = page.get("next")
            if not after:
                return

    # --- tokens --------------------------------------------------------------------------------------------

    def create_token(
        self, name: str, scopes: Collection[str], secret_hash: str, *, created_by: str | None
    ) -> TokenRecord:
        """Register a token by its hash: the secret itself never crosses the network."""
        body = {"name": name, "scopes": sorted(scopes), "secret_hash": secret_hash, "created_by": created_by}
        return token_from_json(self._json("POST", f"{_API}/tokens", body=body))

    def list_tokens(self) -> list[TokenRecord]:
        return [token_from_json(item) for item in self._json("GET", f"{_API}/tokens")]

    def revoke_token(self, name: str, *, revoked_by: str | None) -> TokenRecord:
        return token_from_json(self._json("DELETE", f"{_API}/tokens/{quote(name)}", params={"by": revoked_by}))

    def token_by_hash(self, secret_hash: str) -> TokenRecord | None:
        raise RegistryError("tokens are checked by the server, not looked up over HTTP")


@dataclass(frozen=True)
class _Answer:
    """A server's answer, read whole."""

    status_code: int
    reason_phrase: str
    headers: http.client.HTTPMessage
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def _seconds(timeout: float) -> float | None:
    """A timeout in seconds; None (no bound) for one that is not a positive number."""
    return timeout if math.isfinite(timeout) and timeout > 0 else None


def _why(exc: Exception) -> str:
    """Why a request failed, in words."""
    if isinstance(exc, http.client.IncompleteRead):
        got = len(exc.partial)
        return f"the connection closed {got} bytes into an answer of {got + (exc.expected or 0)}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, ConnectionError):
        return f"the answer is not HTTP/1.1 ({type(exc).__name__}: {str(exc)[:200]})"
    return str(exc) or type(exc).__name__


def _unreadable(store: HttpStore, exc: Exception) -> RegistryUnavailableError:
    return RegistryUnavailableError(
        f"registry server {store.url} answered something that is not promptlane's API "
        f"({type(exc).__name__}: {str(exc)[:200]}): is this a promptlane server?"
    )


def _read_answers(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with an answer that does not parse (not JSON, not UTF-8, missing fields, wrong types) turned
    into RegistryUnavailableError naming the server, as the server being unusable: never a raw traceback."""
    garbage = (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError)

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generator(self: HttpStore, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except garbage as exc:
                raise _unreadable(self, exc) from exc

        return generator

    @functools.wraps(method)
    def wrapper(self: HttpStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except garbage as exc:
            raise _unreadable(self, exc) from exc

    return wrapper


for _name, _method in list(vars(HttpStore).items()):
    if callable(_method) and not _name.startswith("_") and _name not in ("close", "token_by_hash"):
        setattr(HttpStore, _name, _read_answers(_method))


def _requirements(requirements: GateRequirements) -> dict[str, Any]:
    return {
        "scenario_files": [asdict(ref) for ref in requirements.scenario_files],
        "model": requirements.model,
    }


def _moved(data: Any) -> LabelEvent | LabelRequest:
    """A move's answer: the audit event, or (from a label that requires approval) the pending request."""
    return request_from_json(data) if isinstance(data, dict) and "requester" in data else event_from_json(data)
