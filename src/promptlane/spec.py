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
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ._canonical import canonical_json, content_hash
from ._model_strings import check_model
from ._schema import (
    KEYWORDS,
    SchemaProblem,
    check_bounds,
    compile_schema,
    format_problem,
    pattern_problem,
    ref_problem,
    unknown_keyword,
)
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


_Count = Annotated[StrictInt, Field(ge=0)]
_Number = StrictInt | StrictFloat


def _schema_error(path: Sequence[str | int], message: str, value: Any = None) -> ValidationError:
    """A validation error at ``path`` below the schema being validated (pydantic puts where that schema is in
    front), so that the message points at the keyword's own line."""
    error = PydanticCustomError("json_schema", "{message}", {"message": message})
    return ValidationError.from_exception_data(
        "VariableSchema", [InitErrorDetails(type=error, loc=tuple(path), input=value)]
    )


_ALIASES = {"ref": "$ref", "defs": "$defs", "comment": "$comment", "if_": "if", "else_": "else", "not_": "not"}


class _SchemaKeywords(_Model):
    """The keywords of a variable's schema: JSON Schema, draft 2020-12 (see ``_schema.KEYWORDS``). Only the
    keywords written are stored (``exclude_unset``), so a schema of the first release keeps its content hash."""

    type: VariableType | list[VariableType] | None = None
    """JSON type(s) the value must have."""
    enum: list[Any] | None = None
    """The allowed values."""
    const: Any = None
    """The one allowed value."""
    default: Any = None
    """Value used when the variable (or property) is not given (only when written; ``default: null`` makes one
    optional)."""
    title: str | None = None
    """A short name, shown in editors."""
    description: str | None = None
    """Shown in editors, the UI and `promptlane show`."""
    examples: list[Any] | None = None
    """Example values (not checked)."""
    deprecated: StrictBool | None = None
    """An annotation (not checked)."""
    readOnly: StrictBool | None = None
    """An annotation (not checked)."""
    writeOnly: StrictBool | None = None
    """An annotation (not checked)."""
    comment: str | None = Field(None, alias="$comment")
    """A comment for the schema's readers (``$comment``)."""

    minLength: _Count | None = None
    """Fewest characters of a string."""
    maxLength: _Count | None = None
    """Most characters of a string."""
    pattern: str | None = None
    """A regular expression (ECMA-262, without lookaround or backreferences) a string must match somewhere."""
    format: str | None = None
    """A format a string must have (checked: see ``_schema.FORMATS``)."""
    contentEncoding: str | None = None
    """An annotation (not checked)."""
    contentMediaType: str | None = None
    """An annotation (not checked)."""
    contentSchema: Subschema | StrictBool | None = None
    """An annotation (not checked)."""

    minimum: _Number | None = None
    """Smallest number allowed."""
    maximum: _Number | None = None
    """Largest number allowed."""
    exclusiveMinimum: _Number | None = None
    """A number must be more than this."""
    exclusiveMaximum: _Number | None = None
    """A number must be less than this."""
    multipleOf: Annotated[_Number, Field(gt=0)] | None = None
    """A number must be a multiple of this."""

    items: Subschema | StrictBool | None = None
    """Schema of each item of an array (after those of ``prefixItems``)."""
    prefixItems: list[Subschema | StrictBool] | None = None
    """Schemas of an array's first items, one each."""
    contains: Subschema | StrictBool | None = None
    """Schema at least one item (``minContains``-``maxContains`` items) must match."""
    minContains: _Count | None = None
    """Fewest items matching ``contains``."""
    maxContains: _Count | None = None
    """Most items matching ``contains``."""
    minItems: _Count | None = None
    """Fewest items."""
    maxItems: _Count | None = None
    """Most items."""
    uniqueItems: StrictBool | None = None
    """Items must differ from one another."""
    unevaluatedItems: Subschema | StrictBool | None = None
    """Schema of the items no other keyword checked."""

    properties: dict[str, Subschema | StrictBool] | None = None
    """Schemas of an object's properties."""
    required: list[str] | None = None
    """Required properties of an object (all properties without a default when omitted)."""
    additionalProperties: Subschema | StrictBool | None = None
    """Schema of the properties not in ``properties`` or ``patternProperties`` (false: none allowed)."""
    patternProperties: dict[str, Subschema | StrictBool] | None = None
    """Schemas of the properties whose names match a regular expression."""
    propertyNames: Subschema | StrictBool | None = None
    """Schema every property name must match."""
    minProperties: _Count | None = None
    """Fewest properties."""
    maxProperties: _Count | None = None
    """Most properties."""
    dependentRequired: dict[str, list[str]] | None = None
    """Properties required when a property is given."""
    dependentSchemas: dict[str, Subschema | StrictBool] | None = None
    """Schemas the object must match when a property is given."""
    unevaluatedProperties: Subschema | StrictBool | None = None
    """Schema of the properties no other keyword checked."""

    allOf: Annotated[list[Subschema | StrictBool], Field(min_length=1)] | None = None
    """Schemas the value must all match."""
    anyOf: Annotated[list[Subschema | StrictBool], Field(min_length=1)] | None = None
    """Schemas the value must match one or more of."""
    oneOf: Annotated[list[Subschema | StrictBool], Field(min_length=1)] | None = None
    """Schemas the value must match exactly one of."""
    not_: Subschema | StrictBool | None = Field(None, alias="not")
    """A schema the value must not match."""
    if_: Subschema | StrictBool | None = Field(None, alias="if")
    """When the value matches it, it must match ``then``; otherwise ``else``."""
    then: Subschema | StrictBool | None = None
    """See ``if``."""
    else_: Subschema | StrictBool | None = Field(None, alias="else")
    """See ``if``."""
    ref: str | None = Field(None, alias="$ref")
    """A schema of this variable's to match too: ``#/$defs/NAME`` (nothing outside the schema is fetched)."""
    defs: dict[str, Subschema | StrictBool] | None = Field(None, alias="$defs")
    """Schemas for ``$ref`` (``$defs``)."""

    @model_validator(mode="before")
    @classmethod
    def _known_keywords(cls, data: Any) -> Any:
        # Before pydantic's own check, whose suggestion would come from the Python names (`if_`, not `if`).
        if isinstance(data, dict):
            for key in data:
                if key not in KEYWORDS:
                    raise _schema_error((key,), unknown_keyword(str(key)), data[key])
        return data

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        problem = None if value is None else pattern_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("patternProperties")
    @classmethod
    def _property_patterns(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key in value or ():
            problem = pattern_problem(key)
            if problem:
                raise _schema_error((key,), problem, key)
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        problem = None if value is None else format_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("ref")
    @classmethod
    def _local_ref(cls, value: str | None) -> str | None:
        problem = None if value is None else ref_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_serializer(mode="wrap")
    def _keyword_names(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {_ALIASES.get(key, key): value for key, value in data.items()}


class Subschema(_SchemaKeywords):
    """A schema inside a variable's schema: of ``items``, a property, an alternative of ``oneOf``, ..."""


class VariableSchema(_SchemaKeywords):
    """A variable's schema: JSON Schema (draft 2020-12), checked at every render. A variable without
    ``default`` is required.

    Bounded (depth, size, regular expressions) and compiled when loaded, so that a schema that cannot be
    checked is an error at push, naming its file and line, never at render in an application.
    """

    @property
    def has_default(self) -> bool:
        """True when the author wrote a ``default`` (even ``null``)."""
        return "default" in self.model_fields_set

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        problem = check_bounds(data)
        if problem is not None:
            raise _schema_error(problem.path, problem.message)
        return data

    @model_validator(mode="after")
    def _compiles(self) -> VariableSchema:
        try:
            compile_schema({"variable": self.model_dump(mode="json", exclude_unset=True)})
        except SchemaProblem as exc:
            raise _schema_error(exc.path[1:], exc.message) from None
        return self


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
