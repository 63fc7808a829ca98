"""Scenario files (``evals/**/*.yaml``): saved test cases for a prompt, validated strictly.

A file names a prompt and holds scenarios. A scenario is one case (its variables, optional earlier messages,
mocked tools and expectations), or one case per row of a dataset, each repeated ``repeat`` times.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from .._validation import spec_error_from_validation
from .._yaml import YamlDocument, load_yaml
from ..config import Settings, load_settings
from ..errors import SpecError
from ..registry.fingerprint import looks_like_scenario_file, relative_path
from ..spec import NAME_PATTERN, check_model, discover_yaml_files
from ..templates import analyze_template
from .datasets import all_columns, first_columns, resolve_dataset

__all__ = [
    "EXPECTATION_KINDS",
    "Expectation",
    "HistoryMessage",
    "ScenarioFile",
    "ScenarioNeeds",
    "ScenarioSpec",
    "ScenariosDocument",
    "ToolMockSpec",
    "discover_scenario_files",
    "expectation_templates",
    "load_scenario_file",
    "scenario_needs",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- tools ------------------------------------------------------------------------------------------------


class ToolMockSpec(_Model):
    """One mock rule: when the arguments match, return a value, fail, or call a Python function."""

    match: dict[str, Any] | None = None
    """Argument subset the call must contain (nested mappings match as subsets too); no match: any call."""
    returns: Any = None
    """The tool's result (any JSON value)."""
    error: str | None = None
    """The tool fails with this message, and the model sees it."""
    python: str | None = None
    """``module:function``, called with the arguments as one dict; its return value is the result."""

    @model_validator(mode="after")
    def _one_outcome(self) -> ToolMockSpec:
        given = [key for key in ("returns", "error", "python") if key in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("a mock has exactly one of `returns`, `error` or `python`")
        if self.python is not None and not re.match(r"^[\w.]+:[\w.]+$", self.python):
            raise ValueError("`python` is module:function, like examples.support.tools:lookup")
        return self


class ToolDeclaration(_Model):
    """A tool the scenario offers the model besides the version's own, with its mocks."""

    description: str = ""
    """What the tool does, shown to the model."""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON Schema of the arguments."""
    mocks: list[ToolMockSpec]
    """The mock rules, first match wins."""


ToolMocks = Union[list[ToolMockSpec], ToolDeclaration]  # noqa: UP007 - a runtime alias

# --- history ------------------------------------------------------------------------------------------------


class HistoryToolCall(_Model):
    """A tool call in an earlier assistant turn."""

    name: str
    """The tool."""
    args: dict[str, Any] = Field(default_factory=dict)
    """Its arguments."""
    id: str | None = None
    """The call id (generated when omitted)."""


class HistoryMessage(_Model):
    """An earlier message of the conversation, placed after the prompt's system messages."""

    role: Literal["system", "user", "assistant", "tool"]
    """Who spoke: ``tool`` is a tool's result."""
    content: Any = None
    """The text (a tool result may be any JSON value)."""
    tool_calls: list[HistoryToolCall] = Field(default_factory=list)
    """Tool calls of an assistant turn."""
    name: str | None = None
    """For a tool result: the tool."""
    id: str | None = None
    """For a tool result: the call it answers."""

    @model_validator(mode="after")
    def _shape(self) -> HistoryMessage:
        if self.role == "tool" and not self.name:
            raise ValueError("a tool message needs the tool's `name`")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only an assistant message has `tool_calls`")
        if self.role != "tool" and not self.tool_calls and not isinstance(self.content, str):
            raise ValueError(f"a {self.role} message needs text `content`")
        return self


# --- expectations -------------------------------------------------------------------------------------------


class _ContainsArgs(_Model):
    value: str
    case_sensitive: bool = True


class _ToolCalledArgs(_Model):
    name: str
    args: dict[str, Any] | None = None
    times: int | None = Field(default=None, ge=0)


class _ToolSequenceArgs(_Model):
    tools: list[str] = Field(min_length=1)
    order: Literal["exact", "in_order", "any"] = "in_order"


def _model_string(value: str | None) -> str | None:
    return None if value is None else check_model(value)


class _JudgeArgs(_Model):
    rubric: str
    model: str | None = None
    threshold: float = Field(default=0.5, ge=0, le=1)

    _model = field_validator("model")(_model_string)


class _PythonArgs(_Model):
    function: str

    @field_validator("function")
    @classmethod
    def _reference(cls, value: str) -> str:
        if not re.match(r"^[\w.]+:[\w.]+$", value):
            raise ValueError("`function` is module:function, like examples.support.checks:polite")
        return value


class Equals(_Model):
    """The output equals the value (text, or structured output as JSON data)."""

    equals: Any


class Contains(_Model):
    """The output text contains the value."""

    contains: str | _ContainsArgs


class NotContains(_Model):
    """The output text does not contain the value."""

    not_contains: str | _ContainsArgs


class Regex(_Model):
    """The output text matches the regular expression (``re.search``)."""

    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        if "{{" not in value:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class StartsWith(_Model):
    """The output text starts with the value."""

    starts_with: str


class JsonValid(_Model):
    """The output is valid JSON."""

    json_valid: Literal[True]


class JsonSchema(_Model):
    """The output validates against a JSON Schema (``true``: the version's output schema)."""

    json_schema: dict[str, Any] | Literal[True]


class ToolCalled(_Model):
    """A tool was called (with arguments containing ``args``, exactly ``times`` times)."""

    tool_called: str | _ToolCalledArgs


class ToolNotCalled(_Model):
    """A tool was never called."""

    tool_not_called: str


class ToolSequence(_Model):
    """Tools were called in this order: ``exact`` (nothing else), ``in_order`` (others may interleave), ``any``."""

    tool_sequence: list[str] | _ToolSequenceArgs


class MaxTurns(_Model):
    """At most this many model requests."""

    max_turns: int = Field(ge=1)


class MaxLatency(_Model):
    """The case took at most this many milliseconds."""

    max_latency_ms: float = Field(gt=0)


class MaxTokens(_Model):
    """At most this many tokens in all (input and output, over every request)."""

    max_tokens: int = Field(gt=0)


class MaxCost(_Model):
    """The case cost at most this much."""

    max_cost_usd: float = Field(ge=0)


class Judge(_Model):
    """An LLM judges the output against a rubric (score 0-1, passing at ``threshold``)."""

    judge: str | _JudgeArgs


class Python(_Model):
    """A Python function ``(ctx) -> bool | float | (value, reason)`` judges the case."""

    python: str | _PythonArgs

    @field_validator("python")
    @classmethod
    def _reference(cls, value: str | _PythonArgs) -> str | _PythonArgs:
        if isinstance(value, str):
            _PythonArgs._reference(value)
        return value


class PydanticEvals(_Model):
    """pydantic-evals evaluators by name, with their arguments (``promptlane[pydantic-evals]``)."""

    pydantic_evals: dict[str, Any]


_EXPECTATIONS: tuple[type[_Model], ...] = (
    Equals, Contains, NotContains, Regex, StartsWith, JsonValid, JsonSchema, ToolCalled, ToolNotCalled,
    ToolSequence, MaxTurns, MaxLatency, MaxTokens, MaxCost, Judge, Python, PydanticEvals,
)  # fmt: skip
EXPECTATION_KINDS: dict[str, type[_Model]] = {next(iter(model.model_fields)): model for model in _EXPECTATIONS}


def expectation_templates(expectation: Any) -> Iterator[tuple[tuple[str | int, ...], str, bool]]:
    """The strings of an expectation that are rendered per case (those with ``{{`` or ``{%``), as
    (key path under the expectation, source, data): ``data`` is True where a lone ``{{ name }}`` gives the value
    itself (``equals``, a tool call's ``args``), False where the result is text (``contains``, ``regex``...)."""
    if isinstance(expectation, Equals):
        yield from _templates(("equals",), expectation.equals, data=True)
    elif isinstance(expectation, (Contains, NotContains)):
        kind = "contains" if isinstance(expectation, Contains) else "not_contains"
        args = getattr(expectation, kind)
        loc: tuple[str | int, ...] = (kind,) if isinstance(args, str) else (kind, "value")
        yield from _templates(loc, args if isinstance(args, str) else args.value, data=False)
    elif isinstance(expectation, Regex):
        yield from _templates(("regex",), expectation.regex, data=False)
    elif isinstance(expectation, StartsWith):
        yield from _templates(("starts_with",), expectation.starts_with, data=False)
    elif isinstance(expectation, ToolCalled) and isinstance(expectation.tool_called, _ToolCalledArgs):
        yield from _templates(("tool_called", "args"), expectation.tool_called.args, data=True)


def _templates(
    loc: tuple[str | int, ...], value: Any, *, data: bool
) -> Iterator[tuple[tuple[str | int, ...], str, bool]]:
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            yield loc, value, data
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _templates((*loc, key), item, data=data)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _templates((*loc, index), item, data=data)


def _expectation_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return f"[{next(iter(type(value).model_fields))}]"
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in EXPECTATION_KINDS:
        return f"[{next(iter(value))}]"
    return None


Expectation = Annotated[
    Union[tuple(Annotated[model, Tag(f"[{kind}]")] for kind, model in EXPECTATION_KINDS.items())],  # type: ignore[misc]  # noqa: UP007
    Discriminator(_expectation_kind, custom_error_type="unknown_expectation", custom_error_message="unknown"),
]

# --- scenarios -------------------------------------------------------------------------------------------------


class ScenarioSpec(_Model):
    """One scenario of a scenario file."""

    name: str
    """Unique in the file; case ids derive from it (``refund``, ``tickets[row-3][repeat-2]``)."""
    description: str | None = None
    """What it checks."""
    tags: list[str] = Field(default_factory=list)
    """Labels to select scenarios by (they become pytest markers)."""
    variables: dict[str, Any] = Field(default_factory=dict)
    """Variables to render the prompt with (a dataset's columns are merged over them)."""
    history: list[HistoryMessage] = Field(default_factory=list)
    """Earlier messages of the conversation."""
    tools: dict[str, ToolMocks] = Field(default_factory=dict)
    """Mocks by tool name (for the version's tools, or declared here)."""
    # A union built from EXPECTATION_KINDS at import: pydantic reads it, a static checker cannot.
    expect: list[Expectation] = Field(default_factory=list)  # pyright: ignore[reportInvalidTypeForm]
    """What every case must satisfy; string values may use the variables and dataset row (``{{ expected }}``)."""
    dataset: str | None = None
    """A JSONL, CSV or YAML file of rows, relative to this file: one case per row."""
    threshold: float = Field(default=1.0, ge=0, le=1)
    """The least pass rate over rows x repeats for the scenario to pass."""
    repeat: int = Field(default=1, ge=1, le=1000)
    """How many times each case runs (each with its own recorded response)."""
    max_turns: int = Field(default=10, ge=1, le=100)
    """Model requests allowed in a case's tool-calling loop."""
    model: str | None = None
    """Model for this scenario (over the file's)."""

    _model = field_validator("model")(_model_string)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", value):
            raise ValueError("a scenario name is letters, digits, '_', '.', '-'")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag.isidentifier():
                raise ValueError(f"tag {tag!r} must be an identifier (it becomes a pytest marker)")
        return value


class ScenarioFile(_Model):
    """A scenario file."""

    prompt: str
    """The prompt the scenarios test."""
    model: str | None = None
    """Default model for the file (else the version's)."""
    scenarios: list[ScenarioSpec]
    """The scenarios."""

    _model = field_validator("model")(_model_string)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("a prompt name is letters, digits, '_', '.', '-', with '/' between folders")
        return value

    @field_validator("scenarios")
    @classmethod
    def _unique(cls, value: list[ScenarioSpec]) -> list[ScenarioSpec]:
        if not value:
            raise ValueError("`scenarios` must list at least one scenario")
        first: dict[str, int] = {}
        for index, scenario in enumerate(value):
            if scenario.name in first:
                entries = f"entries {first[scenario.name]} and {index}"
                raise ValueError(f"scenario {scenario.name!r} is defined twice ({entries})")
            first[scenario.name] = index
        return value


@dataclass(frozen=True)
class ScenariosDocument:
    """A scenario file read from disk."""

    spec: ScenarioFile
    """The validated content."""
    document: YamlDocument
    """The parsed YAML, for line numbers."""
    sha256: str
    """The file's content hash (recorded with runs; the gate compares it)."""

    @property
    def path(self) -> Path:
        """The file's path."""
        return self.document.path

    def line_of(self, scenario: int) -> int | None:
        """The line of scenario number ``scenario``."""
        return self.document.line(("scenarios", scenario))

    def dataset_path(self, scenario: ScenarioSpec) -> Path | None:
        """The scenario's dataset, resolved against this file's folder."""
        return None if scenario.dataset is None else (self.path.parent / scenario.dataset)


def _unknown_expectation(error: dict[str, Any]) -> str | None:
    if error["type"] != "unknown_expectation":
        return None
    value = error.get("input")
    if not isinstance(value, dict) or len(value) != 1:
        return "an expectation is one `kind: value` pair, like `contains: refund`"
    kind = str(next(iter(value)))
    close = difflib.get_close_matches(kind, EXPECTATION_KINDS, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(EXPECTATION_KINDS)}"
    return f"unknown expectation {kind!r} ({hint})"


def _dataset_roots(path: Path) -> tuple[Path, ...]:
    """Where the datasets of the scenario file at ``path`` may be when no settings were given."""
    around = load_settings(path.parent)
    if around.source is not None:
        return around.dataset_root_dirs
    # No project around the file: its own folder, and the working directory's project (the CLI's root).
    return (*around.dataset_root_dirs, *load_settings().dataset_root_dirs)


def load_scenario_file(path: Path | str, *, settings: Settings | None = None) -> ScenariosDocument:
    """Read and validate a scenario file; every problem is a SpecError naming file, line and key.

    Args:
        path: The scenario file.
        settings: The project's settings: a dataset must lie inside its root or one of its ``dataset_roots``.
            Default: the settings of the project around the file (found from its folder up, as the CLI finds
            them from the working directory); without a config file there, the file's folder and the working
            directory's project are allowed.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError("not UTF-8 text", path=path, line=raw[: exc.start].count(b"\n") + 1) from None
    document = load_yaml(text, path)
    if not isinstance(document.data, dict):
        raise document.error("a scenario file is a mapping with `prompt:` and `scenarios:`")
    try:
        spec = ScenarioFile.model_validate(document.data)
    except ValidationError as exc:
        raise spec_error_from_validation(exc, document, ScenarioFile, explain=_unknown_expectation) from None
    roots = None
    for index, scenario in enumerate(spec.scenarios):
        if not scenario.dataset:
            continue
        where = ("scenarios", index, "dataset")
        if roots is None:
            roots = settings.dataset_root_dirs if settings is not None else _dataset_roots(path)
        try:
            dataset = resolve_dataset(document.path, scenario.dataset, roots=roots)
        except SpecError as exc:
            raise document.error(exc.reason, where) from None
        if not dataset.is_file():
            raise document.error(f"dataset {scenario.dataset} not found (looked for {dataset})", where)
        if dataset.suffix.lower() not in (".jsonl", ".csv", ".yaml", ".yml"):
            raise document.error("a dataset is a .jsonl, .csv or .yaml file", where)
    return ScenariosDocument(spec=spec, document=document, sha256=hashlib.sha256(raw).hexdigest())


# --- what a scenario's cases need -----------------------------------------------------------------------------

# A lone `{{ name }}` gives the value itself where data is compared (as the evaluators resolve it).
_SINGLE_NAME = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")


@dataclass(frozen=True)
class ScenarioNeeds:
    """What every case of a scenario needs from its dataset row."""

    columns: dict[str, str]
    """Columns every row must have (the scenario does not set them), each with why: the prompt requires the
    variable, or the expectations use it."""
    text: frozenset[str]
    """Names the expectations render as text, where a null is an error (a lone ``{{ name }}`` in ``equals`` or
    a tool call's ``args`` compares the value as data)."""


def _hint(name: str, known: Iterable[str], what: str) -> str:
    """`` (did you mean 'x'?)`` against ``known``, else `` (what: a, b)``, listing them."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({what}: {', '.join(names)})" if names else ""


def scenario_needs(
    document: ScenariosDocument,
    index: int,
    *,
    variables: Mapping[str, Mapping[str, Any]],
    prompt: str,
    root: Path | None = None,
) -> ScenarioNeeds:
    """What every case of scenario number ``index`` needs, checked now against what it can have, before a run.

    A case needs the prompt's required variables (no ``default``) that the scenario does not set, and the names
    its expectation templates use (``{{ expected }}``) that the scenario does not set: from a dataset, those
    are columns. A CSV file's header (or a YAML file's rows) names every column; a JSONL file's first row names
    its own, and only when it lacks a needed one is the whole file read, for the keys of every row.

    Args:
        document: The scenario file.
        index: The scenario's position in it.
        variables: The prompt version's variables schema.
        prompt: The version, for messages (``support/reply@3``).
        root: The project root: paths in messages are relative to it.

    Raises:
        SpecError: a name no case can have: for a dataset, a column no row has, naming the dataset file and the
            column (with the closest column there is); without a dataset, an expectation name that is not one
            of the scenario's variables, naming the scenario file, line and key.
    """
    scenario = document.spec.scenarios[index]
    given = set(scenario.variables)
    dataset = document.dataset_path(scenario)
    columns: dict[str, str] = {}
    if dataset is not None:
        # Without a dataset a missing variable is the render's error, naming it, case by case.
        for name, schema in variables.items():
            if name not in given and "default" not in schema:
                columns[name] = f"{prompt} requires the variable"
    text: set[str] = set()
    for number, expectation in enumerate(scenario.expect):
        for loc, source, data in expectation_templates(expectation):
            names = analyze_template(source, template=f"{scenario.name} expectation").variables
            if not (data and _SINGLE_NAME.match(source)):
                text.update(names)
            for name in sorted(names - given):
                if dataset is None:
                    raise document.document.error(
                        f"{name!r} is not a variable of this scenario, and without a dataset there are no columns"
                        f"{_hint(name, given, 'its variables')}",
                        ("scenarios", index, "expect", number, *loc),
                    )
                columns.setdefault(name, "the expectations use it")
    if dataset is not None and columns:
        _check_columns(document, index, dataset, columns, root)
    return ScenarioNeeds(columns=columns, text=frozenset(text))


def _check_columns(
    document: ScenariosDocument, index: int, dataset: Path, needs: dict[str, str], root: Path | None
) -> None:
    first = first_columns(dataset)
    if first is None:
        return  # no rows, no cases
    columns = first.columns
    missing = [name for name in needs if name not in columns]
    if missing and not first.complete:
        # The first JSONL row lacks a column: some other row may have it (a sparse column), which only a pass
        # over the file can tell. Rows without it are then errors of their own cases.
        columns = all_columns(dataset)
        missing = [name for name in missing if name not in columns]
    if not missing:
        return
    name = missing[0]
    scenario = document.spec.scenarios[index]
    where = f"{relative_path(document.path, root)}:{document.line_of(index)}"
    if needs[name] == "the expectations use it":
        why = f"the expectations of scenario {scenario.name!r} ({where}) use it"
    else:
        why = f"{needs[name]} and scenario {scenario.name!r} ({where}) does not set it"
    raise SpecError(
        f"no row has a column {name!r}{_hint(name, columns, 'its columns')}: {why}",
        path=relative_path(dataset, root),
        line=first.line if first.complete else None,
    )


# A scenario file has a top-level `scenarios:` (and `prompt:`, which also finds a file whose `scenarios:` is misspelt,
# so that its error is reported instead of its cases silently not running); YAML datasets are lists.
def discover_scenario_files(paths: Iterable[Path]) -> list[Path]:
    """Scenario files under ``paths``: files as given; in folders, the ``*.yaml``/``*.yml`` files with a
    top-level ``scenarios:`` or ``prompt:`` key (YAML datasets may sit beside them)."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            for candidate in discover_yaml_files([path]):
                try:
                    text = candidate.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                if looks_like_scenario_file(text):
                    found.add(candidate)
        else:
            found.update(discover_yaml_files([path]))
    return sorted(found)
