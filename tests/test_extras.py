"""Without an extra, what needs it says the `pip install` line, and what does not need it works.

Each test runs a fresh interpreter in which the extra's modules cannot be imported (``sys.modules[name] = None``,
what Python does for a module that is not installed), so the rest of the package is what an application with
`pip install promptlane` alone has. tests/test_install.py does the same in a real virtualenv without them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from promptlane.registry import Registry


def run_without(modules: list[str], code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    blocked = "".join(f"sys.modules[{module!r}] = None\n" for module in modules)
    script = f"import sys\n{blocked}{textwrap.dedent(code)}"
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_harness_without_the_eval_extra(tmp_path: Path) -> None:
    result = run_without(
        ["pydantic_ai"],
        """\
        from promptlane.errors import MissingExtraError
        try:
            from promptlane.harness import EvalRun
        except MissingExtraError as exc:
            print(type(exc).__mro__[1].__name__, isinstance(exc, ImportError), exc.extra)
            print(exc)
        """,
        tmp_path,
    )

    assert result.stdout.splitlines() == [
        "ConfigError True eval",
        "the eval harness needs promptlane's 'eval' extra (pydantic_ai is not installed): "
        "pip install 'promptlane[eval]'",
    ], result.stderr


def test_the_server_without_the_server_extra(tmp_path: Path) -> None:
    result = run_without(
        ["starlette"],
        """\
        try:
            import promptlane.server
        except ImportError as exc:
            print(exc)
        """,
        tmp_path,
    )

    assert result.stdout.strip() == (
        "the registry server needs promptlane's 'server' extra (starlette is not installed): "
        "pip install 'promptlane[server]'"
    ), result.stderr


def test_a_postgresql_registry_without_the_postgres_extra(tmp_path: Path) -> None:
    result = run_without(
        ["psycopg"],
        """\
        from promptlane.registry.sql import SQLStore
        try:
            SQLStore("postgresql://app:secret@db.example/prompts")
        except ImportError as exc:
            print(exc)
        """,
        tmp_path,
    )

    assert result.stdout.strip() == (
        "the registry postgresql://app:***@db.example/prompts needs promptlane's 'postgres' extra "
        "(psycopg is not installed): pip install 'promptlane[postgres]'"
    ), result.stderr


def test_prompt_evals_without_the_eval_extra_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import sys\nsys.modules['pydantic_ai'] = None\n")

    result = pytester.runpytest_subprocess("--prompt-evals", "-p", "no:langsmith_plugin")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*pytest --prompt-evals needs promptlane's 'eval' extra (pydantic_ai is not installed)*promptlane[[]eval]*"]
    )


def test_get_and_render_without_opentelemetry(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    registry.push_spec("greet", {"template": "Hello {{ name }}!"})
    registry.store.move_label("greet", "production", {1: 100}, kind="move", actor=None, reason=None, gate=None)
    registry.close()

    result = run_without(
        ["opentelemetry"],
        f"""\
        import promptlane, promptlane.otel
        registry = promptlane.Registry({f"sqlite:///{tmp_path / 'registry.db'}"!r})
        prompt = registry.get("greet", label="production")
        with prompt.use():
            print(prompt.render(name="Ana").text)
        try:
            promptlane.otel.instrument()
        except ImportError as exc:
            print(exc)
        """,
        tmp_path,
    )

    assert result.stdout.splitlines() == [
        "Hello Ana!",
        "instrument() needs OpenTelemetry: pip install opentelemetry-sdk",
    ], result.stderr
