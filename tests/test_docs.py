"""The README's tour and the docs' examples, executed, so that they cannot drift from the code.

- The tour runs as a reader would run it: in an empty folder outside the repository, with only the installed
  package, every command and file in order (``examples/tour.py``, which ``make demo`` runs too).
- Python blocks of the README and docs/ run with pytest-examples in the folder the tour leaves behind, their
  ``#>`` lines checked; every block is linted with ruff (undefined names, unused imports). A block marked
  ``test="skip"`` needs something a test cannot have (a remote server, a model provider's key) and is only linted.
- YAML and TOML blocks that are prompt, scenario or config files are loaded by the loaders users run.
- Every ``promptlane ...`` command line in the README and docs/ names a real command with real options.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from pytest_examples import CodeExample, EvalExample, find_examples

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _load_tour() -> ModuleType:
    spec = importlib.util.spec_from_file_location("promptlane_tour", REPO / "examples" / "tour.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tour = _load_tour()


@pytest.fixture(scope="module")
def toured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """A folder outside the repository after the README's tour, and what went wrong on the way."""
    folder = tmp_path_factory.mktemp("tour")
    env = tour.environment()
    env["PROMPTLANE_AUTHOR"] = "tester"
    problems: list[str] = []
    for block in tour.tour_blocks():
        if block.kind == "console":
            for command in tour.commands(block):
                _, problem = tour.run_command(command, folder, env)
                if problem:
                    problems.append(f"README.md:{command.line}: `{command.command}` {problem}")
        elif block.kind == "yaml" and "title" in block.settings:
            problem = tour.check_file(block, folder)
            if problem:
                problems.append(f"README.md:{block.line}: {problem}")
        elif block.kind == "python":
            _, problem = tour.run_python(block, folder, env)
            if problem:
                problems.append(f"README.md:{block.line}: the python block {problem}")
        if problems:
            break  # later steps depend on earlier ones
    yield folder, problems


def test_the_readme_tour_runs_as_written_in_an_empty_folder(toured: tuple[Path, list[str]]) -> None:
    folder, problems = toured
    assert not problems, "\n\n".join(problems)
    assert not (folder / "examples").exists()  # nothing from the repository was needed
    assert {"console", "yaml", "python"} <= {block.kind for block in tour.tour_blocks()}


def test_the_tour_runner_notices_a_difference() -> None:
    # The runner is the test: a wrong line, a missing line and extra output must all be reported.
    assert tour.mismatch("a  b\n...\nz\n", "a    b\nx\ny\nz\n") is None
    assert tour.mismatch("run ...  ok\n", "run 3fcd456bab79  ok\n") is None
    assert tour.mismatch("a\nb\n", "a\nc\n") is not None
    assert tour.mismatch("a\nb\n", "a\n") is not None
    assert tour.mismatch("a\n", "a\nextra\n") is not None
    assert tour.printed("print(1)\n#> 1\nfor x in y:\n    print(x)\n    #> a\n    #> b\n") == "1\na\nb\n"


# --- Python blocks ---------------------------------------------------------------------------------------


def _python_examples() -> list[CodeExample]:
    return [example for example in find_examples(*DOCS) if example.prefix.split()[0] in ("py", "python")]


@pytest.mark.parametrize("example", _python_examples(), ids=str)
def test_python_examples_run_and_print_what_they_show(
    example: CodeExample,
    eval_example: EvalExample,
    toured: tuple[Path, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eval_example.set_config(line_length=120, ruff_ignore=["E501", "B018", "I001"], target_version="py310")
    eval_example.lint_ruff(example)
    if example.prefix_settings().get("test") == "skip":
        return
    folder, problems = toured
    if problems:
        pytest.skip("the tour did not complete (see test_the_readme_tour_runs_as_written_in_an_empty_folder)")
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    # pytest cannot draw a traceback through the example's generated module (an internal error that ends the
    # session), so a failure is reported as the error it is, with the example's place, outside the `except`.
    failure = None
    try:
        eval_example.run_print_check(example)
    except Exception as exc:
        failure = f"{example}: {type(exc).__name__}: {exc}"
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def test_skipped_python_examples_are_few_and_say_why() -> None:
    skipped = [example for example in _python_examples() if example.prefix_settings().get("test") == "skip"]
    # Each needs a live registry server or a provider key; the rest run.
    assert len(skipped) <= 3, [str(example) for example in skipped]


# --- files shown in the docs ------------------------------------------------------------------------------

_FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def _blocks(kinds: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(``file:line``, language, text) of every block of these languages in the README and docs/."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            if match.group(1) in kinds:
                line = text[: match.start(3)].count("\n") + 1
                found.append((f"{path.relative_to(REPO)}:{line}", match.group(1), textwrap.dedent(match.group(3))))
    return found


def _file_kind(text: str) -> str:
    if re.search(r"^scenarios:", text, re.M) and re.search(r"^prompt:", text, re.M):
        return "scenario"
    if re.search(r"^(template|messages):", text, re.M):
        return "prompt"
    return "other"


@pytest.mark.parametrize(("where", "text"), [(w, t) for w, _, t in _blocks(("yaml",))], ids=lambda v: str(v)[:40])
def test_yaml_examples_load(where: str, text: str, tmp_path: Path) -> None:
    import yaml

    kind = _file_kind(text)
    if kind == "other":
        # A fragment (a part of a file, a workflow): it must at least be YAML.
        yaml.safe_load(text)
        return
    from promptlane.harness.scenarios import load_scenario_file
    from promptlane.spec import load_prompt_file

    if kind == "prompt":
        path = tmp_path / "prompts" / "example.yaml"
        path.parent.mkdir()
        path.write_text(text)
        load_prompt_file(path, tmp_path / "prompts")
    else:
        path = tmp_path / "scenarios.yaml"
        path.write_text(text)
        for dataset in re.findall(r"dataset: (\S+)", text):
            (tmp_path / dataset).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / dataset).write_text('{"ticket": "x", "expected": "y"}\n')
        load_scenario_file(path)


@pytest.mark.parametrize(("where", "text"), [(w, t) for w, _, t in _blocks(("toml",))], ids=lambda v: str(v)[:40])
def test_toml_config_examples_load(where: str, text: str, tmp_path: Path) -> None:
    from promptlane.config import load_settings

    name = "pyproject.toml" if "[tool.promptlane]" in text else "promptlane.toml"
    (tmp_path / name).write_text(text)
    load_settings(start=tmp_path)


# --- command lines ----------------------------------------------------------------------------------------


def _command_lines() -> list[tuple[str, list[str]]]:
    """Every ``promptlane ...`` invocation in a shell or console block, as arguments after ``promptlane``."""
    found = []
    for where, language, text in _blocks(("sh", "console", "bash", "yaml")):
        for line in text.splitlines():
            line = line.strip()
            if language == "console":
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            elif language == "yaml":
                if "run:" not in line:
                    continue  # a CI workflow's commands are its `run:` lines
                line = line.split("run:", 1)[1]
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token in ("&&", "||", ";", "|", "&", "(", ")"):
                    if words[:1] == ["promptlane"]:
                        found.append((where, words[1:]))
                    words = []
                else:
                    words.append(token)
    return found


@pytest.mark.parametrize(("where", "args"), _command_lines(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_documented_commands_exist_with_their_options(where: str, args: list[str]) -> None:
    from click.testing import CliRunner

    from promptlane.cli import app

    # Parsing stops at --help, after the command is found and every option before it is known.
    result = CliRunner().invoke(app, [*(a for a in args if "$" not in a), "--help"])
    assert result.exit_code == 0, f"{where}: promptlane {' '.join(args)}\n{result.output}"


def test_cli_reference_lists_every_command() -> None:
    from promptlane.cli import app

    reference = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, command in app.commands.items():
        names = [name, *(f"{name} {sub}" for sub in getattr(command, "commands", {}))]
        for full in names:
            assert re.search(rf"^\| `{re.escape(full)}\b", reference, re.M), f"docs/cli.md has no row for `{full}`"
