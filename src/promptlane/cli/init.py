"""``promptlane init``: scaffold a working project: a prompt that includes another, its scenarios, a
deterministic model function to run them offline, and the config that lets a passing run open ``production``.

The files are the README's tour, so a new user can follow it from an empty folder; a test checks that the
README shows these files as they are here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ._app import app, argument, out

__all__: list[str] = []

REPLY_PROMPT = """\
description: Reply to a customer ticket
model: openai:gpt-4o-mini
model_settings: {temperature: 0.2, max_tokens: 400}
variables:
  customer: {type: string}
  ticket: {type: string}
  tier: {type: string, enum: [free, pro], default: free}
messages:
  - role: system
    content: |
      You help {{ customer }} ({{ tier }} plan).
      {% include 'shared/tone' %}
  - {role: user, content: "{{ ticket }}"}
tools:
  - name: lookup_order
    description: Look up an order by id
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
"""

TONE_PROMPT = """\
template: Be warm and concise.
"""

REPLY_SCENARIOS = """\
prompt: support/reply
model: python:evals.models:support_agent   # offline and deterministic; or openai:gpt-4o-mini
scenarios:
  - name: refund
    variables: {customer: Ana, ticket: "I want a refund for order 123"}
    tools:
      lookup_order:
        - match: {order_id: "123"}
          returns: {status: delivered, total: 42.5}
    expect:
      - contains: refund
      - tool_called: {name: lookup_order, args: {order_id: "123"}}
  - name: no-order
    variables: {customer: Bo, tier: pro, ticket: "Hello!"}
    expect:
      - starts_with: Hi Bo
      - tool_not_called: lookup_order
"""

MODEL_FUNCTION = '''\
"""A stand-in for an LLM, so that the scenarios run offline, free, and the same way every time.

Scenario files name it `model: python:evals.models:support_agent` (modules load from the project root).
`promptlane eval --model openai:gpt-4o-mini` runs the same scenarios on a real model; on an OpenAI-compatible
server (Ollama, vLLM, a LiteLLM proxy, OpenRouter), declare it in the config (see its `providers` lines) and
run `--model local:llama3.2`.
A model function gets pydantic-ai messages and returns a ModelResponse, or a string for a text answer.
"""

import re

from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)


def _parts(messages, kind):
    return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, kind)]


def support_agent(messages, info):
    """Looks up the order a ticket names, then answers from what the tool returned."""
    system = " ".join(str(part.content) for part in _parts(messages, SystemPromptPart))
    ticket = str(_parts(messages, UserPromptPart)[-1].content)
    customer = re.search(r"You help (\\w+)", system)
    greeting = f"Hi {customer.group(1) if customer else 'there'},"
    order = re.search(r"order #?(\\d+)", ticket, re.IGNORECASE)
    returned = _parts(messages[-1:], ToolReturnPart)
    tools = {tool.name for tool in info.function_tools}
    if order and not returned and "lookup_order" in tools:
        return ModelResponse(parts=[ToolCallPart("lookup_order", {"order_id": order.group(1)})])
    if returned and isinstance(returned[0].content, dict):
        answer = f"{greeting} order {order.group(1)} is {returned[0].content.get('status', 'unknown')}."
        if "refund" in ticket.lower():
            answer += " I have started your refund."
    else:
        answer = f"{greeting} thanks for reaching out. How can I help?"
    return ModelResponse(parts=[TextPart(answer)])
'''

GATE_MODEL = """\
# The scenarios in evals/ run on a model function (evals/models.py): offline, free and deterministic. Its passing
# runs are the evidence that moves a protected label. Once your scenarios run on the model your prompts declare,
# delete this line: the gate then asks for a run on each version's own model.
gate_model = "python:evals.models:support_agent"
"""

FOLDERS = """\
prompts = "prompts"
evals = "evals"
"""

SETTINGS = """\
# registry = "sqlite:///.promptlane/registry.db"   # or postgresql://..., or http://server ; PROMPTLANE_REGISTRY
# default_label = "production"                     # what Registry.get resolves; PROMPTLANE_LABEL overrides
# protected_labels = ["production"]                # labels that move only to a version with a passing run
"""

# Written under the config's own table name: `[providers.local]` in promptlane.toml, `[tool.promptlane.providers.local]`
# in pyproject.toml. Commented out: the example runs offline, on evals/models.py.
PROVIDERS = """\
# An OpenAI-compatible server, for models named local:MODEL (Ollama here; vLLM, LiteLLM, OpenRouter: docs/evals.md)
# [{table}providers.local]
# base_url = "http://localhost:11434/v1"
# api_key_env = "LOCAL_API_KEY"                    # the variable holding its key; leave out when it takes none
"""

FILES = {
    "prompts/support/reply.yaml": REPLY_PROMPT,
    "prompts/shared/tone.yaml": TONE_PROMPT,
    "evals/support/reply.yaml": REPLY_SCENARIOS,
    "evals/__init__.py": '"""Scenario files, and the Python they name (`python:evals.models:...`)."""\n',
    "evals/models.py": MODEL_FUNCTION,
}
"""What ``init`` writes besides the config, by path under the project folder."""


@app.command()
@argument("folder", type=click.Path(file_okay=False, path_type=Path), default=Path("."), help="The project folder.")
def init(folder: Path) -> None:
    """Scaffold a working example: prompts/, evals/ with scenarios and a model function, and the config
    (in pyproject.toml when there is one, else promptlane.toml). Existing files are left alone; the example is
    left out when one of its files is already there with other content (its files only work together)."""
    folder.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        out(line)

    taken = [name for name, text in FILES.items() if _differs(folder / name, text)]
    config = FOLDERS + ("" if taken else GATE_MODEL) + SETTINGS

    pyproject = folder / "pyproject.toml"
    if pyproject.exists():
        text = pyproject.read_text(encoding="utf-8")
        if "[tool.promptlane]" in text:
            say(f"exists   {pyproject} [tool.promptlane]")
        else:
            config += PROVIDERS.format(table="tool.promptlane.")
            pyproject.write_text(text.rstrip("\n") + "\n\n[tool.promptlane]\n" + config, encoding="utf-8")
            say(f"updated  {pyproject} [tool.promptlane]")
    else:
        _write(folder / "promptlane.toml", config + PROVIDERS.format(table=""), say)
    if taken:
        (folder / "prompts").mkdir(exist_ok=True)
        (folder / "evals").mkdir(exist_ok=True)
        say(f"skipped  the example: {folder / taken[0]} is already there, with other content")
    else:
        for relative, text in FILES.items():
            _write(folder / relative, text, say)
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder}, then "
    say(f"\nnext: {where}promptlane push, then promptlane eval (the README's tour goes on from here)")


def _differs(path: Path, text: str) -> bool:
    """True when ``path`` exists with other content than ``text``."""
    try:
        return path.read_text(encoding="utf-8") != text
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError):
        return True


def _write(path: Path, text: str, say: Callable[[str], None]) -> None:
    if path.exists():
        say(f"exists   {path}")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    say(f"created  {path}")
