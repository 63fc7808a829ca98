"""Shared fixtures: a project folder, registry URLs for SQLite and (where configured) PostgreSQL."""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from promptlane.config import Settings
from promptlane.registry import Registry

pytest_plugins = ["pytester"]

# No test depends on the machine's speed, hypothesis's included: no deadline on an example, and no health check
# on how fast examples are generated (a busy CI machine is slow at both; bench/ is where speed is measured).
settings.register_profile("promptlane", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("promptlane")

POSTGRES_URL = os.environ.get("PROMPTLANE_TEST_POSTGRES_URL")

REPLY_YAML = """\
description: Reply to a customer ticket
model: openai:gpt-4o-mini
model_settings: {temperature: 0.2, max_tokens: 400}
variables:
  customer: {type: string}
  ticket: {type: string}
  tier: {type: string, enum: [free, pro], default: free}
messages:
  - {role: system, content: "You help {{ customer }} ({{ tier }} plan). {% include 'shared/tone' %}"}
  - {role: user, content: "{{ ticket }}"}
tools:
  - name: lookup_order
    description: Look up an order by id
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
"""

TONE_YAML = """\
description: House tone
template: "Be warm and concise."
"""


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's PROMPTLANE_* settings."""
    for key in list(os.environ):
        if key.startswith("PROMPTLANE_") and key != "PROMPTLANE_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("PROMPTLANE_AUTHOR", "tester")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder with a promptlane.toml, as the working directory."""
    (tmp_path / "promptlane.toml").write_text('prompts = "prompts"\nevals = "evals"\n')
    (tmp_path / "prompts").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write_prompt(project: Path) -> Callable[[str, str], Path]:
    """Write ``prompts/<name>.yaml`` (dedented) and return its path."""

    def write(name: str, text: str) -> Path:
        path = project / "prompts" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def support_prompts(write_prompt: Callable[[str, str], Path]) -> None:
    """The README's example: support/reply including shared/tone."""
    write_prompt("support/reply", REPLY_YAML)
    write_prompt("shared/tone", TONE_YAML)


def _postgres_schema_url(base: str) -> Iterator[str]:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh registry URL: a SQLite file, and (where PROMPTLANE_TEST_POSTGRES_URL is set) a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need PROMPTLANE_TEST_POSTGRES_URL (set by .ci/run)")
    yield from _postgres_schema_url(POSTGRES_URL)


@pytest.fixture
def registry(project: Path, store_url: str) -> Iterator[Registry]:
    """A Registry for ``project`` on ``store_url``."""
    # No protected labels: tests of other things move `production` freely; tests/test_gate.py covers the gate.
    reg = Registry(settings=Settings(root=project, registry=store_url, protected_labels=()))
    yield reg
    reg.close()
