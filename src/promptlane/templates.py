"""Compiling and rendering a prompt's templates in the sandbox, with errors that name where they happened.

A version's templates (its ``template`` or each message, plus the frozen text of the prompts it includes)
are compiled once and cached by content hash; rendering validates the variables first, then renders
every template under one :class:`~promptlane._sandbox.RenderBudget`.
"""

from __future__ import annotations

import re
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.loaders import BaseLoader

from ._budget import BUDGET, RenderBudget, RenderLimits, ResourceLimitError
from ._sandbox import SandboxEnvironment
from .errors import TemplateError, TemplateRenderError, TemplateSecurityError, TemplateSyntaxError
from .variables import VariablesValidator, compile_variables

__all__ = [
    "CompiledPrompt",
    "RenderLimits",
    "TemplateInfo",
    "TextTemplate",
    "analyze_template",
    "compile_prompt",
    "first_use_line",
    "map_render_error",
]

# Names templates may use without declaring them.
_GLOBALS = frozenset(SandboxEnvironment().globals)
_OWN = "#"  # prefix of a prompt's own templates, so they never collide with an included prompt's name


class _Sources(BaseLoader):
    """Serves a prompt's own templates and its frozen includes; filenames are the names, for line numbers."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = dict(sources)

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        if template not in self.sources:
            raise jinja2.TemplateNotFound(template)
        return self.sources[template], template, lambda: True


@dataclass(frozen=True)
class TemplateInfo:
    """What a template refers to."""

    variables: frozenset[str]
    """Names it reads from the render context."""
    includes: tuple[str, ...]
    """Prompts it includes or imports, in order of appearance."""
    dynamic_include_line: int | None
    """Line of an include whose name is not a literal string, if any."""


_PARSER = SandboxEnvironment()


def analyze_template(source: str, *, prompt: str | None = None, template: str | None = None) -> TemplateInfo:
    """Parse ``source`` and report the variables and prompts it uses.

    Raises:
        TemplateSyntaxError: with the line inside the template.
    """
    try:
        ast = _PARSER.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        message = exc.message or "syntax error"
        raise TemplateSyntaxError(message, prompt=prompt, template=template, line=exc.lineno) from None
    except RecursionError:
        raise TemplateSyntaxError(_TOO_DEEP, prompt=prompt, template=template) from None
    includes: list[str] = []
    dynamic_line = None
    for node in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        target = node.template
        if isinstance(target, nodes.Const) and isinstance(target.value, str):
            if target.value not in includes:
                includes.append(target.value)
        elif dynamic_line is None:
            dynamic_line = node.lineno
    variables = frozenset(meta.find_undeclared_variables(ast)) - _GLOBALS
    return TemplateInfo(variables=variables, includes=tuple(includes), dynamic_include_line=dynamic_line)


_TOO_DEEP = "the template nests too deeply (blocks, parentheses or operators): flatten it"

_NEWLINES = re.compile(r"\r\n|\r|\n")


def _static_text(source: str) -> str:
    """What a template without a single tag renders to, as Jinja2 renders it: newlines normalized, one trailing
    newline dropped. System messages are often like this, and need no render context."""
    lines = _NEWLINES.split(source)
    if lines[-1] == "":
        del lines[-1]
    return "\n".join(lines)


_Part = tuple[str, str, "jinja2.Template | None"]
"""A message to render: its role, and its text if it is static, else its compiled template."""


def first_use_line(source: str, variable: str) -> int | None:
    """The line inside ``source`` where ``variable`` is first read, if it is."""
    for name in _PARSER.parse(source).find_all(nodes.Name):
        if name.name == variable and name.ctx == "load":
            return name.lineno
    return None


def _display(name: str | None) -> str | None:
    return name[len(_OWN) :] if name and name.startswith(_OWN) else name


class CompiledPrompt:
    """A version's templates, compiled, with its variables validator."""

    __slots__ = ("_env", "_names", "_parts", "_unchecked_above", "_validate", "limits", "name", "version")

    def __init__(self, *, name: str, version: int | None, spec: Mapping[str, Any], limits: RenderLimits) -> None:
        self.name = name
        self.version = version
        self.limits = limits
        # A render that left at least this much of its output budget produced at most max_chars: no need to count.
        self._unchecked_above = limits.max_work_chars - limits.max_chars
        sources: dict[str, str] = {name_: inc["template"] for name_, inc in (spec.get("includes") or {}).items()}
        parts: list[tuple[str, str]] = []
        if spec.get("template") is not None:
            parts.append(("user", f"{_OWN}template"))
            sources[f"{_OWN}template"] = spec["template"]
        for index, message in enumerate(spec.get("messages") or ()):
            key = f"{_OWN}messages[{index}]"
            parts.append((message["role"], key))
            sources[key] = message["content"]
        self._names = frozenset(sources)
        self._env = env = SandboxEnvironment(loader=_Sources(sources))
        compiled: list[_Part] = []
        for role, key in parts:
            try:
                source = sources[key]
                if any(marker in source for marker in ("{{", "{%", "{#")):
                    compiled.append((role, "", env.get_template(key)))
                else:
                    compiled.append((role, _static_text(source), None))
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateSyntaxError(
                    exc.message or "syntax error",
                    prompt=name,
                    version=version,
                    template=_display(exc.name),
                    line=exc.lineno,
                ) from None
            except RecursionError:
                raise TemplateSyntaxError(_TOO_DEEP, prompt=name, version=version, template=_display(key)) from None
        self._parts = tuple(compiled)
        # Static parts are never charged to the budget: count them here, so the check below stays exact.
        self._unchecked_above += sum(len(text) for _, text, _ in compiled)
        self._validate: VariablesValidator = compile_variables(
            spec.get("variables") or {}, prompt=name, version=version
        )

    def render(self, variables: Mapping[str, Any]) -> list[dict[str, str]]:
        """Render every template with ``variables`` (validated first) into chat messages; a text prompt is
        one user message.

        Raises:
            VariableError: a variable is missing, unknown or invalid.
            TemplateSecurityError: the template reached for internals or went over a limit.
            TemplateRenderError: anything else the template raised.
        """
        context = self._validate(variables)
        budget = RenderBudget(self.limits)
        token = BUDGET.set(budget)
        try:
            # Template.render, without its first copy of the variables (new_context copies them again anyway).
            messages = [
                {
                    "role": role,
                    "content": text
                    if template is None
                    else "".join(template.root_render_func(template.new_context(context))),
                }
                for role, text, template in self._parts
            ]
        except Exception:
            try:
                # Jinja2's Template.render does this: the traceback, rewritten to show template lines.
                self._env.handle_exception()
            except Exception as exc:
                raise self._map_error(exc) from None
        finally:
            BUDGET.reset(token)
        # Every character of output was charged to the budget, so only a render that produced more than the
        # cap in all can be over it; the common case skips the count.
        if budget.chars >= self._unchecked_above:
            return messages
        total = sum(len(message["content"]) for message in messages)
        if total > self.limits.max_chars:
            raise TemplateSecurityError(
                f"rendered output is {total} characters, over the limit of {self.limits.max_chars} (render_max_chars)",
                prompt=self.name,
                version=self.version,
            )
        return messages

    def _map_error(self, exc: Exception) -> TemplateError:
        return map_render_error(exc, self._names, prompt=self.name, version=self.version)


def map_render_error(
    exc: Exception, names: frozenset[str], *, prompt: str | None, version: int | None
) -> TemplateError:
    """An exception raised while rendering, as the TemplateError that names where it happened."""
    template, line = _template_frame(exc, names)
    where: dict[str, Any] = {"prompt": prompt, "version": version, "template": template, "line": line}
    if isinstance(exc, ResourceLimitError):
        return TemplateSecurityError(str(exc), **where)
    if isinstance(exc, SecurityError):
        return TemplateSecurityError(f"unsafe: {exc}", **where)
    if isinstance(exc, RecursionError):
        return TemplateSecurityError("recursion too deep (a macro or recursive loop that never ends?)", **where)
    if isinstance(exc, MemoryError):
        return TemplateSecurityError("ran out of memory while rendering", **where)
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateRenderError(exc.message or "undefined value", **where)
    if isinstance(exc, TemplateError):
        return exc
    return TemplateRenderError(f"{type(exc).__name__}: {exc}", **where)


class TextTemplate:
    """A template outside any prompt (an expectation value, a judge's instructions): sandboxed and bounded
    like a prompt's, rendered with whatever values it is given."""

    __slots__ = ("_template", "limits", "name")

    def __init__(self, source: str, *, name: str, limits: RenderLimits | None = None) -> None:
        self.name = name
        self.limits = limits or RenderLimits()
        env = SandboxEnvironment(loader=_Sources({f"{_OWN}text": source}))
        try:
            self._template = env.get_template(f"{_OWN}text")
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateSyntaxError(exc.message or "syntax error", prompt=name, line=exc.lineno) from None
        except RecursionError:
            raise TemplateSyntaxError(_TOO_DEEP, prompt=name) from None

    def render(self, values: Mapping[str, Any]) -> str:
        """The text for ``values``.

        Raises:
            TemplateError: as a prompt's render does.
        """
        token = BUDGET.set(RenderBudget(self.limits))
        try:
            text = self._template.render(values)
        except Exception as exc:
            raise map_render_error(exc, frozenset({f"{_OWN}text"}), prompt=self.name, version=None) from None
        finally:
            BUDGET.reset(token)
        if len(text) > self.limits.max_chars:
            raise TemplateSecurityError(
                f"rendered text is over the limit of {self.limits.max_chars} characters", prompt=self.name
            )
        return text


def _template_frame(exc: BaseException, names: frozenset[str]) -> tuple[str | None, int | None]:
    """The innermost template frame of ``exc``'s traceback: (template name, line).

    Jinja2 rewrites tracebacks so that template code shows up as frames whose filename is the template's
    name (our loader returns the name as the filename) and whose line is the template's line.
    """
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in names:
            found = (_display(frame.filename), frame.lineno)
    return found


_CACHE: OrderedDict[tuple[Any, ...], CompiledPrompt] = OrderedDict()
_CACHE_SIZE = 512
_CACHE_LOCK = threading.Lock()


def compile_prompt(
    *, name: str, version: int | None, content_hash: str, spec: Mapping[str, Any], limits: RenderLimits
) -> CompiledPrompt:
    """The compiled templates of a version, compiled once per (name, version, content, limits) and kept while
    among the ``_CACHE_SIZE`` most recently used."""
    key = (name, version, content_hash, limits)
    with _CACHE_LOCK:
        compiled = _CACHE.get(key)
        if compiled is not None:
            _CACHE.move_to_end(key)  # evicted last: a prompt rendered on every request stays compiled
            return compiled
    compiled = CompiledPrompt(name=name, version=version, spec=spec, limits=limits)
    with _CACHE_LOCK:
        _CACHE[key] = compiled
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return compiled
