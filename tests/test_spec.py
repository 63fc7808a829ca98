"""Prompt files: loading, strict validation with file/line/key errors, and the canonical form."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlane._model_strings import MODEL_PROVIDERS
from promptlane.errors import SpecError
from promptlane.spec import PromptSpec, check_model, content_hash, load_prompt_file

WritePrompt = Callable[[str, str], Path]


def spec_error(path: Path, root: Path | None = None) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_prompt_file(path, root)
    return info.value


# --- valid files --------------------------------------------------------------------------------------


def test_chat_prompt(project: Path, write_prompt: WritePrompt) -> None:
    path = write_prompt(
        "support/reply",
        """\
        description: Reply to a customer ticket
        model: openai:gpt-4o-mini
        model_settings: {temperature: 0.2, max_tokens: 400}
        variables:
          customer: {type: string, description: The customer's first name}
          tier: {type: string, enum: [free, pro], default: free}
        messages:
          - role: system
            content: |
              You help {{ customer }} ({{ tier }} plan).
          - {role: user, content: "{{ ticket }}"}
        tools:
          - name: lookup_order
            description: Look up an order by id
            parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
        output_schema: {type: object, properties: {answer: {type: string}}}
        """,
    )

    file = load_prompt_file(path, project / "prompts")

    assert (file.name, file.path, file.spec.name) == ("support/reply", path, None)
    assert file.spec.canonical() == {
        "description": "Reply to a customer ticket",
        "model": "openai:gpt-4o-mini",
        "model_settings": {"temperature": 0.2, "max_tokens": 400},
        "variables": {
            "customer": {"type": "string", "description": "The customer's first name"},
            "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
        },
        "messages": [
            {"role": "system", "content": "You help {{ customer }} ({{ tier }} plan).\n"},
            {"role": "user", "content": "{{ ticket }}"},
        ],
        "tools": [
            {
                "name": "lookup_order",
                "description": "Look up an order by id",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            }
        ],
        "output_schema": {"type": "object", "properties": {"answer": {"type": "string"}}},
    }
    assert [(label, loc) for label, loc, _ in file.spec.templates()] == [
        ("messages[0]", ("messages", 0, "content")),
        ("messages[1]", ("messages", 1, "content")),
    ]


def test_text_prompt(project: Path, write_prompt: WritePrompt) -> None:
    path = write_prompt(
        "shared/tone",
        """\
        description: House tone
        template: |-
          Be warm and concise.
          Never promise refunds.
        """,
    )

    file = load_prompt_file(path, project / "prompts")

    assert file.name == "shared/tone"
    assert file.spec.canonical() == {
        "description": "House tone",
        "template": "Be warm and concise.\nNever promise refunds.",
    }
    assert list(file.spec.templates()) == [("template", ("template",), "Be warm and concise.\nNever promise refunds.")]


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("support/reply.yaml", "template: hi\n", "support/reply"),
        ("support/reply.yml", "template: hi\n", "support/reply"),
        ("a/b/c/deep.yaml", "template: hi\n", "a/b/c/deep"),
        ("top.yaml", "template: hi\n", "top"),
        ("support/reply.yaml", "name: billing/refund\ntemplate: hi\n", "billing/refund"),
    ],
)
def test_name_from_path_or_explicit(project: Path, relative: str, text: str, expected: str) -> None:
    path = project / "prompts" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)

    assert load_prompt_file(path, project / "prompts").name == expected


def test_name_of_a_file_outside_the_prompts_folder_is_its_stem(project: Path) -> None:
    path = project / "elsewhere" / "one.yaml"
    path.parent.mkdir()
    path.write_text("template: hi\n")

    assert load_prompt_file(path, project / "prompts").name == "one"
    assert load_prompt_file(path).name == "one"


def test_name_that_cannot_come_from_the_path(project: Path, write_prompt: WritePrompt) -> None:
    path = write_prompt("my reply", "template: hi\n")

    error = spec_error(path, project / "prompts")

    assert (error.path, error.line, error.key) == (path, 1, None)
    assert str(error) == f"{path}:1: cannot derive a prompt name from the path; set `name:` (got 'my reply')"
    # ... and naming it fixes it.
    path.write_text("name: my_reply\ntemplate: hi\n")
    assert load_prompt_file(path, project / "prompts").name == "my_reply"


# --- invalid files ------------------------------------------------------------------------------------

BAD_FILES = {
    "yaml-mapping-in-a-value": (
        """\
        description: ok
        template: a: b
        """,
        2,
        None,
        "invalid YAML: mapping values are not allowed here",
    ),
    "yaml-tab-indent": (
        "description: ok\nvariables:\n\tx: {type: string}\ntemplate: hi\n",
        3,
        None,
        "invalid YAML: while scanning for the next token found character '\\t' that cannot start any token",
    ),
    "yaml-bad-indent-in-a-list": (
        """\
        description: ok
        messages:
          - role: user
           content: hi
        """,
        4,
        None,
        "invalid YAML: while parsing a block collection expected <block end>, but found '<block mapping start>'",
    ),
    "unknown-top-level-key": (
        """\
        description: ok
        temprature: 0.2
        template: hi
        """,
        2,
        "temprature",
        "unknown key 'temprature' "
        "(model settings go under `model_settings:`; did you mean model_settings.temperature?)",
    ),
    "unknown-key-in-a-message": (
        """\
        messages:
          - role: system
            content: a
          - role: user
            content: b
            name: bob
        """,
        6,
        "messages.1.name",
        "unknown key 'name'; expected one of role, content",
    ),
    "unknown-key-in-a-tool": (
        """\
        template: hi
        tools:
          - name: lookup
            descripton: Look it up
        """,
        4,
        "tools.0.descripton",
        "unknown key 'descripton' (did you mean 'description'?)",
    ),
    "unknown-key-in-a-variable": (
        """\
        template: "{{ tier }}"
        variables:
          tier:
            typ: string
        """,
        4,
        "variables.tier.typ",
        "unknown key 'typ' (did you mean 'type'?)",
    ),
    "messages-not-a-list": (
        """\
        description: ok
        messages: hello
        """,
        2,
        "messages",
        "Input should be a valid list",
    ),
    "messages-a-mapping": (
        """\
        description: ok
        messages:
          role: user
          content: hi
        """,
        2,
        "messages",
        "Input should be a valid list",
    ),
    "content-not-a-string": (
        """\
        messages:
          - role: user
            content: [1, 2]
        """,
        3,
        "messages.0.content",
        "Input should be a valid string",
    ),
    "role-not-allowed": (
        """\
        messages:
          - role: system
            content: a
          - role: robot
            content: b
        """,
        4,
        "messages.1.role",
        "Input should be 'system', 'user' or 'assistant'",
    ),
    "message-without-content": (
        """\
        messages:
          - role: system
            content: a
          - role: user
        """,
        4,
        "messages.1",
        "missing key 'content'",
    ),
    "template-not-a-string": (
        """\
        description: ok
        template: 3
        """,
        2,
        "template",
        "Input should be a valid string",
    ),
    "both-template-and-messages": (
        """\
        template: hi
        messages:
          - {role: user, content: a}
        """,
        1,
        "template",
        "a prompt has either `messages` (chat) or `template` (text), not both",
    ),
    "neither-template-nor-messages": (
        """\
        description: ok
        model: test
        """,
        1,
        None,
        "a prompt needs `messages` (chat) or `template` (text)",
    ),
    "tool-parameters-not-an-object-schema": (
        """\
        template: hi
        tools:
          - name: lookup
            parameters:
              type: string
        """,
        4,
        "tools.0.parameters",
        "a tool's parameters must be a JSON Schema of type object",
    ),
    "tool-name-not-an-identifier": (
        """\
        template: hi
        tools:
          - name: 1lookup
        """,
        3,
        "tools.0.name",
        "must be letters, digits, '_', '.', '-' (at most 64), not starting with a digit",
    ),
    "variable-type-not-a-json-type": (
        """\
        template: "{{ n }}"
        variables:
          n: {type: int}
        """,
        3,
        "variables.n.type",
        "Input should be 'string', 'integer', 'number', 'boolean', 'array', 'object' or 'null'",
    ),
    "explicit-name-with-a-space": (
        """\
        name: support reply
        template: hi
        """,
        1,
        "name",
        "a prompt name is letters, digits, '_', '.', '-', with '/' between folders (a segment starts with a letter, "
        "digit or '_')",
    ),
    "empty-model": (
        """\
        template: hi
        model: "  "
        """,
        2,
        "model",
        "must not be empty",
    ),
    "model-without-a-provider": (
        """\
        template: hi
        model: gpt-4o-mini
        """,
        2,
        "model",
        "model 'gpt-4o-mini' has no provider: did you mean 'openai:gpt-4o-mini'?",
    ),
    "claude-without-a-provider": (
        "description: d\ntemplate: hi\nmodel: claude-sonnet-4-5\n",
        3,
        "model",
        "model 'claude-sonnet-4-5' has no provider: did you mean 'anthropic:claude-sonnet-4-5'?",
    ),
    "unknown-model-family": (
        "template: hi\nmodel: my-own-llm\n",
        2,
        "model",
        "model 'my-own-llm' has no provider: write provider:name (like 'openai:gpt-4o-mini'), 'test' or "
        "'python:module:function'",
    ),
    "misspelt-provider": (
        "template: hi\nmodel: opnai:gpt-4o-mini\n",
        2,
        "model",
        "unknown provider 'opnai': did you mean 'openai'?",
    ),
    "unknown-provider": (
        "template: hi\nmodel: acme:large\n",
        2,
        "model",
        "unknown provider 'acme': not one of pydantic-ai's (openai, anthropic, google, groq, mistral, bedrock, ...)",
    ),
    "provider-without-a-model": (
        "template: hi\nmodel: 'anthropic:'\n",
        2,
        "model",
        "model 'anthropic:' names no model after the provider",
    ),
    "python-model-without-a-function": (
        "template: hi\nmodel: python:examples.support.model\n",
        2,
        "model",
        "'python:examples.support.model' is not python:module:function (like python:examples.support.model:respond)",
    ),
    "a-list-not-a-mapping": (
        """\
        - role: user
          content: hi
        """,
        1,
        None,
        "a prompt file must be a mapping of keys (name, model, messages, ...)",
    ),
    "a-string-not-a-mapping": (
        "just some text\n",
        1,
        None,
        "a prompt file must be a mapping of keys (name, model, messages, ...)",
    ),
}


@pytest.mark.parametrize(("text", "line", "key", "reason"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_file(write_prompt: WritePrompt, project: Path, text: str, line: int, key: str | None, reason: str) -> None:
    path = write_prompt("bad", text)

    error = spec_error(path, project / "prompts")

    assert (error.path, error.line, error.key, error.reason) == (path, line, key, reason)
    assert str(error) == ": ".join(part for part in (f"{path}:{line}", key, reason) if part)


@pytest.mark.parametrize(
    "model",
    ["openai:gpt-4o-mini", "anthropic:claude-sonnet-4-5", "google:gemini-2.5-flash", "gateway/openai:gpt-4o",
     "openai:a-model-released-tomorrow", "test", "python:examples.support.model:respond"],
)  # fmt: skip
def test_good_model_strings(model: str) -> None:
    assert PromptSpec(template="hi", model=model).model == model
    assert check_model(model) == model


# --- model strings against pydantic-ai ------------------------------------------------------------------------
# The static list in spec.py exists so that checking a file never imports pydantic-ai; these tests hold it to
# the installed pydantic-ai (which a test may import).


def _pydantic_ai_providers() -> set[str]:
    """Every provider prefix pydantic-ai's infer_model makes a model of, found by asking it about every name its
    provider lookup and model inference mention (an SDK that is not installed still counts: the branch exists)."""
    import inspect
    import re
    from typing import get_args

    from pydantic_ai import models
    from pydantic_ai.exceptions import UserError
    from pydantic_ai.providers import gateway, infer_provider_class

    def makes_a_model(prefix: str) -> bool:
        try:
            infer_provider_class(prefix)
        except ValueError:  # "Unknown provider"
            return False
        except ImportError:
            pass
        try:
            models.infer_model(f"{prefix}:some-model", provider_factory=lambda name: object())
        except UserError as exc:
            if str(exc).startswith("Unknown model"):  # a provider of embeddings or speech, not of chat models
                return False
        except Exception:  # a missing SDK, or a provider object the model class refuses: the branch exists
            pass
        return True

    source = inspect.getsource(infer_provider_class) + inspect.getsource(models.infer_model)
    candidates = set(re.findall(r"'([a-z][a-z0-9-]*)'", source))
    candidates |= {name.split(":")[0] for name in models.known_model_names() if ":" in name}
    for alias in (models.OpenAIChatCompatibleProvider, models.OpenAIResponsesCompatibleProvider):
        candidates |= set(get_args(alias.__value__))
    upstreams = {value for literal in get_args(gateway.UpstreamProvider) for value in get_args(literal)}
    candidates |= {f"gateway/{upstream}" for upstream in upstreams}
    return {prefix for prefix in candidates if makes_a_model(prefix)}


def test_the_static_providers_are_pydantic_ais() -> None:
    # Every provider of the installed release is known; the list may hold one a newer supported release added.
    assert sorted(set(_pydantic_ai_providers()) - set(MODEL_PROVIDERS)) == []
    assert len(set(MODEL_PROVIDERS)) == len(MODEL_PROVIDERS)


def test_every_model_pydantic_ai_knows_is_accepted() -> None:
    from pydantic_ai.models import known_model_names

    refused = []
    for name in known_model_names():
        try:
            check_model(name)
        except ValueError as exc:
            refused.append(f"{name}: {exc}")
    assert refused == []


def test_a_bare_model_name_is_given_the_provider_that_has_it() -> None:
    """For the first-party providers, every model pydantic-ai knows that a family names gets that provider."""
    from pydantic_ai.models import known_model_names

    known = set(known_model_names())
    considered, suggested, wrong = 0, 0, []
    for model_id in sorted(known):
        provider, _, name = model_id.partition(":")
        if provider not in {"openai", "anthropic", "google", "mistral", "cohere", "xai", "deepseek"}:
            continue
        considered += 1
        with pytest.raises(ValueError) as caught:
            check_model(name)
        if "did you mean" in str(caught.value):
            suggested += 1
            if f"did you mean {model_id!r}?" not in str(caught.value):
                wrong.append(f"{name}: {caught.value}")
    assert wrong == []
    # The families cover pydantic-ai's own lists (2.62 lists over 100 of these models, 2.68 about 50), not a handful.
    assert considered > 40
    assert suggested >= 0.9 * considered, (suggested, considered)


def test_checking_a_model_never_imports_pydantic_ai(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from promptlane.errors import SpecError
        from promptlane.spec import load_prompt_file

        Path("good.yaml").write_text("template: hi\\nmodel: openai:gpt-4o-mini\\n")
        Path("bad.yaml").write_text("template: hi\\nmodel: gpt-4o-mini\\n")
        load_prompt_file(Path("good.yaml"))
        try:
            load_prompt_file(Path("bad.yaml"))
        except SpecError as exc:
            print(exc)
        print("pydantic_ai" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "bad.yaml:2: model: model 'gpt-4o-mini' has no provider: did you mean 'openai:gpt-4o-mini'?",
        "False",
    ]


def test_unknown_model_setting_suggests_the_known_one(write_prompt: WritePrompt, project: Path) -> None:
    path = write_prompt(
        "bad",
        """\
        template: hi
        model_settings: {temprature: 0.2}
        """,
    )

    error = spec_error(path, project / "prompts")

    assert (error.path, error.line) == (path, 2)
    assert error.key is not None and error.key.startswith("model_settings")
    assert error.reason == "unknown model setting 'temprature' (did you mean 'temperature'?)"
    assert str(error).startswith(f"{path}:2: model_settings")


def test_unknown_model_setting_without_a_close_match(write_prompt: WritePrompt, project: Path) -> None:
    path = write_prompt("bad", "template: hi\nmodel_settings: {zzz_effort: low}\n")

    error = spec_error(path, project / "prompts")

    assert error.reason == "unknown model setting 'zzz_effort' (provider-specific settings start with the provider)"


def test_provider_prefixed_model_settings_are_accepted(write_prompt: WritePrompt, project: Path) -> None:
    path = write_prompt(
        "ok",
        """\
        template: hi
        model_settings:
          temperature: 0.1
          openai_reasoning_effort: low
          anthropic_thinking: {type: enabled, budget_tokens: 1024}
        """,
    )

    spec = load_prompt_file(path, project / "prompts").spec

    assert spec.canonical()["model_settings"] == {
        "temperature": 0.1,
        "openai_reasoning_effort": "low",
        "anthropic_thinking": {"type": "enabled", "budget_tokens": 1024},
    }


@pytest.mark.parametrize("variable", ["bad-name", "1st", "with space", "dotted.name"])
def test_invalid_variable_name(write_prompt: WritePrompt, project: Path, variable: str) -> None:
    path = write_prompt("bad", f"template: hi\nvariables: {{'{variable}': {{type: string}}}}\n")

    error = spec_error(path, project / "prompts")

    assert (error.path, error.line) == (path, 2)
    assert error.key is not None and error.key.startswith("variables")
    assert error.reason == f"variable name {variable!r} must be an identifier (letters, digits, '_')"
    assert str(error).startswith(f"{path}:2: variables")


def test_empty_messages(write_prompt: WritePrompt, project: Path) -> None:
    path = write_prompt("bad", "description: ok\nmessages: []\n")

    error = spec_error(path, project / "prompts")

    assert (error.path, error.reason) == (path, "`messages` must not be empty")
    assert str(error).startswith(f"{path}:")


def test_empty_messages_names_its_line_and_key(write_prompt: WritePrompt, project: Path) -> None:
    path = write_prompt("bad", "description: ok\nmessages: []\n")

    error = spec_error(path, project / "prompts")

    assert (error.line, error.key) == (2, "messages")


DUPLICATE_TOOLS = """\
template: hi
tools:
  - name: lookup
  - name: refund
  - name: lookup
"""


def test_duplicate_tool_names(write_prompt: WritePrompt, project: Path) -> None:
    path = write_prompt("bad", DUPLICATE_TOOLS)

    error = spec_error(path, project / "prompts")

    assert (error.path, error.reason) == (path, "tool 'lookup' is defined twice (entries 0 and 2)")
    assert str(error).startswith(f"{path}:")


def test_duplicate_tool_names_names_the_tools(write_prompt: WritePrompt, project: Path) -> None:
    path = write_prompt("bad", DUPLICATE_TOOLS)

    error = spec_error(path, project / "prompts")

    assert (error.line, error.key) in {(2, "tools"), (5, "tools.2"), (5, "tools.2.name")}


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("template: hi\nmodel_settings:\n  max_tokens: 10\n  temprature: 0.2\n", 4, "model_settings.temprature"),
        ("template: hi\nvariables:\n  ok: {type: string}\n  bad-name: {type: string}\n", 4, "variables.bad-name"),
    ],
    ids=["model-setting", "variable-name"],
)
def test_bad_mapping_entry_names_the_entry(
    write_prompt: WritePrompt, project: Path, text: str, line: int, key: str
) -> None:
    error = spec_error(write_prompt("bad", text), project / "prompts")

    assert (error.line, error.key) == (line, key)


def test_misspelt_message_key_is_reported_as_unknown(write_prompt: WritePrompt, project: Path) -> None:
    path = write_prompt(
        "bad",
        """\
        messages:
          - role: system
            content: a
          - rol: user
            content: b
        """,
    )

    error = spec_error(path, project / "prompts")

    assert (error.line, error.key, error.reason) == (4, "messages.1.rol", "unknown key 'rol' (did you mean 'role'?)")


def test_duplicate_yaml_key_is_an_error(write_prompt: WritePrompt, project: Path) -> None:
    path = write_prompt(
        "bad",
        """\
        template: The first draft
        description: ok
        template: The second draft
        """,
    )

    error = spec_error(path, project / "prompts")

    assert (error.line, error.key, error.reason) == (3, "template", "duplicate key 'template' (first on line 1)")


def test_non_utf8_bytes(project: Path) -> None:
    path = project / "prompts" / "latin1.yaml"
    path.write_bytes(b"description: ok\ntemplate: caf\xe9\n")

    error = spec_error(path, project / "prompts")

    assert (error.path, error.key, error.reason) == (path, None, "not UTF-8 text (byte 0xe9)")
    assert str(error).startswith(f"{path}:")


def test_non_utf8_bytes_names_the_line(project: Path) -> None:
    path = project / "prompts" / "latin1.yaml"
    path.write_bytes(b"description: ok\ntemplate: caf\xe9\n")

    error = spec_error(path, project / "prompts")

    assert str(error) == f"{path}:2: not UTF-8 text (byte 0xe9)"


def test_missing_file(project: Path) -> None:
    path = project / "prompts" / "nope.yaml"

    error = spec_error(path, project / "prompts")

    assert str(error) == f"{path}: cannot read: No such file or directory"


# --- canonical form and content hash ------------------------------------------------------------------


def spec_of(text: str) -> PromptSpec:
    return PromptSpec.model_validate(yaml.safe_load(textwrap.dedent(text)))


def test_canonical_leaves_out_defaults() -> None:
    explicit = spec_of(
        """\
        description: null
        model_settings: {}
        template: hi
        tools:
          - {name: lookup, description: "", parameters: {type: object, properties: {}}}
        output_schema: null
        """
    )
    omitted = spec_of("template: hi\ntools: [{name: lookup}]\n")
    empty_tools = spec_of("template: hi\ntools: []\n")
    no_tools = spec_of("template: hi\n")

    assert explicit.canonical() == omitted.canonical() == {"template": "hi", "tools": [{"name": "lookup"}]}
    assert empty_tools.canonical() == no_tools.canonical() == {"template": "hi"}
    assert content_hash(empty_tools.canonical()) == content_hash(no_tools.canonical())


def test_canonical_leaves_out_the_name() -> None:
    assert spec_of("name: a/b\ntemplate: hi\n").canonical() == spec_of("template: hi\n").canonical()


def test_canonical_keeps_default_null() -> None:
    optional = spec_of(
        """\
        template: "{{ note }}"
        variables:
          note: {type: [string, "null"], default: null}
        """
    )
    required = spec_of(
        """\
        template: "{{ note }}"
        variables:
          note: {type: [string, "null"]}
        """
    )

    assert optional.canonical()["variables"] == {"note": {"type": ["string", "null"], "default": None}}
    assert required.canonical()["variables"] == {"note": {"type": ["string", "null"]}}
    assert optional.variables is not None and optional.variables["note"].has_default
    assert content_hash(optional.canonical()) != content_hash(required.canonical())


def test_canonical_keeps_declared_empty_variables() -> None:
    assert spec_of("template: hi\nvariables: {}\n").canonical() == {"template": "hi", "variables": {}}


COMPACT = """\
description: Reply to a ticket
model: openai:gpt-4o-mini
model_settings: {temperature: 0.2, max_tokens: 400}
variables:
  ticket: {type: string}
  tier: {type: string, enum: [free, pro], default: free}
messages:
  - {role: system, content: "You help a {{ tier }} customer."}
  - {role: user, content: "{{ ticket }}"}
tools:
  - {name: lookup, parameters: {type: object, properties: {id: {type: string}}}}
"""

SPREAD_OUT = """\
# The same prompt, laid out differently.
tools:
- parameters:
    properties:
      id:
        type: string
    type: object
  name: lookup

messages:
- content: 'You help a {{ tier }} customer.'
  role: system
- role: user
  content: >-
    {{ ticket }}
variables:
  tier:
    default: "free"
    enum:
    - free
    - pro
    type: string
  ticket:
    type: "string"
model_settings:
  max_tokens: 400
  temperature: 0.20
model: "openai:gpt-4o-mini"
name: support/reply
description: |-
  Reply to a ticket
"""


def test_content_hash_ignores_layout_and_key_order(write_prompt: WritePrompt, project: Path) -> None:
    compact = load_prompt_file(write_prompt("compact", COMPACT), project / "prompts")
    spread = load_prompt_file(write_prompt("spread", SPREAD_OUT), project / "prompts")
    changed = load_prompt_file(
        write_prompt("changed", COMPACT.replace("temperature: 0.2", "temperature: 0.3")), project / "prompts"
    )

    assert compact.spec.canonical() == spread.spec.canonical()
    assert content_hash(compact.spec.canonical()) == content_hash(spread.spec.canonical())
    assert content_hash(compact.spec.canonical()) != content_hash(changed.spec.canonical())


@settings(deadline=None)  # no deadline: a busy machine may take longer than 200 ms on one example
@given(data=st.data())
def test_content_hash_is_stable_for_any_key_order_and_style(data: st.DataObject) -> None:
    reference = yaml.safe_load(COMPACT)

    def shuffled(value: object) -> object:
        if isinstance(value, dict):
            keys = data.draw(st.permutations(list(value)))
            return {key: shuffled(value[key]) for key in keys}
        if isinstance(value, list):
            return [shuffled(item) for item in value]
        return value

    text = yaml.safe_dump(
        shuffled(reference),
        sort_keys=False,
        default_flow_style=data.draw(st.sampled_from([False, True, None])),
        width=data.draw(st.integers(min_value=20, max_value=200)),
        indent=data.draw(st.integers(min_value=2, max_value=6)),
    )

    assert content_hash(PromptSpec.model_validate(yaml.safe_load(text)).canonical()) == content_hash(
        PromptSpec.model_validate(reference).canonical()
    )


@pytest.mark.parametrize(
    ("schema_yaml", "key"),
    [
        ("output_schema: {properties: {a: {$ref: 'https://example.com/s.json'}}}", "output_schema"),
        ("output_schema: {$ref: 'file:///etc/passwd'}", "output_schema"),
        (
            "tools:\n  - name: t\n    parameters: {type: object, properties: {a: {$ref: 'other.json#/x'}}}",
            "tools.0.parameters",
        ),
    ],
)
def test_schemas_may_only_refer_inside_themselves(write_prompt: WritePrompt, schema_yaml: str, key: str) -> None:
    path = write_prompt("refs", "template: hi\n" + schema_yaml + "\n")
    with pytest.raises(SpecError) as info:
        load_prompt_file(path, path.parent)
    assert info.value.key == key
    assert "points outside the schema: only references inside it (#/...) resolve" in info.value.reason


def test_a_reference_inside_the_schema_is_fine(write_prompt: WritePrompt) -> None:
    text = "template: hi\noutput_schema:\n  $defs: {s: {type: string}}\n  properties: {a: {$ref: '#/$defs/s'}}\n"
    path = write_prompt("refs", text)
    assert load_prompt_file(path, path.parent).spec.output_schema["properties"]["a"] == {"$ref": "#/$defs/s"}
