"""The web UI through Starlette's TestClient: login and scopes, CSRF, escaping, the editor and its preview, the
diff, label moves through the gate, and scenarios run from the browser. (tests/test_ui_browser.py drives the
same pages in Chromium.)"""

from __future__ import annotations

import html
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from promptlane.config import Settings, load_settings
from promptlane.registry import Registry
from promptlane.registry.runs import CaseResult, RunRecord, ScenarioFileRef, ScenarioStats
from promptlane.registry.tables import ui_sessions
from promptlane.registry.tokens import create_token, hash_secret
from promptlane.server import create_app
from promptlane.server.ui._public import public_text
from promptlane.server.ui._sessions import SESSION, SessionPolicy

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
            answer = client.post("/login", data={"token": secret, "csrf": login_csrf(client), "next": "/"})
            assert answer.status_code == 303, answer.text
        return client

    return make


def csrf(client: TestClient) -> str:
    """The CSRF value a page of the client's session puts in its forms (the login page's before a login)."""
    page = client.get("/")
    if page.status_code == 303:
        page = client.get("/login")
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match, page.text
    return match.group(1)


def login_csrf(client: TestClient) -> str:
    """The CSRF value of the login form (a double-submit value: there is no session before the login)."""
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', client.get("/login").text)
    assert match
    return match.group(1)


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

    refused = client.post("/login", data={"token": "plt_nope", "csrf": login_csrf(client), "next": "/"})

    assert refused.status_code == 401
    assert "that token is unknown or revoked" in refused.text
    assert SESSION not in client.cookies


def test_the_login_cookie_is_http_only_and_same_site_and_the_next_page_stays_on_this_site(registry: Registry) -> None:
    _, secret = create_token(registry.store, "ana", ["read"], created_by="t")
    client = TestClient(create_app(registry), follow_redirects=False)
    for target, expected in ((PAGE, PAGE), ("//evil.example", "/"), ("https://evil.example/x", "/")):
        answer = client.post("/login", data={"token": secret, "csrf": login_csrf(client), "next": target})
        assert answer.headers["location"] == expected
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith(f"{SESSION}="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=43200" in cookie
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


# --- sessions -------------------------------------------------------------------------------------------------


def session_of(client: TestClient) -> str:
    return client.cookies[SESSION]


def with_cookie(registry: Registry, session_id: str) -> TestClient:
    """Another browser holding ``session_id`` (a copied cookie)."""
    client = TestClient(create_app(registry), follow_redirects=False, base_url="http://127.0.0.1:8750")
    client.cookies.set(SESSION, session_id)
    return client


def test_the_cookie_holds_a_session_id_and_the_registry_only_its_hash(login: Login, registry: Registry) -> None:
    client = login("read")
    session_id = session_of(client)
    assert not session_id.startswith("plt_") and len(session_id) >= 43  # 256 random bits, not the token
    with registry.store.engine.connect() as conn:
        (stored,) = conn.execute(select(ui_sessions.c.id_hash)).scalars().all()
    assert stored == hash_secret(session_id)
    assert client.get(PAGE).status_code == 200


def test_a_session_works_on_every_server_process_of_the_registry(login: Login, registry: Registry) -> None:
    session_id = session_of(login("read"))
    other = Registry(settings=load_settings(registry.settings.root))  # another process: its own store
    try:
        client = TestClient(create_app(other), follow_redirects=False)
        client.cookies.set(SESSION, session_id)
        assert client.get(PAGE).status_code == 200
    finally:
        other.close()


def test_after_a_logout_the_old_cookie_no_longer_works(login: Login, registry: Registry) -> None:
    client = login("read")
    session_id = session_of(client)
    assert with_cookie(registry, session_id).get(PAGE).status_code == 200

    out = post(client, "/logout")

    assert out.headers["location"] == "/login"
    assert client.get(PAGE).status_code == 303
    assert with_cookie(registry, session_id).get(PAGE).headers["location"] == f"/login?next={PAGE}"


def test_revoking_the_token_ends_its_sessions_at_once(login: Login, registry: Registry) -> None:
    client = login("read")
    assert client.get(PAGE).status_code == 200
    (token,) = registry.store.list_tokens()

    registry.store.revoke_token(token.name, revoked_by="t")

    assert client.get(PAGE).headers["location"] == f"/login?next={PAGE}"
    with registry.store.engine.connect() as conn:
        assert conn.execute(select(ui_sessions)).all() == []  # the ended session is dropped


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_a_session_ends_after_its_lifetime_and_after_an_idle_while(registry: Registry) -> None:
    clock = FakeClock()
    app = create_app(registry)
    app.state.ui_sessions = SessionPolicy(lifetime=timedelta(hours=12), idle=timedelta(hours=2), clock=clock)
    _, secret = create_token(registry.store, "ana", ["read"], created_by="t")

    def logged_in() -> TestClient:
        client = TestClient(app, follow_redirects=False)
        client.post("/login", data={"token": secret, "csrf": login_csrf(client), "next": "/"})
        return client

    busy = logged_in()
    for _ in range(11):  # a request every hour keeps the session alive, but not past its lifetime
        clock.now += timedelta(hours=1)
        assert busy.get(PAGE).status_code == 200
    clock.now += timedelta(minutes=59, seconds=59)
    assert busy.get(PAGE).status_code == 200
    clock.now += timedelta(seconds=1)  # 12 hours after the login
    assert busy.get(PAGE).headers["location"] == f"/login?next={PAGE}"

    idle = logged_in()
    clock.now += timedelta(hours=1, minutes=59)
    assert idle.get(PAGE).status_code == 200
    clock.now += timedelta(hours=2)  # two hours without a request
    assert idle.get(PAGE).status_code == 303

    logged_in()  # a session never used again
    clock.now += timedelta(hours=12)
    logged_in()  # a login drops the sessions that have ended
    with registry.store.engine.connect() as conn:
        assert len(conn.execute(select(ui_sessions)).all()) == 1


def test_a_csrf_value_from_another_session_is_refused(login: Login, registry: Registry) -> None:
    mine, theirs = login("admin"), login("admin")
    assert csrf(mine) != csrf(theirs)
    form = editor_form(content_1="Hi {{ ticket }}")

    forged = mine.post(f"{PAGE}/-/edit", data={**form, "csrf": csrf(theirs)})
    assert forged.status_code == 403 and "the form expired" in forged.text
    login_form = mine.post(f"{PAGE}/-/edit", data={**form, "csrf": login_csrf(mine)})  # the pre-login value
    assert login_form.status_code == 403
    assert [v.number for v in registry.versions(REPLY)] == [1]
    assert mine.post(f"{PAGE}/-/edit", data={**form, "csrf": csrf(mine)}).status_code == 303


def test_without_auth_forms_still_need_the_double_submit_value(login: Login, registry: Registry) -> None:
    client = login(auth=False)
    form = editor_form(content_1="Hi {{ ticket }}")
    assert client.post(f"{PAGE}/-/edit", data={**form, "csrf": "guessed"}).status_code == 403
    assert client.post(f"{PAGE}/-/edit", data={**form, "csrf": csrf(client)}).status_code == 303
    assert SESSION not in client.cookies


# --- headers, messages and paths ---------------------------------------------------------------------------


def test_every_page_and_static_file_carries_the_security_headers(login: Login, registry: Registry) -> None:
    client = login("read")
    answers = {
        "page": client.get(PAGE),
        "error page": client.get("/prompts/no/such"),
        "refused write": post(client, f"{PAGE}/-/labels", label="staging", target="1"),
        "script request": client.get("/runs/abc/progress"),
        "stylesheet": client.get("/static/ui.css"),
        "script": client.get("/static/ui.js"),
        "login page": TestClient(create_app(registry)).get("/login"),
        "redirect to the login": TestClient(create_app(registry), follow_redirects=False).get(PAGE),
        "no such page": client.get("/no/such/page"),
        "no such method": client.delete("/login"),
    }
    for what, answer in answers.items():
        headers = answer.headers
        assert headers["x-frame-options"] == "DENY", what
        assert "frame-ancestors 'none'" in headers["content-security-policy"], what
        assert "script-src 'self'" in headers["content-security-policy"], what
        assert headers["x-content-type-options"] == "nosniff", what
        expected = "no-cache" if what in ("stylesheet", "script") else "no-store"
        assert headers["cache-control"] == expected, what
    assert answers["stylesheet"].status_code == 200 and answers["error page"].status_code == 404
    assert (answers["no such page"].status_code, answers["no such method"].status_code) == (404, 405)


def test_the_pages_have_no_inline_script_the_policy_would_block(login: Login) -> None:
    client = login("admin")
    for path in ("/", PAGE, f"{PAGE}/-/edit", f"{PAGE}/-/scenarios", "/runs", "/login"):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        assert "style=" not in html, path


@pytest.mark.parametrize(
    "query",
    [
        "?notice=%3Cb%3Epwned%3C%2Fb%3E",
        "?error=Your+session+expired%2C+log+in+at+evil.example",
        "?notice=Log+in+again+at+evil.example",
        "?notice=saved&version=99",
        "?notice=saved&version=1%3Cb%3E",
        "?notice=moved&label=evil.example",
    ],
)
def test_a_page_shows_only_fixed_messages_from_its_address(login: Login, query: str) -> None:
    page = login("read").get(f"{PAGE}{query}").text
    assert 'class="notice"' not in page and 'class="error"' not in page
    assert "evil.example" not in page and "pwned" not in page and "v99" not in page


def test_a_known_notice_is_shown_with_a_version_the_prompt_has(login: Login) -> None:
    page = text(login("read").get(f"{PAGE}?notice=saved&version=1").text)
    assert "saved as v1" in page


def test_a_broken_scenario_file_is_named_relative_to_the_project(login: Login, registry: Registry) -> None:
    (registry.settings.evals_dir / "broken.yaml").write_text("prompt: support/reply\nscenarios:\n  - nme: x\n")
    page = login("read").get(f"{PAGE}/-/scenarios").text
    assert "evals/broken.yaml:3" in page
    assert str(registry.settings.root) not in page and str(registry.settings.root.resolve()) not in page


def test_messages_lose_every_server_path() -> None:
    root = Path("/srv/project")
    assert public_text("/srv/project/evals/plain.yaml:5: model: must not be empty", root) == (
        "evals/plain.yaml:5: model: must not be empty"
    )
    assert public_text("registry sqlite:////var/lib/pl/registry.db is unavailable", root) == (
        "registry sqlite:///.../registry.db is unavailable"
    )
    assert public_text('File "/usr/lib/python3/x.py", line 3', root) == 'File ".../x.py", line 3'
    kept = "support/reply@2 at http://127.0.0.1:8750/prompts/a: 3/4 of a / b"
    assert public_text(kept, root) == kept


# --- run pages -------------------------------------------------------------------------------------------------


def test_a_run_page_shows_a_page_of_its_cases_failing_first(login: Login, registry: Registry) -> None:
    store: Any = registry.store
    record = RunRecord(
        id=uuid.uuid4().hex, prompt=REPLY, version=1, model="test", started_at=datetime.now(timezone.utc)
    )
    store.create_run(record)
    statuses = ["failed" if n % 40 == 7 else "error" if n % 500 == 3 else "passed" for n in range(2000)]
    cases = [CaseResult(scenario="s", case=f"s[{n}]", file="evals/s.yaml", status=st) for n, st in enumerate(statuses)]  # type: ignore[arg-type]
    for start in range(0, 2000, 500):
        store.add_cases(record.id, cases[start : start + 500])
    failing = [c.case for c in cases if c.status == "error"] + [c.case for c in cases if c.status == "failed"]
    assert len(failing) == 54
    client = login("read")
    url = f"/runs/{record.id}"

    def shown(html: str) -> list[str]:
        return re.findall(r"</span> s · (s\[\d+\])", html)

    first = client.get(url).text
    assert shown(first) == failing  # only the failing cases, errors first
    assert "Failing (54)" in first and "Passed (1946)" in first and "All, failing first (2000)" in first

    every = client.get(f"{url}?show=all").text
    assert shown(every) == failing + [c.case for c in cases if c.status == "passed"][:46]
    assert "cases 1 to 100 of 2000, page 1 of 20" in text(every)
    assert 'href="?show=all&amp;page=2" rel="next"' in every and 'rel="prev"' not in every

    third = client.get(f"{url}?show=all&page=3").text
    passed = [c.case for c in cases if c.status == "passed"]
    assert shown(third) == passed[146:246]
    assert 'href="?show=all&amp;page=2" rel="prev"' in third and 'href="?show=all&amp;page=4" rel="next"' in third

    last = client.get(f"{url}?show=passed&page=999").text  # past the end: the last page
    assert shown(last) == passed[1900:] and 'rel="next"' not in last


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
    assert saved.headers["location"] == f"{PAGE}?notice=saved&version=2"
    assert "saved as v2" in text(client.get(saved.headers["location"]).text)
    version = registry.version(REPLY, 2)
    assert version.message == "from the browser"
    assert version.author is not None and version.author.startswith("browser (token ui-write")
    assert version.spec["includes"]["shared/tone"]["version"] == 1  # includes resolved and frozen as on push

    again = post(client, f"{PAGE}/-/edit", **editor_form(content_1="Ticket: {{ ticket }}", base="2"))
    assert again.headers["location"] == f"{PAGE}?notice=unchanged&version=2"
    assert len(registry.versions(REPLY)) == 2


def test_the_editor_shows_yaml_fields_that_save_back_as_they_were(login: Login, registry: Registry) -> None:
    # A stop sequence ending in NEL read back as a space from plain PyYAML, and a bidi control in a tool's
    # description went raw into the field: saving the page unchanged must change nothing.
    spec = dict(registry.version(REPLY, 1).spec)
    spec.pop("includes")
    spec["model_settings"] = {"stop_sequences": ["END\x85", "\u2028"], "temperature": 0.2}
    spec["tools"] = [{"name": "lookup", "description": "Look \u202eup\u202c", "parameters": {"type": "object"}}]
    registry.push_spec(REPLY, spec, message="v2")
    client = login("write")
    page = client.get(f"{PAGE}/-/edit").text
    fields = {
        name: html.unescape(value)
        for name, value in re.findall(r'<textarea name="(\w+)"[^>]*>(.*?)</textarea>', page, re.S)
    }
    fields.update(
        (name, html.unescape(value))
        for name, value in re.findall(r'<input name="(description|model)" value="([^"]*)"', page)
    )
    assert '"END\\N"' in fields["model_settings"] and "\\u202E" in fields["tools"]  # YAML's escapes
    assert "\u202e" not in page

    saved = post(client, f"{PAGE}/-/edit", **editor_form(**fields, base="2"))

    assert saved.headers["location"] == f"{PAGE}?notice=unchanged&version=2"


def test_the_diff_marks_the_characters_a_prompt_hides(login: Login, registry: Registry) -> None:
    spec = dict(registry.version(REPLY, 1).spec)
    spec.pop("includes")
    spec["description"] = "Reply\U000e0049\U000e0047 \U0001f44d"  # a string field is shown as it is
    registry.push_spec(REPLY, spec, message="v2")

    html = login("read").get(f"{PAGE}/-/diff?a=1&b=2").text

    marked = '<span class="hidden-char" title="U+{}, a character that shows as nothing">\\U{:08x}</span>'
    shown = "Reply" + marked.format("E0049", 0xE0049) + marked.format("E0047", 0xE0047) + " \U0001f44d"
    assert shown in html
    assert "\U000e0049" not in html
    for page in ("/", PAGE):  # the list of prompts, the prompt's page
        assert shown in login("read").get(page).text


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
    assert answer.status_code == 409  # shown in place: the refusal never travels through the address
    page = text(answer.text)
    assert "production is protected: support/reply@1 needs a passing eval run first" in page
    assert "no eval run of support/reply@1" in page
    assert "an admin can force the move past the gate, with a reason" in page and "--force" not in page
    assert 'name="reason" placeholder="why" value="release"' in answer.text
    assert registry.labels(REPLY) == []


def test_moves_rollouts_and_rollbacks_are_recorded_with_the_reason(login: Login, registry: Registry) -> None:
    registry.push_spec(REPLY, {**_spec_without_includes(registry), "description": "v2"})
    client = login("promote")
    post(client, f"{PAGE}/-/labels", label="staging", target="1", reason="first")
    post(client, f"{PAGE}/-/labels", label="staging", target="1=90 2=10", reason="canary")
    assert registry.labels(REPLY)[0].target == {1: 90, 2: 10}

    back = post(client, f"{PAGE}/-/labels/staging/rollback", reason="too terse")

    assert back.headers["location"] == f"{PAGE}?notice=rolled-back&label=staging#labels"
    assert "staging rolled back to v1" in text(client.get(back.headers["location"]).text)
    assert registry.labels(REPLY)[0].target == {1: 100}
    reasons = [event.reason for event in registry.history(REPLY, "staging")]
    assert reasons == ["first", "canary", "too terse"]
    assert registry.history(REPLY, "staging")[-1].actor.startswith("browser (token ui-promote")


def test_forcing_past_the_gate_needs_admin(login: Login, registry: Registry) -> None:
    promoter = login("promote")
    answer = post(promoter, f"{PAGE}/-/labels", label="production", target="1", reason="hotfix", force="on")
    assert "a forced move past the gate needs a token with the admin scope" in answer.text
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
    url = post(client, f"{PAGE}/-/scenarios", version="2").headers["location"]
    second = wait_for_run(client, url)

    assert set(re.findall(r'<div class="case (passed|failed|error)">', second)) == {"failed"}  # failing, first
    assert "✗" in second
    every = client.get(f"{url}?show=all").text
    statuses = re.findall(r'<div class="case (passed|failed|error)">', every)
    assert "failed" in statuses and "passed" in statuses
    assert statuses == sorted(statuses, key=["error", "failed", "passed"].index)
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
    assert SESSION not in client.cookies


def test_a_move_in_the_browser_shows_in_the_api_of_the_same_process_at_once(registry: Registry) -> None:
    _, secret = create_token(registry.store, "both", ["promote"], created_by="t")
    client = TestClient(create_app(registry, cache_ttl=60), follow_redirects=False)
    client.post("/login", data={"token": secret, "csrf": login_csrf(client), "next": "/"})
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
    assert again.headers["location"] == f"{PAGE}?notice=saved&version=3"


@pytest.mark.parametrize(
    ("model_line", "status", "reason"),
    [
        ("", 400, "names the model &#39;python:os:getcwd&#39;, which is Python code"),
        ("model: ''\n", 422, "evals/plain.yaml:5: model: must not be empty"),
        ("    model: ''\n", 422, "evals/plain.yaml:5: scenarios.0.model: must not be empty"),
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
    assert str(registry.settings.root) not in refused.text  # no server path, only the project's own
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


def test_previews_are_rate_limited_per_token(login: Login, registry: Registry) -> None:
    # Sixty parallel previews starved the server's threads: each token gets a burst, then a few a second.
    first, second = login("read"), login("read")
    now = [100.0]
    work = first.app.state.promptlane.work  # type: ignore[attr-defined]
    work.clock = lambda: now[0]
    form = editor_form(**{"var.customer": "Ana", "var.ticket": "Hi", "var.tier": "pro"})

    def preview(client: TestClient) -> Any:
        return client.post(f"{PAGE}/-/preview", data=form, headers={"X-CSRF-Token": csrf(client)})

    answers = [preview(first).status_code for _ in range(work.burst + 3)]
    assert answers == [200] * work.burst + [429] * 3
    refused = preview(first)
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"] == "too many previews: try again in 1 s"
    second.app.state.promptlane.work.clock = lambda: now[0]  # type: ignore[attr-defined]
    assert preview(second).status_code == 200  # another token has its own budget
    now[0] += 1.0
    assert [preview(first).status_code for _ in range(5)] == [200] * 4 + [429]  # four a second


# --- the gate explained: the prompt page shows the report `promptlane gate` prints and the API sends --------------


def finished_run(registry: Registry, version: int, *, passed: int, cases: int) -> RunRecord:
    """A finished run of support/reply@``version`` on the inputs as they are now, by the gate's model: one
    scenario, ``refund``, that needs 50%."""
    parts = registry.gate_report(REPLY, version=version).parts
    now = datetime.now(timezone.utc)
    record = RunRecord(
        id=uuid.uuid4().hex,
        prompt=REPLY,
        version=version,
        model=registry.settings.gate_model_for(REPLY) or "test",
        status="passed",
        started_at=now,
        finished_at=now,
        created_by="ci",
        scenario_files=[ScenarioFileRef(path=part.name, sha256=part.now) for part in parts],
        scenarios=[
            ScenarioStats(
                name="refund", file="evals/reply.yaml", threshold=0.5, cases=cases, passed=passed, failed=cases - passed
            )
        ],
    )
    registry.store.create_run(record)
    registry.store.update_run(record)
    return record


def gate_section(html: str) -> str:
    match = re.search(r'<section id="gate">(.*?)</section>', html, re.S)
    assert match, html
    return match.group(1)


def api_report(client: TestClient, registry: Registry) -> dict[str, Any]:
    """The API's report on support/reply (the newest version, production), as another client reads it."""
    _, secret = create_token(registry.store, f"api-{time.monotonic_ns()}", ["read"], created_by="t")
    answer = client.get(f"/api/v1{PAGE}/-/gate", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_prompt_page_explains_the_gate_of_each_protected_label(login: Login, registry: Registry) -> None:
    client = login("read")
    closed = gate_section(client.get(PAGE).text)
    assert "production for v1: closed" in text(closed)
    assert "No run to look at." in closed
    parts = registry.gate_report(REPLY).parts
    assert closed.count('class="state-not-covered"') == len(parts) > 2  # the version, the model, evals/...
    assert "<li>no eval run of support/reply@1: promptlane eval --prompt support/reply --version 1</li>" in closed

    record = finished_run(registry, 1, passed=3, cases=4)
    opened = gate_section(client.get(PAGE).text)

    assert "production for v1: open" in text(opened)
    assert f'Evidence: <a href="/runs/{record.id}">run {record.id[:12]}</a>' in " ".join(opened.split())
    assert opened.count('class="state-current"') == len(parts)
    assert "refund evals/reply.yaml 3/4 (75%) 50%" in text(opened)
    assert "To open the gate" not in opened
    assert api_report(client, registry)["verdict"]["passed"] is True


def test_the_page_shows_the_serving_versions_rates_and_the_same_problems_as_the_api(
    login: Login, registry: Registry
) -> None:
    finished_run(registry, 1, passed=30, cases=30)
    registry.set_label(REPLY, "production", 1)
    registry.push_spec(REPLY, {**_spec_without_includes(registry), "description": "v2"})
    finished_run(registry, 2, passed=15, cases=30)
    client = login("read")

    shown = gate_section(client.get(PAGE).text)

    assert "production for v2: closed" in text(shown)
    assert "Against v1, which production serves" in shown
    assert "15/30 (50%) vs 30/30 (100%) serving, p&lt;0.001" in shown and '<span class="tag">regressed</span>' in shown
    problems = re.findall(r"<li>(.*?)</li>", shown)
    assert [p.replace("<", "&lt;") for p in api_report(client, registry)["verdict"]["problems"]] == problems
    assert len(problems) == 1 and "15/30 (50%) vs 30/30 (100%) serving, p&lt;0.001" in problems[0]


def test_on_a_server_without_the_project_the_page_and_its_moves_judge_as_the_api(tmp_path: Path) -> None:
    # No scenario files here: the server holds current what the newest complete run saw (as the API does), so the
    # page says the gate is open, and a move from it goes through (it was refused: 'no scenario files target').
    registry = Registry(
        settings=Settings(
            root=tmp_path, registry=f"sqlite:///{tmp_path / 'server.db'}", protected_labels=("production",)
        )
    )
    registry.push_spec(REPLY, {"template": "Hello {{ name }}", "model": "test"})
    content = registry.version(REPLY, 1).content_hash
    now = datetime.now(timezone.utc)
    record = RunRecord(
        id=uuid.uuid4().hex,
        prompt=REPLY,
        version=1,
        model="test",
        status="passed",
        started_at=now,
        finished_at=now,
        scenario_files=[
            ScenarioFileRef(path="evals/reply.yaml", sha256="5" * 64),
            ScenarioFileRef(path="version", sha256=content),
        ],
        scenarios=[ScenarioStats(name="greets", file="evals/reply.yaml", cases=2, passed=2)],
    )
    registry.store.create_run(record)
    registry.store.update_run(record)
    client = TestClient(create_app(registry, auth=False), follow_redirects=False, base_url="http://127.0.0.1:8750")

    assert "production for v1: open" in text(gate_section(client.get(PAGE).text))
    moved = post(client, f"{PAGE}/-/labels", label="production", target="1", reason="release")

    assert moved.status_code == 303, text(moved.text)
    assert registry.history(REPLY, "production")[-1].evidence == record.id
    registry.close()


# --- two people for a protected move: moves that wait for approval, approved or rejected in the browser ---------


@pytest.fixture
def approval(registry: Registry) -> Registry:
    """The demo's project with ``production`` requiring approval, and a passing run of v1."""
    from dataclasses import replace

    registry.settings = replace(registry.settings, require_approval=("production",))
    finished_run(registry, 1, passed=3, cases=4)
    return registry


def token_of(client: TestClient) -> str:
    """The name of the token the client logged in with (the page's header shows it)."""
    match = re.search(r'<span class="who">\s*(\S+) \(', client.get("/").text)
    assert match
    return match.group(1)


def approvals_section(html: str) -> str:
    match = re.search(r'<div id="approvals">(.*?)</div>', html, re.S)
    assert match, html
    return match.group(1)


def ask(client: TestClient, target: str = "1") -> int:
    """Move production from the page: it waits for approval; the id of the request."""
    asked = post(client, f"{PAGE}/-/labels", label="production", target=target, reason="first release")
    assert asked.status_code == 303, text(asked.text)
    match = re.fullmatch(
        rf"{PAGE}\?notice=requested&label=production&request=(\d+)#approvals", asked.headers["location"]
    )
    assert match, asked.headers["location"]
    return int(match.group(1))


def test_a_move_that_requires_approval_waits_and_the_page_says_who_may_approve(
    login: Login, approval: Registry
) -> None:
    alice = login("promote")
    name = token_of(alice)
    request = ask(alice)

    page = alice.get(f"{PAGE}?notice=requested&label=production&request={request}").text

    assert (
        text(page).count(
            f"production has not moved: request {request} (move - → v1, asked by {name}) waits for approval. "
            f"Anyone but {name} whose token has the promote scope may approve or reject it below."
        )
        == 1
    )
    assert '<p class="notice waiting" role="status">' in page  # not the look of a move that happened
    assert approval.labels(REPLY) == []
    assert "production protected requires approval" in text(page)
    (run,) = approval.store.list_runs(REPLY)
    row = text(approvals_section(page))
    assert f"#{request} production move: - → v1 browser (token {name})" in row
    assert f"first release run {run.id[:12]}" in row
    assert "you asked: someone else approves it" in row and "Withdraw" in row
    assert "/approve" not in approvals_section(page)  # the requester is offered no Approve button
    (pending,) = approval.requests(REPLY)
    assert (pending.id, pending.requester, pending.requested_by) == (request, name, f"browser (token {name})")


def test_the_requester_cannot_approve_their_own_move_in_the_browser_or_the_api(approval: Registry) -> None:
    _, secret = create_token(approval.store, "alice", ["promote"], created_by="t")
    alice = TestClient(create_app(approval), follow_redirects=False, base_url="http://127.0.0.1:8750")
    alice.post("/login", data={"token": secret, "csrf": login_csrf(alice), "next": "/"})
    request = ask(alice)

    refused = post(alice, f"{PAGE}/-/labels/production/approve", request=str(request))

    assert refused.status_code == 409
    assert 'class="error" role="alert"' in refused.text and 'id="labels"' in refused.text  # the page, not a 500
    assert (
        "alice asked for this move of support/reply production: someone else must approve it "
        "(production requires approval)"
    ) in text(refused.text)
    # A move asked for in the browser is the token's, as in the API: the same token cannot approve it there.
    api = alice.post(
        f"/api/v1{PAGE}/-/labels/production/approve",
        json={"request": request},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert (api.status_code, api.json()["type"]) == (409, "ApprovalError")
    assert approval.labels(REPLY) == [] and [r.id for r in approval.requests(REPLY)] == [request]


def test_another_tokens_user_approves_and_the_label_moves(login: Login, approval: Registry) -> None:
    alice, bob = login("promote"), login("promote")
    asker, approver = token_of(alice), token_of(bob)
    request = ask(alice)
    section = approvals_section(bob.get(PAGE).text)
    assert f'action="/prompts/{REPLY}/-/labels/production/approve"' in section
    assert f'name="request" value="{request}"' in section and "you asked" not in section

    approved = post(bob, f"{PAGE}/-/labels/production/approve", request=str(request))

    assert approved.status_code == 303, text(approved.text)
    assert approved.headers["location"] == f"{PAGE}?notice=approved&label=production&request={request}#labels"
    page = bob.get(approved.headers["location"]).text
    assert f"request {request} approved: production now points at v1" in text(page)
    assert approval.labels(REPLY)[0].target == {1: 100}
    assert approval.requests(REPLY) == [] and 'id="approvals"' not in page
    (event,) = approval.history(REPLY, "production")
    assert (event.actor, event.requested_by) == (f"browser (token {approver})", f"browser (token {asker})")
    history = text(re.search(r'<section id="history">(.*?)</section>', page, re.S).group(1))  # type: ignore[union-attr]
    asked_at = event.requested_at.strftime("%Y-%m-%d %H:%M")  # type: ignore[union-attr]
    assert (
        f"production move: - → v1 asked by browser (token {asker}) ({asked_at}), approved by browser (token {approver})"
    ) in history


def test_a_rejected_move_leaves_the_label_where_it_is(login: Login, approval: Registry) -> None:
    alice, bob = login("promote"), login("promote")
    request = ask(alice)

    rejected = post(bob, f"{PAGE}/-/labels/production/reject", request=str(request), reason="not this week")

    assert rejected.headers["location"] == f"{PAGE}?notice=rejected&label=production&request={request}#labels"
    page = bob.get(rejected.headers["location"]).text
    assert f"request {request} rejected: production stays at -" in text(page)
    assert approval.labels(REPLY) == [] and approval.requests(REPLY) == []
    decided: Any = approval.store
    record = decided.get_request(REPLY, request)
    assert (record.status, record.decided_by, record.decision) == (
        "rejected",
        f"browser (token {token_of(bob)})",
        "not this week",
    )
    assert 'id="approvals"' not in page


def test_a_read_only_user_sees_the_waiting_moves_but_no_buttons_and_cannot_decide(
    login: Login, approval: Registry
) -> None:
    request = ask(login("promote"))
    reader = login("read")

    section = approvals_section(reader.get(PAGE).text)

    assert f"#{request}" in text(section)
    assert "<form" not in section and "<button" not in section and "Decide" not in section
    for decision in ("approve", "reject"):
        refused = post(reader, f"{PAGE}/-/labels/production/{decision}", request=str(request))
        assert refused.status_code == 403 and "needs promote" in refused.text
    assert [r.id for r in approval.requests(REPLY)] == [request]


def test_approving_and_rejecting_need_the_csrf_value(login: Login, approval: Registry) -> None:
    request = ask(login("promote"))
    bob, mallory = login("promote"), login("promote")
    for decision in ("approve", "reject"):
        path = f"{PAGE}/-/labels/production/{decision}"
        assert bob.post(path, data={"request": str(request)}).status_code == 403
        forged = bob.post(path, data={"request": str(request), "csrf": csrf(mallory)})
        assert forged.status_code == 403 and "the form expired" in forged.text
    assert approval.labels(REPLY) == [] and [r.id for r in approval.requests(REPLY)] == [request]


def test_refused_approvals_show_why_on_the_page(login: Login, approval: Registry) -> None:
    alice, bob = login("promote"), login("promote")
    path = f"{PAGE}/-/labels/production/approve"
    nothing = post(bob, path)
    assert nothing.status_code == 404
    assert "no move of support/reply production is waiting for approval" in text(nothing.text)
    assert 'id="labels"' in nothing.text  # the prompt's page, not an error page

    first = ask(alice)
    second = ask(alice, "1=100")
    superseded = post(bob, path, request=str(first))
    assert superseded.status_code == 409
    assert f"is request {second} (to v1, by browser (token {token_of(alice)})), not {first}: review it first" in (
        text(superseded.text)
    )

    reply = approval.settings.evals_dir / "reply.yaml"
    reply.write_text(reply.read_text() + "\n# changed since the run\n")  # the evidence went stale
    stale = post(bob, path, request=str(second))
    assert stale.status_code == 409
    shown = text(stale.text)
    assert "evals/reply.yaml changed since run" in shown
    assert "(the move still waits: approve it again once the gate is open)" in shown
    assert approval.labels(REPLY) == [] and [r.id for r in approval.requests(REPLY)] == [second]


def test_a_rollback_of_a_label_that_requires_approval_waits_too(login: Login, approval: Registry) -> None:
    approval.set_label(REPLY, "production", 1, force=True, reason="set up")
    approval.push_spec(REPLY, {**_spec_without_includes(approval), "description": "v2"})
    approval.set_label(REPLY, "production", 2, force=True, reason="set up")
    alice = login("promote")

    asked = post(alice, f"{PAGE}/-/labels/production/rollback", reason="v2 misbehaves")

    (request,) = approval.requests(REPLY)
    assert asked.headers["location"] == f"{PAGE}?notice=requested&label=production&request={request.id}#approvals"
    page = text(alice.get(asked.headers["location"]).text)
    assert f"request {request.id} (rollback v2 → v1, asked by {token_of(alice)}) waits for approval" in page
    assert approval.labels(REPLY)[0].target == {2: 100}


def test_a_request_notice_shows_only_for_a_request_of_that_label_in_that_state(
    login: Login, approval: Registry
) -> None:
    request = ask(login("promote"))
    client = login("read")
    assert 'role="status"' in client.get(f"{PAGE}?notice=requested&label=production&request={request}").text
    for query in (
        f"notice=approved&label=production&request={request}",  # it is pending: neither approved nor rejected
        f"notice=rejected&label=production&request={request}",
        f"notice=requested&label=staging&request={request}",
        "notice=requested&label=production&request=999",
        "notice=requested&label=production&request=x",
        "notice=requested&label=production&request=" + "9" * 40,
        "notice=requested&label=production",
    ):
        assert 'role="status"' not in client.get(f"{PAGE}?{query}").text, query


def test_without_tokens_the_page_says_to_approve_a_browsers_move_elsewhere(login: Login, approval: Registry) -> None:
    client = login(auth=False)
    request = ask(client)

    page = client.get(f"{PAGE}?notice=requested&label=production&request={request}").text

    assert (
        f"Someone other than browser approves it: promptlane approve support/reply production --request {request}."
    ) in text(page)
    assert "you asked: someone else approves it" in text(approvals_section(page))
    approval.approve(REPLY, "production", actor="bob")  # another author, from the CLI
    assert approval.labels(REPLY)[0].target == {1: 100}
