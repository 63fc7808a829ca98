"""The web UI in a real browser: the system Chromium driven by Playwright against a live server.

A project like the demo's (the support example, its offline model function, ``production`` protected) is
served on a free port; every test opens a fresh browser context and logs in through the login form. Each step
that matters leaves a screenshot in ``$PROMPTLANE_SCREENSHOTS`` (default: ``screenshots/`` in pytest's
temporary folder), one folder per test.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from _live import LiveServer
from promptlane.config import load_settings
from promptlane.registry import Registry
from promptlane.registry.runs import CaseResult, EvaluationResult, RunRecord, ScenarioFileRef, ScenarioStats
from promptlane.registry.tokens import create_token

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support"
# Read at import: the autouse fixture in conftest.py clears PROMPTLANE_* for every test.
SCREENSHOTS = os.environ.get("PROMPTLANE_SCREENSHOTS")
PATIENCE_MS = 30_000
"""How long an expectation or an action waits for the page (Playwright's defaults: 5 s and 30 s). Everything
here happens in milliseconds on an idle machine: this bounds a hang and leaves a loaded CI machine its time."""

# One more scenario of support/reply (on the gate model) whose case waits until the test lets it finish
# (HELD): the run page is seen while the run is in progress, and the end of the run is the test's choice, not
# a race. FAILING_EXPECTATION makes it fail where a test wants a failure; its name sorts last.
HELD_SCENARIOS = """\
prompt: support/reply
model: python:examples.support.model:respond
scenarios:
  - name: zz-held
    variables: {customer: Ana, ticket: "Hello there"}
    expect:
      - python: test_ui_browser:held_check
"""
FAILING_EXPECTATION = "      - contains: a phrase the reply never has\n"
HELD = threading.Event()


def held_check(ctx: Any) -> bool:
    """A ``python:`` expectation that passes once the test sets HELD."""
    return HELD.wait(timeout=120)


@dataclass(kw_only=True)
class Site:
    """The served registry and a token per role (scope -> secret)."""

    url: str
    """The server's base URL."""
    registry: Registry
    """The registry it serves, for setting up and checking what the browser did."""
    tokens: dict[str, str]
    """Secrets by role: ``read``, ``write``, ``release`` (write and promote), ``admin``."""


@dataclass(kw_only=True)
class Screenshots:
    """Numbered full-page screenshots of one test's steps."""

    folder: Path
    """Where this test's screenshots go."""
    taken: list[Path] = field(default_factory=list)
    """The files written so far."""

    def take(self, page: Page, step: str, *, full_page: bool = True) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{step}.png"
        page.screenshot(path=path, full_page=full_page)
        self.taken.append(path)
        return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system Chromium, headless, for the whole module (each test has its own context)."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"the browser tests drive the system Chromium, and {CHROMIUM} is missing (apt-get install chromium)"
        )
    expect.set_options(timeout=PATIENCE_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, timeout=2 * PATIENCE_MS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshot_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path_factory.getbasetemp() / "screenshots"
    root.mkdir(parents=True, exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:  # said after the summary (none under xdist, whose workers have no terminal)
        request.config.add_cleanup(lambda: reporter.write_line(f"browser test screenshots: {root}"))
    return root


@pytest.fixture
def shots(request: pytest.FixtureRequest, screenshot_root: Path) -> Iterator[Screenshots]:
    """This test's screenshot folder, emptied first; its path is printed and kept in the report."""
    folder = screenshot_root / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    shots = Screenshots(folder=folder)
    yield shots
    print(f"screenshots: {folder}")
    request.node.user_properties.append(("screenshots", str(folder)))


@pytest.fixture
def site(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The demo's project: the support example pushed as v1, its model function as the gate model."""
    with (project / "promptlane.toml").open("a") as config:
        config.write('gate_model = "python:examples.support.model:respond"\n')
    shutil.rmtree(project / "prompts")
    shutil.copytree(EXAMPLE / "prompts", project / "prompts")
    shutil.copytree(EXAMPLE / "evals", project / "evals")
    monkeypatch.syspath_prepend(str(REPO))  # examples.support.model, for runs started from the browser
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    registry = Registry(settings=load_settings(project))
    assert registry.settings.protected_labels == ("production",)
    registry.push(message="first version")
    roles = {"read": ["read"], "write": ["write"], "release": ["write", "promote"], "admin": ["admin"]}
    tokens = {role: create_token(registry.store, role, scopes, created_by="tests")[1] for role, scopes in roles.items()}
    with LiveServer(registry) as server:
        yield Site(url=server.url, registry=registry, tokens=tokens)
    registry.close()


@pytest.fixture
def page(browser: Browser, site: Site, shots: Screenshots) -> Iterator[Page]:
    """A fresh context (no cookies) on the site; its last page is screenshotted when the test ends."""
    context = browser.new_context(base_url=site.url)
    context.set_default_timeout(PATIENCE_MS)
    page = context.new_page()
    yield page
    shots.take(page, "end")
    context.close()


def hold_a_case(site: Site, *, failing: bool = False) -> None:
    """Add the held scenario; the run waits for ``HELD.set()``."""
    text = HELD_SCENARIOS + (FAILING_EXPECTATION if failing else "")
    (site.registry.settings.root / "evals" / "held.yaml").write_text(text)
    HELD.clear()


def log_in(page: Page, site: Site, role: str, path: str = "/") -> None:
    """Open ``path``, get sent to the login form, log in as ``role`` and land on ``path``."""
    page.goto(path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Token").fill(site.tokens[role])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("header .who")).to_contain_text(role)
    expect(page).to_have_url(site.url + path)


def csrf_of(page: Page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content") or ""


def save_edit(page: Page, message: str) -> None:
    page.get_by_label("What changed").fill(message)
    page.get_by_role("button", name="Save as a new version").click()


def run_scenarios(page: Page, version: str) -> None:
    """From a prompt's page: run its scenarios against ``version`` with the configured models."""
    page.get_by_role("link", name="Scenarios").click()
    form = page.locator("#run-scenarios")
    form.locator("select[name=version]").select_option(version)
    form.locator("select[name=mode]").select_option("configured")
    form.get_by_role("button", name="Run scenarios").click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f]+$"))


# --- the editor -------------------------------------------------------------------------------------------------


def test_editor_saves_a_new_version_once(page: Page, site: Site, shots: Screenshots) -> None:
    log_in(page, site, "write", "/prompts/support/reply")
    page.get_by_role("link", name="Edit").click()
    system = page.get_by_label("Message 1", exact=True)
    expect(system).to_have_value(re.compile("look it up before answering"))
    system.fill(system.input_value().replace("look it up before answering", "look it up first, then answer"))
    save_edit(page, "look orders up first")
    expect(page).to_have_url(re.compile(r"/prompts/support/reply\?notice="))
    expect(page.get_by_role("status")).to_have_text("saved as v2")
    expect(page.locator("#versions tbody tr").first).to_contain_text("look orders up first")
    shots.take(page, "saved-v2")

    page.get_by_role("link", name="Edit").click()
    expect(page.locator(".hint").first).to_contain_text("Starting from v2")
    save_edit(page, "nothing changed")
    expect(page.get_by_role("status")).to_have_text("identical to v2: nothing new to save")
    shots.take(page, "identical-to-v2")
    assert [v.number for v in site.registry.versions("support/reply")] == [1, 2]
    assert (
        "look it up first, then answer" in site.registry.get("support/reply", version=2).spec["messages"][0]["content"]
    )


def test_preview_renders_typed_variables(page: Page, site: Site, shots: Screenshots) -> None:
    log_in(page, site, "write", "/prompts/shared/tone/-/edit")
    rendered = page.locator("#preview-output .rendered pre")
    expect(rendered).to_have_text("Be warm and concise.")
    tier = page.locator("#variable-inputs input[name='var.tier']")
    expect(tier).to_have_attribute("placeholder", 'default "free"')
    tier.fill("pro")
    expect(rendered).to_have_text("Be warm and concise. Mention that pro customers get priority handling.")
    page.get_by_label("Template").fill("{{ tier | upper }} customers are welcome.")
    expect(rendered).to_have_text("PRO customers are welcome.")
    expect(page.locator("#preview-error")).to_be_hidden()
    shots.take(page, "preview")


def test_preview_offers_inputs_for_required_variables(page: Page, site: Site, shots: Screenshots) -> None:
    log_in(page, site, "write", "/prompts/support/reply/-/edit")
    inputs = page.locator("#variable-inputs")
    shots.take(page, "before-variables")
    expect(inputs.locator("input[name='var.customer']")).to_be_visible()
    inputs.locator("input[name='var.customer']").fill("Ana")
    inputs.locator("input[name='var.ticket']").fill("Where is order 7?")
    rendered = page.locator("#preview-output .rendered pre")
    expect(rendered.first).to_contain_text("You help Ana (free plan).")
    expect(rendered.nth(1)).to_have_text("Where is order 7?")
    expect(page.get_by_label("Variables (YAML")).not_to_have_class(re.compile("has-error"))
    shots.take(page, "preview")


def test_template_errors_show_at_their_line(page: Page, site: Site, shots: Screenshots) -> None:
    log_in(page, site, "write", "/prompts/shared/tone/-/edit")
    template, problem = page.get_by_label("Template"), page.locator("#preview-error")
    expect(page.locator("#preview-output .rendered")).to_have_count(1)
    template.fill("Be warm.\n{{ tier }\nBe brief.")
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("template, line 2:")
    expect(template).to_have_class(re.compile(r"\bhas-error\b"))
    expect(page.locator("#preview-output .rendered")).to_have_count(0)
    shots.take(page, "preview-error")
    template.fill("Be warm.\n{{ tier }}\nBe brief.")
    expect(problem).to_be_hidden()
    expect(template).not_to_have_class(re.compile(r"\bhas-error\b"))
    expect(page.locator("#preview-output .rendered pre")).to_have_text("Be warm.\nfree\nBe brief.")

    # A chat message: the error names the message's line, and saving it is refused at that field.
    page.goto("/prompts/support/reply/-/edit")
    message = page.get_by_label("Message 2", exact=True)
    message.fill("{{ ticket }}\n{% if %}yes{% endif %}")
    expect(problem).to_contain_text("line 2:")
    expect(message).to_have_class(re.compile(r"\bhas-error\b"))
    save_edit(page, "broken")
    expect(page.locator('p.field-error[data-field="content_1"]')).to_contain_text("line 2:")
    expect(page.get_by_label("Message 2", exact=True)).to_have_value("{{ ticket }}\n{% if %}yes{% endif %}")
    shots.take(page, "save-refused")
    assert [v.number for v in site.registry.versions("support/reply")] == [1]


# --- the diff -----------------------------------------------------------------------------------------------------


def test_diff_shows_a_changed_line_side_by_side(page: Page, site: Site, shots: Screenshots) -> None:
    spec = dict(site.registry.get("support/reply", version=1).spec)
    first, *rest = spec["messages"]
    changed = first["content"].replace("look it up before answering", "look it up first, then answer")
    spec["messages"] = [{**first, "content": changed}, *rest]
    spec.pop("includes", None)
    assert site.registry.push_spec("support/reply", spec, message="look orders up first").version.number == 2

    log_in(page, site, "read", "/prompts/support/reply")
    page.get_by_role("link", name="Compare versions").click()
    expect(page).to_have_url(re.compile(r"/prompts/support/reply/-/diff"))
    expect(page.locator("h1")).to_contain_text("support/reply: compare")
    messages = page.locator('section.field-diff[data-field="messages"]')
    expect(page.locator("section.field-diff")).to_have_count(1)
    expect(messages.locator("thead th")).to_have_text(["v1", "v2"])
    row = messages.locator("tr.changed")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(0)).to_contain_text("When the ticket mentions an order, look it up before answering.")
    expect(row.locator("td").nth(1)).to_contain_text(
        "When the ticket mentions an order, look it up first, then answer."
    )
    expect(messages.locator("tr.same").first).to_be_visible()
    shots.take(page, "diff")

    page.get_by_label("From").select_option("2")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("p.notice")).to_have_text("v2 and v2 are identical.")


# --- scenarios and runs -------------------------------------------------------------------------------------------


def test_scenarios_run_from_the_browser(page: Page, site: Site, shots: Screenshots) -> None:
    hold_a_case(site, failing=True)
    try:
        log_in(page, site, "write", "/prompts/support/reply")
        run_scenarios(page, "1")
        progress = page.locator(".progress")
        expect(progress.locator("progress")).to_be_visible()
        expect(progress.locator(".count")).to_have_text(re.compile(r"^\d+ / 13 cases$"))
        shots.take(page, "in-progress")
    finally:
        HELD.set()

    status = page.locator("#run-status")
    expect(status).to_have_text("failed")
    expect(progress).to_have_count(0)
    summary = page.locator("table.summary")
    expect(summary.locator("tr", has_text="Cases").locator("td")).to_have_text("12/13 passed")
    expect(summary.locator("tr", has_text="Model").locator("td")).to_have_text("python:examples.support.model:respond")
    expect(summary.locator("tr", has_text="Trace id").locator("td")).to_have_text(re.compile(r"^(-|[0-9a-f]{32})$"))
    cases = page.locator(".case")
    expect(cases).to_have_count(1)  # the failing cases, on their own first
    expect(page.locator("nav.tabs a[aria-current=page]")).to_have_text("Failing (1)")
    failed = cases.first
    expect(failed).to_have_class(re.compile(r"\bfailed\b"))
    expect(failed.locator("h3")).to_contain_text("zz-held")
    expect(failed.locator(".evaluations li.pass")).to_contain_text("python:test_ui_browser:held_check")
    expect(failed.locator(".evaluations li.fail .reason")).to_contain_text("a phrase the reply never has")
    expect(failed.locator("pre.output")).to_have_text(
        "Hi Ana, thanks for reaching out. How can I help with your order?"
    )
    page.get_by_role("link", name="All, failing first (13)").click()
    expect(cases).to_have_count(13)
    expect(page.locator(".case.failed")).to_have_count(1)
    expect(cases.first).to_have_class(re.compile(r"\bfailed\b"))
    refund = page.locator(".case", has=page.locator("h3", has_text=re.compile(r"passed refund\b")))
    expect(refund.locator(".evaluations li", has_text="judge")).to_contain_text("polite, offers a refund")
    refund.get_by_text("Messages, output and tool calls").click()
    expect(refund.locator(".tool-calls")).to_contain_text('lookup_order({"order_id": "123"})')
    expect(refund.locator("pre.output")).to_have_text(
        "Hi Ana, order 123 is delivered. I can offer you a refund of $42.50."
    )
    shots.take(page, "finished")

    page.locator("header").get_by_role("link", name="Runs").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    expect(page.locator("table.runs tbody tr td.failed")).to_have_text("failed")


def test_a_run_that_ends_while_its_page_loads_is_not_shown_as_running(
    page: Page, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = site.registry.store
    created = threading.Event()
    create_run, get_run = store.create_run, store.get_run

    def creating(record: Any) -> None:
        create_run(record)
        created.set()

    def getting(run_id: str) -> Any:
        """The record while the run is held; the run then ends before the page goes on."""
        created.wait(timeout=60)
        record = get_run(run_id)
        HELD.set()
        for thread in threading.enumerate():
            if thread.name.startswith("ui-run-"):
                thread.join(timeout=60)
        return record

    monkeypatch.setattr(store, "create_run", creating)
    monkeypatch.setattr(store, "get_run", getting)
    hold_a_case(site)
    try:
        log_in(page, site, "write", "/prompts/support/reply")
        run_scenarios(page, "1")
    finally:
        HELD.set()
    expect(page.locator("#run-status")).to_have_text("passed")


def test_a_run_page_shows_a_page_of_many_cases(page: Page, site: Site, shots: Screenshots) -> None:
    store: Any = site.registry.store
    record = RunRecord(
        id=uuid.uuid4().hex,
        prompt="support/reply",
        version=1,
        model="test",
        status="failed",
        started_at=datetime.now(timezone.utc),
    )
    store.create_run(record)
    cases = [
        CaseResult(
            scenario="tickets",
            case=f"tickets[row-{n}]",
            file="evals/tickets.jsonl",
            line=n,
            status="failed" if n % 100 == 7 else "passed",
            output=f"reply {n}",
            evaluations=[EvaluationResult(name="contains", passed=n % 100 != 7, reason="looked for 'refund'")],
        )
        for n in range(1, 2001)
    ]
    store.add_cases(record.id, cases)
    log_in(page, site, "read", f"/runs/{record.id}")

    shown = page.locator(".case")
    expect(shown).to_have_count(20)  # the 20 failing cases, first
    expect(page.locator(".case.passed")).to_have_count(0)
    page.get_by_role("link", name="All, failing first (2000)").click()
    expect(shown).to_have_count(100)
    expect(shown.nth(19)).to_have_class(re.compile(r"\bfailed\b"))
    expect(shown.nth(20)).to_have_class(re.compile(r"\bpassed\b"))
    pager = page.locator("nav.pager").first
    expect(pager).to_contain_text("cases 1 to 100 of 2000, page 1 of 20")
    pager.get_by_role("link", name="Next").click()
    expect(pager).to_contain_text("cases 101 to 200 of 2000, page 2 of 20")
    expect(shown).to_have_count(100)
    expect(shown.first.locator("h3")).to_contain_text("tickets[row-82]")  # passing ones go on in order
    shots.take(page, "paged-run", full_page=False)  # the top: tabs, pager, the first cases
    page.locator("nav.pager").last.scroll_into_view_if_needed()
    shots.take(page, "paged-run-bottom", full_page=False)
    pager.get_by_role("link", name="Previous").click()
    expect(pager).to_contain_text("page 1 of 20")


# --- labels through the gate --------------------------------------------------------------------------------------


def test_production_moves_only_after_a_passing_run(page: Page, site: Site, shots: Screenshots) -> None:
    hold_a_case(site)
    log_in(page, site, "release", "/prompts/support/reply")
    gate = page.locator("#versions tbody tr").first.locator("td").last
    expect(gate).to_contain_text("not yet")
    expect(gate.locator("ul.problems li")).to_have_text(
        ["no eval run of support/reply@1: promptlane eval --prompt support/reply --version 1"]
    )

    move = page.locator("#move-label")
    expect(move.get_by_label("force past the gate")).to_have_count(0)  # an admin's option only
    move.get_by_label("Label").fill("production")
    move.get_by_label("Version or rollout").fill("1")
    move.get_by_label("Reason").fill("first release")
    move.get_by_role("button", name="Move label").click()
    refusal = page.locator("pre.error[role=alert]")
    expect(refusal).to_contain_text("production is protected")
    expect(refusal).to_contain_text("  - no eval run of support/reply@1")
    expect(page.get_by_role("status")).to_have_count(0)
    shots.take(page, "refused")
    assert site.registry.labels("support/reply") == []

    try:
        run_scenarios(page, "1")
        expect(page.locator(".progress progress")).to_be_visible()
    finally:
        HELD.set()
    expect(page.locator("#run-status")).to_have_text("passed")
    page.locator("table.summary").get_by_role("link", name="support/reply").click()
    expect(gate).to_contain_text("passes")

    move.get_by_label("Label").fill("production")
    move.get_by_label("Version or rollout").fill("1")
    move.get_by_label("Reason").fill("first release")
    move.get_by_role("button", name="Move label").click()
    expect(page.get_by_role("status")).to_have_text("production now points at v1")
    expect(page.locator("pre.error")).to_have_count(0)
    expect(page.locator("#labels tbody tr", has_text="production").locator("td").nth(1)).to_have_text("v1")
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(1)
    expect(history.locator("td")).to_have_text(
        [
            re.compile(r"\d{4}-"),
            "production",
            re.compile(r"^move: - → v1"),
            "browser (token release)",
            re.compile(r"run [0-9a-f]{12}"),
            "first release",
        ]
    )
    shots.take(page, "moved")


# --- security -----------------------------------------------------------------------------------------------------


def test_pages_need_a_login(page: Page, site: Site, shots: Screenshots) -> None:
    for path in ("/", "/prompts/support/reply", "/prompts/support/reply/-/edit", "/runs"):
        page.goto(path)
        expect(page).to_have_url(f"{site.url}/login?next={path}")
    expect(page.get_by_label("Token")).to_be_visible()
    shots.take(page, "login")

    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("that token is unknown or revoked")

    # After the login the browser goes where it was going, never to another site.
    page.goto("/login?next=//example.com/")
    page.get_by_label("Token").fill(site.tokens["read"])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(site.url + "/")
    expect(page.locator("section.folder h2")).to_have_text(["shared/", "support/"])
    shots.take(page, "prompts")
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert {name: (c["httpOnly"], c["sameSite"]) for name, c in cookies.items()} == {
        "promptlane_session": (True, "Strict"),
        "promptlane_csrf": (True, "Strict"),
    }
    assert site.tokens["read"] not in str(cookies)  # the browser holds a session id, never the token
    assert page.evaluate("document.cookie") == ""  # no script of the page reads the session id
    page.get_by_role("button", name="Log out").click()
    page.goto("/runs")
    expect(page).to_have_url(site.url + "/login?next=/runs")


def test_a_link_with_a_query_survives_the_login(page: Page, site: Site) -> None:
    page.goto("/?q=tone")
    page.get_by_label("Token").fill(site.tokens["read"])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("header .who")).to_contain_text("read")
    expect(page).to_have_url(site.url + "/?q=tone")


def test_a_read_only_token_cannot_change_anything(page: Page, site: Site, shots: Screenshots) -> None:
    log_in(page, site, "read", "/prompts/support/reply")
    expect(page.locator("h1")).to_have_text("support/reply")
    expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    expect(page.locator("#move-label")).to_have_count(0)
    expect(page.get_by_role("button", name="Roll back")).to_have_count(0)
    shots.take(page, "prompt-read-only")
    page.get_by_role("link", name="Scenarios").click()
    expect(page.locator("h1")).to_contain_text("Scenarios of support/reply")
    expect(page.locator("#run-scenarios")).to_have_count(0)

    # The forms are not there, and a forged POST (with a valid CSRF value) is refused all the same.
    csrf = csrf_of(page)
    forged = [
        ("labels", {"label": "staging", "target": "1"}, "promote"),
        ("labels/latest/rollback", {"reason": "forged"}, "promote"),
        ("edit", {"kind": "text", "template": "forged", "message_count": "0"}, "write"),
        ("scenarios", {"version": "1", "mode": "configured"}, "write"),
    ]
    for path, form, scope in forged:
        response = page.request.post(f"/prompts/support/reply/-/{path}", form={"csrf": csrf, **form}, max_redirects=0)
        assert response.status == 403, (path, response.status)
        assert f"token &#39;read&#39; (read) does not allow this: it needs {scope}" in response.text()
    assert site.registry.labels("support/reply") == []
    assert [v.number for v in site.registry.versions("support/reply")] == [1]
    assert site.registry.store.list_runs("support/reply") == []


def test_a_post_without_the_csrf_value_is_refused(page: Page, site: Site, shots: Screenshots) -> None:
    log_in(page, site, "admin", "/prompts/support/reply")
    move = page.locator("#move-label")
    move.get_by_label("Label").fill("staging")
    move.get_by_label("Version or rollout").fill("1")
    move.locator('input[name="csrf"]').evaluate("input => input.remove()")
    move.get_by_role("button", name="Move label").click()
    expect(page.get_by_role("alert")).to_have_text("the form expired: reload the page")
    shots.take(page, "csrf-refused")
    assert site.registry.labels("support/reply") == []

    for csrf in ("", "a-value-from-another-site"):
        response = page.request.post(
            "/prompts/support/reply/-/labels", form={"csrf": csrf, "label": "staging", "target": "1"}, max_redirects=0
        )
        assert response.status == 403, (csrf, response.status)
    response = page.request.post(
        "/prompts/support/reply/-/preview", form={"kind": "text", "template": "x"}, max_redirects=0
    )
    assert response.status == 403
    assert site.registry.labels("support/reply") == []

    # With the page's value, the same move goes through.
    page.goto("/prompts/support/reply")
    move.get_by_label("Label").fill("staging")
    move.get_by_label("Version or rollout").fill("1")
    move.get_by_role("button", name="Move label").click()
    expect(page.get_by_role("status")).to_have_text("staging now points at v1")


def test_output_is_escaped(page: Page, site: Site, shots: Screenshots) -> None:
    description = '"><script>window.injected = 1</script><b>bold</b>'
    spec = {
        "description": description,
        "template": "Hello {{ name }} <i>there</i>",
        "variables": {"name": {"type": "string", "default": "<b>you</b>"}},
    }
    site.registry.push_spec("probe/xss", spec, message="<script>window.injected = 2</script>")

    log_in(page, site, "write")
    page.goto("/?q=<script>")
    expect(page.locator("section.folder tbody tr")).to_have_count(1)
    expect(page.locator("section.folder tbody tr", has_text="probe/xss").locator("td").nth(3)).to_have_text(description)
    expect(page.get_by_label("Search")).to_have_value("<script>")
    page.get_by_role("link", name="probe/xss").click()
    expect(page.locator("p.description")).to_have_text(description)
    expect(page.locator("#versions tbody tr").first).to_contain_text("<script>window.injected = 2</script>")
    shots.take(page, "prompt")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("textbox", name="Description", exact=True)).to_have_value(description)
    expect(page.locator("#preview-output .rendered pre")).to_have_text("Hello <b>you</b> <i>there</i>")
    shots.take(page, "editor")
    assert page.evaluate("window.injected") is None
    assert page.locator("main b, main i, main script").count() == 0


# --- the gate explained ---------------------------------------------------------------------------------------------


def finished_run(registry: Registry, version: int, *, passed: int, cases: int) -> RunRecord:
    """A finished run of support/reply@``version`` on the inputs as they are now, by the gate's model: one
    scenario, ``refund``, that needs 50%."""
    parts = registry.gate_report("support/reply", version=version).parts
    now = datetime.now(timezone.utc)
    record = RunRecord(
        id=uuid.uuid4().hex,
        prompt="support/reply",
        version=version,
        model=registry.settings.gate_model_for("support/reply") or "test",
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


def test_the_prompt_page_explains_the_gate(page: Page, site: Site, shots: Screenshots) -> None:
    log_in(page, site, "read", "/prompts/support/reply")
    gate = page.locator("#gate-production")
    expect(gate.locator("h3")).to_have_text(re.compile(r"production for v1:\s+closed"))
    expect(gate.locator(".evidence")).to_have_text("No run to look at.")
    parts = site.registry.gate_report("support/reply").parts
    expect(gate.locator("table.parts tbody tr")).to_have_count(len(parts))
    expect(gate.locator("td.state-not-covered")).to_have_count(len(parts))
    expect(gate.locator("ul.problems li")).to_have_text(
        ["no eval run of support/reply@1: promptlane eval --prompt support/reply --version 1"]
    )
    shots.take(page, "gate-closed")

    record = finished_run(site.registry, 1, passed=30, cases=30)
    page.reload()
    expect(gate.locator("h3")).to_have_text(re.compile(r"production for v1:\s+open"))
    expect(gate.locator("td.state-current")).to_have_count(len(parts))
    expect(gate.locator("table.scenarios tbody tr td")).to_have_text(
        ["refund", "evals/reply.yaml", "30/30 (100%)", "50%"]
    )
    expect(gate.locator("ul.problems")).to_have_count(0)
    shots.take(page, "gate-open")
    gate.get_by_role("link", name=f"run {record.id[:12]}").click()
    expect(page).to_have_url(f"{site.url}/runs/{record.id}")

    site.registry.set_label("support/reply", "production", 1)
    spec = {key: value for key, value in site.registry.version("support/reply", 1).spec.items() if key != "includes"}
    site.registry.push_spec("support/reply", {**spec, "description": "v2"})
    finished_run(site.registry, 2, passed=15, cases=30)
    page.goto("/prompts/support/reply")
    expect(gate.locator("h3")).to_have_text(re.compile(r"production for v2:\s+closed"))
    expect(gate.locator("table.scenarios th").last).to_have_text("Against v1, which production serves")
    expect(gate.locator("table.scenarios tbody td").last).to_have_text(
        "15/30 (50%) vs 30/30 (100%) serving, p<0.001 regressed"
    )
    expect(gate.locator("ul.problems li")).to_have_text(site.registry.gate_report("support/reply").verdict.problems)
    expect(gate.locator("ul.problems li")).to_contain_text("15/30 (50%) vs 30/30 (100%) serving, p<0.001")
    gate.scroll_into_view_if_needed()
    shots.take(page, "gate-regressed")


# --- two people for a protected move ------------------------------------------------------------------------------


def test_a_move_waits_for_approval_and_another_token_approves_it(
    page: Page, browser: Browser, site: Site, shots: Screenshots
) -> None:
    from dataclasses import replace

    site.registry.settings = replace(site.registry.settings, require_approval=("production",))
    record = finished_run(site.registry, 1, passed=30, cases=30)
    log_in(page, site, "release", "/prompts/support/reply")
    move = page.locator("#move-label")
    move.get_by_label("Label").fill("production")
    move.get_by_label("Version or rollout").fill("1")
    move.get_by_label("Reason").fill("first release")
    move.get_by_role("button", name="Move label").click()

    (request,) = site.registry.requests("support/reply")
    expect(page.get_by_role("status")).to_have_text(
        f"production has not moved: request {request.id} (move - → v1, asked by release) waits for approval. "
        "Anyone but release whose token has the promote scope may approve or reject it below."
    )
    expect(page.locator("#labels tbody tr", has_text="production").locator("td").nth(1)).to_have_text("-")
    mine = page.locator(f"#request-{request.id}")
    expect(mine.get_by_role("button", name="Approve")).to_have_count(0)
    expect(mine).to_contain_text("you asked: someone else approves it")
    shots.take(page, "asked")

    other = browser.new_context(base_url=site.url)
    approver = other.new_page()
    try:
        log_in(approver, site, "admin", "/prompts/support/reply")
        row = approver.locator(f"#request-{request.id}")
        expect(row.locator("td")).to_have_text(
            [
                f"#{request.id}",
                "production",
                "move: - → v1",
                "browser (token release)",
                re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d"),
                "first release",
                f"run {record.id[:12]}",
                re.compile(r"Approve\s+Reject"),
            ]
        )
        approver.locator("#approvals").scroll_into_view_if_needed()
        shots.take(approver, "pending-list", full_page=False)
        row.get_by_role("button", name="Approve").click()
        expect(approver.get_by_role("status")).to_have_text(
            f"request {request.id} approved: production now points at v1"
        )
        expect(approver.locator("#approvals")).to_have_count(0)
        expect(approver.locator("#history tbody tr").first.locator("td").nth(3)).to_have_text(
            re.compile(r"^asked by browser \(token release\) \(\d{4}-.*\), approved by browser \(token admin\)$")
        )
        shots.take(approver, "approved")
    finally:
        other.close()
    assert site.registry.labels("support/reply")[0].target == {1: 100}
