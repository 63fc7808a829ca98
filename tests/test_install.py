"""What `pip install promptlane` brings, and what an application on any supported pydantic-ai can install.

These install into fresh virtualenvs from the package registry (the one network the tests may use), the way an
application team adds promptlane to an app that already exists:

- the base package (the SDK and the authoring CLI) is at most 15 distributions, none of them the harness's, the
  server's or an HTTP client's, and it works on its own: push, label, show and render through the CLI, get and
  render from a SQLite registry and from a server in Python; a command that needs an extra says the
  ``pip install`` line;
- an app pinned to any pydantic-ai release from 2.62 to the newest installs ``promptlane[eval]`` beside it
  (pip's resolver, ``--dry-run``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _live import LiveServer, served_registry

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
MAX_DISTRIBUTIONS = 15
NOT_IN_THE_BASE = {
    "pydantic-ai-slim", "pydantic-graph", "opentelemetry-api", "opentelemetry-sdk", "starlette", "uvicorn",
    "python-multipart", "httpx", "httpx2", "httpcore", "anyio", "typer", "rich", "jsonschema", "psycopg",
}  # fmt: skip
PIP_TIMEOUT = 900  # a hang guard: resolving and installing from the registry takes seconds to a minute


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True) -> str:
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
    )
    if check and result.returncode != 0:
        command = " ".join(map(str, args))
        raise AssertionError(f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def new_venv(folder: Path) -> Path:
    """A virtualenv with nothing installed but pip; its python."""
    run(sys.executable, "-m", "venv", folder)
    return folder / "bin" / "python"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """promptlane built as the wheel `pip install promptlane` would download."""
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, ROOT)
    (built,) = out.glob("promptlane-*.whl")
    return built


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A virtualenv with `pip install promptlane` (no extras); its python."""
    python = new_venv(tmp_path_factory.mktemp("base") / "venv")
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel)
    return python


def distributions(python: Path) -> set[str]:
    listed = json.loads(run(python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"))
    return {entry["name"].lower().replace("_", "-") for entry in listed} - {"pip", "setuptools", "wheel"}


def test_the_base_package_is_at_most_15_distributions_without_harness_server_or_http_client(base: Path) -> None:
    installed = distributions(base)

    assert "promptlane" in installed
    assert len(installed) <= MAX_DISTRIBUTIONS, sorted(installed)
    assert installed & NOT_IN_THE_BASE == set()


def test_the_base_package_pushes_labels_shows_and_renders_through_the_cli(base: Path, tmp_path: Path) -> None:
    promptlane = base.parent / "promptlane"
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "greet.yaml").write_text(
        textwrap.dedent(
            """\
            model: openai:gpt-4o-mini
            variables:
              name: {type: string, minLength: 1}
            messages:
              - {role: system, content: "Be brief."}
              - {role: user, content: "Say hello to {{ name }}."}
            """
        )
    )

    assert "greet: v1 (new)" in run(promptlane, "push", "-m", "first", cwd=tmp_path)
    assert "staging -> v1" in run(promptlane, "label", "greet", "staging", "1", cwd=tmp_path)
    assert "Say hello to {{ name }}." in run(promptlane, "show", "greet", cwd=tmp_path)
    assert "Say hello to Ana." in run(promptlane, "render", "greet@1", "--var", "name=Ana", cwd=tmp_path)

    # Scenario files are checked without the harness (docs/evals.md says so).
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "greet.yaml").write_text(
        "prompt: greet\nscenarios:\n  - name: ana\n    variables: {name: Ana}\n    expect: [{contains: Ana}]\n"
    )
    assert "no errors" in run(promptlane, "check", cwd=tmp_path)

    script = "import promptlane; print(promptlane.Registry().get('greet', label='staging').render(name='Bo').text)"
    assert "Say hello to Bo." in run(base, "-c", script, cwd=tmp_path)


@pytest.mark.parametrize(
    ("command", "extra"),
    [(("eval",), "eval"), (("serve", "--no-auth"), "server")],
)
def test_a_command_that_needs_an_extra_says_the_pip_install_line(
    base: Path, tmp_path: Path, command: tuple[str, ...], extra: str
) -> None:
    (tmp_path / "prompts").mkdir()
    result = subprocess.run(
        [str(base.parent / "promptlane"), *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
    )

    assert result.returncode != 0
    assert f"pip install 'promptlane[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_base_package_gets_and_renders_from_a_server(base: Path, tmp_path: Path) -> None:
    registry, secrets = served_registry(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}")
    registry.push_spec("greet", {"template": "Hello {{ name }}!", "variables": {"name": {"type": "string"}}})
    registry.store.move_label("greet", "production", {1: 100}, kind="move", actor=None, reason=None, gate=None)
    script = textwrap.dedent(
        """\
        import sys
        import promptlane

        registry = promptlane.Registry(sys.argv[1], token=sys.argv[2])
        prompt = registry.get("greet", label="production")
        print(prompt.version, prompt.source, prompt.render(name="Ana").text)
        print(sorted(m for m in ("httpx", "httpx2", "opentelemetry", "pydantic_ai") if m in sys.modules))
        """
    )

    with LiveServer(registry) as server:
        printed = run(base, "-c", script, server.url, secrets["read"], cwd=tmp_path)

    assert printed.splitlines() == ["1 registry Hello Ana!", "[]"]


PYDANTIC_AI_RELEASES = ["2.62.0", "2.63.0", "2.64.0", "2.66.0", "2.68.0"]


@pytest.mark.parametrize("release", PYDANTIC_AI_RELEASES)
def test_an_app_pinned_to_a_pydantic_ai_release_installs_promptlane_eval_beside_it(
    tmp_path: Path, wheel: Path, release: str
) -> None:
    python = new_venv(tmp_path / "venv")
    report = tmp_path / "report.json"
    run(
        python, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check", "--report", report,
        f"pydantic-ai-slim=={release}", f"promptlane[eval] @ {wheel.as_uri()}",
    )  # fmt: skip

    installs = json.loads(report.read_text())["install"]
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installs}
    assert chosen["pydantic-ai-slim"] == release
    assert "promptlane" in chosen
    assert "opentelemetry-sdk" in chosen
