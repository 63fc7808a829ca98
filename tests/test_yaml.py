"""Untrusted YAML is measured before it is expanded: alias bombs, deep nesting and self-reference are refused
with the file and line, through every reader (prompt, scenario and dataset files, --vars-file, --var values,
editor fields, the gate's scan of the evals folder)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptlane import _yaml
from promptlane._yaml import load_data, load_yaml
from promptlane.errors import SpecError


def bomb(levels: int, width: int = 10, indent: str = "") -> str:
    """``levels`` levels of ``width`` aliases to the level below: width ** levels values once expanded."""
    lines = [f"{indent}l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels + 1):
        lines.append(f"{indent}l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_a_document_within_the_limits_loads_with_its_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_yaml, "MAX_VALUES", 1237)
    document = load_yaml(bomb(2), Path("ok.yaml"))  # 11 + 111 + 1111 values, 3 keys and the document: 1237
    assert document.data["l2"][9][9][9] == "lol"
    assert document.line(("l2",)) == 3


def test_an_alias_bomb_is_refused_at_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_yaml, "MAX_VALUES", 1000)
    with pytest.raises(SpecError) as info:
        load_yaml(bomb(3), Path("bomb.yaml"))  # level 3 expands to 10,000
    assert (info.value.path, info.value.line) == (Path("bomb.yaml"), 3)
    assert info.value.reason == (
        "invalid YAML: this value expands to more than 1000 values (aliases count each time they are used)"
    )
    with pytest.raises(SpecError, match="expands to more than 1000 values"):
        load_data(bomb(3), "field")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: " + "[" * 101 + "]" * 101, f"nested more than {_yaml.MAX_DEPTH} levels deep"),
        ("a: " + "[" * 50_000 + "]" * 50_000, f"nested more than {_yaml.MAX_DEPTH} levels deep"),  # parser recursion
        ("a: " + "{b: " * 120 + "1" + "}" * 120, f"nested more than {_yaml.MAX_DEPTH} levels deep"),
        ("&a [*a]", "an alias refers to itself"),
        ("a: &a {b: [1, *a]}", "an alias refers to itself"),
    ],
    ids=["deep-lists", "very-deep-lists", "deep-mappings", "self-list", "self-mapping"],
)
def test_deep_and_self_referencing_documents_are_refused(text: str, reason: str) -> None:
    with pytest.raises(SpecError) as info:
        load_data(text, "doc.yaml")
    assert info.value.reason == f"invalid YAML: {reason}"
    assert info.value.path == "doc.yaml"


def test_the_depth_limit_allows_what_real_files_nest() -> None:
    text = "a: " + "[" * 99 + "]" * 99
    assert load_data(text) is not None


# --- every reader, end to end ----------------------------------------------------------------------------------
# In a new process with its address space capped at 2 GB and a generous timeout, so that a guard that stopped
# working fails the test (MemoryError, a kill or the timeout) instead of taking the machine down.

BOMB = bomb(9)  # 10 ** 9 values once expanded: a few hundred bytes


def _promptlane(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
    code = limit + "import sys; from promptlane.cli import main; sys.argv = ['promptlane', *sys.argv[1:]]; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "promptlane.toml").write_text('prompts = "prompts"\nevals = "evals"\n')
    reply = tmp_path / "prompts" / "reply.yaml"
    reply.parent.mkdir()
    reply.write_text("variables:\n  items: {type: array}\ntemplate: '{{ items|length }}'\n")
    (tmp_path / "evals").mkdir()
    return tmp_path


def _refused(result: subprocess.CompletedProcess[str], where: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert where in result.stderr and "expands to more than 200000 values" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["push"], ["check"]])
def test_a_bomb_in_a_prompt_file(folder: Path, command: list[str]) -> None:
    (folder / "prompts" / "bomb.yaml").write_text(
        "template: hi\nvariables:\n  x:\n    default:\n" + bomb(9, indent="      ")
    )
    _refused(_promptlane(command, folder), "bomb.yaml:10")


@pytest.mark.parametrize("command", [["eval"], ["check"]])
def test_a_bomb_in_a_scenario_file(folder: Path, command: list[str]) -> None:
    scenario = "prompt: reply\nmodel: test\nscenarios:\n  - name: s\n    variables:\n      items:\n"
    (folder / "evals" / "bomb.yaml").write_text(scenario + textwrap.indent(BOMB, "        "))
    _refused(_promptlane(command, folder), "bomb.yaml:12")


def test_a_bomb_in_a_yaml_dataset(folder: Path) -> None:
    scenario = "prompt: reply\nmodel: test\nscenarios:\n  - name: s\n    dataset: rows.yaml\n"
    (folder / "evals" / "reply.yaml").write_text(scenario)
    (folder / "evals" / "rows.yaml").write_text("- items: [1]\n- items:\n" + textwrap.indent(BOMB, "    "))
    _refused(_promptlane(["eval"], folder), "rows.yaml:8")


def test_a_bomb_in_a_vars_file_and_a_var(folder: Path) -> None:
    assert _promptlane(["push"], folder).returncode == 0
    (folder / "vars.yaml").write_text(BOMB)
    _refused(_promptlane(["render", "reply", "--vars-file", "vars.yaml"], folder), "vars.yaml:6")
    # A --var value that is not small YAML stays text, which the variable's type then refuses.
    inline = "{" + BOMB.replace("\n", ", ").rstrip(", ") + "}"
    result = _promptlane(["render", "reply", "--var", f"items={inline}"], folder)
    assert result.returncode == 2 and "variable 'items'" in result.stderr, result.stderr


def test_the_gate_skips_a_bomb_in_the_evals_folder(folder: Path) -> None:
    (folder / "promptlane.toml").write_text('prompts = "prompts"\nevals = "evals"\nprotected_labels = ["production"]\n')
    assert _promptlane(["push"], folder).returncode == 0
    (folder / "evals" / "bomb.yaml").write_text("prompt: reply\nscenarios: []\n" + BOMB)
    result = _promptlane(["label", "reply", "production", "1"], folder)
    assert result.returncode == 1 and "no scenario files target reply" in result.stderr, result.stderr


# --- characters past U+FFFF written as JSON writes them -----------------------------------------------------


@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=40))
def test_json_escapes_in_a_double_quoted_string_read_back_as_the_text(text: str) -> None:
    # JSON (and so many YAML writers) escapes a character past U+FFFF as a UTF-16 pair, "\ud83d\ude00"; PyYAML
    # reads the two halves as two characters, which no file or database can store.
    quoted = json.dumps(text).replace("\x7f", "\\u007f")  # JSON leaves DEL as it is; YAML wants it escaped
    assert load_data(f"value: {quoted}\n") == {"value": text}
    assert load_data(f"{quoted}: x\n") == {text: "x"}  # keys too


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00", "\\ude00\\ud83d", "x\\ud83d y"])
def test_half_a_surrogate_pair_is_refused_at_its_line(escape: str) -> None:
    with pytest.raises(SpecError) as info:
        load_yaml(f'template: ok\nstop:\n  - "{escape}"\n', Path("p.yaml"))
    assert (info.value.path, info.value.line) == (Path("p.yaml"), 3)
    assert "is half of a UTF-16 surrogate pair, without its other half" in info.value.reason


def test_a_prompt_file_with_json_escapes_is_pushed_as_its_characters(folder: Path) -> None:
    (folder / "prompts" / "emoji.yaml").write_text('template: "Tag \\udb40\\udc49, smile \\ud83d\\ude00"\n')
    (folder / "prompts" / "half.yaml").write_text('template: ok\ndescription: "half \\ud83d"\n')
    result = _promptlane(["push", "prompts/half.yaml"], folder)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "half.yaml:2: invalid YAML: the escape \\ud83d is half of a UTF-16 surrogate pair" in result.stderr
    result = _promptlane(["push", "prompts/emoji.yaml"], folder)
    assert result.returncode == 0, result.stderr
    shown = _promptlane(["show", "emoji", "--json"], folder)
    assert json.loads(shown.stdout)["spec"]["template"] == "Tag \U000e0049, smile \U0001f600"


@pytest.mark.parametrize("character", ["\x01", "\x7f", "\x80", "\ufffe"])
def test_a_character_yaml_does_not_allow_is_refused_at_its_line(folder: Path, character: str) -> None:
    (folder / "prompts" / "odd.yaml").write_text(f'template: ok\ndescription: "a{character}b"\n')
    result = _promptlane(["push", "prompts/odd.yaml"], folder)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    code = ord(character)
    assert f"odd.yaml:2: invalid YAML: the character U+{code:04X} may not appear in a YAML file" in result.stderr
    assert load_data(f'value: "a\\u{code:04x}b"') == {"value": f"a{character}b"}  # the escape it suggests
