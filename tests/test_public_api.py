"""The public API: complete and sorted __all__, and a cheap import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import promptlane
import promptlane.errors
import promptlane.registry


@pytest.mark.parametrize("module", [promptlane, promptlane.registry, promptlane.errors])
def test_all_is_sorted_and_resolvable(module) -> None:
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_every_error_is_exported() -> None:
    errors = {
        name
        for name, value in vars(promptlane.errors).items()
        if isinstance(value, type) and issubclass(value, promptlane.errors.PromptlaneError)
    }
    assert errors <= set(promptlane.__all__)
    assert errors == set(promptlane.errors.__all__)


def test_import_and_the_sdk_path_stay_light(tmp_path) -> None:
    """`import promptlane` loads nothing heavy; get + render from a local SQLite registry reads it with the
    standard library: no SQLAlchemy, pydantic-ai, pydantic or HTTP client."""
    script = """
import sys
import promptlane
heavy = ("pydantic_ai", "sqlalchemy", "httpx", "pydantic", "jinja2", "opentelemetry")
print(sorted(m for m in heavy if m in sys.modules))
reg = promptlane.Registry(default_label="latest")
reg.push_spec("hello", {"template": "Hi {{ name }}"}) if len(sys.argv) > 1 else None
"""
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert first.stdout.strip() == "[]"
    subprocess.run([sys.executable, "-c", script, "push"], capture_output=True, text=True, cwd=tmp_path, check=True)
    app = """
import sys
from promptlane import Registry
print(Registry().get("hello", label="latest").render(name="Ana").text)
print(sorted(m for m in ("pydantic_ai", "httpx", "pydantic", "sqlalchemy") if m in sys.modules))
"""
    second = subprocess.run([sys.executable, "-c", app], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert second.stdout.splitlines() == ["Hi Ana", "[]"]
