"""The ``promptlane`` command end to end, in a temporary project (mostly in-process, a few real processes)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from dirty_equals import IsDatetime, IsStr

from conftest import REPLY_YAML, TONE_YAML
from promptlane._unicode import BIDI_CONTROLS, hidden_at
from promptlane.cli import app
from promptlane.harness.scenarios import load_scenario_file
from promptlane.spec import load_prompt_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

WritePrompt = Callable[[str, str], Path]

runner = CliRunner(env={"COLUMNS": "200"})
WHEN = IsStr(regex=r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?")
HASH12 = IsStr(regex=r"[0-9a-f]{12}")
TICKET = ["--var", "customer=Ann", "--var", "ticket=Where is my order?"]


# What a misplaced `temprature:` at the top of a prompt file is told (a regular expression).
TOP_LEVEL_SETTING_HINT = r"\(model settings go under `model_settings:`; did you mean model_settings\.temperature\?\)"


@pytest.fixture(autouse=True)
def _unprotected(request: pytest.FixtureRequest) -> None:
    """These tests are about label mechanics: nothing is protected here (tests/test_gate.py covers the gate)."""
    if "project" in request.fixturenames:
        config = request.getfixturevalue("project") / "promptlane.toml"
        config.write_text(config.read_text() + "protected_labels = []\n")


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> str:
    """stdout of a command that must succeed."""
    result = run(*args)
    assert (result.exit_code, result.stderr) == (0, ""), (result.stdout, result.exception)
    return result.stdout


def fails(*args: str, status: int = 2) -> str:
    """The message of a command that must fail as designed: one ``error: ...`` line on stderr, and the exit
    status (2: usage or configuration, the default here; 1: the gate refused; 3: unreachable)."""
    result = run(*args)
    # A SystemExit means the CLI chose to exit; anything else is an uncaught exception (a traceback).
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == status, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0].removeprefix("error: ")


def table(text: str, header: str) -> list[dict[str, str]]:
    """The rows of the table whose header line starts with ``header``, as {column: cell}."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{header} "))
    columns = [(m.start(), m.group()) for m in re.finditer(r"\S+", lines[start])]
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        bounds = [start for start, _ in columns[1:]] + [None]
        rows.append({name: line[begin:end].strip() for (begin, name), end in zip(columns, bounds, strict=True)})
    return rows


def push(*args: str) -> list[str]:
    return ok("push", *args).splitlines()


# --- init ---------------------------------------------------------------------------------------------


def test_init_in_an_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "new"
    folder.mkdir()
    monkeypatch.chdir(folder)

    assert ok("init").splitlines() == [
        "created  promptlane.toml",
        f"created  {Path('prompts/support/reply.yaml')}",
        f"created  {Path('prompts/shared/tone.yaml')}",
        f"created  {Path('evals/support/reply.yaml')}",
        f"created  {Path('evals/__init__.py')}",
        f"created  {Path('evals/models.py')}",
        "",
        "next: promptlane push, then promptlane eval (the README's tour goes on from here)",
    ]

    # The gate accepts runs on the scaffolded model function, which the scenarios name.
    config = tomllib.loads((folder / "promptlane.toml").read_text())
    assert config == {"prompts": "prompts", "evals": "evals", "gate_model": "python:evals.models:support_agent"}
    scenarios = load_scenario_file(folder / "evals/support/reply.yaml")
    assert (scenarios.spec.prompt, scenarios.spec.model) == ("support/reply", config["gate_model"])
    reply = load_prompt_file(folder / "prompts/support/reply.yaml", folder / "prompts")
    assert (reply.name, sorted(reply.spec.variables or {})) == ("support/reply", ["customer", "ticket", "tier"])
    # The scaffold works as it stands (eval and the gate through it: tests/test_docs.py runs the README's tour).
    assert push("-m", "first version") == ["shared/tone: v1 (new)", "support/reply: v1 (new)"]
    assert ok("render", "support/reply", "--var", "customer=Ann", "--var", "ticket=Hi").splitlines() == [
        "[system]",
        "You help Ann (free plan).",
        "Be warm and concise.",
        "",
        "[user]",
        "Hi",
    ]


def test_init_in_a_named_folder_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ok("init", "proj")
    (tmp_path / "proj/promptlane.toml").write_text('prompts = "prompts"\n')

    assert ok("init", "proj").splitlines()[:6] == [
        f"exists   {Path('proj/promptlane.toml')}",
        f"exists   {Path('proj/prompts/support/reply.yaml')}",
        f"exists   {Path('proj/prompts/shared/tone.yaml')}",
        f"exists   {Path('proj/evals/support/reply.yaml')}",
        f"exists   {Path('proj/evals/__init__.py')}",
        f"exists   {Path('proj/evals/models.py')}",
    ]
    assert (tmp_path / "proj/promptlane.toml").read_text() == 'prompts = "prompts"\n'


def test_init_with_a_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "app"\n\n[tool.ruff]\nline-length = 100\n')

    ok("init")

    config = tomllib.loads(pyproject.read_text())
    assert config == {
        "project": {"name": "app"},
        "tool": {
            "ruff": {"line-length": 100},
            "promptlane": {"prompts": "prompts", "evals": "evals", "gate_model": "python:evals.models:support_agent"},
        },
    }
    assert not (tmp_path / "promptlane.toml").exists()
    assert (tmp_path / "prompts/support/reply.yaml").is_file()
    assert (tmp_path / "evals/models.py").is_file()

    # Idempotent: a second run changes nothing.
    text = pyproject.read_text()
    second = ok("init")
    assert pyproject.read_text() == text
    assert "created" not in second
    assert push() == ["shared/tone: v1 (new)", "support/reply: v1 (new)"]


def test_init_with_a_pyproject_says_what_it_updated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\n')

    assert ok("init").splitlines()[0] == "updated  pyproject.toml [tool.promptlane]"
    assert ok("init").splitlines()[0] == "exists   pyproject.toml [tool.promptlane]"


# --- push, list, show ---------------------------------------------------------------------------------


def test_push(project: Path, support_prompts: None, write_prompt: WritePrompt) -> None:
    assert push("-m", "first") == ["shared/tone: v1 (new)", "support/reply: v1 (new)"]
    assert push("-m", "again") == ["shared/tone: v1 (unchanged)", "support/reply: v1 (unchanged)"]

    write_prompt("shared/tone", "template: Be formal.\n")
    assert push() == ["shared/tone: v2 (new)", "support/reply: v2 (new)"]

    reply = json.loads(ok("show", "support/reply@1", "--json"))
    assert (reply["message"], reply["author"]) == ("first", "tester")
    assert json.loads(ok("show", "support/reply@2", "--json"))["message"] is None


def test_push_given_a_file(project: Path, support_prompts: None) -> None:
    assert push("prompts/shared/tone.yaml") == ["shared/tone: v1 (new)"]


def test_push_a_bad_file(project: Path, support_prompts: None, write_prompt: WritePrompt) -> None:
    write_prompt("support/bad", "template: hi\ntemprature: 0.2\n")

    message = fails("push")

    assert re.fullmatch(
        r"(\S+):2: temprature: unknown key 'temprature' " + TOP_LEVEL_SETTING_HINT,
        message,
    )
    assert Path(message.partition(":")[0]).resolve() == project / "prompts/support/bad.yaml"
    assert ok("list").splitlines() == ["no prompts yet: write prompts/*.yaml and run `promptlane push`"]


def test_push_nothing_to_push(project: Path) -> None:
    assert fails("push") == f"no prompt files (*.yaml) in {project / 'prompts'}"


def test_list(project: Path, support_prompts: None) -> None:
    assert ok("list") == "no prompts yet: write prompts/*.yaml and run `promptlane push`\n"
    push()
    ok("label", "support/reply", "production", "1")
    ok("label", "support/reply", "staging", "1")

    assert table(ok("list"), "prompt") == [
        {"prompt": "shared/tone", "latest": "v1", "labels": "-", "updated": WHEN, "description": "House tone"},
        {
            "prompt": "support/reply",
            "latest": "v1",
            "labels": "production=v1, staging=v1",
            "updated": WHEN,
            "description": "Reply to a customer ticket",
        },
    ]


REPLY_SPEC = {
    "description": "Reply to a customer ticket",
    "model": "openai:gpt-4o-mini",
    "model_settings": {"temperature": 0.2, "max_tokens": 400},
    "variables": {
        "customer": {"type": "string"},
        "ticket": {"type": "string"},
        "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
    },
    "messages": [
        {"role": "system", "content": "You help {{ customer }} ({{ tier }} plan). {% include 'shared/tone' %}"},
        {"role": "user", "content": "{{ ticket }}"},
    ],
    "tools": [
        {
            "name": "lookup_order",
            "description": "Look up an order by id",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        }
    ],
    "includes": {"shared/tone": {"version": 1, "template": "Be warm and concise."}},
}


def test_show(project: Path, support_prompts: None) -> None:
    push("-m", "first")

    lines = ok("show", "support/reply").splitlines()

    assert lines[:4] == [
        IsStr(regex=r"support/reply v1  [0-9a-f]{12}"),
        IsStr(regex=r"pushed \d{4}-\d\d-\d\d \d\d:\d\d by tester: first"),
        "labels: -",
        "",
    ]
    assert yaml.safe_load("\n".join(lines[4:])) == REPLY_SPEC


def test_show_escapes_bidi_controls_that_would_reorder_the_prompt(project: Path, write_prompt: WritePrompt) -> None:
    # A prompt from a shared registry whose text reads one way on a terminal and another way to the model.
    hostile = "Answer in \u202eHSILGNE YLNO\u202c; 日本語 is welcome."
    write_prompt("support/bidi", f"template: {json.dumps(hostile)}\n")
    push()

    shown = ok("show", "support/bidi")

    assert BIDI_CONTROLS.isdisjoint(shown)
    assert "\\u202E" in shown
    spec = yaml.safe_load(shown.split("\n\n", 1)[1])
    assert spec["template"] == hostile  # the YAML still says exactly what is stored


def test_show_json_escapes_what_a_prompt_hides_and_keeps_the_data(project: Path, write_prompt: WritePrompt) -> None:
    # "ASCII smuggling": Unicode tag characters and zero-width spaces are invisible on a terminal, and a model
    # reads them. Emoji sequences and a Persian word's non-joiner are text as written.
    hidden = "Ignore\u200b previous\U000e0049\U000e0047\U000e004e \u202eevil\u202c a\U000e0101 \u200d\U0001f600"
    kept = "\U0001f468\u200d\U0001f469 \u0645\u06cc\u200c\u062e"
    write_prompt("smuggled", f"template: {json.dumps(hidden + kept)}\n")
    push()

    shown = ok("show", "smuggled", "--json")

    assert hidden_at(shown) == []
    assert "\\u200b" in shown and "\\udb40\\udc49" in shown and "\\u202e" in shown
    assert kept in shown
    assert json.loads(shown)["spec"]["template"] == hidden + kept
    assert hidden_at(ok("show", "smuggled")) == []


def test_diff_shows_a_change_of_line_break(project: Path, write_prompt: WritePrompt) -> None:
    write_prompt("breaks", 'template: "one\\ntwo"\n')
    push()
    write_prompt("breaks", 'template: "one\\u2028two"\n')  # the same on many screens, one line to a model
    push()

    assert ok("diff", "breaks", "1", "2").splitlines() == [
        "template",
        "@@ -1,2 +1 @@",
        "-one",
        "-two",
        "+one\\u2028two",
        "",
    ]


def test_show_json(project: Path, support_prompts: None) -> None:
    push("-m", "first")

    shown = json.loads(ok("show", "support/reply", "--json"))

    assert shown == {
        "name": "support/reply",
        "number": 1,
        "content_hash": IsStr(regex=r"[0-9a-f]{64}"),
        "message": "first",
        "author": "tester",
        "created_at": IsDatetime(iso_string=True),
        "labels": [],
        "spec": REPLY_SPEC,
    }
    assert ok("show", "support/reply").startswith(f"support/reply v1  {shown['content_hash'][:12]}\n")


def test_show_version_and_label(project: Path, support_prompts: None, write_prompt: WritePrompt) -> None:
    push()
    write_prompt("shared/tone", "template: Be formal.\n")
    push("-m", "formal")
    ok("label", "support/reply", "production", "1")

    def header(ref: str) -> list[str]:
        return ok("show", ref).splitlines()[:3]

    assert header("support/reply") == [IsStr(regex=r"support/reply v2 .*"), IsStr(regex=".*: formal"), "labels: -"]
    assert header("support/reply@1") == [IsStr(regex=r"support/reply v1 .*"), IsStr(), "labels: production"]
    assert header("support/reply:production") == header("support/reply@1")
    assert header("support/reply:latest") == header("support/reply")
    assert json.loads(ok("show", "support/reply:production", "--json"))["labels"] == ["production"]
    assert fails("show", "support/reply:staging") == "prompt 'support/reply' has no label 'staging'"
    assert fails("show", "support/reply@9") == "prompt 'support/reply' has no version 9"
    assert fails("show", "support/reply@x") == (
        "invalid reference 'support/reply@x': write NAME@VERSION with a version number, like support/reply@3"
    )


# --- history ------------------------------------------------------------------------------------------


def test_history(project: Path, support_prompts: None, write_prompt: WritePrompt) -> None:
    push("-m", "first")
    assert ok("history", "support/reply").endswith("\nno label moves yet\n")
    ok("label", "support/reply", "production", "1")
    write_prompt("shared/tone", "template: Be formal.\n")
    push("-m", "formal tone")
    ok("label", "support/reply", "staging", "2")
    ok("label", "support/reply", "production", "2", "--reason", "looks good")

    out = ok("history", "support/reply")

    assert table(out, "version") == [
        {
            "version": "v2",
            "hash": HASH12,
            "pushed": WHEN,
            "author": "tester",
            "labels": "production, staging",
            "message": "formal tone",
        },
        {"version": "v1", "hash": HASH12, "pushed": WHEN, "author": "tester", "labels": "-", "message": "first"},
    ]
    move = {"when": WHEN, "kind": "move", "by": "tester"}
    assert table(out, "when") == [
        {**move, "label": "production", "from": "v1", "to": "v2", "gate": "-", "reason": "looks good"},
        {**move, "label": "staging", "from": "-", "to": "v2", "gate": "-", "reason": ""},
        {**move, "label": "production", "from": "-", "to": "v1", "gate": "-", "reason": ""},
    ]
    assert [row["label"] for row in table(ok("history", "support/reply", "--label", "staging"), "when")] == ["staging"]


# --- diff ---------------------------------------------------------------------------------------------


def test_diff(project: Path, support_prompts: None, write_prompt: WritePrompt) -> None:
    reply = (project / "prompts/support/reply.yaml").read_text()
    push()
    write_prompt(
        "support/reply",
        reply.replace("temperature: 0.2", "temperature: 0.7").replace('"{{ ticket }}"', '"Ticket: {{ ticket }}"'),
    )
    push()

    assert ok("diff", "support/reply", "1", "2") == textwrap.dedent(
        """\
        model_settings
        @@ -1,2 +1,2 @@
         max_tokens: 400
        -temperature: 0.2
        +temperature: 0.7

        messages
        @@ -1,4 +1,4 @@
         - role: system
           content: You help {{ customer }} ({{ tier }} plan). {% include 'shared/tone' %}
         - role: user
        -  content: '{{ ticket }}'
        +  content: 'Ticket: {{ ticket }}'

        """
    )
    assert ok("diff", "support/reply", "v2", "@1").splitlines()[3:5] == ["-temperature: 0.7", "+temperature: 0.2"]


def test_diff_shows_a_missing_final_line_break(project: Path, write_prompt: WritePrompt) -> None:
    write_prompt("ends", 'template: "a\\nb\\n"\n')
    push()
    write_prompt("ends", 'template: "a\\nb"\n')
    push()

    assert ok("diff", "ends", "1", "2").splitlines() == [
        "template",
        "@@ -1,2 +1,3 @@",
        " a",
        " b",
        "+\\ no newline at end",
        "",
    ]


def test_text_that_is_not_utf8_on_the_command_line_is_refused(project: Path, support_prompts: None) -> None:
    # Python reads an argument's bytes that are not UTF-8 (a Latin-1 terminal's "\xe9") as halves of surrogate
    # pairs, which no database stores: push -m crashed with UnicodeEncodeError after checking every file.
    reason = "holds U+DCE9, half of a UTF-16 surrogate pair, which cannot be stored"
    assert reason in fails("push", "-m", "caf\udce9")
    push()
    assert reason in fails("label", "support/reply", "staging", "1", "-r", "caf\udce9")
    assert ok("history", "support/reply").count("staging") == 0


def test_diff_identical(project: Path, support_prompts: None) -> None:
    push()
    ok("label", "support/reply", "staging", "1")

    assert ok("diff", "support/reply", "1", "1") == "v1 and v1 are identical\n"
    assert ok("diff", "support/reply", "staging", "1") == "v1 and v1 are identical\n"


def test_diff_unknown_version(project: Path, support_prompts: None) -> None:
    push()

    assert fails("diff", "support/reply", "1", "3") == "prompt 'support/reply' has no version 3"


# --- render -------------------------------------------------------------------------------------------

GREETING = """\
variables:
  name: {type: string}
  n: {type: integer}
  vip: {type: boolean, default: false}
template: "Hello {{ name }}, you have {{ n + 1 }} new messages.{% if vip %} (VIP){% endif %}"
"""


def test_render_text_prompt_with_typed_variables(project: Path, write_prompt: WritePrompt) -> None:
    write_prompt("greet", GREETING)
    push()

    assert ok("render", "greet", "--var", "name=Ann", "--var", "n=3") == "Hello Ann, you have 4 new messages.\n"
    assert ok("render", "greet@1", "--var", "name=7", "--var", "n=0", "--var", "vip=true") == (
        "Hello 7, you have 1 new messages. (VIP)\n"
    )
    assert fails("render", "greet", "--var", "name=Ann", "--var", "n=abc") == (
        "greet@1, variable 'n': expected integer, got str 'abc'"
    )


def test_render_json(project: Path, write_prompt: WritePrompt) -> None:
    write_prompt("greet", GREETING)
    push()

    assert json.loads(ok("render", "greet", "--var", "name=Ann", "--var", "n=3", "--json")) == {
        "name": "greet",
        "version": 1,
        "label": "latest",
        "messages": [{"role": "user", "content": "Hello Ann, you have 4 new messages."}],
    }


def test_render_vars_file(project: Path, write_prompt: WritePrompt) -> None:
    write_prompt("greet", GREETING)
    push()
    (project / "vars.yaml").write_text("name: Bo\nn: 5\nvip: true\n")

    assert ok("render", "greet", "--vars-file", "vars.yaml") == "Hello Bo, you have 6 new messages. (VIP)\n"
    # --var wins over the file
    assert ok("render", "greet", "--vars-file", "vars.yaml", "--var", "n=1") == (
        "Hello Bo, you have 2 new messages. (VIP)\n"
    )
    (project / "list.yaml").write_text("- a\n- b\n")
    assert fails("render", "greet", "--vars-file", "list.yaml") == (
        "list.yaml: a variables file must be a mapping of NAME: VALUE"
    )
    assert fails("render", "greet", "--vars-file", "nope.yaml") == "nope.yaml: cannot read: No such file or directory"


def test_render_chat_prompt_by_label(project: Path, support_prompts: None, write_prompt: WritePrompt) -> None:
    push()
    ok("label", "support/reply", "production", "1")
    write_prompt("shared/tone", "template: Be formal.\n")
    push()

    assert ok("render", "support/reply:production", *TICKET, "--var", "tier=pro") == textwrap.dedent(
        """\
        [system]
        You help Ann (pro plan). Be warm and concise.

        [user]
        Where is my order?
        """
    )
    latest = json.loads(ok("render", "support/reply", *TICKET, "--json"))
    assert (latest["version"], latest["label"], latest["messages"][0]["content"]) == (
        2,
        "latest",
        "You help Ann (free plan). Be formal.",
    )


def test_render_missing_variable(project: Path, support_prompts: None) -> None:
    push()

    assert fails("render", "support/reply", "--var", "customer=Ann") == (
        "support/reply@1, variable 'ticket': missing required variable"
    )
    assert fails("render", "support/reply", *TICKET, "--var", "tire=pro") == (
        "support/reply@1, variable 'tire': unknown variable (did you mean 'tier'?)"
    )
    assert fails("render", "support/reply", *TICKET, "--var", "tier=gold") == (
        "support/reply@1, variable 'tier': 'gold' is not one of ['free', 'pro']"
    )
    assert fails("render", "support/reply", "--var", "customer") == "invalid --var 'customer': write NAME=VALUE"


def test_render_number_in_exponent_notation(project: Path, write_prompt: WritePrompt) -> None:
    write_prompt("num", "variables: {x: {type: number}}\ntemplate: '{{ x * 2 }}'\n")
    push()

    assert ok("render", "num", "--var", "x=1e3") == "2000.0\n"


def test_render_var_with_half_a_surrogate_pair_is_refused(project: Path, write_prompt: WritePrompt) -> None:
    # JSON's "\ud800" is half of a character: it stays text, which the variable's type refuses (it crashed the
    # output with UnicodeEncodeError).
    write_prompt("items", "template: '{{ x | join(\",\") }}'\nvariables:\n  x: {type: array}\n")
    push()

    assert fails("render", "items", "--var", 'x=["\\ud800"]') == (
        "items@1, variable 'x': expected array, got str '[\"\\\\ud800\"]'"
    )
    assert ok("render", "items", "--var", 'x=["\\ud83d\\ude00", "b"]') == "\U0001f600,b\n"


def test_render_prints_the_text_as_is(project: Path, write_prompt: WritePrompt) -> None:
    write_prompt("plain", "template: 'Reply :thumbs_up: or [b]no[/b] at 10:30:00'\n")
    push()

    assert ok("render", "plain") == "Reply :thumbs_up: or [b]no[/b] at 10:30:00\n"


# --- labels -------------------------------------------------------------------------------------------


def test_label(project: Path, support_prompts: None) -> None:
    push()

    assert ok("label", "support/reply", "production", "1").splitlines() == [
        "support/reply: production -> v1 (was -)",
    ]
    assert ok("label", "support/reply", "staging", "1").splitlines() == ["support/reply: staging -> v1 (was -)"]
    assert ok("label", "support/reply", "staging", "1", "-r", "again").splitlines() == [
        "support/reply: staging -> v1 (was v1)"
    ]
    assert fails("label", "support/reply", "staging", "2") == "prompt 'support/reply' has no version 2"
    assert fails("label", "support/reply", "Staging", "1") == (
        "invalid label 'Staging': use lowercase letters, digits, '_', '.', '-' (at most 63)"
    )


def test_label_force(project: Path, support_prompts: None) -> None:
    push()

    assert fails("label", "support/reply", "production", "1", "--force") == "a forced move needs a reason (--reason)"
    assert ok("history", "support/reply").endswith("no label moves yet\n")

    # Nothing is protected here: --force has no gate to pass, and the move is an ordinary one.
    assert ok("label", "support/reply", "production", "1", "--force", "--reason", "hotfix").splitlines() == [
        "support/reply: production -> v1 (was -)",
    ]
    assert table(ok("history", "support/reply"), "when") == [
        {
            "when": WHEN,
            "label": "production",
            "kind": "move",
            "from": "-",
            "to": "v1",
            "by": "tester",
            "gate": "-",
            "reason": "hotfix",
        }
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["label", "support/reply", "latest", "1"],
        ["rollout", "support/reply", "latest", "1=100"],
        ["rollback", "support/reply", "latest"],
    ],
    ids=["label", "rollout", "rollback"],
)
def test_latest_is_reserved(project: Path, support_prompts: None, args: list[str]) -> None:
    push()

    assert fails(*args) == "'latest' is reserved: it always points at the newest version"


def test_rollout(project: Path, support_prompts: None, write_prompt: WritePrompt) -> None:
    push()
    write_prompt("shared/tone", "template: Be formal.\n")
    push()

    assert ok("rollout", "support/reply", "production", "1=90", "2=10").splitlines() == [
        "support/reply: production -> v1 90% / v2 10% (was -)",
    ]
    assert table(ok("list"), "prompt")[1]["labels"] == "production=v1 90% / v2 10%"
    assert ok("show", "support/reply:production").startswith("support/reply v1 ")
    assert ok("rollout", "support/reply", "staging", "v1=40", "v2=60%").splitlines() == [
        "support/reply: staging -> v1 40% / v2 60% (was -)"
    ]
    assert json.loads(ok("show", "support/reply:staging", "--json"))["number"] == 2

    def version_for(key: str) -> int:
        args = ["render", "support/reply:staging", *TICKET, "--json", "--targeting-key", key]
        return json.loads(ok(*args))["version"]

    chosen = {key: version_for(key) for key in [f"user-{n}" for n in range(12)]}
    assert set(chosen.values()) == {1, 2}
    assert {key: version_for(key) for key in list(chosen)[:4]} == dict(list(chosen.items())[:4])  # sticky


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (["1=90"], "rollout weights must sum to 100, got 90"),
        (["1=90", "3=abc"], "invalid rollout entry '3=abc': write VERSION=WEIGHT, like 3=90"),
        (["1=90", "2"], "invalid rollout entry '2': write VERSION=WEIGHT, like 3=90"),
        (["1=90", "3=10"], "prompt 'support/reply' has no version 3"),
        (["1=50", "1=50"], "v1 appears twice in the rollout"),
        (["1=110", "2=-10"], "invalid weight -10 for v2: weights are positive integers"),
        (["0=100"], "invalid version '0' in the rollout target: versions are numbered from 1 to 2147483647"),
        *(
            (
                [f"{key}=100"],
                f"invalid version {key!r} in the rollout target: write a version number in plain decimal "
                "digits, like 3 (no sign, spaces, leading zeros or other characters)",
            )
            for key in ("01", "+1", " 1", "1_000", "\u0661", "1e0")
        ),
        (
            ["1=50", "01=50"],
            "invalid version '01' in the rollout target: write a version number in plain decimal "
            "digits, like 3 (no sign, spaces, leading zeros or other characters)",
        ),
    ],
)
def test_rollout_bad_weights(
    project: Path, support_prompts: None, write_prompt: WritePrompt, weights: list[str], message: str
) -> None:
    push()
    write_prompt("shared/tone", "template: Be formal.\n")
    push()

    assert fails("rollout", "support/reply", "production", *weights) == message
    assert ok("history", "support/reply").endswith("no label moves yet\n")


def test_rollback_walks_back_through_history(project: Path, write_prompt: WritePrompt) -> None:
    for number in (1, 2, 3):
        write_prompt("t", f"template: version {number}\n")
        push()
        ok("label", "t", "production", str(number))

    assert ok("rollback", "t", "production").splitlines() == ["t: production -> v2 (was v3)"]
    assert ok("render", "t:production") == "version 2\n"
    assert ok("rollback", "t", "production", "--reason", "still bad").splitlines() == [
        "t: production -> v1 (was v2)",
    ]
    assert ok("render", "t:production") == "version 1\n"
    assert fails("rollback", "t", "production") == "nothing to roll back to: the label has no earlier target"
    assert ok("render", "t:production") == "version 1\n"

    rows = table(ok("history", "t"), "when")
    assert [(r["kind"], r["from"], r["to"], r["gate"], r["reason"]) for r in rows] == [
        ("rollback", "v2", "v1", "-", "still bad"),
        ("rollback", "v3", "v2", "-", ""),
        ("move", "v2", "v3", "-", ""),
        ("move", "v1", "v2", "-", ""),
        ("move", "-", "v1", "-", ""),
    ]


def test_rollback_undoes_a_rollout(project: Path, write_prompt: WritePrompt) -> None:
    for number in (1, 2):
        write_prompt("t", f"template: version {number}\n")
        push()
    ok("label", "t", "staging", "1")
    ok("rollout", "t", "staging", "1=50", "2=50")

    assert ok("rollback", "t", "staging") == "t: staging -> v1 (was v1 50% / v2 50%)\n"
    assert fails("rollback", "t", "production") == "prompt 't' has no label 'production'"


# --- errors and global options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["show", "nope"],
        ["show", "nope@1"],
        ["history", "nope"],
        ["render", "nope"],
        ["diff", "nope", "1", "2"],
        ["label", "nope", "staging", "1"],
        ["rollout", "nope", "staging", "1=100"],
        ["rollback", "nope", "staging"],
    ],
    ids=lambda args: args[0] + ("@1" if "@" in args[1] else ""),
)
def test_unknown_prompt(project: Path, support_prompts: None, args: list[str]) -> None:
    push()

    assert fails(*args) == "no prompt named 'nope'"


def test_registry_flag(project: Path, support_prompts: None) -> None:
    assert ok("--registry", "sqlite:///other.db", "push") == "shared/tone: v1 (new)\nsupport/reply: v1 (new)\n"

    assert (project / "other.db").is_file()
    assert not (project / ".promptlane").exists()
    assert [row["prompt"] for row in table(ok("--registry", "sqlite:///other.db", "list"), "prompt")] == [
        "shared/tone",
        "support/reply",
    ]
    assert ok("list").startswith("no prompts yet")
    assert (project / ".promptlane/registry.db").is_file()


def test_registry_from_the_environment(project: Path, support_prompts: None) -> None:
    result = runner.invoke(app, ["push"], env={"PROMPTLANE_REGISTRY": "sqlite:///env.db"})

    assert result.exit_code == 0
    assert (project / "env.db").is_file()
    assert ok("--registry", "sqlite:///env.db", "show", "support/reply").startswith("support/reply v1 ")


def test_project_flag(
    project: Path, support_prompts: None, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))

    assert ok("-C", str(project), "push") == "shared/tone: v1 (new)\nsupport/reply: v1 (new)\n"
    assert (project / ".promptlane/registry.db").is_file()
    assert ok("--project", str(project), "show", "support/reply").startswith("support/reply v1 ")


def test_project_flag_with_a_missing_folder(project: Path) -> None:
    """A folder that does not exist is a usage error (exit 2) naming it, not a traceback."""
    result = run("-C", str(project / "nope"), "list")

    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert "nope" in result.stderr and "does not exist" in result.stderr


def test_registry_flag_that_is_not_a_url(project: Path) -> None:
    assert "not-a-url" in fails("--registry", "not-a-url", "list")


def test_unsupported_registry(project: Path) -> None:
    assert fails("--registry", "mysql://db/x", "list") == (
        "unsupported registry URL mysql://db/x: use sqlite:/// or postgresql://"
    )


def test_bad_config_is_one_line(project: Path) -> None:
    (project / "promptlane.toml").write_text('registy = "sqlite:///x.db"\n')

    assert fails("list") == f"{project / 'promptlane.toml'}: registy: unknown key (did you mean 'registry'?)"


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        (
            lambda root: (root / "pyproject.toml").write_text("[tool]\npromptlane = 3\n"),
            ["list"],
            "[tool.promptlane] must be a table",
        ),
        (lambda root: None, ["label", "support/reply", "[prod]", "1"], "invalid label '[prod]'"),
    ],
    ids=["config", "label"],
)
def test_error_text_is_printed_verbatim(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setup: Callable[[Path], object],
    args: list[str],
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)

    assert expected in fails(*args)


# --- the installed entry point ------------------------------------------------------------------------


def console(args: Sequence[str], cwd: Path, *, module: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real command in a new process."""
    script = [sys.executable, "-m", "promptlane"] if module else [str(Path(sys.executable).parent / "promptlane")]
    return subprocess.run(
        [*script, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_console_script(project: Path, support_prompts: None) -> None:
    pushed = console(["push", "-m", "first"], project, module=True)
    assert (pushed.returncode, pushed.stderr, pushed.stdout) == (
        0,
        "",
        "shared/tone: v1 (new)\nsupport/reply: v1 (new)\n",
    )

    shown = console(["show", "support/reply", "--json"], project)
    assert (shown.returncode, shown.stderr) == (0, "")
    assert json.loads(shown.stdout)["author"] == "tester"

    rendered = console(["render", "support/reply", *TICKET], project)
    assert (rendered.returncode, rendered.stdout) == (
        0,
        "[system]\nYou help Ann (free plan). Be warm and concise.\n\n[user]\nWhere is my order?\n",
    )


def test_console_script_error_is_one_line(project: Path, write_prompt: WritePrompt) -> None:
    unknown = console(["show", "nope"], project)
    assert (unknown.returncode, unknown.stdout, unknown.stderr) == (2, "", "error: no prompt named 'nope'\n")

    write_prompt("bad", "template: hi\ntemprature: 0.2\n")
    bad = console(["push"], project, module=True)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert re.fullmatch(
        r"error: \S*bad\.yaml:2: temprature: unknown key 'temprature' " + TOP_LEVEL_SETTING_HINT + r"\n",
        bad.stderr,
    )
    assert "Traceback" not in bad.stderr

    usage = console(["rollout", "x", "production"], project)
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr


# --- conventions: version, JSON, exit status, check, completion, start-up ----------------------------------

REPO = Path(__file__).resolve().parent.parent

SCENARIOS = """\
prompt: support/reply
model: python:examples.support.model:respond
scenarios:
  - name: refund
    variables: {customer: Ana, ticket: "I want a refund for order 123"}
    tools:
      lookup_order:
        - returns: {status: delivered, total: 42.5}
    expect:
      - contains: refund
"""


def test_version_is_the_installed_distribution() -> None:
    from importlib.metadata import version

    assert ok("--version") == f"promptlane {version('promptlane')}\n"


def test_model_option_help_shows_python_references_literally() -> None:
    text = ok("eval", "--help")
    assert "python:module:function" in text
    assert "\u24c2" not in text  # rich once read `:m:` as an emoji code


def test_list_history_diff_and_tokens_as_json(project: Path, support_prompts: None, write_prompt: WritePrompt) -> None:
    push("-m", "first")
    write_prompt("shared/tone", "template: Be formal.\n")
    push("-m", "formal")
    ok("label", "support/reply", "staging", "1", "--reason", "try")
    assert run("token", "create", "--name", "ci", "--scope", "read").exit_code == 0

    listed = json.loads(ok("list", "--json"))
    assert [(p["name"], p["latest"], p["labels"]) for p in listed] == [
        ("shared/tone", 2, {}),
        ("support/reply", 2, {"staging": {"1": 100}}),
    ]
    history = json.loads(ok("history", "support/reply", "--json"))
    assert [v["number"] for v in history["versions"]] == [1, 2]
    assert [(m["label"], m["kind"], m["to_target"], m["reason"]) for m in history["moves"]] == [
        ("staging", "move", {"1": 100}, "try")
    ]
    assert history["labels"] == [
        {
            "prompt": "support/reply",
            "label": "staging",
            "target": {"1": 100},
            "updated_at": WHEN_ISO,
            "updated_by": IsStr(),
        }
    ]
    diff = json.loads(ok("diff", "support/reply", "1", "2", "--json"))
    assert (diff["from"], diff["to"], diff["identical"], [c["field"] for c in diff["changes"]]) == (
        1,
        2,
        False,
        ["includes"],
    )
    assert "+  template: Be formal." in diff["changes"][0]["diff"]
    same = json.loads(ok("diff", "support/reply", "1", "staging", "--json"))
    assert (same["identical"], same["changes"]) == (True, [])
    tokens = json.loads(ok("token", "list", "--json"))
    assert [(t["name"], t["scopes"], t["active"]) for t in tokens] == [("ci", ["read"], True)]
    assert "hash" not in json.dumps(tokens) and "plt_" not in json.dumps(tokens)


WHEN_ISO = IsStr(regex=r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def test_runs_as_json(project: Path, support_prompts: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))  # examples.support.model
    (project / "evals").mkdir()
    (project / "evals" / "reply.yaml").write_text(SCENARIOS)
    push()
    assert run("eval").exit_code == 0
    assert run("eval").exit_code == 0

    runs = json.loads(ok("runs", "list", "--json"))
    assert [(r["prompt"], r["version"], r["status"], r["counts"]["passed"]) for r in runs] == [
        ("support/reply", 1, "passed", 1),
        ("support/reply", 1, "passed", 1),
    ]
    shown = json.loads(ok("runs", "show", runs[0]["id"][:8], "--json"))
    assert shown["id"] == runs[0]["id"]
    assert [(c["scenario"], c["status"]) for c in shown["cases"]] == [("refund", "passed")]
    compared = json.loads(ok("runs", "compare", runs[1]["id"], runs[0]["id"], "--json"))
    assert (compared["before"]["id"], compared["after"]["id"]) == (runs[1]["id"], runs[0]["id"])
    assert (compared["unchanged"], compared["newly_failing"], compared["newly_passing"]) == (1, [], [])


@pytest.fixture
def gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project where production is protected (the default), with support/reply v1 pushed and its scenarios."""
    folder = tmp_path / "gated"
    for name, text in {"support/reply": REPLY_YAML, "shared/tone": TONE_YAML}.items():
        path = folder / "prompts" / f"{name}.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(text)
    (folder / "evals").mkdir()
    (folder / "evals" / "reply.yaml").write_text(SCENARIOS)
    (folder / "promptlane.toml").write_text('prompts = "prompts"\nevals = "evals"\n')
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(REPO))
    push()
    return folder


def test_a_gate_refusal_exits_1_and_names_the_gate_model_setting(gated: Path) -> None:
    refused = run("label", "support/reply", "production", "1")
    assert refused.exit_code == 1
    assert "no eval run of support/reply@1" in refused.stderr

    assert run("eval").exit_code == 0
    # The run used the scenarios' model function; the version declares openai:gpt-4o-mini.
    result = run("label", "support/reply", "production", "1")
    assert result.exit_code == 1
    assert (
        "used python:examples.support.model:respond, and the gate needs openai:gpt-4o-mini, the model "
        "support/reply@1 declares: run `promptlane eval --prompt support/reply --version 1 --model openai:gpt-4o-mini`"
        ", or accept runs on python:examples.support.model:respond for gating with the `gate_model` setting "
        '(gate_model = "python:examples.support.model:respond" in promptlane.toml or [tool.promptlane])'
    ) in result.stderr

    # Doing what it says opens the gate.
    config = gated / "promptlane.toml"
    config.write_text(config.read_text() + 'gate_model = "python:examples.support.model:respond"\n')
    assert ok("label", "support/reply", "production", "1").splitlines()[0] == (
        "support/reply: production -> v1 (was -)"
    )


def test_an_unreachable_registry_exits_3(project: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = fails("--registry", f"http://127.0.0.1:{port}", "list", status=3)
    assert f"127.0.0.1:{port}" in message


OUTAGE_MODELS = """\
from pydantic_ai.exceptions import (
    ModelAuthenticationError,
    ModelHTTPError,
    ModelRateLimitError,
    ModelServerError,
)
from pydantic_ai.messages import ModelResponse, TextPart


def _raise(category, status):
    # What pydantic-ai's providers raise for an HTTP error (a class named after its category).
    raise ModelHTTPError.for_category(category, status_code=status, model_name="m", body={"error": "x"})


def down(messages, info):
    raise ModelHTTPError(503, "provider", {"error": "overloaded"})


def server_error(messages, info):
    _raise(ModelServerError, 502)


def rate_limited(messages, info):
    _raise(ModelRateLimitError, 429)


def bad_key(messages, info):
    _raise(ModelAuthenticationError, 401)


def wrong(messages, info):
    raise ModelHTTPError(400, "provider", {"error": "bad request"})


def polite(messages, info):
    return ModelResponse(parts=[TextPart("Sorry about that: a refund is on its way.")])
"""

JUDGED = """\
      - judge: {rubric: Polite, model: "python:outage_models:down"}
"""


@pytest.mark.parametrize(
    ("model", "judge", "status"),
    [
        ("down", False, 3),
        ("server_error", False, 3),
        ("rate_limited", False, 3),
        ("bad_key", False, 2),
        ("wrong", False, 1),
        ("polite", True, 3),  # the answer is fine; the judge's provider is down
    ],
)
def test_eval_tells_an_outage_from_a_regression(
    project: Path, support_prompts: None, model: str, judge: bool, status: int
) -> None:
    (project / "outage_models.py").write_text(OUTAGE_MODELS)
    (project / "evals").mkdir()
    scenarios = SCENARIOS.replace("examples.support.model:respond", f"outage_models:{model}")
    (project / "evals" / "reply.yaml").write_text(scenarios + (JUDGED if judge else ""))
    # In a new process: the model module is imported from the project root, as users' are.
    result = console(["eval", "--retries", "0"], project)
    assert result.returncode == status, result.stderr + result.stdout
    assert "1 errors" in result.stdout


def test_an_expectation_not_met_beside_an_outage_is_a_regression(project: Path, support_prompts: None) -> None:
    (project / "outage_models.py").write_text(OUTAGE_MODELS)
    (project / "evals").mkdir()
    scenarios = SCENARIOS.replace("examples.support.model:respond", "outage_models:polite")
    both = scenarios + JUDGED + "      - contains: never said\n"
    (project / "evals" / "reply.yaml").write_text(both)
    assert console(["eval", "--retries", "0"], project).returncode == 1


def test_check_reports_every_bad_file_and_exits_2(
    project: Path, support_prompts: None, write_prompt: WritePrompt
) -> None:
    (project / "evals").mkdir()
    (project / "evals" / "reply.yaml").write_text(SCENARIOS)
    (project / "evals" / "notes.yaml").write_text("just: some yaml\n")  # not a scenario file: not ours
    assert ok("check").splitlines() == [
        f"ok     {Path('prompts/shared/tone.yaml')}",
        f"ok     {Path('prompts/support/reply.yaml')}",
        f"ok     {Path('evals/reply.yaml')}",
        "3 files checked: no errors",
    ]
    assert ok("check", "-q") == ""

    write_prompt("shared/tone", "template: 'Be {{ warm'\n")
    (project / "evals" / "reply.yaml").write_text(SCENARIOS.replace("contains:", "contians:"))
    result = run("check")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {Path('prompts/shared/tone.yaml')}:1 (shared/tone template): unexpected end of template, expected "
        "'end of print statement'.",
        f"error: {Path('prompts/support/reply.yaml')}: includes 'shared/tone', whose file has an error",
        f"error: {Path('evals/reply.yaml')}:10: scenarios.0.expect.0: unknown expectation 'contians' (did you mean "
        "'contains'?)",
        "3 of 3 files have errors",
    ]
    # Nothing was pushed: check needs no registry.
    assert not (project / ".promptlane").exists()


def test_check_given_files_checks_those(project: Path, support_prompts: None, write_prompt: WritePrompt) -> None:
    write_prompt("broken", "template: '{{'\n")
    # The broken file is not among those given.
    assert ok("check", "prompts/support/reply.yaml") == (
        f"ok     {Path('prompts/support/reply.yaml')}\n1 file checked: no errors\n"
    )
    assert "no such file or folder" in fails("check", "prompts/nope.yaml")


def test_the_pre_commit_hook_runs_check_on_the_whole_project(project: Path, write_prompt: WritePrompt) -> None:
    [hook] = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert (hook["id"], hook["language"], hook["pass_filenames"]) == ("promptlane-check", "python", False)
    assert re.search(hook["files"], "prompts/support/reply.yaml") and re.search(hook["files"], "data.jsonl")
    entry = hook["entry"].split()
    assert entry[0] == "promptlane"
    write_prompt("good", "template: hi\n")
    assert console(entry[1:], project).returncode == 0
    write_prompt("bad", "template: hi\ntemprature: 1\n")
    broken = console(entry[1:], project)
    assert broken.returncode == 2 and "bad.yaml:2" in broken.stderr


def test_shell_completion_completes_commands(project: Path) -> None:
    env = {**os.environ, "_PROMPTLANE_COMPLETE": "complete_bash", "COMP_WORDS": "promptlane ru", "COMP_CWORD": "1"}
    script = str(Path(sys.executable).parent / "promptlane")
    done = subprocess.run([script], cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.split() == ["runs"]
    assert "--install-completion" in ok("--help")


def test_help_imports_no_registry_store_or_harness() -> None:
    # What a command imports is its start-up time (bench/cli.py measures it): --help needs none of these.
    code = (
        "import sys\n"
        "from promptlane.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('sqlalchemy', 'pydantic_ai', 'rich', 'jinja2', 'pydantic', 'yaml', 'asyncio', 'httpx')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('promptlane.') and not m.startswith('promptlane.cli')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    heavy, ours = done.stdout.strip().splitlines()[-2:]
    assert heavy == "[]"
    assert ours == (
        "['promptlane._lazy', 'promptlane._unicode', 'promptlane.errors', 'promptlane.registry', "
        "'promptlane.registry.tokens']"
    )


def test_check_finds_a_dataset_column_no_row_has(project: Path, support_prompts: None) -> None:
    (project / "evals").mkdir()
    (project / "evals" / "rows.jsonl").write_text('{"ticket": "hi", "expected": "x"}\n{"ticket": "ho"}\n')
    scenarios = (
        "prompt: support/reply\nscenarios:\n  - name: rows\n    dataset: rows.jsonl\n"
        "    variables: {customer: Eve}\n    expect:\n      - contains: '{{ expcted }}'\n"
    )
    (project / "evals" / "rows.yaml").write_text(scenarios)
    result = run("check", "-q")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {Path('evals/rows.jsonl')}: no row has a column 'expcted' (did you mean 'expected'?): the "
        f"expectations of scenario 'rows' ({Path('evals/rows.yaml')}:3) use it",
        "1 of 3 files have errors",
    ]
    (project / "evals" / "rows.yaml").write_text(scenarios.replace("expcted", "expected"))
    assert ok("check", "-q") == ""


def test_init_leaves_the_example_out_when_one_of_its_files_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "prompts" / "support" / "reply.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("template: mine\n")
    assert ok("init").splitlines() == [
        "created  promptlane.toml",
        f"skipped  the example: {Path('prompts/support/reply.yaml')} is already there, with other content",
        "",
        "next: promptlane push, then promptlane eval (the README's tour goes on from here)",
    ]
    assert mine.read_text() == "template: mine\n"
    assert not (tmp_path / "evals" / "models.py").exists()
    assert "gate_model" not in tomllib.loads((tmp_path / "promptlane.toml").read_text())
    assert ok("init", "elsewhere").splitlines()[-1] == (
        "next: cd elsewhere, then promptlane push, then promptlane eval (the README's tour goes on from here)"
    )


def test_check_reports_a_misspelt_scenario_file_and_a_file_that_is_not_ours(
    project: Path, support_prompts: None
) -> None:
    (project / "evals").mkdir()
    (project / "evals" / "typo.yaml").write_text(SCENARIOS.replace("scenarios:", "scenario:"))
    result = run("check", "-q")
    assert result.exit_code == 2
    assert "typo.yaml:3: scenario: unknown key 'scenario' (did you mean 'scenarios'?)" in result.stderr
    (project / "notes.yaml").write_text("a: 1\n")
    assert fails("check", "notes.yaml") == (
        "notes.yaml: not a prompt file (those are in prompts) nor a scenario file (no top-level `scenarios:`)"
    )


def test_check_sees_a_linked_prompt_file_as_push_does(project: Path, support_prompts: None, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("template: '{{ oops'\n")
    (project / "prompts" / "linked.yaml").symlink_to(outside)
    result = run("check", "-q")
    assert result.exit_code == 2 and "linked.yaml" in result.stderr
    assert run("push").exit_code == 2


@pytest.mark.parametrize("option", ["--json", "--junit"])
def test_eval_refuses_a_report_path_it_cannot_write_before_running(project: Path, option: str) -> None:
    result = run("eval", option, "no/such/folder/report.out")
    assert result.exit_code == 2
    assert "the folder no/such/folder does not exist" in result.output
    assert not (project / ".promptlane").exists()  # nothing was pushed or run
    assert run("eval", option, str(project)).exit_code == 2  # a folder, not a file


def test_serve_on_an_address_in_use_is_a_configuration_error(project: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = console(["serve", "--no-auth", "--port", str(port)], project)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == f"error: could not listen on http://127.0.0.1:{port} (see the line above)"


class _Garbage:
    """A server on loopback that answers every request with one fixed status, content type and body."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "content_type", "exit_status", "says"),
    [
        (200, b"<html>hello</html>", "text/html", 3, "answered something that is not promptlane's API"),
        (200, b"[1, 2]", "application/json", 3, "answered something that is not promptlane's API"),
        (200, b'{"name": 1}', "application/json", 3, "answered something that is not promptlane's API"),
        (200, b"\xff\xfe not utf-8", "application/json", 3, "answered something that is not promptlane's API"),
        (429, b"slow down", "text/plain", 3, "429 Too Many Requests (is this a promptlane server?)"),
        (404, b"<html>nope</html>", "text/html", 2, "404 Not Found (is this a promptlane server?)"),
    ],
    ids=["html", "list-of-numbers", "wrong-shape", "not-utf8", "429", "404-html"],
)
@pytest.mark.parametrize("command", [["list"], ["show", "support/reply", "--json"], ["runs", "list", "--json"]])
def test_a_server_answering_garbage_is_one_line_and_an_outage(
    project: Path, status: int, body: bytes, content_type: str, exit_status: int, says: str, command: list[str]
) -> None:
    server = _Garbage(status, body, content_type)
    try:
        result = runner.invoke(app, ["--registry", server.url, *command], env={"PROMPTLANE_TOKEN": "plt_x"})
    finally:
        server.close()
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == exit_status, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: registry server {server.url}") or line.startswith("error: ")
    assert says in line


GREET_ROWS = "prompt: greet\nscenarios:\n  - name: rows\n    dataset: {}\n"


@pytest.mark.parametrize("way", ["dot-dot", "absolute", "symbolic link", "linked folder", "system file"])
def test_eval_reads_no_dataset_outside_the_project_unless_its_folder_is_allowed(
    project: Path, write_prompt: WritePrompt, tmp_path_factory: pytest.TempPathFactory, way: str
) -> None:
    shared = tmp_path_factory.mktemp("shared")
    (shared / "rows.jsonl").write_text('{"name": "Ann"}\n')
    write_prompt("greet", "template: 'Hi {{ name }}'\nmodel: test\nvariables:\n  name: {type: string}\n")
    (project / "evals").mkdir()
    (project / "evals" / "link.jsonl").symlink_to(shared / "rows.jsonl")
    (project / "evals" / "linked").symlink_to(shared, target_is_directory=True)
    name, link = {
        "dot-dot": (os.path.relpath(shared / "rows.jsonl", project / "evals"), ""),
        "absolute": (str(shared / "rows.jsonl"), ""),
        "symbolic link": ("link.jsonl", f" (a symbolic link to {(shared / 'rows.jsonl').resolve()})"),
        "linked folder": ("linked/rows.jsonl", f" (a symbolic link to {(shared / 'rows.jsonl').resolve()})"),
        "system file": ("../" * 40 + "etc/passwd", ""),
    }[way]
    (project / "evals" / "greet.yaml").write_text(GREET_ROWS.format(name))

    assert fails("eval") == (
        f"{Path('evals/greet.yaml')}:4: scenarios.0.dataset: dataset {name}{link} is outside the project folder: a "
        "dataset is read only from the project, or from a folder listed in the `dataset_roots` setting"
    )
    assert run("check", "-q").exit_code == 2

    config = project / "promptlane.toml"
    config.write_text(config.read_text() + f"dataset_roots = [{json.dumps(str(shared))}]\n")
    if way == "system file":
        assert "outside the project folder" in fails("eval")
    else:
        assert "rows  " in ok("eval")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:hunter2@127.0.0.1:1/x",
        "postgresql://u:hun/ter2@127.0.0.1:1/x",
        "http://u:hunter2@127.0.0.1:1",
        "https://u:hunter2@127.0.0.1:1/prefix",
        "mysql://u:hunter2@127.0.0.1:1/x",
        "postgresql:/u:hunter2@127.0.0.1:1/x",
        "postgresql://u:hun@ter2@127.0.0.1:1/x",
    ],
)
def test_a_registry_password_is_printed_nowhere(
    project: Path,
    support_prompts: None,
    url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing listens on port 1: every command that opens the registry fails, and says so without the password
    (from the flag or the environment, in the error line, or in a log line)."""
    commands = [
        ["list"],
        ["push"],
        ["show", "support/reply"],
        ["label", "support/reply", "staging", "1"],
        ["rollout", "support/reply", "staging", "1=100"],
        ["serve", "--port", "1"],
        ["--version"],
    ]
    with caplog.at_level(logging.DEBUG):
        for args in commands:
            for result in (run("--registry", url, *args), runner.invoke(app, args, env={"PROMPTLANE_REGISTRY": url})):
                said = result.stdout + result.stderr
                assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
                assert "hunter2" not in said and "ter2" not in said, (args, said)
                assert result.exit_code == 0 if args == ["--version"] else result.exit_code in (2, 3), (args, said)
    assert "ter2" not in caplog.text, caplog.text


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://u:hunter2@[::1", "invalid literal for int() with base 10: ':1'"),
        ("postgresql://u:hunter2@db:port/x", "invalid literal for int() with base 10: 'port'"),
        ("sqlite://u:hunter2@/x.db", "Invalid SQLite URL: sqlite://u:***@/x.db"),
        ("http://u:hunter2@[::1", "Invalid port: ':1'"),
    ],
)
def test_a_malformed_registry_url_is_one_error_line(project: Path, url: str, reason: str) -> None:
    stderr = fails("--registry", url, "list")
    masked = url.replace("hunter2", "***")
    assert stderr == f"the registry URL {masked} cannot be used: {reason}"


# --- plain text on click alone: no rich, no typer -----------------------------------------------------------

RICH_OR_TYPER = ("typer", "rich", "shellingham", "markdown_it", "mdurl", "annotated_doc")
"""Typer, rich and the packages only they import."""

WITHOUT_RICH_OR_TYPER = f"""\
import runpy, sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {RICH_OR_TYPER!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, NotInstalled())
sys.argv[0] = "promptlane"
runpy.run_module("promptlane", run_name="__main__", alter_sys=True)
"""


def test_help_imports_neither_typer_nor_rich(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "promptlane", "--help"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()}
    assert "click" in imported  # the parsing worked
    assert not imported & set(RICH_OR_TYPER)


def test_every_kind_of_output_works_without_typer_and_rich(project: Path, support_prompts: None) -> None:
    (project / "evals").mkdir()
    (project / "evals" / "reply.yaml").write_text(SCENARIOS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # examples.support.model

    def promptlane(*args: str, status: int = 0) -> str:
        done = subprocess.run(
            [sys.executable, "-c", WITHOUT_RICH_OR_TYPER, *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert (done.returncode, done.stderr) == (status, ""), args
        return done.stdout

    assert promptlane("push").splitlines() == ["shared/tone: v1 (new)", "support/reply: v1 (new)"]
    assert promptlane("list").startswith("prompt ")
    assert promptlane("eval").startswith("support/reply v1  passed")
    assert promptlane("runs", "show", "support/reply@1", "--all").splitlines()[-1].startswith("PASSED refund")
    assert promptlane("history", "support/reply").startswith("versions\nversion ")
    # Closed: the run used the scenarios' model function, not the model the version declares.
    gate = promptlane("gate", "support/reply", status=1).splitlines()
    assert (gate[0], gate[2].split(), gate[-2]) == (
        "support/reply@1 -> production: closed (production is not protected: only `promote` goes through the gate)",
        ["part", "state", "then", "now"],
        "To open the gate:",
    )


def test_a_description_prints_as_written_and_cannot_break_the_table(project: Path, write_prompt: WritePrompt) -> None:
    write_prompt("odd", 'description: "[bold]Hi[/bold]\\nsecond line \\e[2J"\ntemplate: hi\n')
    write_prompt("plain", "description: fine\ntemplate: hi\n")
    push()
    lines = ok("list").splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("odd ") and lines[1].endswith("[bold]Hi[/bold]\\nsecond line \\x1b[2J")
    assert lines[2].startswith("plain ") and lines[2].endswith("fine")
    assert lines[0].index("description") == lines[1].index("[bold]") == lines[2].index("fine")


def test_an_error_message_cannot_drive_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from promptlane.cli._app import fail
    from promptlane.errors import PromptlaneError

    exit_ = fail(PromptlaneError("bad \x1b[2J name\n  - and a second line"))
    assert capsys.readouterr().err == "error: bad \\x1b[2J name\n  - and a second line\n"
    assert exit_.exit_code == 2


def test_help_lists_the_arguments_with_their_help() -> None:
    text = ok("label", "--help")
    assert text.startswith("Usage: promptlane label [OPTIONS] NAME LABEL VERSION\n")
    arguments = text.split("Arguments:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split(None, 1) for line in arguments] == [
        ["NAME", "The prompt."],
        ["LABEL", "The label (production, staging, ...)."],
        ["VERSION", "The version number to point it at."],
    ]
    assert "FOLDER  The project folder.  [default: .]" in ok("init", "--help")
    assert "VERSION=WEIGHT...  Like 3=90 4=10 (sum 100)." in ok("rollout", "--help")
    assert "[default: 16; x>=1]" in ok("eval", "--help")


def commands_listed(text: str) -> list[str]:
    return [line.split()[0] for line in text.split("Commands:\n", 1)[1].splitlines() if line.strip()]


def test_help_lists_commands_in_the_order_of_a_prompt_s_life() -> None:
    assert commands_listed(ok("--help")) == [
        "init", "check", "push", "list", "show", "history", "diff", "render", "eval", "runs", "label", "rollout",
        "promote", "rollback", "gate", "pending", "approve", "reject", "schema", "serve", "token",
    ]  # fmt: skip
    assert commands_listed(ok("runs", "--help")) == ["list", "show", "compare"]
    assert commands_listed(ok("token", "--help")) == ["create", "list", "revoke"]


def complete(env: dict[str, str]) -> Result:
    return runner.invoke(app, [], env=env, prog_name="promptlane")


def test_completion_answers_click_s_scripts_and_powershell() -> None:
    bash = complete({"_PROMPTLANE_COMPLETE": "bash_complete", "COMP_WORDS": "promptlane runs sh", "COMP_CWORD": "2"})
    assert (bash.exit_code, bash.stdout.split()) == (0, ["plain,show"])
    powershell = complete(
        {
            "_PROMPTLANE_COMPLETE": "powershell_complete",
            "_PROMPTLANE_COMPLETE_ARGS": "promptlane tok",
            "_PROMPTLANE_COMPLETE_WORD": "tok",
        }
    )
    assert powershell.exit_code == 0
    [answer] = powershell.stdout.splitlines()
    assert answer.startswith("token:::API tokens")


@pytest.mark.parametrize(
    ("shell", "instruction"),
    [("bash", "bash_complete"), ("zsh", "zsh_complete"), ("fish", "fish_complete"), ("pwsh", "powershell_complete")],
)
def test_show_completion_prints_the_script_of_the_shell(
    monkeypatch: pytest.MonkeyPatch, shell: str, instruction: str
) -> None:
    monkeypatch.setenv("SHELL", f"/usr/bin/{shell}")
    result = run("--show-completion")
    assert result.exit_code == 0
    assert instruction in result.stdout and "_PROMPTLANE_COMPLETE" in result.stdout


@pytest.mark.parametrize(
    ("shell", "script", "rc", "line"),
    [
        ("bash", ".bash_completions/promptlane.sh", ".bashrc", "source '{script}'"),
        ("zsh", ".zfunc/_promptlane", ".zshrc", "fpath+=~/.zfunc; autoload -Uz compinit; compinit"),
        ("fish", ".config/fish/completions/promptlane.fish", None, None),
    ],
)
def test_install_completion_writes_the_script_and_loads_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shell: str, script: str, rc: str | None, line: str | None
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHELL", f"/bin/{shell}")
    if rc is not None:
        (tmp_path / rc).write_text("# mine\n")
    for _ in range(2):
        result = run("--install-completion")
        assert result.exit_code == 0
    path = tmp_path / script
    assert result.stdout.startswith(f"{shell} completion installed in {path}\n")
    assert f"{shell}_complete" in path.read_text()
    if rc is not None and line is not None:
        assert (tmp_path / rc).read_text() == "# mine\n" + line.format(script=path) + "\n"


def test_completion_for_an_unknown_shell_is_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELL", "/bin/tcsh")
    message = fails("--show-completion")
    assert (
        message
        == "cannot complete for the shell in $SHELL (/bin/tcsh): completion is for bash, zsh, fish and PowerShell"
    )


def test_the_progress_line_is_redrawn_at_most_ten_times_a_second_and_wiped() -> None:
    import io

    from promptlane.cli.evals import _ProgressLine

    now = [100.0]
    stream = io.StringIO()
    progress = _ProgressLine("greet v2", lambda: 300, stream, clock=lambda: now[0])
    progress.draw()
    for _ in range(119):  # finished within the same tenth of a second: not drawn
        progress.advance()
    now[0] += 4.2
    progress.advance()
    progress.clear()
    assert stream.getvalue() == "\rgreet v2 0/300 00:00\rgreet v2 120/300 00:04\r" + " " * 22 + "\r"


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_eval_shows_progress_on_a_terminal_and_nothing_in_a_pipe(project: Path, support_prompts: None) -> None:
    import pty

    (project / "evals").mkdir()
    (project / "evals" / "reply.yaml").write_text(SCENARIOS)
    push()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = str(Path(sys.executable).parent / "promptlane")
    piped = subprocess.run([script, "eval"], cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert (piped.returncode, piped.stderr) == (0, "")

    terminal, child = pty.openpty()
    try:
        done = subprocess.run(
            [script, "eval"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=child, text=True, timeout=120
        )
        os.close(child)
        shown = b""
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # the other end is closed and everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(terminal)
    assert done.returncode == 0
    assert done.stdout.startswith("support/reply v1  passed  1/1 passed (100%)")
    text = shown.decode()
    assert text.startswith("\rsupport/reply v1 0/1 00:00")
    assert text.endswith("\r")  # wiped
    assert "\x1b" not in text


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_runs_show_json_escapes_hidden_characters_on_a_terminal_only(project: Path, support_prompts: None) -> None:
    import pty

    from promptlane.registry import Registry
    from test_sqlite_store import _case, _record

    push()
    hidden = "answer \u202eevil\u202c \U000e0049\U000e0047"
    with Registry(f"sqlite:///{project / '.promptlane/registry.db'}") as registry:
        record = _record("f" * 32, 1)
        registry.store.create_run(record)
        registry.store.add_cases(record.id, [_case(1, output=hidden)])
    command = [str(Path(sys.executable).parent / "promptlane"), "runs", "show", "f" * 32, "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    piped = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["cases"][0]["output"] == hidden  # into a pipe: the stored text as it is

    terminal, child = pty.openpty()
    try:
        done = subprocess.run(command, cwd=project, env=env, stdout=child, stderr=subprocess.PIPE, timeout=120)
        os.close(child)
        shown = b""
        while chunk := _read_or_end(terminal):
            shown += chunk
    finally:
        os.close(terminal)
    assert done.returncode == 0, done.stderr
    text = shown.decode().replace("\r\n", "\n")
    assert hidden_at(text) == []
    assert json.loads(text)["cases"][0]["output"] == hidden


def _read_or_end(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the other end is closed and everything was read
        return b""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc")
def test_serve_outlives_a_client_hanging_up_mid_answer(project: Path) -> None:
    # A server must ignore SIGPIPE, or a client that hangs up while a large answer is being written kills the
    # process.
    import signal
    import socket

    from _live import wait_for

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "promptlane"), "serve", "--no-auth", "--port", str(port)],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def listening() -> bool:
            with socket.socket() as client:
                return client.connect_ex(("127.0.0.1", port)) == 0

        wait_for(lambda: server.poll() is not None or listening(), "promptlane serve listening or exiting")
        assert server.poll() is None, "the server exited"
        ignored = next(
            line for line in Path(f"/proc/{server.pid}/status").read_text().splitlines() if line.startswith("SigIgn:")
        )
        assert int(ignored.split()[1], 16) & (1 << (signal.SIGPIPE - 1))
    finally:
        server.terminate()
        server.wait(timeout=60)
