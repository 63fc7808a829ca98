"""Settings: sources, precedence and errors that name the file or variable and the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from promptlane.config import load_settings, resolve_registry_url
from promptlane.errors import ConfigError


def test_promptlane_toml_wins_over_a_parent_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.promptlane]\nprompts = "outer"\n')
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "promptlane.toml").write_text('prompts = "inner-prompts"\nprotected_labels = ["production", "eu"]\n')
    settings = load_settings(inner)
    assert (settings.root, settings.prompts, settings.protected_labels) == (
        inner,
        "inner-prompts",
        ("production", "eu"),
    )
    assert settings.source == str(inner / "promptlane.toml")


def test_without_config_the_start_folder_is_the_root(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert (settings.root, settings.source, settings.default_label) == (tmp_path, None, "production")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('prompt = "p"\n', r"promptlane.toml: prompt: unknown key \(did you mean 'prompts'\?\)"),
        ("cache_ttl = -1\n", "cache_ttl: must not be negative"),
        ('render_max_chars = "many"\n', "render_max_chars: invalid literal"),
        ("protected_labels = 3\n", "protected_labels: expected a list of label names"),
        ("registry = \n", "invalid TOML"),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "promptlane.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path)


def test_bad_environment_values_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"PROMPTLANE_CACHE_TTL: cache_ttl: could not convert"):
        load_settings(tmp_path, environ={"PROMPTLANE_CACHE_TTL": "soon"})
    settings = load_settings(tmp_path, environ={"PROMPTLANE_PROTECTED_LABELS": "production, eu"})
    assert settings.protected_labels == ("production", "eu")


def test_relative_sqlite_urls_resolve_against_the_root(tmp_path: Path) -> None:
    assert resolve_registry_url("sqlite:///db/r.db", tmp_path) == f"sqlite:///{tmp_path / 'db' / 'r.db'}"
    assert resolve_registry_url("sqlite:////abs/r.db", tmp_path) == "sqlite:////abs/r.db"
    assert resolve_registry_url("postgresql://h/db", tmp_path) == "postgresql://h/db"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'gate_model = "gpt-4o-mini"',
            "gate_model: model 'gpt-4o-mini' has no provider: did you mean 'openai:gpt-4o-mini'?",
        ),
        ('gate_model = {"support/reply" = "opnai:gpt-4o"}', "gate_model: support/reply: unknown provider 'opnai'"),
        ('judge_model = "python:nope"', "judge_model: 'python:nope' is not python:module:function"),
    ],
)
def test_model_settings_are_checked_when_the_config_loads(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "promptlane.toml").write_text(line + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path)
    assert message in str(info.value)


def test_dataset_roots_from_the_file_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "promptlane.toml").write_text('dataset_roots = ["/data/shared", "../team-datasets"]\n')
    settings = load_settings(tmp_path)
    assert settings.dataset_roots == ("/data/shared", "../team-datasets")
    assert settings.dataset_root_dirs == (
        tmp_path.resolve(),
        Path("/data/shared").resolve(),
        (tmp_path.parent / "team-datasets").resolve(),
    )
    environ = {"PROMPTLANE_DATASET_ROOTS": os.pathsep.join(["/srv/a", "/srv/b"])}
    assert load_settings(tmp_path, environ=environ).dataset_roots == ("/srv/a", "/srv/b")
    assert load_settings(tmp_path.parent).dataset_root_dirs == (tmp_path.parent.resolve(),)  # no config: the root


def test_dataset_roots_must_be_a_list_of_folders(tmp_path: Path) -> None:
    (tmp_path / "promptlane.toml").write_text("dataset_roots = [1]\n")
    with pytest.raises(
        ConfigError, match=r"promptlane.toml: dataset_roots: expected a list of folder paths, got \[1\]"
    ):
        load_settings(tmp_path)
