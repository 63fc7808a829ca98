"""Prompt files: what an author writes under ``prompts/``, validated strictly, and its canonical form.

A prompt file holds a :class:`PromptSpec`. Pushing it freezes a version whose content is the spec's
canonical JSON (plus the resolved variables schema and included prompts), addressed by its sha256.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._canonical import canonical_json, content_hash
from ._model_strings import check_model
from ._validation import spec_error_from_validation
from ._yaml import YamlDocument, load_yaml
from .errors import SpecError

__all__ = [
    "MessageSpec",
    "PromptFile",
    "PromptSpec",
    "ToolSpec",
    "VariableSchema",
    "canonical_json",
    "check_model",
    "check_prompt_name",
    "content_hash",
    "discover_prompt_files",
    "discover_yaml_files",
    "load_prompt_file",
]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
NAME_RULE = "letters, digits, '_', '.', '-', with '/' between folders (a segment starts with a letter, digit or '_')"
NAME_MAX_LENGTH = 255
"""The longest prompt name (the registry's column holds 255 characters)."""


def check_prompt_name(name: str) -> str:
    """``name`` if a prompt can have it; SpecError otherwise."""
    if len(name) > NAME_MAX_LENGTH:
        raise SpecError(
            f"invalid prompt name {name[:40] + '...'!r}: at most {NAME_MAX_LENGTH} characters, got {len(name)}"
        )
    if not NAME_PATTERN.fullmatch(name):  # not match: its `$` also matches before a final newline
        raise SpecError(f"invalid prompt name {name!r}: {NAME_RULE}")
    return name


IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VariableType = Literal["string", "integer", "number", "boolean", "array", "object", "null"]

# pydantic-ai's provider-independent ModelSettings keys; provider-specific keys carry a provider prefix.
MODEL_SETTINGS = frozenset(
    {
        "max_tokens", "temperature", "top_p", "top_k", "timeout", "request_timeout", "first_event_timeout",
        "max_retries", "parallel_tool_calls", "tool_choice", "seed", "presence_penalty", "frequency_penalty",
        "logit_bias", "stop_sequences", "extra_headers", "extra_body", "thinking", "citations", "cache",
        "service_tier",
    }
)  # fmt: skip
PROVIDER_SETTING = re.compile(
    r"^(openai|anthropic|google|gemini|vertexai|groq|mistral|bedrock|cohere|huggingface|cerebras|openrouter"
    r"|xai|zai|snowflake|ollama|deepseek|azure|together|fireworks)_[a-z0-9_]+$"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariableSchema(_Model):
    """A variable's schema: a subset of JSON Schema. A variable without ``default`` is required."""

    type: VariableType | list[VariableType] | None = None
    """JSON type(s) the value must have."""
    enum: list[Any] | None = None
    """The allowed values."""
    default: Any = None
    """Value used when the variable is not given (only when written; ``default: null`` makes it optional)."""
    description: str | None = None
    """Shown in editors, the UI and `promptlane show`."""
    items: VariableSchema | None = None
    """Schema of each item of an array."""
    properties: dict[str, VariableSchema] | None = None
    """Schemas of an object's properties."""
    required: list[str] | None = None
    """Required properties of an object (all properties without a default when omitted)."""

    @property
    def has_default(self) -> bool:
        """True when the author wrote a ``default`` (even ``null``)."""
        return "default" in self.model_fields_set


class MessageSpec(_Model):
    """One chat message template."""

    role: Literal["system", "user", "assistant"]
    """Who speaks."""
    content: str
    """The Jinja2 template of the message text."""


class ToolSpec(_Model):
    """A tool offered to the model."""

    name: str
    """The tool's name, a Python-style identifier."""
    description: str = ""
    """What the tool does, shown to the model."""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON Schema of the arguments object."""

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$", value):
            raise ValueError("must be letters, digits, '_', '.', '-' (at most 64), not starting with a digit")
        return value

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type", "object") != "object":
            raise ValueError("a tool's parameters must be a JSON Schema of type object")
        return local_refs_only(value)


def local_refs_only(schema: Any) -> Any:
    """``schema`` if every ``$ref`` in it points inside it (``#/$defs/...``); ValueError naming the first that
    does not. A reference to a URL or a file would have whoever validates against the schema (the harness, a
    registry server) fetch what the author chose."""
    stack = [schema]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            ref = value.get("$ref")
            if ref is not None and not (isinstance(ref, str) and ref.startswith("#")):
                raise ValueError(f"$ref {ref!r} points outside the schema: only references inside it (#/...) resolve")
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return schema


def _setting_key(key: str) -> str:
    if key not in MODEL_SETTINGS and not PROVIDER_SETTING.match(key):
        close = difflib.get_close_matches(key, MODEL_SETTINGS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "provider-specific settings start with the provider"
        raise ValueError(f"unknown model setting {key!r} ({hint})")
    return key


def _variable_name(name: str) -> str:
    if not IDENTIFIER.match(name):
        raise ValueError(f"variable name {name!r} must be an identifier (letters, digits, '_')")
    return name


# Validating the keys themselves makes an error point at the offending entry, not at the whole mapping.
SettingKey = Annotated[str, AfterValidator(_setting_key)]
VariableName = Annotated[str, AfterValidator(_variable_name)]


class PromptSpec(_Model):
    """What an author writes in a prompt file."""

    name: str | None = None
    """The prompt's name; defaults to the file's path under ``prompts/`` without ``.yaml``."""
    description: str | None = None
    """What the prompt is for."""
    model: str | None = None
    """A pydantic-ai model string (``openai:gpt-4o-mini``) or ``test`` or ``python:module:function``."""
    model_settings: dict[SettingKey, Any] = Field(default_factory=dict)
    """pydantic-ai model settings (temperature, max_tokens, ...)."""
    variables: dict[VariableName, VariableSchema] | None = None
    """The variables schema; inferred from the templates (required strings) when omitted."""
    messages: list[MessageSpec] | None = None
    """A chat prompt's messages."""
    template: str | None = None
    """A text prompt: one user message (also what other prompts ``{% include %}``)."""
    tools: list[ToolSpec] = Field(default_factory=list)
    """Tools offered to the model."""
    output_schema: dict[str, Any] | None = None
    """JSON Schema of structured output."""

    @field_validator("output_schema")
    @classmethod
    def _output_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return local_refs_only(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_PATTERN.match(value):
            raise ValueError(f"a prompt name is {NAME_RULE}")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        return None if value is None else check_model(value)

    @field_validator("messages")
    @classmethod
    def _some_messages(cls, value: list[MessageSpec] | None) -> list[MessageSpec] | None:
        if value is not None and not value:
            raise ValueError("`messages` must not be empty")
        return value

    @field_validator("template")
    @classmethod
    def _not_both(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("messages") is not None:
            raise ValueError("a prompt has either `messages` (chat) or `template` (text), not both")
        return value

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, value: list[ToolSpec]) -> list[ToolSpec]:
        first: dict[str, int] = {}
        for index, tool in enumerate(value):
            if tool.name in first:
                raise ValueError(f"tool {tool.name!r} is defined twice (entries {first[tool.name]} and {index})")
            first[tool.name] = index
        return value

    @model_validator(mode="after")
    def _a_body(self) -> PromptSpec:
        if self.messages is None and self.template is None:
            raise ValueError("a prompt needs `messages` (chat) or `template` (text)")
        return self

    def templates(self) -> Iterator[tuple[str, tuple[str | int, ...], str]]:
        """Each template as (label, key path in the file, source): ``template`` or ``messages[i]``."""
        if self.template is not None:
            yield "template", ("template",), self.template
        for index, message in enumerate(self.messages or ()):
            yield f"messages[{index}]", ("messages", index, "content"), message.content

    def canonical(self) -> dict[str, Any]:
        """The spec as plain JSON data, without its name and without fields left at their defaults."""
        data = self.model_dump(mode="json", exclude_defaults=True, exclude={"name", "variables"})
        if self.variables is not None:
            # exclude_unset, not exclude_defaults: `default: null` (optional) must survive.
            data["variables"] = {
                name: schema.model_dump(mode="json", exclude_unset=True) for name, schema in self.variables.items()
            }
        return data


@dataclass(frozen=True)
class PromptFile:
    """A prompt file read from disk."""

    name: str
    """The prompt's name."""
    spec: PromptSpec
    """The validated spec."""
    document: YamlDocument
    """The parsed YAML, for positions in error messages."""

    @property
    def path(self) -> Path:
        """The file's path."""
        return self.document.path

    def template_line(
        self, loc: Sequence[str | int], line_in_template: int | None, *, near: str | None = None
    ) -> int | None:
        """The file line of a line inside the template at ``loc``.

        Args:
            loc: Where the template is in the file (``("messages", 0, "content")``).
            line_in_template: The 1-based line inside the template, if known.
            near: A word (a variable name) to look for: a folded or quoted string spreads one template line
                over several file lines, and the word says which.
        """
        position = self.document.position(loc)
        if position is None:
            return None
        if not line_in_template:
            return position.line
        if near is None:
            return position.content_line(line_in_template)
        return self.document.find_line(loc, line_in_template, re.compile(rf"\b{re.escape(near)}\b"))


def _setting_at_top_level(parent: tuple[str | int, ...], key: str) -> str | None:
    """``temperature:`` written beside ``model:`` belongs under ``model_settings:``."""
    if parent:
        return None
    fields = difflib.get_close_matches(key, list(PromptSpec.model_fields), n=1)
    settings = difflib.get_close_matches(key, MODEL_SETTINGS, n=1)
    if not settings:
        return None
    field_score = difflib.SequenceMatcher(None, key, fields[0]).ratio() if fields else 0.0
    if difflib.SequenceMatcher(None, key, settings[0]).ratio() < field_score:
        return None
    return f"model settings go under `model_settings:`; did you mean model_settings.{settings[0]}?"


def name_from_path(path: Path, prompts_root: Path | None) -> str:
    """The default prompt name: the path under ``prompts_root`` without its suffix."""
    try:
        relative = path.resolve().relative_to(prompts_root.resolve()) if prompts_root else Path(path.name)
    except ValueError:
        relative = Path(path.name)
    return relative.with_suffix("").as_posix()


def load_prompt_file(path: Path, prompts_root: Path | None = None) -> PromptFile:
    """Read and validate a prompt file; every problem is a SpecError naming file, line and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", path=path) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise SpecError(f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})", path=path, line=line) from None
    document = load_yaml(text, path)
    if not isinstance(document.data, dict):
        raise document.error("a prompt file must be a mapping of keys (name, model, messages, ...)")
    try:
        spec = PromptSpec.model_validate(document.data)
    except ValidationError as exc:
        raise spec_error_from_validation(exc, document, PromptSpec, _setting_at_top_level) from None
    name = spec.name or name_from_path(path, prompts_root)
    if not NAME_PATTERN.fullmatch(name):  # not match: its `$` also matches before a final newline
        raise document.error(f"cannot derive a prompt name from the path; set `name:` (got {name!r})")
    return PromptFile(name=name, spec=spec, document=document)


def discover_yaml_files(paths: Iterable[Path]) -> list[Path]:
    """YAML files under ``paths`` (files as given, folders searched for ``*.yaml``/``*.yml``), sorted, and
    relative to the working directory when under it, so error messages stay short."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.exists():
            found.add(path)
        else:
            raise SpecError("no such file or folder", path=path)
    cwd = Path.cwd()
    return sorted(p.relative_to(cwd) if p.is_absolute() and p.is_relative_to(cwd) else p for p in found)


discover_prompt_files = discover_yaml_files
"""Prompt files under ``paths``: every YAML file (see :func:`discover_yaml_files`)."""
