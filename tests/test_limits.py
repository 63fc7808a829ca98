"""How big a version may be: every push refuses one over ``prompt_max_bytes`` before parsing it, naming the file
or the prompt, and keeps nothing of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptlane import Registry
from promptlane.cli import app
from promptlane.errors import SpecError

runner = CliRunner()
# A template Jinja2 compiles slowest per byte (tens of microseconds each): 420 KB of it took 16 s.
DENSE = "{{ a.b.c.d.e.f.g.h }}" * 20_000


def test_a_prompt_file_over_the_size_limit_is_refused_before_it_is_compiled(
    project: Path, write_prompt: Callable[[str, str], Path]
) -> None:
    path = write_prompt("big", f"template: '{DENSE}'\n")

    result = runner.invoke(app, ["push"])

    assert result.exit_code == 2
    assert f"error: {path.relative_to(project)}:1: " in result.stderr
    assert "the prompt is 420,015 bytes, over the limit of 262,144 (prompt_max_bytes)" in result.stderr
    assert Registry().store.list_prompts() == []


def test_the_size_limit_is_a_setting(project: Path, write_prompt: Callable[[str, str], Path]) -> None:
    write_prompt("big", "template: '" + "x" * 300_000 + "'\n")
    (project / "promptlane.toml").write_text((project / "promptlane.toml").read_text() + "prompt_max_bytes = 400000\n")

    result = runner.invoke(app, ["push"])

    assert result.exit_code == 0, result.stderr
    assert [summary.name for summary in Registry().store.list_prompts()] == ["big"]


def test_included_prompts_count_towards_the_size(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.push_spec("shared/long", {"template": "x" * 200_000})
    registry.push_spec("alone", {"template": "y" * 100_000})

    with pytest.raises(SpecError) as refused:
        registry.push_spec("both", {"template": "{% include 'shared/long' %}" + "y" * 100_000})

    assert "the prompt with its includes is 300,1" in str(refused.value)
    assert "over the limit of 262,144 (prompt_max_bytes)" in str(refused.value)
    assert "both" not in {summary.name for summary in registry.store.list_prompts()}


def test_a_prompt_dense_with_jinja2_syntax_is_refused_before_it_is_compiled(registry: Registry) -> None:
    # 240 KB of `a ~ a ~ ...` is under the size limit but took 5 s and 450 MB to compile: syntax is what costs.
    with pytest.raises(SpecError) as refused:
        registry.push_spec("dense", {"template": "{{ " + " ~ ".join(["a"] * 60_000) + " }}"})

    assert str(refused.value) == (
        "dense: the templates hold 240,003 bytes of Jinja2 syntax ({{ }} and {% %}), over the limit of 16,384 "
        "(a sixteenth of prompt_max_bytes)"
    )
    registry.push_spec("long", {"template": "Some text. " * 20_000 + "{{ a }}"})  # text costs next to nothing
    assert {summary.name for summary in registry.store.list_prompts()} >= {"long"}
    assert "dense" not in {summary.name for summary in registry.store.list_prompts()}
