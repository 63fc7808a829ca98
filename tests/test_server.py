"""The registry server (``promptlane.server``) through Starlette's TestClient, and ``promptlane serve``.

Grouped by the contract they check: who may call what (401/403), the error statuses (409, 422, 404, 405),
caching (ETag/304) and prompt names with ``/``, pushing, the gate, runs, tokens, secrets kept out of logs,
the ``serve`` command's refusals, and a schemathesis run of every operation against the OpenAPI document.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import schemathesis
import uvicorn
from click.testing import CliRunner, Result
from dirty_equals import IsInt, IsStr
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from starlette.testclient import TestClient

from _live import served_registry  # tests/ is on sys.path (rootdir conftest)
from promptlane import __version__
from promptlane.cli import app as cli
from promptlane.errors import SpecError
from promptlane.registry import Registry
from promptlane.registry.tokens import SCOPES, hash_secret, new_secret
from promptlane.server import create_app
from promptlane.server.app import ENDPOINTS
from promptlane.server.limits import GuardedH11
from promptlane.server.openapi import openapi_document
from promptlane.spec import check_prompt_name

API = "/api/v1"
REPLY = "support/reply"
SPEC_V1 = {"template": "Hello {{ name }}", "model": "test"}
SPEC_V2 = {"template": "Hi {{ name }}", "model": "test"}
SCENARIO_FILE = {"path": "evals/reply.yaml", "sha256": "5" * 64}
REQUIREMENTS = {"scenario_files": [SCENARIO_FILE]}
NO_RUN = "0" * 32
"""A run id nothing has."""
WHEN = IsStr(regex=r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
BEYOND_SQLITE = 2**63
"""The first integer SQLite cannot bind."""

GRANTS = {
    "read": {"read"},
    "write": {"write", "read"},
    "promote": {"promote", "read"},
    "admin": {"read", "write", "promote", "admin"},
}
"""What a token of each scope may do (the issue's contract: admin everything, write and promote also read)."""


@dataclass(kw_only=True)
class Api:
    """``create_app(registry)`` behind a TestClient, and the secret of one token per scope."""

    client: TestClient
    registry: Registry
    secrets: dict[str, str]

    def call(
        self, method: str, path: str, *, scope: str | None = "admin", headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        """``method API+path`` with the token of ``scope`` (None: no token, only ``headers``)."""
        sent = dict(headers or {})
        if scope is not None:
            sent["Authorization"] = f"Bearer {self.secrets[scope]}"
        return self.client.request(method, API + path, headers=sent, **kw)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Registry, dict[str, str]]]:
    """A SQLite registry with `production` protected and one token per scope: (registry, scope -> secret)."""
    registry, secrets = served_registry(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}")
    yield registry, secrets
    registry.close()


@pytest.fixture
def serve(served: tuple[Registry, dict[str, str]]) -> Callable[..., Api]:
    """Serve the registry with ``create_app`` options (``token_ttl=0``, ``auth=False``...)."""

    def make(**options: Any) -> Api:
        registry, secrets = served
        # As `promptlane serve` on loopback is reached (a server without tokens answers nothing else).
        client = TestClient(create_app(registry, **options), base_url="http://127.0.0.1:8750")
        return Api(client=client, registry=registry, secrets=secrets)

    return make


@pytest.fixture
def api(serve: Callable[..., Api]) -> Api:
    """The server as ``promptlane serve`` runs it (default caches)."""
    return serve()


@pytest.fixture
def reply(api: Api) -> Api:
    """support/reply at v1 and v2, `staging` at v1; `production` (protected) unset."""
    for spec in (SPEC_V1, SPEC_V2):
        api.registry.push_spec(REPLY, spec, author="tests")
    api.registry.set_label(REPLY, "staging", 1)
    return api


def record_run(
    api: Api,
    version: int,
    *,
    prompt: str = REPLY,
    status: str = "passed",
    sha256: str = SCENARIO_FILE["sha256"],
    model: str = "test",
) -> str:
    """Record a finished run of prompt@version as ``promptlane eval`` does (POST, then PUT); its id."""
    run_id = uuid.uuid4().hex
    passed = 2 if status == "passed" else 0
    evaluated = api.registry.version(prompt, version).content_hash
    body = {
        "id": run_id,
        "prompt": prompt,
        "version": version,
        "model": model,
        "started_at": datetime.now(timezone.utc).isoformat(),  # the gate reports on the newest run
        "scenario_files": [{"path": SCENARIO_FILE["path"], "sha256": sha256}, {"path": "version", "sha256": evaluated}],
        "scenarios": [
            {"name": "greets", "file": "evals/reply.yaml", "cases": 2, "passed": passed, "failed": 2 - passed}
        ],
    }
    assert api.call("POST", "/runs", json=body, scope="write").status_code == 201
    cases = [
        {
            "scenario": "greets",
            "case": f"greets-{n}",
            "file": "evals/reply.yaml",
            "status": "passed" if n < passed else "failed",
        }
        for n in range(2)
    ]
    assert api.call("POST", f"/runs/{run_id}/cases", json={"cases": cases}, scope="write").status_code == 201
    finished = {**body, "status": status, "finished_at": datetime.now(timezone.utc).isoformat()}
    assert api.call("PUT", f"/runs/{run_id}", json=finished, scope="write").status_code == 200
    return run_id


def error(response: httpx.Response) -> tuple[int, str, str]:
    """(status, type, message) of a JSON error answer."""
    assert response.headers["content-type"] == "application/json", response.text
    body = response.json()
    return response.status_code, body["type"], body["error"]


# --- who may call what: 401 and 403 ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    """The endpoint's path as declared in ``ENDPOINTS``."""
    path: str
    """A concrete path under /api/v1."""
    scope: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


_P = "/api/v1/prompts/{name}"
ROUTES = [
    Route("POST", "/api/v1/push", "/push", "write"),
    Route("GET", "/api/v1/prompts", "/prompts", "read"),
    Route("GET", _P, "/prompts/support/reply", "read"),
    Route("GET", f"{_P}/-/versions", "/prompts/support/reply/-/versions", "read"),
    Route("POST", f"{_P}/-/versions", "/prompts/support/reply/-/versions", "write"),
    Route("GET", f"{_P}/-/versions/{{number:int}}", "/prompts/support/reply/-/versions/1", "read"),
    Route("GET", f"{_P}/-/resolve", "/prompts/support/reply/-/resolve?label=staging", "read"),
    Route("GET", f"{_P}/-/labels", "/prompts/support/reply/-/labels", "read"),
    Route("GET", f"{_P}/-/labels/{{label}}", "/prompts/support/reply/-/labels/staging", "read"),
    Route("PUT", f"{_P}/-/labels/{{label}}", "/prompts/support/reply/-/labels/staging", "promote"),
    Route("POST", f"{_P}/-/labels/{{label}}/rollback", "/prompts/support/reply/-/labels/staging/rollback", "promote"),
    Route("POST", f"{_P}/-/labels/{{label}}/promote", "/prompts/support/reply/-/labels/staging/promote", "promote"),
    Route("POST", f"{_P}/-/labels/{{label}}/approve", "/prompts/support/reply/-/labels/staging/approve", "promote"),
    Route("POST", f"{_P}/-/labels/{{label}}/reject", "/prompts/support/reply/-/labels/staging/reject", "promote"),
    Route("GET", f"{_P}/-/requests", "/prompts/support/reply/-/requests", "read"),
    Route("GET", "/api/v1/requests", "/requests", "read"),
    Route("GET", f"{_P}/-/gate", "/prompts/support/reply/-/gate", "read"),
    Route("GET", f"{_P}/-/history", "/prompts/support/reply/-/history", "read"),
    Route("GET", "/api/v1/snapshot", "/snapshot?label=staging", "read"),
    Route("GET", "/api/v1/runs", "/runs", "read"),
    Route("POST", "/api/v1/runs", "/runs", "write"),
    Route("GET", "/api/v1/runs/{run_id}", f"/runs/{NO_RUN}", "read"),
    Route("PUT", "/api/v1/runs/{run_id}", f"/runs/{NO_RUN}", "write"),
    Route("GET", "/api/v1/runs/{run_id}/cases", f"/runs/{NO_RUN}/cases", "read"),
    Route("POST", "/api/v1/runs/{run_id}/cases", f"/runs/{NO_RUN}/cases", "write"),
    Route("POST", "/api/v1/runs/{run_id}/heartbeat", f"/runs/{NO_RUN}/heartbeat", "write"),
    Route("GET", "/api/v1/tokens", "/tokens", "admin"),
    Route("POST", "/api/v1/tokens", "/tokens", "admin"),
    Route("DELETE", "/api/v1/tokens/{token}", "/tokens/nobody", "admin"),
]


def test_the_route_table_is_every_endpoint_with_its_scope() -> None:
    assert {(r.method, r.template): r.scope for r in ROUTES} == {(e.method, e.path): e.scope for e in ENDPOINTS}


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_every_route_needs_a_token(api: Api, route: Route) -> None:
    response = api.call(route.method, route.path, scope=None)
    assert error(response) == (401, "AuthError", "this call needs a token: send 'Authorization: Bearer <token>'")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_every_route_allows_exactly_the_scopes_that_grant_it(api: Api, route: Route) -> None:
    # No body and no data: an allowed call stops at validation (422) or a lookup (404/409), changing nothing.
    statuses = {scope: api.call(route.method, route.path, scope=scope).status_code for scope in SCOPES}
    refused = {scope for scope, status in statuses.items() if status == 403}
    assert refused == {scope for scope in SCOPES if route.scope not in GRANTS[scope]}
    assert 401 not in statuses.values()


@pytest.mark.parametrize(
    ("scope", "method", "path", "needs"),
    [
        ("read", "POST", "/prompts/support/reply/-/versions", "write"),
        ("promote", "POST", "/prompts/support/reply/-/versions", "write"),
        ("read", "PUT", "/prompts/support/reply/-/labels/staging", "promote"),
        ("write", "PUT", "/prompts/support/reply/-/labels/staging", "promote"),
        ("write", "POST", "/prompts/support/reply/-/labels/staging/promote", "promote"),
        ("promote", "GET", "/tokens", "admin"),
        ("write", "DELETE", "/tokens/read-token", "admin"),
    ],
)
def test_a_403_names_the_token_and_the_scope_it_lacks(
    reply: Api, scope: str, method: str, path: str, needs: str
) -> None:
    message = f"token '{scope}-token' ({scope}) does not allow this: it needs {needs}"
    assert error(reply.call(method, path, scope=scope, json={})) == (403, "AuthError", message)


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer    ", "Basic dXNlcjpwYXNz", "Token {secret}", "{secret}", "Bearer: {secret}"],
)
def test_a_malformed_authorization_header_is_401(api: Api, header: str) -> None:
    sent = {"Authorization": header.format(secret=api.secrets["admin"])}
    status, kind, message = error(api.call("GET", "/prompts", scope=None, headers=sent))
    assert (status, kind) == (401, "AuthError")
    assert api.secrets["admin"] not in message


def test_the_scheme_is_case_insensitive(api: Api) -> None:
    sent = {"Authorization": f"bearer {api.secrets['read']}"}
    assert api.call("GET", "/prompts", scope=None, headers=sent).status_code == 200


def test_an_unknown_token_is_401(api: Api) -> None:
    secret = new_secret()
    response = api.call("GET", "/prompts", scope=None, headers={"Authorization": f"Bearer {secret}"})
    assert error(response) == (401, "AuthError", "the token is unknown or revoked")
    assert secret not in response.text


def test_a_revoked_token_is_401(serve: Callable[..., Api]) -> None:
    api = serve(token_ttl=0)  # every call looks the token up
    assert api.call("GET", "/prompts", scope="read").status_code == 200
    api.registry.store.revoke_token("read-token", revoked_by="ops")
    assert error(api.call("GET", "/prompts", scope="read")) == (401, "AuthError", "the token is unknown or revoked")


def test_a_revocation_by_another_process_applies_once_the_lookup_expires(serve: Callable[..., Api]) -> None:
    api = serve(token_ttl=60)
    assert api.call("GET", "/prompts", scope="read").status_code == 200
    api.registry.store.revoke_token("read-token", revoked_by="ops")  # as another server process would
    assert api.call("GET", "/prompts", scope="read").status_code == 200  # the lookup is kept token_ttl seconds
    api.client.app.state.promptlane.auth.forget()  # type: ignore[attr-defined]
    assert api.call("GET", "/prompts", scope="read").status_code == 401


def test_a_revocation_through_this_server_applies_at_once(serve: Callable[..., Api]) -> None:
    api = serve(token_ttl=60)
    assert api.call("GET", "/prompts", scope="read").status_code == 200
    assert api.call("DELETE", "/tokens/read-token").status_code == 200
    assert api.call("GET", "/prompts", scope="read").status_code == 401


def test_health_and_the_openapi_document_need_no_token(api: Api) -> None:
    assert api.call("GET", "/health", scope=None).json() == {"status": "ok", "version": __version__}
    document = api.call("GET", "/openapi.json", scope=None).json()
    operations = {
        (method.upper(), path): operation["security"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert len(operations) == len(ENDPOINTS)
    assert operations[("PUT", "/api/v1/prompts/{name}/-/labels/{label}")] == [{"token": ["promote"]}]
    assert document["components"]["securitySchemes"] == {"token": {"type": "http", "scheme": "bearer"}}


def test_without_auth_every_call_is_allowed_and_recorded_by_the_given_name(serve: Callable[..., Api]) -> None:
    api = serve(auth=False)
    pushed = api.call("POST", "/prompts/support/reply/-/versions", scope=None, json={"spec": SPEC_V1})
    assert (pushed.status_code, pushed.json()["version"]["author"]) == (201, "anonymous")
    forced = api.call(
        "PUT",
        "/prompts/support/reply/-/labels/production",
        scope=None,
        json={"target": {"1": 100}, "force": True, "reason": "incident 7", "actor": "ana"},
    )
    assert (forced.status_code, forced.json()["gate"], forced.json()["actor"]) == (200, "forced", "ana")
    assert "security" not in api.call("GET", "/openapi.json", scope=None).json()["paths"]["/api/v1/prompts"]["get"]


# --- 409: refused by the gate or by a rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requirements", "problem"),
    [
        (None, "no scenario files target support/reply: a gated label needs scenarios"),
        (REQUIREMENTS, "no eval run of support/reply@1: promptlane eval --prompt support/reply --version 1"),
    ],
)
def test_a_protected_label_refuses_a_version_without_a_passing_run(
    reply: Api, requirements: dict[str, Any] | None, problem: str
) -> None:
    body = {"target": {"1": 100}, "requirements": requirements}
    response = reply.call("PUT", "/prompts/support/reply/-/labels/production", scope="promote", json=body)

    assert response.status_code == 409
    assert response.json() == {
        "error": "production is protected: support/reply@1 needs a passing eval run first\n"
        f"  - {problem}\n"
        "  (override with --force --reason TEXT; the audit log records it)",
        "type": "GateError",
        "problems": [problem],
    }
    assert reply.call("GET", "/prompts/support/reply/-/labels/production").status_code == 404  # nothing moved
    assert reply.call("GET", "/prompts/support/reply/-/history?label=production").json() == []


def test_a_failing_or_stale_run_does_not_open_the_gate(reply: Api) -> None:
    body = {"target": {"1": 100}, "requirements": REQUIREMENTS}
    stale = record_run(reply, 1, sha256="6" * 64)  # the scenario file changed since this run
    refused = reply.call("PUT", "/prompts/support/reply/-/labels/production", scope="promote", json=body)
    assert refused.status_code == 409
    assert refused.json()["problems"] == [f"evals/reply.yaml changed since run {stale[:8]}"]

    failing = record_run(reply, 1, status="failed")
    refused = reply.call("PUT", "/prompts/support/reply/-/labels/production", scope="promote", json=body)
    assert refused.json()["problems"] == [f"run {failing[:12]} failed: greets (0/2 passed, needs 100%)"]

    passing = record_run(reply, 1)
    moved = reply.call("PUT", "/prompts/support/reply/-/labels/production", scope="promote", json=body)
    assert (moved.status_code, moved.json()["evidence"]) == (200, passing)  # the newest complete run decides


def test_a_server_without_the_project_holds_current_what_the_newest_run_saw(reply: Api) -> None:
    # The server has no scenario files: a client that sends none, or older ones, cannot open the gate with a run on
    # older inputs once a newer run has seen newer ones.
    production = f"{_LABELS}/production"
    assert error(reply.call("PUT", production, scope="promote", json={"target": {"1": 100}}))[2].endswith(
        "no scenario files target support/reply: a gated label needs scenarios\n  "
        "(override with --force --reason TEXT; the audit log records it)"
    )
    old = record_run(reply, 1, sha256="4" * 64)
    newer = record_run(reply, 2)
    for requirements in ({}, {"requirements": {"scenario_files": [{**SCENARIO_FILE, "sha256": "4" * 64}]}}):
        refused = reply.call("PUT", production, scope="promote", json={"target": {"1": 100}, **requirements})
        assert refused.status_code == 409
        assert f"evals/reply.yaml changed since run {old[:8]}" in refused.json()["problems"]
    moved = reply.call("PUT", production, scope="promote", json={"target": {"2": 100}})
    assert (moved.status_code, moved.json()["evidence"]) == (200, newer)


def test_an_unknown_query_parameter_is_refused(reply: Api) -> None:
    # A misspelt filter must not answer as if unfiltered (`?promt=x` listing every run), and the document says so.
    status, kind, message = error(reply.call("GET", "/runs?promt=support/reply", scope="read"))
    assert (status, kind) == (422, "ValidationError")
    assert message == "unknown query parameter 'promt': it takes limit, prompt, version"
    assert error(reply.call("GET", "/requests?x=1", scope="read"))[2] == "unknown query parameter 'x': it takes prompt"
    assert reply.call("GET", "/runs?prompt=support/reply", scope="read").status_code == 200


def test_only_runs_recorded_by_trusted_runners_open_the_gate(reply: Api) -> None:
    # gate_trusted_runners names the CI token: a run any other write token recorded is no evidence either way,
    # whatever name its client gives, and no client can say which token recorded it.
    reply.registry.settings = dataclasses.replace(reply.registry.settings, gate_trusted_runners=("ci-token",))
    run_id = record_run(reply, 1)
    recorded = reply.call("GET", f"/runs/{run_id}", scope="read").json()
    assert (recorded["runner"], recorded["created_by"]) == ("write-token", None)
    body = {"target": {"1": 100}, "requirements": REQUIREMENTS}
    refused = reply.call("PUT", f"{_LABELS}/production", scope="promote", json=body)
    assert refused.status_code == 409
    assert refused.json()["problems"] == [
        "no run of support/reply@1 by a trusted runner (gate_trusted_runners: ci-token); "
        "its runs were made by 'write-token'"
    ]
    forged = reply.call("PUT", f"/runs/{run_id}", scope="write", json={**recorded, "runner": "ci-token"})
    assert forged.status_code == 409  # a finished run does not change (and the runner is the server's word)
    assert reply.call("GET", f"/runs/{run_id}", scope="read").json()["runner"] == "write-token"
    assert reply.call("PUT", f"{_LABELS}/production", scope="promote", json=body).status_code == 409

    reply.registry.settings = dataclasses.replace(reply.registry.settings, gate_trusted_runners=("write-token",))
    moved = reply.call("PUT", f"{_LABELS}/production", scope="promote", json=body)
    assert (moved.status_code, moved.json()["evidence"]) == (200, run_id)


_LABELS = "/prompts/support/reply/-/labels"


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        (
            "PUT",
            f"{_LABELS}/production",
            {"target": {"1": 100}, "force": True},
            "a forced move needs a reason (--reason)",
        ),
        ("POST", f"{_LABELS}/staging/rollback", {}, "nothing to roll back to: the label has no earlier target"),
    ],
    ids=["force-without-reason", "nothing-to-roll-back"],
)
def test_a_move_the_label_rules_forbid_is_409(
    reply: Api, method: str, path: str, body: dict[str, Any], message: str
) -> None:
    assert error(reply.call(method, path, json=body)) == (409, "LabelError", message)
    assert len(reply.call("GET", "/prompts/support/reply/-/history").json()) == 1  # only the fixture's move


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (f"{_LABELS}/staging", {"target": {"1": 60, "2": 30}}, "rollout weights must sum to 100, got 90"),
        (f"{_LABELS}/latest", {"target": {"1": 100}}, "'latest' is reserved: it always points at the newest version"),
        (f"{_LABELS}/Staging", {"target": {"1": 100}}, "invalid label 'Staging'"),
    ],
    ids=["weights", "latest", "label-name"],
)
def test_a_malformed_move_is_422(reply: Api, path: str, body: dict[str, Any], message: str) -> None:
    status, kind, said = error(reply.call("PUT", path, json=body))
    assert (status, kind) == (422, "ValidationError")
    assert said.startswith(message)
    assert len(reply.call("GET", "/prompts/support/reply/-/history").json()) == 1


def test_a_token_name_or_secret_in_use_is_409(api: Api) -> None:
    taken = api.call("POST", "/tokens", json={"name": "read-token", "scopes": ["read"], "secret_hash": "a" * 64})
    status, kind, message = error(taken)
    assert (status, kind) == (409, "TokenError")
    assert re.fullmatch(
        r"a token named 'read-token' exists \(active, created \d{4}-\d\d-\d\d \d\d:\d\d UTC by tests\); "
        r"revoked tokens keep their names: choose another name, like 'read-token-2'",
        message,
    ), message

    reused = {"name": "twin", "scopes": ["read"], "secret_hash": hash_secret(api.secrets["read"])}
    assert error(api.call("POST", "/tokens", json=reused)) == (
        409,
        "TokenError",
        "a token with this secret exists already: create the token with a new secret",
    )
    assert error(api.call("DELETE", "/tokens/nobody")) == (404, "NotFoundError", "no token named 'nobody'")


def test_a_run_or_a_revocation_cannot_happen_twice(reply: Api) -> None:
    run_id = record_run(reply, 1)
    again = {"id": run_id, "prompt": REPLY, "version": 1, "model": "test", "started_at": "2026-01-01T00:00:00Z"}
    assert error(reply.call("POST", "/runs", json=again, scope="write")) == (
        409,
        "RegistryError",
        f"run {run_id} exists: update it with PUT",
    )
    assert reply.call("DELETE", "/tokens/read-token").status_code == 200
    status, kind, message = error(reply.call("DELETE", "/tokens/read-token"))
    assert (status, kind) == (409, "TokenError")
    assert message.startswith("token 'read-token' was already revoked at ")


# --- 422: a request that cannot be right ----------------------------------------------------------------------

_VERSIONS = "/prompts/support/reply/-/versions"
_RUN = {"id": NO_RUN, "prompt": REPLY, "version": 1, "model": "test", "started_at": "2026-01-01T00:00:00Z"}


_LABEL = "/prompts/support/reply/-/labels/staging"


def invalid(method: str, path: str, kind: str, message: str, *, id: str, **request: Any) -> Any:
    """A request the server must refuse with 422: its error ``type`` and message (a regular expression)."""
    return pytest.param(method, path, request, kind, message, id=id)


@pytest.mark.parametrize(
    ("method", "path", "request_kw", "kind", "message"),
    [
        invalid(
            "POST",
            _VERSIONS,
            "ValidationError",
            r"the body is not JSON: .*",
            content=b"{spec",
            headers={"Content-Type": "application/json"},
            id="not-json",
        ),
        invalid("POST", _VERSIONS, "ValidationError", r"body: Input should be a valid dict.*", json=[], id="list"),
        invalid("POST", _VERSIONS, "ValidationError", r"spec: Field required", json={}, id="missing-field"),
        invalid(
            "POST",
            _VERSIONS,
            "ValidationError",
            r"mesage: Extra inputs are not permitted",
            json={"spec": SPEC_V1, "mesage": "typo"},
            id="unknown-field",
        ),
        invalid(
            "POST",
            _VERSIONS,
            "SpecError",
            r"temprature: support/reply: invalid spec: Extra inputs are not permitted",
            json={"spec": {"template": "x", "temprature": 0.2}},
            id="spec-unknown-key",
        ),
        invalid(
            "POST",
            _VERSIONS,
            "SpecError",
            r"template: support/reply: invalid spec: .*either `messages` \(chat\) or `template` \(text\), not both",
            json={"spec": {"template": "x", "messages": [{"role": "user", "content": "y"}]}},
            id="spec-template-and-messages",
        ),
        invalid(
            "POST",
            _VERSIONS,
            "TemplateSyntaxError",
            r"support/reply template line 1: .*",
            json={"spec": {"template": "{% if %}"}},
            id="template-syntax",
        ),
        invalid(
            "POST",
            _VERSIONS,
            "ValidationError",
            r"content_hash: String should match pattern .*",
            json={"spec": SPEC_V1, "content_hash": "ABC"},
            id="content-hash",
        ),
        invalid(
            "PUT",
            _LABEL,
            "ValidationError",
            r"invalid version 'one' in the rollout target: write a version number in plain decimal digits, "
            r"like 3 \(no sign, spaces, leading zeros or other characters\)",
            json={"target": {"one": 100}},
            id="target-keys",
        ),
        invalid(
            "PUT",
            _LABEL,
            "ValidationError",
            r"kind: Input should be 'move' or 'rollout'",
            json={"target": {"1": 100}, "kind": "teleport"},
            id="move-kind",
        ),
        invalid(
            "GET",
            "/prompts/support/reply/-/resolve?label=Staging",
            "ValidationError",
            r"invalid label 'Staging': .*",
            id="resolve-label",
        ),
        invalid("GET", "/snapshot?label=a%20b", "ValidationError", r"invalid label 'a b': .*", id="snapshot-label"),
        invalid("GET", "/runs?limit=0", "ValidationError", r"limit: an integer from 1 to 1000", id="runs-limit"),
        invalid(
            "GET",
            f"/runs/{NO_RUN}/cases?after=-1",
            "ValidationError",
            r"after: an integer from 0 to \d+",
            id="cases-after",
        ),
        invalid(
            "POST",
            "/runs",
            "ValidationError",
            r"id: String should match pattern .*",
            json={**_RUN, "id": "not-hex"},
            id="run-id",
        ),
        invalid(
            "POST",
            "/runs",
            "ValidationError",
            r"not a run: .*'yesterday'",
            json={**_RUN, "started_at": "yesterday"},
            id="run-started-at",
        ),
        invalid(
            "PUT",
            f"/runs/{'1' * 32}",
            "HttpError",
            rf"id: the body is run {NO_RUN}, the path run {'1' * 32}",
            json=_RUN,
            id="run-id-mismatch",
        ),
        invalid(
            "POST",
            f"/runs/{NO_RUN}/cases",
            "ValidationError",
            r"cases\.0\.case: Field required",
            json={"cases": [{"scenario": "greets"}]},
            id="case",
        ),
        invalid(
            "POST",
            "/tokens",
            "ValidationError",
            r"secret_hash: String should match pattern .*",
            json={"name": "ci", "scopes": ["read"], "secret_hash": "abc"},
            id="token-hash",
        ),
    ],
)
def test_an_invalid_request_is_422_naming_what_is_wrong(
    reply: Api, method: str, path: str, request_kw: dict[str, Any], kind: str, message: str
) -> None:
    status, answered_kind, answered = error(reply.call(method, path, **request_kw))
    assert (status, answered_kind) == (422, kind)
    assert re.fullmatch(message, answered), answered


def test_a_bad_field_is_detailed(api: Api) -> None:
    response = api.call("POST", _VERSIONS, json={"spec": "hello", "author": 7})
    assert response.json()["details"] == [
        {"loc": ["spec"], "msg": "Input should be a valid dictionary"},
        {"loc": ["author"], "msg": "Input should be a valid string"},
    ]


# --- 404 and 405: nothing there -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("GET", "/prompts/team/nope", None, "no prompt 'team/nope'"),
        ("GET", "/prompts/team/nope/-/versions", None, "no prompt named 'team/nope'"),
        ("GET", "/prompts/team/nope/-/labels", None, "no prompt named 'team/nope'"),
        ("GET", "/prompts/team/nope/-/history", None, "no prompt named 'team/nope'"),
        ("GET", "/prompts/team/nope/-/resolve?label=latest", None, "no prompt named 'team/nope'"),
        ("GET", "/prompts/support/reply/-/versions/9", None, "prompt 'support/reply' has no version 9"),
        ("GET", "/prompts/support/reply/-/labels/canary", None, "prompt 'support/reply' has no label 'canary'"),
        ("GET", "/prompts/support/reply/-/resolve?label=canary", None, "prompt 'support/reply' has no label 'canary'"),
        ("GET", "/prompts/support/reply/-/resolve", None, "prompt 'support/reply' has no label 'production'"),
        (
            "PUT",
            "/prompts/support/reply/-/labels/staging",
            {"target": {"9": 100}},
            "prompt 'support/reply' has no version 9",
        ),
        (
            "POST",
            "/prompts/support/reply/-/labels/canary/rollback",
            {},
            "prompt 'support/reply' has no label 'canary'",
        ),
        ("GET", f"/runs/{NO_RUN}", None, f"no run '{NO_RUN}'"),
        ("PUT", f"/runs/{NO_RUN}", _RUN, f"no run '{NO_RUN}'"),
        ("GET", f"/runs/{NO_RUN}/cases", None, f"no run '{NO_RUN}'"),
        ("POST", f"/runs/{NO_RUN}/cases", {"cases": []}, f"no run '{NO_RUN}'"),
        ("POST", "/runs", {**_RUN, "prompt": "team/nope"}, "no prompt named 'team/nope'"),
    ],
)
def test_what_does_not_exist_is_404(reply: Api, method: str, path: str, body: Any, message: str) -> None:
    assert error(reply.call(method, path, json=body)) == (404, "NotFoundError", message)


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/favicon.ico", "/api/v2/prompts"])
def test_an_unknown_route_is_a_json_404(api: Api, path: str) -> None:
    response = api.client.get(path)
    assert error(response) == (404, "HttpError", f"no such endpoint: {path}")


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/prompts"), ("PATCH", f"/runs/{NO_RUN}")])
def test_a_method_a_route_does_not_take_is_a_json_405(api: Api, method: str, path: str) -> None:
    assert error(api.call(method, path)) == (405, "HttpError", "method not allowed")


def test_a_405_says_which_methods_are_allowed(api: Api) -> None:
    assert "GET" in api.call("DELETE", "/prompts").headers.get("allow", "")


# --- caching: ETag and 304; prompt names with "/" ----------------------------------------------------------------


def test_resolve_answers_304_while_its_etag_matches(reply: Api) -> None:
    path = "/prompts/support/reply/-/resolve?label=staging"
    first = reply.call("GET", path, scope="read")
    etag = first.headers["etag"]
    assert (first.status_code, first.headers["cache-control"]) == (200, "private, no-cache")
    version = reply.call("GET", "/prompts/support/reply/-/versions/1", scope="read").json()
    assert first.json() == {"label": "staging", "target": {"1": 100}, "version": version}

    for tag in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = reply.call("GET", path, scope="read", headers={"If-None-Match": tag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag), tag
    assert reply.call("GET", path, scope="read", headers={"If-None-Match": '"other"'}).status_code == 200


def test_the_resolve_etag_changes_when_the_label_moves(reply: Api) -> None:
    path = "/prompts/support/reply/-/resolve?label=staging"
    etag = reply.call("GET", path, scope="read").headers["etag"]

    moved = reply.call("PUT", "/prompts/support/reply/-/labels/staging", scope="promote", json={"target": {"2": 100}})
    assert moved.status_code == 200

    after = reply.call("GET", path, scope="read", headers={"If-None-Match": etag})
    assert (after.status_code, after.json()["version"]["number"]) == (200, 2)
    assert after.headers["etag"] != etag


def test_latest_follows_a_push_at_once(reply: Api) -> None:
    path = "/prompts/support/reply/-/resolve?label=latest"
    etag = reply.call("GET", path, scope="read").headers["etag"]
    pushed = reply.call("POST", _VERSIONS, scope="write", json={"spec": {"template": "Hey {{ name }}"}})
    assert pushed.status_code == 201
    after = reply.call("GET", path, scope="read", headers={"If-None-Match": etag})
    assert (after.status_code, after.json()["version"]["number"]) == (200, 3)


def test_a_version_is_cached_for_good_by_its_etag(reply: Api) -> None:
    first = reply.call("GET", "/prompts/support/reply/-/versions/1", scope="read")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert etag == f'"{first.json()["content_hash"][:32]}"'
    again = reply.call("GET", "/prompts/support/reply/-/versions/1", scope="read", headers={"If-None-Match": etag})
    assert again.status_code == 304
    other = reply.call("GET", "/prompts/support/reply/-/versions/2", scope="read", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag


def test_the_snapshot_etag_follows_every_move(reply: Api) -> None:
    first = reply.call("GET", "/snapshot?label=staging", scope="read")
    etag = first.headers["etag"]
    version = reply.call("GET", "/prompts/support/reply/-/versions/1", scope="read").json()
    assert first.json() == {"label": "staging", "prompts": {REPLY: {"target": {"1": 100}, "versions": {"1": version}}}}
    unchanged = reply.call("GET", "/snapshot?label=staging", scope="read", headers={"If-None-Match": etag})
    assert (unchanged.status_code, unchanged.headers["etag"]) == (304, etag)

    reply.call("PUT", "/prompts/support/reply/-/labels/staging", json={"target": {"1": 50, "2": 50}, "kind": "rollout"})

    after = reply.call("GET", "/snapshot?label=staging", scope="read", headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag
    assert after.json()["prompts"][REPLY]["target"] == {"1": 50, "2": 50}
    assert sorted(after.json()["prompts"][REPLY]["versions"]) == ["1", "2"]


@pytest.mark.parametrize("name", ["greeting", "support/reply", "team/support/v2.reply"])
def test_every_prompt_route_takes_a_name_with_slashes(api: Api, name: str) -> None:
    base = f"/prompts/{name}"
    pushed = api.call("POST", f"{base}/-/versions", scope="write", json={"spec": SPEC_V1})
    assert (pushed.status_code, pushed.json()["version"]["name"]) == (201, name)
    api.call("POST", f"{base}/-/versions", scope="write", json={"spec": SPEC_V2})
    record_run(api, 2, prompt=name)

    moved = api.call("PUT", f"{base}/-/labels/staging", scope="promote", json={"target": {"1": 100}})
    promoted = api.call(
        "POST", f"{base}/-/labels/staging/promote", scope="promote", json={"requirements": REQUIREMENTS}
    )
    rolled_back = api.call("POST", f"{base}/-/labels/staging/rollback", scope="promote", json={})
    assert [r.json()["prompt"] for r in (moved, promoted, rolled_back)] == [name] * 3
    assert [r.json()["to_target"] for r in (moved, promoted, rolled_back)] == [{"1": 100}, {"2": 100}, {"1": 100}]

    reads = {
        "": lambda body: body["name"],
        "/-/versions": lambda body: [version["name"] for version in body],
        "/-/versions/2": lambda body: body["name"],
        "/-/resolve?label=staging": lambda body: body["version"]["name"],
        "/-/labels": lambda body: [label["prompt"] for label in body],
        "/-/labels/staging": lambda body: body["prompt"],
        "/-/history": lambda body: {event["prompt"] for event in body},
    }
    answers = {suffix: api.call("GET", base + suffix, scope="read") for suffix in reads}
    assert {suffix: (r.status_code, reads[suffix](r.json())) for suffix, r in answers.items()} == {
        "": (200, name),
        "/-/versions": (200, [name, name]),
        "/-/versions/2": (200, name),
        "/-/resolve?label=staging": (200, name),
        "/-/labels": (200, [name]),
        "/-/labels/staging": (200, name),
        "/-/history": (200, {name}),
    }
    assert list(api.call("GET", "/snapshot?label=staging", scope="read").json()["prompts"]) == [name]


# --- pushing ---------------------------------------------------------------------------------------------------


def test_pushing_the_same_spec_twice_gives_the_same_version(api: Api) -> None:
    body = {"spec": SPEC_V1, "message": "first", "author": "ana"}
    first = api.call("POST", _VERSIONS, scope="write", json=body)
    second = api.call("POST", _VERSIONS, scope="write", json={**body, "message": "again"})

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == {
        "version": {
            "name": REPLY,
            "number": 1,
            "content_hash": IsStr(regex=r"[0-9a-f]{64}"),
            "spec": {**SPEC_V1, "variables": {"name": {"type": "string"}}},
            "message": "first",
            "author": "ana (token write-token)",
            "created_at": WHEN,
        },
        "created": True,
    }
    assert second.json() == {"version": first.json()["version"], "created": False}
    assert len(api.call("GET", _VERSIONS).json()) == 1


def test_a_push_without_an_author_is_recorded_as_the_token(api: Api) -> None:
    pushed = api.call("POST", _VERSIONS, scope="write", json={"spec": SPEC_V1})
    assert pushed.json()["version"]["author"] == "token write-token"


def test_frozen_content_is_checked_by_freezing_it_again(api: Api) -> None:
    version = api.call("POST", _VERSIONS, scope="write", json={"spec": SPEC_V1}).json()["version"]
    frozen = {"spec": version["spec"], "content_hash": version["content_hash"]}

    same = api.call("POST", _VERSIONS, scope="write", json=frozen)
    assert (same.status_code, same.json()["version"]["number"]) == (200, 1)

    tampered = {**frozen, "spec": {**version["spec"], "template": "Bye {{ name }}"}}
    status, kind, message = error(api.call("POST", _VERSIONS, scope="write", json=tampered))
    assert (status, kind) == (422, "SpecError")
    assert message.startswith(
        f"support/reply: the content does not freeze to itself here (hash {version['content_hash'][:12]}, frozen again "
    )
    assert len(api.call("GET", _VERSIONS).json()) == 1  # nothing stored


def test_frozen_content_including_a_missing_version_names_that_version(api: Api) -> None:
    api.call("POST", "/prompts/shared/tone/-/versions", scope="write", json={"spec": {"template": "Be warm."}})
    spec = {"template": "Hi {{ name }}. {% include 'shared/tone' %}"}
    version = api.call("POST", _VERSIONS, scope="write", json={"spec": spec}).json()["version"]
    frozen = version["spec"] | {"includes": {"shared/tone": {"template": "Be warm.", "version": 5}}}

    status, _, message = error(
        api.call("POST", _VERSIONS, scope="write", json={"spec": frozen, "content_hash": version["content_hash"]})
    )
    assert status in (404, 422)
    assert "version 5" in message, message  # today: "included prompt 'shared/tone' does not exist (push it first)"


@pytest.mark.parametrize("name", ["Bad Name!", "team/-/labels", "a//b"])
def test_a_push_refuses_a_name_that_is_not_a_prompt_name(api: Api, name: str) -> None:
    # `team/-/labels` would make /prompts/team/-/labels mean two things; `-` is never a segment of a prompt name.
    response = api.call("POST", f"/prompts/{name}/-/versions", scope="write", json={"spec": SPEC_V1})
    assert response.status_code == 422


# --- the gate through the server --------------------------------------------------------------------------------


def test_a_passing_run_opens_the_gate_and_the_move_names_the_token(reply: Api) -> None:
    run_id = record_run(reply, 1)
    body = {"target": {"1": 100}, "actor": "ana", "reason": "ship it", "requirements": REQUIREMENTS}

    moved = reply.call("PUT", "/prompts/support/reply/-/labels/production", scope="promote", json=body)

    assert moved.status_code == 200
    assert moved.json() == {
        "id": IsInt(),
        "prompt": REPLY,
        "label": "production",
        "kind": "move",
        "from_target": None,
        "to_target": {"1": 100},
        "actor": "ana (token promote-token)",
        "reason": "ship it",
        "gate": "passed",
        "evidence": run_id,
        "undoes": None,
        "at": WHEN,
        "requested_by": None,
        "requested_at": None,
    }
    assert reply.call("GET", "/prompts/support/reply/-/history?label=production").json() == [moved.json()]
    label = reply.call("GET", "/prompts/support/reply/-/labels/production").json()
    assert label["updated_by"] == "ana (token promote-token)"
    assert reply.call("GET", "/prompts/support/reply/-/resolve", scope="read").json()["version"]["number"] == 1


def test_promote_takes_the_newest_version_with_a_passing_run(reply: Api) -> None:
    path = "/prompts/support/reply/-/labels/production/promote"
    record_run(reply, 1)
    record_run(reply, 2, status="failed")
    first = reply.call("POST", path, scope="promote", json={"requirements": REQUIREMENTS})
    assert (first.json()["kind"], first.json()["to_target"], first.json()["actor"]) == (
        "promote",
        {"1": 100},
        "token promote-token",
    )

    record_run(reply, 2)
    second = reply.call("POST", path, scope="promote", json={"requirements": REQUIREMENTS, "actor": "ana"})
    assert (second.json()["to_target"], second.json()["actor"]) == ({"2": 100}, "ana (token promote-token)")


def test_promote_needs_evidence_even_for_an_unprotected_label(reply: Api) -> None:
    body = {"version": 2, "requirements": REQUIREMENTS}
    response = reply.call("POST", "/prompts/support/reply/-/labels/staging/promote", scope="promote", json=body)
    assert response.status_code == 409
    assert response.json()["problems"] == [
        "no eval run of support/reply@2: promptlane eval --prompt support/reply --version 2"
    ]


def test_a_refused_promotion_does_not_call_an_unprotected_label_protected(reply: Api) -> None:
    body = {"version": 2, "requirements": REQUIREMENTS}
    response = reply.call("POST", "/prompts/support/reply/-/labels/staging/promote", scope="promote", json=body)
    assert "staging is protected" not in response.json()["error"]


def test_a_rollback_of_a_protected_label_goes_through_the_gate(reply: Api) -> None:
    record_run(reply, 1)
    production = "/prompts/support/reply/-/labels/production"
    reply.call("PUT", production, scope="promote", json={"target": {"1": 100}, "requirements": REQUIREMENTS})
    forced = reply.call("PUT", production, json={"target": {"2": 100}, "force": True, "reason": "incident 42"})
    assert (forced.json()["gate"], forced.json()["evidence"]) == ("forced", None)

    changed = {"scenario_files": [{**SCENARIO_FILE, "sha256": "6" * 64}]}  # the client's scenario file changed
    refused = reply.call("POST", f"{production}/rollback", scope="promote", json={"requirements": changed})
    assert refused.status_code == 409

    back = reply.call("POST", f"{production}/rollback", scope="promote", json={"requirements": REQUIREMENTS})
    assert back.status_code == 200
    assert (back.json()["kind"], back.json()["to_target"], back.json()["gate"]) == ("rollback", {"1": 100}, "passed")
    assert back.json()["undoes"] == forced.json()["id"]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PUT", "", {"target": {"1": 100}, "force": True, "reason": "incident 42"}),
        ("POST", "/rollback", {"force": True, "reason": "incident 42"}),
    ],
)
def test_only_an_admin_token_forces_past_the_gate(reply: Api, method: str, suffix: str, body: dict[str, Any]) -> None:
    path = f"/prompts/support/reply/-/labels/staging{suffix}"
    message = "a forced move past the gate needs a token with the admin scope"
    assert error(reply.call(method, path, scope="promote", json=body)) == (403, "AuthError", message)
    if suffix:  # a rollback needs a move to undo
        reply.call("PUT", "/prompts/support/reply/-/labels/staging", json={"target": {"2": 100}})
    assert reply.call(method, path, scope="admin", json=body).status_code == 200


# --- runs ---------------------------------------------------------------------------------------------------------


def test_a_client_cannot_choose_the_gate_model(reply: Api) -> None:
    # A promote token named the model its own run used, and the server, with no gate_model set, took it.
    cheap = record_run(reply, 1, model="python:cheap:model")
    body = {"target": {"1": 100}, "requirements": {**REQUIREMENTS, "model": "python:cheap:model"}}
    refused = reply.call("PUT", "/prompts/support/reply/-/labels/production", scope="promote", json=body)
    assert refused.status_code == 409
    assert refused.json()["problems"][0].startswith(
        f"run {cheap[:12]} used python:cheap:model, and the gate needs test, the model support/reply@1 declares"
    )


def test_a_finished_run_must_be_what_its_stored_cases_earn(reply: Api) -> None:
    # A write token recorded `status: passed` with no cases at all, and the next promote shipped the version.
    run_id = uuid.uuid4().hex
    scenario = {"name": "greets", "file": "evals/reply.yaml", "cases": 2, "passed": 2}
    body = {**_RUN, "id": run_id, "scenario_files": [SCENARIO_FILE], "scenarios": [scenario]}
    assert reply.call("POST", "/runs", scope="write", json=body).status_code == 201
    finished = {**body, "status": "passed", "finished_at": "2026-01-01T00:01:00Z"}

    forged = reply.call("PUT", f"/runs/{run_id}", scope="write", json=finished)
    assert forged.status_code == 422
    assert forged.json()["error"] == (
        "scenarios: the tallies say 2 passed, 0 failed, 0 error, but the run's stored cases are 0 passed, 0 failed, "
        "0 error: send the cases first"
    )
    cases = [{"scenario": "greets", "case": f"c{n}", "file": "evals/reply.yaml", "status": "failed"} for n in range(2)]
    assert reply.call("POST", f"/runs/{run_id}/cases", scope="write", json={"cases": cases}).status_code == 201
    claimed = {**finished, "scenarios": [{**scenario, "passed": 0, "failed": 2}]}  # true tallies, false status
    assert reply.call("PUT", f"/runs/{run_id}", scope="write", json=claimed).json()["error"] == (
        "status: passed, but the run's tallies earn failed"
    )
    refused = reply.call(
        "PUT",
        "/prompts/support/reply/-/labels/production",
        scope="promote",
        json={"target": {"1": 100}, "requirements": REQUIREMENTS},
    )
    assert refused.status_code == 409  # nothing forged is evidence


def test_a_run_round_trips(reply: Api) -> None:
    run_id = uuid.uuid4().hex
    body = {**_RUN, "id": run_id, "created_by": "ci", "settings": {"concurrency": 4}}
    created = reply.call("POST", "/runs", scope="write", json=body)
    expected = {
        **body,
        "label": None,
        "status": "running",
        "reason": None,
        "finished_at": None,
        "trace_id": None,
        "cost_usd": 0.0,
        "cases": 0,
        "passed": 0,
        "failed": 0,
        "errored": 0,
        "complete": False,  # a run of no scenario is never evidence
        "scenario_files": [],
        "scenarios": [],
        "runner": "write-token",  # the token that recorded it, whatever its client says
    }
    assert (created.status_code, created.json()) == (201, expected)
    assert reply.call("GET", f"/runs/{run_id}", scope="read").json() == expected
    assert reply.call("GET", f"/runs/{run_id[:8]}", scope="read").json() == expected  # a unique prefix will do

    finished = {**body, "status": "failed", "finished_at": "2026-01-01T00:01:00Z", "cost_usd": 0.25}
    assert reply.call("PUT", f"/runs/{run_id}", scope="write", json=finished).status_code == 200
    stored = reply.call("GET", f"/runs/{run_id}", scope="read").json()
    assert (stored["status"], stored["finished_at"], stored["cost_usd"]) == ("failed", "2026-01-01T00:01:00Z", 0.25)

    listed = {
        query: [run["id"] for run in reply.call("GET", f"/runs{query}", scope="read").json()]
        for query in ("", "?prompt=support/reply&version=1", "?version=2", "?prompt=team/nope", "?limit=1")
    }
    assert listed == {
        "": [run_id],
        "?prompt=support/reply&version=1": [run_id],
        "?version=2": [],
        "?prompt=team/nope": [],
        "?limit=1": [run_id],
    }


def test_an_ambiguous_run_prefix_answers_a_documented_status(reply: Api) -> None:
    for run_id in ("ab" + "0" * 30, "ab" + "1" * 30):
        reply.call("POST", "/runs", scope="write", json={**_RUN, "id": run_id})
    response = reply.call("GET", "/runs/ab", scope="read")
    document = reply.call("GET", "/openapi.json", scope=None).json()
    assert str(response.status_code) in document["paths"]["/api/v1/runs/{run_id}"]["get"]["responses"]


def test_cases_are_paged_with_after_and_next(reply: Api) -> None:
    run_id = uuid.uuid4().hex
    reply.call("POST", "/runs", scope="write", json={**_RUN, "id": run_id})
    statuses = ["passed", "failed", "passed", "error", "passed"]
    cases = [
        {"scenario": "greets", "case": f"case-{i}", "file": "evals/reply.yaml", "status": status}
        for i, status in enumerate(statuses)
    ]
    for batch in (cases[:2], cases[2:]):
        added = reply.call("POST", f"/runs/{run_id}/cases", scope="write", json={"cases": batch})
        assert (added.status_code, added.json()) == (201, {"added": len(batch)})

    pages, after = [], 0
    while after is not None:
        page = reply.call("GET", f"/runs/{run_id[:8]}/cases?limit=2&after={after}", scope="read").json()
        pages.append([case["case"] for case in page["cases"]])
        after = page["next"]
    assert pages == [["case-0", "case-1"], ["case-2", "case-3"], ["case-4"]]

    whole = reply.call("GET", f"/runs/{run_id}/cases", scope="read").json()
    assert whole["next"] is None
    assert [(case["case"], case["status"]) for case in whole["cases"]] == [(c["case"], c["status"]) for c in cases]
    assert whole["cases"][0] == {
        **cases[0],
        "line": None,
        "row": None,
        "repeat": 1,
        "variables": {},
        "messages": [],
        "output": None,
        "tool_calls": [],
        "evaluations": [],
        "turns": 0,
        "latency_ms": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": None,
        "error": None,
    }
    failing = reply.call("GET", f"/runs/{run_id}/cases?status=failed&status=error", scope="read").json()
    assert [case["case"] for case in failing["cases"]] == ["case-1", "case-3"]


def test_cases_are_added_only_by_the_whole_run_id(reply: Api) -> None:
    run_id = uuid.uuid4().hex
    reply.call("POST", "/runs", scope="write", json={**_RUN, "id": run_id})
    response = reply.call("POST", f"/runs/{run_id[:8]}/cases", scope="write", json={"cases": []})
    assert error(response) == (404, "NotFoundError", f"no run '{run_id[:8]}'")


def test_a_case_of_the_wrong_shape_is_422(reply: Api) -> None:
    run_id = uuid.uuid4().hex
    reply.call("POST", "/runs", scope="write", json={**_RUN, "id": run_id})
    case = {"scenario": {"name": "greets"}, "case": "c", "file": "evals/reply.yaml"}
    assert reply.call("POST", f"/runs/{run_id}/cases", scope="write", json={"cases": [case]}).status_code == 422


@pytest.mark.parametrize("query", ["/runs?limit=²", f"/runs/{NO_RUN}/cases?after=³"])
def test_a_query_integer_in_other_digits_is_422(reply: Api, query: str) -> None:
    assert reply.call("GET", query, scope="read").status_code == 422


def test_a_version_number_beyond_any_version_is_404(reply: Api) -> None:
    response = reply.call("GET", f"/prompts/support/reply/-/versions/{BEYOND_SQLITE}", scope="read")
    assert response.status_code in (404, 422)


@pytest.mark.parametrize("label", ["staging", "production"])
def test_a_target_version_beyond_any_version_is_refused(reply: Api, label: str) -> None:
    body = {"target": {str(BEYOND_SQLITE): 100}}
    response = reply.call("PUT", f"/prompts/support/reply/-/labels/{label}", json=body)
    assert response.status_code in (404, 422)


# --- tokens ---------------------------------------------------------------------------------------------------

TOKEN_FIELDS = {"id", "name", "scopes", "created_at", "created_by", "revoked_at", "revoked_by", "active"}


def test_a_token_registered_by_its_hash_round_trips(api: Api) -> None:
    secret = new_secret()
    body = {"name": "ci", "scopes": ["read", "write"], "secret_hash": hash_secret(secret)}
    created = api.call("POST", "/tokens", json=body)
    record = {
        "id": IsInt(),
        "name": "ci",
        "scopes": ["read", "write"],
        "created_at": WHEN,
        "created_by": "token admin-token",
        "revoked_at": None,
        "revoked_by": None,
        "active": True,
    }
    assert (created.status_code, created.json()) == (201, record)
    assert [token["name"] for token in api.call("GET", "/tokens").json()] == [
        "read-token",
        "write-token",
        "promote-token",
        "admin-token",
        "ci",
    ]

    as_ci = {"Authorization": f"Bearer {secret}"}
    assert api.call("POST", _VERSIONS, scope=None, headers=as_ci, json={"spec": SPEC_V1}).status_code == 201
    assert api.call("GET", "/tokens", scope=None, headers=as_ci).status_code == 403

    revoked = api.call("DELETE", "/tokens/ci?by=ops")
    assert revoked.json() == record | {"revoked_at": WHEN, "revoked_by": "ops (token admin-token)", "active": False}
    assert api.call("GET", "/prompts", scope=None, headers=as_ci).status_code == 401


def test_the_token_list_never_shows_a_secret_or_its_hash(api: Api) -> None:
    registered = new_secret()
    api.call("POST", "/tokens", json={"name": "ci", "scopes": ["read"], "secret_hash": hash_secret(registered)})
    api.call("DELETE", "/tokens/write-token")

    listed = api.call("GET", "/tokens")

    assert [set(token) for token in listed.json()] == [TOKEN_FIELDS] * 5
    for secret in [*api.secrets.values(), registered]:
        assert secret not in listed.text and hash_secret(secret) not in listed.text
        assert secret[len("plt_") :][:16] not in listed.text


# --- secrets stay out of logs ---------------------------------------------------------------------------------


def test_no_secret_or_hash_reaches_a_log(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every logger at every level. (There is no access log here; uvicorn's logs the request line only, and a
    # secret travels in a header, never in a path or query.)
    caplog.set_level(logging.DEBUG)
    unknown = new_secret()
    responses = [api.call("GET", "/prompts", scope=scope) for scope in SCOPES]
    responses += [
        api.call("POST", _VERSIONS, scope="read", json={"spec": SPEC_V1}),  # 403
        api.call("GET", "/prompts", scope=None, headers={"Authorization": f"Bearer {unknown}"}),  # 401
        api.call("GET", "/prompts", scope=None, headers={"Authorization": f"Token {api.secrets['read']}"}),  # 401
        api.call("DELETE", "/tokens/write-token"),
        api.call("GET", "/prompts", scope="write"),  # revoked: 401
    ]

    def broken() -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(api.registry, "list_prompts", broken)
    responses.append(api.call("GET", "/prompts", scope="admin"))  # a 500, logged with its traceback

    assert [r.status_code for r in responses] == [200, 200, 200, 200, 403, 401, 401, 200, 401, 500]
    logged = [record for record in caplog.records if record.name == "promptlane.server"]
    assert [(record.levelname, record.getMessage()) for record in logged] == [("ERROR", "GET /api/v1/prompts failed")]
    assert "RuntimeError: the database went away" in caplog.text  # the traceback is in the captured text
    for secret in [*api.secrets.values(), unknown]:
        for text in (secret, hash_secret(secret)):
            assert text not in caplog.text
            assert all(text not in response.text for response in responses)


# --- promptlane serve -------------------------------------------------------------------------------------------


@pytest.fixture
def uvicorn_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The configuration each ``uvicorn.Server`` runs with (it returns at once, started, instead of serving)."""
    calls: list[dict[str, Any]] = []

    def run(server: uvicorn.Server, sockets: Any = None) -> None:
        config = server.config
        calls.append({"app": config.app, "host": config.host, "port": config.port, "http": config.http})
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return calls


def promptlane(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def refusal(result: Result, status: int = 2) -> str:
    """The one ``error: ...`` line of a command that refused, with its exit status (2: configuration)."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == status
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "registry.example.com"])
def test_serve_refuses_no_auth_on_an_address_others_reach(
    project: Path, uvicorn_runs: list[dict[str, Any]], host: str
) -> None:
    message = refusal(promptlane("serve", "--no-auth", "--host", host))
    assert message == f"--no-auth serves anyone who can reach {host}: only on a loopback address (127.0.0.1)"
    assert uvicorn_runs == []


def test_serve_refuses_to_start_while_no_token_is_active(project: Path, uvicorn_runs: list[dict[str, Any]]) -> None:
    hint = "(promptlane token create --name admin --scope admin), or use --no-auth on 127.0.0.1"
    message = refusal(promptlane("serve"))
    assert message.startswith("no API tokens yet, so nobody could call this server") and hint in message

    assert promptlane("token", "create", "--name", "old", "--scope", "read").exit_code == 0
    assert promptlane("token", "revoke", "old").exit_code == 0
    assert hint in refusal(promptlane("serve"))  # a revoked token does not count
    assert uvicorn_runs == []


def test_serve_starts_with_a_token_and_never_prints_it(project: Path, uvicorn_runs: list[dict[str, Any]]) -> None:
    secret = promptlane("token", "create", "--name", "admin", "--scope", "admin").stdout.strip()
    assert secret.startswith("plt_")

    result = promptlane("serve", "--port", "8999")

    assert (result.exit_code, result.stdout) == (0, ""), result.stderr
    assert re.fullmatch(
        r"promptlane: serving sqlite:///.*registry\.db on http://127\.0\.0\.1:8999/api/v1 \(tokens\); "
        r"the web UI at http://127\.0\.0\.1:8999/\n",
        result.stderr,
    )
    assert secret not in result.stderr and hash_secret(secret) not in result.stderr
    [call] = uvicorn_runs
    assert (call["host"], call["port"], call["app"].state.promptlane.auth.enabled) == ("127.0.0.1", 8999, True)
    assert call["http"] is GuardedH11  # head deadlines and the connection cap (tests/test_server_limits.py)


def test_serve_takes_the_database_to_serve_after_the_command(
    project: Path, uvicorn_runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert promptlane("--registry", other, "token", "create", "--name", "admin", "--scope", "admin").exit_code == 0

    result = promptlane("serve", "--registry", other)

    assert result.exit_code == 0, result.stderr
    assert f"serving {other} on" in result.stderr
    [call] = uvicorn_runs
    assert call["app"].state.promptlane.registry.url == other
    message = refusal(promptlane("serve", "--registry", "http://127.0.0.1:8750"))
    assert message == "serve a database (sqlite:///... or postgresql://...), not a server: http://127.0.0.1:8750"


def test_serve_masks_the_database_password(project: Path, uvicorn_runs: list[dict[str, Any]]) -> None:
    unreachable = promptlane("serve", "--registry", "postgresql://app:s3cret@127.0.0.1:1/prompts")
    message = refusal(unreachable, status=3)
    assert "s3cret" not in message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_serve_allows_no_auth_on_loopback(project: Path, uvicorn_runs: list[dict[str, Any]], host: str) -> None:
    result = promptlane("serve", "--no-auth", "--host", host)
    assert result.exit_code == 0, result.stderr
    assert "(no auth); the web UI at http://" in result.stderr
    [call] = uvicorn_runs
    assert (call["host"], call["app"].state.promptlane.auth.enabled) == (host, False)


# --- schemathesis: the OpenAPI document states what the server enforces -------------------------------------

POSITIVE_MAY_BE_422 = {
    "push": "a spec's templates must compile and use only declared variables",
    "push_batch": "as push, for each spec of the batch",
    "move_label": "a rollout's weights must sum to 100",
    "update_run": "the body's run id must be the path's",
}
"""Operations where a request the document allows may still be refused (422), and why: what a JSON Schema
cannot say. Everything else the server refuses, the document states."""

CONFORMANCE = SchemathesisConfig.from_dict(
    {
        # Bounded: each operation's coverage cases (every bound, pattern and enum just inside and just outside)
        # and a few random ones, the same ones every run.
        "generation": {"max-examples": 8, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # A body over server_max_body_bytes is refused by its size (413, documented), whatever its shape.
            "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "409", "413", "415", "422"]},
        },
        "operations": [
            {
                "include-operation-id": operation_id,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "413", "422"],
                    }
                },
            }
            for operation_id in POSITIVE_MAY_BE_422
        ],
    }
)


class _ServedApp:
    """The app under test, for the schema read once at import: each test's fixture sets ``app``."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


SERVED = _ServedApp()
SCHEMA = schemathesis.openapi.from_dict(openapi_document(ENDPOINTS, auth=True), config=CONFORMANCE)
SCHEMA.app = SERVED


@pytest.fixture
def conforming(tmp_path: Path, store_url: str) -> Iterator[Api]:
    """The server on SQLite and (where configured) PostgreSQL, with support/reply, a run and one token a scope."""
    registry, secrets = served_registry(tmp_path, store_url)
    api = Api(client=TestClient(create_app(registry)), registry=registry, secrets=secrets)
    for spec in (SPEC_V1, SPEC_V2):
        registry.push_spec(REPLY, spec, author="tests")
    registry.set_label(REPLY, "staging", 1)
    record_run(api, 1)
    SERVED.app = api.client.app
    yield api
    SERVED.app = None
    registry.close()


@SCHEMA.parametrize()
@settings(suppress_health_check=list(HealthCheck))  # one server for an operation's examples, as a client sees it
def test_every_operation_conforms_to_the_document(case: Case, conforming: Api) -> None:
    """Every schemathesis check: no 5xx, documented statuses, content types, headers and bodies, what the
    document allows accepted (but :data:`POSITIVE_MAY_BE_422`) and what it forbids refused, with auth or not."""
    case.call_and_validate(headers={"Authorization": f"Bearer {conforming.secrets['admin']}"})


@pytest.mark.parametrize("wildcard", ["_", "%", "%25"])
def test_a_run_prefix_is_literal_not_a_like_pattern(reply: Api, wildcard: str) -> None:
    record_run(reply, 1)
    # Refused as no run id (hex digits only) before it reaches the store, which reads it literally too.
    assert error(reply.call("GET", f"/runs/{wildcard}"))[:2] == (422, "ValidationError")
    assert reply.registry.store.list_runs(None, version=None, limit=5)[0].id != wildcard


def test_a_server_without_tokens_refuses_what_a_web_page_could_send(serve: Callable[..., Api]) -> None:
    api = serve(auth=False)
    body = {"spec": SPEC_V1}
    # DNS rebinding: a page on another site whose name now resolves to 127.0.0.1 names that site as the host.
    rebound = api.client.get("/api/v1/prompts", headers={"Host": "attacker.example:8750"})
    assert (rebound.status_code, rebound.json()["type"]) == (403, "AuthError")
    assert "only requests to a loopback address, not to 'attacker.example:8750'" in rebound.json()["error"]
    # A cross-site write from a page (browsers always send Origin with one); reads and the CLI (no Origin) pass.
    path = "/api/v1/prompts/support/reply/-/versions"
    forged = api.client.post(path, json=body, headers={"Origin": "http://attacker.example"})
    assert forged.status_code == 403 and "a write from the page 'http://attacker.example'" in forged.json()["error"]
    other_port = api.client.post(path, json=body, headers={"Origin": "http://127.0.0.1:3000"})
    assert other_port.status_code == 403
    assert api.registry.list_prompts() == []
    assert api.client.get("/api/v1/prompts", headers={"Origin": "http://attacker.example"}).status_code == 200
    assert api.client.post(path, json=body, headers={"Origin": "http://127.0.0.1:8750"}).status_code == 201
    assert api.client.post(path, json=body).status_code == 200  # the CLI: no Origin; the same spec again


@pytest.mark.parametrize("auth", [True, False])
def test_json_sent_as_text_or_a_form_is_refused(serve: Callable[..., Api], auth: bool) -> None:
    api = serve(auth=auth)
    headers = {"Authorization": f"Bearer {api.secrets['write']}"} if auth else {}
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        answer = api.client.post(
            "/api/v1/prompts/support/reply/-/versions",
            content=json.dumps({"spec": SPEC_V1}),
            headers={**headers, "Content-Type": content_type},
        )
        assert answer.status_code == 415, (content_type, answer.text)
        assert answer.json()["error"] == "send the body as JSON, with Content-Type: application/json"
    assert api.registry.list_prompts() == []


# --- bounds: a value past what a column holds is a 422 naming the field, on SQLite and PostgreSQL -------------

LONG_TOKEN = "t" * 63
"""A token name as long as names go: the server records changes as ``actor (token LONG_TOKEN)``."""


def over_bound(method: str, path: str, field: str, *, id: str, **request: Any) -> Any:
    """A request with one value past a bound: refused with 422, the message starting with ``field``."""
    return pytest.param(method, path, request, field, id=id)


@pytest.mark.parametrize(
    ("method", "path", "request_kw", "field"),
    [
        over_bound(
            "POST", f"/prompts/{'p' * 256}/-/versions", "invalid prompt name", json={"spec": SPEC_V1}, id="name"
        ),
        over_bound("GET", "/prompts/a%00b/-/versions", "invalid prompt name", id="name-nul"),
        over_bound("GET", f"{_VERSIONS}/99999999999999999999", "number: an integer from 1 to 2147483647", id="number"),
        over_bound("GET", f"{_VERSIONS}/2147483648", "number: an integer from 1 to 2147483647", id="number-int4"),
        over_bound("GET", "/prompts/support/reply/-/history?label=a%00", "invalid label", id="history-label"),
        over_bound("GET", "/prompts/support/reply/-/labels/a%00", "invalid label", id="label-nul"),
        over_bound(
            "PUT",
            "/prompts/support/reply/-/labels/prod%0A",
            "invalid label",
            json={"target": {"1": 100}},
            id="label-newline",
        ),
        over_bound(
            "POST",
            _VERSIONS,
            "author: String should have at most 183",
            json={"spec": SPEC_V1, "author": "a" * 184},
            id="author",
        ),
        over_bound(
            "PUT",
            _LABEL,
            "actor: String should have at most 183",
            json={"target": {"1": 100}, "actor": "a" * 184},
            id="actor",
        ),
        over_bound("GET", "/runs?limit=99999999999999999999", "limit: an integer from 1 to 1000", id="runs-limit"),
        over_bound("GET", "/runs?version=2147483648", "version: an integer from 1 to 2147483647", id="runs-version"),
        over_bound("GET", "/runs?prompt=a%00", "invalid prompt name", id="runs-prompt"),
        over_bound("GET", "/runs/ab%00", "run_id: ", id="run-id-nul"),
        over_bound(
            "GET", f"/runs/{NO_RUN}/cases?after=2147483648", "after: an integer from 0 to 2147483647", id="after"
        ),
        over_bound("GET", f"/runs/{NO_RUN}/cases?status=lost", "status: one of passed, failed, error", id="status"),
        over_bound(
            "POST",
            "/runs",
            "scenarios.0.passed: Input should be less than or equal to 10000000",
            json={**_RUN, "scenarios": [{"name": "s", "file": "f", "cases": 1, "passed": 2**31}]},
            id="run-tally",
        ),
        over_bound(
            "POST",
            "/runs",
            "scenarios: List should have at most 200 items",
            json={**_RUN, "scenarios": [{"name": "s", "file": "f"}] * 201},
            id="run-scenarios",
        ),
        over_bound(
            "POST",
            f"/runs/{NO_RUN}/cases",
            "cases.0.scenario: String should have at most 255",
            json={"cases": [{"scenario": "s" * 256, "case": "c", "file": "f"}]},
            id="case-scenario",
        ),
        over_bound("DELETE", "/tokens/a%00", "invalid token name", id="token-nul"),
        over_bound("DELETE", "/tokens/read-token%0A", "invalid token name", id="token-newline"),
        over_bound("DELETE", "/tokens/read-token?by=" + "b" * 184, "by: at most 183 characters", id="revoked-by"),
        over_bound(
            "POST",
            "/tokens",
            "scopes.0: Input should be",
            json={"name": "ci", "scopes": ["read,write"], "secret_hash": "a" * 64},
            id="scopes",
        ),
    ],
)
def test_a_value_past_a_bound_is_422_naming_the_field(
    conforming: Api, method: str, path: str, request_kw: dict[str, Any], field: str
) -> None:
    secret = new_secret()
    conforming.registry.store.create_token(LONG_TOKEN, ["admin"], hash_secret(secret), created_by="tests")
    answer = conforming.client.request(method, API + path, headers={"Authorization": f"Bearer {secret}"}, **request_kw)
    status, kind, message = error(answer)
    assert (status, kind) == (422, "ValidationError"), message
    assert message.startswith(field), message


def test_check_prompt_name_refuses_what_no_column_holds() -> None:
    """The CLI and the SDK get the same refusal as the server (not a database error on PostgreSQL)."""
    assert check_prompt_name("p" * 255) == "p" * 255
    with pytest.raises(SpecError, match=r"invalid prompt name 'p{40}\.\.\.': at most 255 characters, got 256"):
        check_prompt_name("p" * 256)
    with pytest.raises(SpecError, match=r"invalid prompt name 'reply\\n'"):
        check_prompt_name("reply\n")  # `$` in a pattern also matches before a final newline


def _walk(schema: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        yield where, schema
        for key, value in schema.items():
            yield from _walk(value, f"{where}.{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _walk(value, f"{where}.{index}")


UNBOUNDED = {"get /api/v1/prompts/{name}/-/resolve targeting_key"}
"""Request values the server takes whatever they are: a targeting key is only hashed."""


def test_the_document_bounds_every_integer_and_string_a_request_carries() -> None:
    """What schemathesis cannot reach in a few examples: every integer has both bounds, every string a
    pattern (which says at least: no NUL) or a fixed set of values, every object its keys."""
    document = openapi_document(ENDPOINTS, auth=True)
    requests = [
        (f"{method} {path} {parameter['name']}", parameter["schema"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
        for parameter in operation["parameters"]
        if parameter["in"] != "header" and f"{method} {path} {parameter['name']}" not in UNBOUNDED
    ]
    requests += [(name, schema) for name, schema in document["components"]["schemas"].items() if name.endswith("In")]
    unbounded = [
        where
        for name, schema in requests
        for where, part in _walk(schema, name)
        if (part.get("type") == "integer" and not {"minimum", "maximum"} <= part.keys())
        or (part.get("type") == "string" and not {"pattern", "enum", "const"} & part.keys())
        or (part.get("type") == "object" and "additionalProperties" not in part)
    ]
    assert unbounded == []


def test_a_405_lists_every_method_of_the_path(api: Api) -> None:
    answer = api.call("DELETE", "/prompts/support/reply/-/versions")
    assert answer.status_code == 405
    assert sorted(answer.headers["allow"].split(", ")) == ["GET", "HEAD", "POST"]
