"""The web UI through Starlette's TestClient: login and scopes, CSRF, escaping, the editor and its preview, the
diff, label moves through the gate, and scenarios run from the browser. (tests/test_ui_browser.py drives the
same pages in Chromium.)"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from promptlane.config import load_settings
from promptlane.registry import Registry
from promptlane.registry.tokens import create_token
from promptlane.server import create_app

REPO = Path(__file__).resolve().parents[1]
REPLY = "support/reply"
PAGE = f"/prompts/{REPLY}"

Login = Callable[..., TestClient]


@pytest.fixture
def registry(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """The demo's project: the support example's prompts and scenarios, pushed, production protected."""
    shutil.rmtree(project / "prompts")
    shutil.copytree(REPO / "examples" / "support" / "prompts", project / "prompts")
    shutil.copytree(REPO / "examples" / "support" / "evals", project / "evals")
    with (project / "promptlane.toml").open("a") as config:
        config.write('gate_model = "python:examples.support.model:respond"\n')
    monkeypatch.syspath_prepend(str(REPO))
    reg = Registry(settings=load_settings(project))
    reg.push(message="first version")
    yield reg
    reg.close()


@pytest.fixture
def login(registry: Registry) -> Login:
    """A client logged in with a new token of the given scopes."""

    def make(*scopes: str, auth: bool = True) -> TestClient:
        client = TestClient(create_app(registry, auth=auth), follow_redirects=False, base_url="http://127.0.0.1:8750")
        if auth:
            name = f"ui-{'-'.join(scopes)}-{time.monotonic_ns()}"
            _, secret = create_token(registry.store, name, list(scopes), created_by="t")
            answer = client.post("/login", data={"token": secret, "csrf": csrf(client), "next": "/"})
            assert answer.status_code == 303, answer.text
        return client

    return make


def csrf(client: TestClient) -> str:
    """The CSRF value of the client's session (a page sets it)."""
    if "promptlane_csrf" not in client.cookies:
        client.get("/login")
    return client.cookies["promptlane_csrf"]


def post(client: TestClient, path: str, **data: Any) -> Any:
    return client.post(path, data={"csrf": csrf(client), **data})


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def editor_form(**fields: str) -> dict[str, str]:
    """The editor's form for support/reply as the example has it, with ``fields`` changed."""
    form = {
        "kind": "chat",
        "description": "Reply to a customer ticket",
        "model": "openai:gpt-4o-mini",
        "message_count": "3",
        "role_0": "system",
        "content_0": "You help {{ customer }} ({{ tier }} plan).\n{% include 'shared/tone' %}",
        "role_1": "user",
        "content_1": "{{ ticket }}",
        "role_2": "user",
        "content_2": "",
        "variables": (
            "customer: {type: string}\nticket: {type: string}\ntier: {type: string, enum: [free, pro], default: free}\n"
        ),
        "model_settings": "",
        "tools": "",
        "output_schema": "",
        "commit_message": "from the browser",
        "base": "1",
    }
    return {**form, **fields}


# --- login, scopes, CSRF ------------------------------------------------------------------------------------


def test_pages_need_a_login_and_a_token_that_exists(registry: Registry) -> None:
    client = TestClient(create_app(registry), follow_redirects=False)
    assert client.get(PAGE).headers["location"] == f"/login?next=/prompts/{REPLY}"

    refused = client.post("/login", data={"token": "plt_nope", "csrf": csrf(client), "next": "/"})

    assert refused.status_code == 401
    assert "that token is unknown or revoked" in refused.text
    assert "promptlane_token" not in client.cookies


def test_the_login_cookie_is_http_only_and_same_site_and_the_next_page_stays_on_this_site(registry: Registry) -> None:
    _, secret = create_token(registry.store, "ana", ["read"], created_by="t")
    client = TestClient(create_app(registry), follow_redirects=False)
    for target, expected in ((PAGE, PAGE), ("//evil.example", "/"), ("https://evil.example/x", "/")):
        answer = client.post("/login", data={"token": secret, "csrf": csrf(client), "next": target})
        assert answer.headers["location"] == expected
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and "promptlane_token" in v)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert secret not in client.get("/").text  # the page never shows the secret


def test_a_post_without_the_csrf_value_changes_nothing(login: Login, registry: Registry) -> None:
    client = login("admin")
    answer = client.post(f"{PAGE}/-/edit", data=editor_form(content_1="Hi {{ ticket }}"))
    assert answer.status_code == 403
    assert "the form expired" in answer.text
    forged = client.post(f"{PAGE}/-/edit", data={**editor_form(content_1="Hi {{ ticket }}"), "csrf": "guessed"})
    assert forged.status_code == 403
    assert [v.number for v in registry.versions(REPLY)] == [1]


def test_a_read_token_sees_no_edit_or_move_forms_and_its_posts_are_403(login: Login, registry: Registry) -> None:
    client = login("read")
    page = client.get(PAGE).text
    assert "/-/edit" not in page and 'id="move-label"' not in page

    assert post(client, f"{PAGE}/-/edit", **editor_form(content_1="Hi {{ ticket }}")).status_code == 403
    moved = post(client, f"{PAGE}/-/labels", label="staging", target="1")
    assert moved.status_code == 403
    assert "needs promote" in moved.text
    assert registry.labels(REPLY) == [] or all(s.label != "staging" for s in registry.labels(REPLY))


def test_a_logout_forgets_the_token(login: Login) -> None:
    client = login("read")
    assert client.get("/").status_code == 200
    post(client, "/logout")
    assert client.get("/").status_code == 303


def test_without_auth_the_pages_need_no_login_on_loopback(login: Login) -> None:
    client = login(auth=False)
    assert client.get(PAGE).status_code == 200
    assert client.get("/login").headers["location"] == "/"


# --- reading ------------------------------------------------------------------------------------------------


def test_the_prompt_list_groups_by_folder_and_searches(login: Login) -> None:
    client = login("read")
    page = text(client.get("/").text)
    assert "shared/" in page and "support/" in page and "support/reply" in page and "v1" in page
    found = text(client.get("/?q=ticket").text)
    assert "support/reply" in found and "shared/tone" not in found
    assert "No prompts match" in text(client.get("/?q=nothing-like-this").text)


def test_output_is_escaped(login: Login, registry: Registry) -> None:
    registry.push_spec("evil/one", {"description": "<script>alert(1)</script>", "template": "<b>{{ x }}</b>"})
    client = login("read")
    for path in ("/", "/prompts/evil/one"):
        html = client.get(path).text
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_prompt_page_shows_labels_gate_verdicts_versions_and_history(login: Login, registry: Registry) -> None:
    registry.set_label(REPLY, "staging", 1, reason="try it")
    page = text(login("read").get(PAGE).text)
    assert "production protected" in page
    assert "staging v1" in page
    assert "not yet" in page and "no eval run of support/reply@1" in page
    assert "try it" in page  # the history's reason
    assert "evals/reply.yaml" in page  # what the gate looks for


def test_the_diff_shows_each_changed_field_side_by_side(login: Login, registry: Registry) -> None:
    spec = dict(registry.version(REPLY, 1).spec)
    spec["messages"] = [spec["messages"][0], {"role": "user", "content": "Ticket: {{ ticket }}"}]
    spec.pop("includes")
    spec["model_settings"] = {"temperature": 0.5, "max_tokens": 400}
    registry.push_spec(REPLY, spec, message="v2")

    html = login("read").get(f"{PAGE}/-/diff?a=1&b=2").text

    assert re.findall(r'data-field="([a-z_]+)"', html) == ["model_settings", "messages"]
    assert re.search(r'<tr class="changed"><td><pre>.*temperature: 0.2</pre></td><td><pre>.*temperature: 0.5', html)
    assert "Ticket: {{ ticket }}" in html


# --- the editor ---------------------------------------------------------------------------------------------


def test_saving_pushes_a_version_and_identical_content_says_so(login: Login, registry: Registry) -> None:
    client = login("write")
    assert "Save as a new version" in client.get(f"{PAGE}/-/edit").text

    saved = post(client, f"{PAGE}/-/edit", **editor_form(content_1="Ticket: {{ ticket }}"))
    assert saved.status_code == 303
    assert "saved+as+v2" in saved.headers["location"]
    version = registry.version(REPLY, 2)
    assert version.message == "from the browser"
    assert version.author is not None and version.author.startswith("browser (token ui-write")
    assert version.spec["includes"]["shared/tone"]["version"] == 1  # includes resolved and frozen as on push

    again = post(client, f"{PAGE}/-/edit", **editor_form(content_1="Ticket: {{ ticket }}", base="2"))
    assert "identical+to+v2" in again.headers["location"]
    assert len(registry.versions(REPLY)) == 2


def test_a_template_error_is_shown_at_its_field_and_line_and_nothing_is_saved(login: Login, registry: Registry) -> None:
    client = login("write")
    answer = post(client, f"{PAGE}/-/edit", **editor_form(content_0="Hello\n{{ customer }\nmore"))
    assert answer.status_code == 422
    assert re.search(r'data-field="content_0">line 2: ', answer.text), answer.text
    assert "{{ customer }\nmore" in answer.text  # the text as typed, to fix
    bad_yaml = post(client, f"{PAGE}/-/edit", **editor_form(variables="customer: {type: string\nticket: x"))
    assert bad_yaml.status_code == 422
    assert re.search(r'data-field="variables">line \d: not valid YAML', bad_yaml.text)
    assert len(registry.versions(REPLY)) == 1


def test_the_preview_renders_the_form_with_the_variables_given(login: Login, registry: Registry) -> None:
    client = login("read")
    answer = client.post(
        f"{PAGE}/-/preview",
        data=editor_form(**{"var.customer": "Ana", "var.ticket": "Where is <b>123</b>?", "var.tier": "pro"}),
        headers={"X-CSRF-Token": csrf(client)},
    ).json()
    assert answer["messages"] == [
        {
            "role": "system",
            "content": (
                "You help Ana (pro plan).\nBe warm and concise. Mention that pro customers get priority handling."
            ),
        },
        {"role": "user", "content": "Where is <b>123</b>?"},
    ]
    assert [v["name"] for v in answer["variables"]] == ["customer", "ticket", "tier"]
    assert len(registry.versions(REPLY)) == 1  # a preview stores nothing


def test_the_preview_names_a_template_errors_field_and_line_and_missing_variables(login: Login) -> None:
    client = login("read")
    headers = {"X-CSRF-Token": csrf(client)}
    broken = client.post(f"{PAGE}/-/preview", data=editor_form(content_1="ok\n{% if %}"), headers=headers).json()
    assert (broken["field"], broken["line"]) == ("content_1", 2)
    missing = client.post(f"{PAGE}/-/preview", data=editor_form(), headers=headers).json()
    assert missing["missing"] is True and "customer" in missing["error"]
    assert client.post(f"{PAGE}/-/preview", data=editor_form()).status_code == 403  # no CSRF value


# --- labels through the gate ----------------------------------------------------------------------------------


def test_a_gated_move_without_a_passing_run_is_refused_with_the_reasons(login: Login, registry: Registry) -> None:
    client = login("promote")
    answer = post(client, f"{PAGE}/-/labels", label="production", target="1", reason="release")
    page = text(client.get(answer.headers["location"]).text)
    assert "production is protected: support/reply@1 needs a passing eval run first" in page
    assert "no eval run of support/reply@1" in page
    assert "an admin can force the move past the gate, with a reason" in page and "--force" not in page
    assert 'name="reason" placeholder="why" value="release"' in client.get(answer.headers["location"]).text
    assert registry.labels(REPLY) == []


def test_moves_rollouts_and_rollbacks_are_recorded_with_the_reason(login: Login, registry: Registry) -> None:
    registry.push_spec(REPLY, {**_spec_without_includes(registry), "description": "v2"})
    client = login("promote")
    post(client, f"{PAGE}/-/labels", label="staging", target="1", reason="first")
    post(client, f"{PAGE}/-/labels", label="staging", target="1=90 2=10", reason="canary")
    assert registry.labels(REPLY)[0].target == {1: 90, 2: 10}

    back = post(client, f"{PAGE}/-/labels/staging/rollback", reason="too terse")

    assert "rolled+back" in back.headers["location"]
    assert registry.labels(REPLY)[0].target == {1: 100}
    reasons = [event.reason for event in registry.history(REPLY, "staging")]
    assert reasons == ["first", "canary", "too terse"]
    assert registry.history(REPLY, "staging")[-1].actor.startswith("browser (token ui-promote")


def test_forcing_past_the_gate_needs_admin(login: Login, registry: Registry) -> None:
    promoter = login("promote")
    answer = post(promoter, f"{PAGE}/-/labels", label="production", target="1", reason="hotfix", force="on")
    assert "needs+a+token+with+the+admin+scope" in answer.headers["location"]
    assert registry.labels(REPLY) == []
    post(login("admin"), f"{PAGE}/-/labels", label="production", target="1", reason="hotfix", force="on")
    assert registry.history(REPLY, "production")[-1].gate == "forced"


def _spec_without_includes(registry: Registry) -> dict[str, Any]:
    spec = dict(registry.version(REPLY, 1).spec)
    spec.pop("includes")
    return spec


# --- scenarios and runs -------------------------------------------------------------------------------------


def wait_for_run(client: TestClient, url: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.get(f"{url}/progress").json()["finished"]:
            return client.get(url).text
        time.sleep(0.05)
    pytest.fail("the run did not finish")


def test_scenarios_run_from_the_browser_open_the_gate(login: Login, registry: Registry) -> None:
    client = login("write", "promote")
    listing = text(client.get(f"{PAGE}/-/scenarios").text)
    assert "evals/reply.yaml" in listing and "refund" in listing

    started = post(client, f"{PAGE}/-/scenarios", version="1", mode="configured")
    url = started.headers["location"]
    assert re.fullmatch(r"/runs/[0-9a-f]{32}", url)
    page = text(wait_for_run(client, url))

    assert "passed" in page and "python:examples.support.model:respond" in page
    (record,) = registry.store.list_runs(REPLY)
    assert record.status == "passed" and record.created_by and record.created_by.startswith("browser")
    assert f"{record.passed}/{record.cases} passed" in page
    post(client, f"{PAGE}/-/labels", label="production", target="1", reason="evidence")
    assert registry.labels(REPLY)[0].target == {1: 100}


def test_a_run_page_lists_failures_first_with_reasons_and_compares(login: Login, registry: Registry) -> None:
    client = login("write")
    first = wait_for_run(client, post(client, f"{PAGE}/-/scenarios", version="1").headers["location"])
    assert "Trace id" in first
    spec = _spec_without_includes(registry)
    spec["messages"][0]["content"] = "Refuse everything."  # the example's model then fails expectations
    registry.push_spec(REPLY, spec)
    second = wait_for_run(client, post(client, f"{PAGE}/-/scenarios", version="2").headers["location"])

    statuses = re.findall(r'<div class="case (passed|failed|error)">', second)
    assert "failed" in statuses and statuses == sorted(statuses, key=["error", "failed", "passed"].index)
    assert "✗" in second
    a, b = (record.id for record in reversed(registry.store.list_runs(REPLY)))
    compared = text(client.get(f"/runs/compare?a={a}&b={b}").text)
    assert "Newly failing" in compared


def test_a_replay_run_without_recordings_says_so_per_case(login: Login, registry: Registry) -> None:
    client = login("write")
    page = wait_for_run(client, post(client, f"{PAGE}/-/scenarios", version="1", mode="replay").headers["location"])
    assert "error" in page
    (record,) = registry.store.list_runs(REPLY)
    assert record.settings["cache"] == "replay"


def test_an_unknown_page_is_an_html_404_and_an_unknown_api_path_stays_json(login: Login) -> None:
    client = login("read")
    page = client.get("/nothing/<here>")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<here>" not in page.text and "&lt;here&gt;" in page.text
    api = client.get("/api/v1/nothing")
    assert api.status_code == 404 and api.json()["type"] == "HttpError"
    missing = client.get("/prompts/no/such/prompt")
    assert missing.status_code == 404 and "no prompt named &#39;no/such/prompt&#39;" in missing.text


def test_a_login_form_posted_from_elsewhere_is_refused(registry: Registry) -> None:
    _, secret = create_token(registry.store, "ana", ["read"], created_by="t")
    client = TestClient(create_app(registry), follow_redirects=False)
    answer = client.post("/login", data={"token": secret, "next": "/"})  # no CSRF value: another site's form
    assert answer.status_code == 403
    assert "promptlane_token" not in client.cookies


def test_a_move_in_the_browser_shows_in_the_api_of_the_same_process_at_once(registry: Registry) -> None:
    _, secret = create_token(registry.store, "both", ["promote"], created_by="t")
    client = TestClient(create_app(registry, cache_ttl=60), follow_redirects=False)
    client.post("/login", data={"token": secret, "csrf": csrf(client), "next": "/"})
    api = {"Authorization": f"Bearer {secret}"}
    resolve = f"/api/v1/prompts/{REPLY}/-/resolve?label=staging"
    post(client, f"{PAGE}/-/labels", label="staging", target="1", reason="first")
    assert client.get(resolve, headers=api).json()["version"]["number"] == 1  # now cached for 60 s
    registry.push_spec(REPLY, {**_spec_without_includes(registry), "description": "v2"})

    post(client, f"{PAGE}/-/labels", label="staging", target="2", reason="second")

    assert client.get(resolve, headers=api).json()["version"]["number"] == 2


@pytest.mark.parametrize("method", ["HEAD", "PUT", "DELETE"])
def test_only_get_and_head_read_and_every_other_method_needs_the_write_scope_and_csrf(
    login: Login, registry: Registry, method: str
) -> None:
    client = login("read")
    form = editor_form(content_1="Hi {{ ticket }}")
    for path in (f"{PAGE}/-/edit", f"{PAGE}/-/scenarios"):
        answer = client.request(method, path, data=form)
        assert answer.status_code in (200, 403, 405), (path, answer.status_code)
    assert [v.number for v in registry.versions(REPLY)] == [1]
    assert registry.store.list_runs(REPLY) == []


def test_saving_over_a_version_saved_meanwhile_asks_first(login: Login, registry: Registry) -> None:
    client = login("write")
    opened = client.get(f"{PAGE}/-/edit").text
    assert 'name="base" value="1"' in opened
    registry.push_spec(REPLY, {**_spec_without_includes(registry), "description": "someone else's"})

    conflict = post(client, f"{PAGE}/-/edit", **editor_form(content_1="Mine: {{ ticket }}"))

    assert conflict.status_code == 409
    assert "v2 was saved after you opened v1" in conflict.text and "/-/diff?a=1&amp;b=2" in conflict.text
    assert "Mine: {{ ticket }}" in conflict.text  # nothing typed is lost
    assert len(registry.versions(REPLY)) == 2
    again = post(client, f"{PAGE}/-/edit", **editor_form(content_1="Mine: {{ ticket }}", base="2"))
    assert "saved+as+v3" in again.headers["location"]


@pytest.mark.parametrize(
    ("model_line", "status", "reason"),
    [
        ("", 400, "names the model &#39;python:os:getcwd&#39;, which is Python code"),
        ("model: ''\n", 422, "plain.yaml:5: model: must not be empty"),
        ("    model: ''\n", 422, "plain.yaml:5: scenarios.0.model: must not be empty"),
    ],
    ids=["no model", "empty document model", "empty scenario model"],
)
def test_a_version_cannot_make_the_server_run_its_own_python_model(
    login: Login, registry: Registry, model_line: str, status: int, reason: str
) -> None:
    registry.push_spec(REPLY, {**_spec_without_includes(registry), "model": "python:os:getcwd"})
    (registry.settings.evals_dir / "plain.yaml").write_text(
        "prompt: support/reply\nscenarios:\n  - name: plain\n    variables: {customer: A, ticket: B}\n" + model_line
    )
    client = login("write")
    refused = post(client, f"{PAGE}/-/scenarios", version="2")
    assert refused.status_code == status
    assert reason in refused.text
    assert registry.store.list_runs(REPLY) == []


def test_runs_started_from_the_browser_are_bounded(
    login: Login, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptlane.server.ui import evals

    monkeypatch.setattr(evals, "MAX_RUNNING", 0)
    refused = post(login("write"), f"{PAGE}/-/scenarios", version="1")
    assert refused.status_code == 429
    assert "still running: wait for one to end" in refused.text


def test_the_preview_refuses_an_alias_bomb_in_a_yaml_field(login: Login) -> None:
    client = login("read")
    headers = {"X-CSRF-Token": csrf(client)}
    levels = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]" for n in range(1, 7)]  # 10 ** 6 values
    variables = "customer:\n  type: string\n  default:\n" + "".join(f"    {line}\n" for line in levels)
    answer = client.post(f"{PAGE}/-/preview", data=editor_form(variables=variables), headers=headers).json()
    assert (answer["field"], answer["line"]) == ("variables", 9)
    assert "expands to more than 200000 values" in answer["error"]
