"""A message every case of a scenario renders alike is rendered once per scenario (harness/_shared.py).

Renders are counted where they happen: Jinja2 compiles each template to a Python function ``root`` whose file
name is the template's name (``#messages[0]``), and a profile hook counts the frames of those functions, so
nothing of promptlane's is replaced. What the cases were sent is read back from the stored run.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from promptlane.config import Settings
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
from promptlane.harness._shared import REUSE_FROM
from promptlane.registry import Registry
from promptlane.registry.runs import CaseResult

ROWS = REUSE_FROM + 20

MODELS = """
def echo(messages, info):
    return " | ".join(part.content for message in messages for part in message.parts)
"""

PROMPT = """\
model: python:shared_models:echo
variables:
  customer: {type: string}
  plan: {type: string, default: free}
  question: {type: string}
messages:
  - {role: system, content: "You help {{ customer }} ({{ plan | upper }} plan)."}
  - {role: user, content: "{{ question }}"}
"""


@pytest.fixture
def registry(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    (project / "shared_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delitem(sys.modules, "shared_models", raising=False)
    importlib.invalidate_caches()
    (project / "evals").mkdir()
    reg = Registry(settings=Settings(root=project, registry=f"sqlite:///{project / 'registry.db'}"))
    yield reg
    reg.close()


def run_counting_renders(
    registry: Registry, project: Path, prompt: str, rows: list[dict[str, Any]], variables: str
) -> tuple[Counter[str], list[CaseResult]]:
    """Push ``prompt``, run one scenario over ``rows`` with ``variables``: the renders of each template (by
    name), and the stored cases."""
    (project / "prompts" / "helpdesk.yaml").write_text(prompt)
    registry.push()
    (project / "evals" / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (project / "evals" / "helpdesk.yaml").write_text(
        textwrap.dedent(
            f"""\
            prompt: helpdesk
            scenarios:
              - name: rows
                dataset: rows.jsonl
                variables: {variables}
            """
        )
    )
    run = EvalRun(
        store=registry.store,
        prompt=registry.get("helpdesk", label="latest"),
        documents=[load_scenario_file(project / "evals" / "helpdesk.yaml")],
        options=EvalOptions(root=project, concurrency=4),
    )
    renders: set[FrameType] = set()  # the frames themselves: a generator's frame is seen at every resume

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == "root" and frame.f_code.co_filename.startswith("#"):
            renders.add(frame)

    sys.setprofile(profile)
    try:
        record = asyncio.run(run.run())
    finally:
        sys.setprofile(None)
    assert record.cases == len(rows)
    counts = Counter(frame.f_code.co_filename.removeprefix("#") for frame in renders)
    return counts, sorted(registry.store.run_cases(record.id), key=lambda case: case.row or 0)


def sent(case: CaseResult) -> list[str]:
    return [message["content"] for message in case.messages]


def test_a_message_of_scenario_values_only_is_rendered_once_per_scenario(registry: Registry, project: Path) -> None:
    rows = [{"question": f"question {i}"} for i in range(ROWS)]

    renders, cases = run_counting_renders(registry, project, PROMPT, rows, "{customer: Ana, plan: pro}")

    assert renders["messages[0]"] == 1
    assert renders["messages[1]"] >= ROWS  # the user message, a row's column: every case
    assert [sent(case) for case in cases] == [["You help Ana (PRO plan).", f"question {i}"] for i in range(ROWS)]
    assert {case.output for case in cases} >= {"You help Ana (PRO plan). | question 7"}


def test_a_row_that_sets_a_value_the_message_reads_renders_it_for_that_row(registry: Registry, project: Path) -> None:
    rows = [{"question": f"question {i}", **({"customer": "Bo"} if i % 10 == 5 else {})} for i in range(ROWS)]

    renders, cases = run_counting_renders(registry, project, PROMPT, rows, "{customer: Ana}")

    bo = [i for i in range(ROWS) if i % 10 == 5]
    assert renders["messages[0]"] == 1 + len(bo)  # the first case, then each row naming its own customer
    assert [sent(case)[0] for case in cases] == [
        "You help Bo (FREE plan)." if i in bo else "You help Ana (FREE plan)." for i in range(ROWS)
    ]


def test_a_message_reading_a_row_value_is_rendered_for_every_case(registry: Registry, project: Path) -> None:
    prompt = PROMPT.replace("({{ plan | upper }} plan)", "about {{ question }}")
    rows = [{"question": f"question {i}"} for i in range(ROWS)]

    renders, cases = run_counting_renders(registry, project, prompt, rows, "{customer: Ana}")

    assert renders["messages[0]"] == ROWS
    assert [sent(case)[0] for case in cases] == [f"You help Ana about question {i}." for i in range(ROWS)]


def test_a_message_with_a_random_filter_is_rendered_for_every_case(registry: Registry, project: Path) -> None:
    prompt = PROMPT.replace("{{ plan | upper }}", "{{ [plan, plan] | random }}")
    rows = [{"question": f"question {i}"} for i in range(ROWS)]

    renders, _ = run_counting_renders(registry, project, prompt, rows, "{customer: Ana}")

    assert renders["messages[0]"] == ROWS
