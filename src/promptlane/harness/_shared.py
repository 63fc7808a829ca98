"""Rendering a scenario's cases with the messages they all render alike rendered once.

A message whose template reads only what the scenario itself decides (its ``variables:``, which every case
starts from, and the defaults of variables it leaves unset) renders to the same text in every case that has
those very values. For a scenario with many cases (a dataset), the first such case renders the whole prompt;
the cases after it render a copy of the version in which those messages are that text, as long as they hold
the same values (the same objects, of immutable types; or unset, as in the scenario): a row that sets one of
them renders the whole prompt. Every case still has its variables validated and its output measured against
the limits.

A template qualifies only when its text is a function of those values: no include or import (what the other
template reads is not seen here), no ``random`` filter; and only when its text is plain (no Jinja2 markers, so
the copy renders it as it is). The copy is checked against the first case's render before it is used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Set
from typing import Any

from ..errors import TemplateError
from ..registry.prompt import Prompt
from ..templates import CompiledPrompt, analyze_template, compile_prompt

__all__ = ["REUSE_FROM", "SharedMessages"]

REUSE_FROM = 100
"""Cases a scenario needs before its shared messages are rendered once: compiling the copy costs about as much
as rendering a small template a hundred times."""

_MISSING = object()
_IMMUTABLE = (str, int, float, bool, type(None))
_MARKERS = ("{{", "{%", "{#")


class SharedMessages:
    """Renders the prompt for the cases of one scenario, rendering once what they all render alike."""

    def __init__(self, prompt: Prompt, shared: Mapping[str, Any]) -> None:
        self._prompt = prompt
        self._shared = {name: value for name, value in shared.items() if type(value) in _IMMUTABLE}
        self._candidates: dict[Any, frozenset[str]] | None = _constant_templates(
            prompt.spec, shared.keys() - self._shared.keys()
        )
        self._reads: frozenset[str] = frozenset()
        self._copy: CompiledPrompt | None = None

    def render(self, variables: Mapping[str, Any]) -> list[dict[str, str]]:
        """The rendered messages for a case's ``variables``, as ``Prompt.render_messages`` renders them.

        Raises:
            VariableError, TemplateError: as ``Prompt.render_messages``.
        """
        copy = self._copy
        if copy is not None and self._same(self._reads, variables):
            return copy.render(variables)
        rendered = self._prompt.render_messages(variables)
        candidates = self._candidates
        if candidates is not None:
            # The first case rendered decides: the templates reading the scenario's own values in it are kept.
            self._candidates = None
            constant = {key: names for key, names in candidates.items() if self._same(names, variables)}
            if constant:
                self._copy = self._make_copy(constant, variables, rendered)
                self._reads = frozenset(name for names in constant.values() for name in names)
        return rendered

    def _same(self, names: frozenset[str], variables: Mapping[str, Any]) -> bool:
        shared = self._shared
        return all(variables.get(name, _MISSING) is shared.get(name, _MISSING) for name in names)

    def _make_copy(
        self, constant: Mapping[Any, frozenset[str]], variables: Mapping[str, Any], rendered: list[dict[str, str]]
    ) -> CompiledPrompt | None:
        """The version with its ``constant`` templates replaced by their text in ``rendered``, if it is plain
        text and the copy renders the same messages for ``variables``."""
        prompt = self._prompt
        texts = {key: rendered[0 if key == "template" else key]["content"] for key in constant}
        if any(marker in text for text in texts.values() for marker in _MARKERS):
            return None
        spec = dict(prompt.spec)
        if "template" in texts:
            spec["template"] = texts["template"]
        else:
            spec["messages"] = [
                {**message, "content": texts[index]} if index in texts else message
                for index, message in enumerate(spec["messages"])
            ]
        digest = hashlib.sha256(json.dumps(sorted(texts.items(), key=str)).encode()).hexdigest()
        copy = compile_prompt(
            name=prompt.name,
            version=prompt.version,
            content_hash=f"{prompt.content_hash}:shared:{digest}",
            spec=spec,
            limits=prompt.limits,  # the version's own render limits
        )
        try:
            same = copy.render(variables) == rendered
        except TemplateError:
            return None
        return copy if same else None


def _constant_templates(spec: Mapping[str, Any], mutable: Set[str]) -> dict[Any, frozenset[str]]:
    """The templates (``"template"``, or a message's index) that may render alike in every case, with the names
    each reads: none of them set by the scenario to a value that could change (``mutable``). Plain text is left
    out: it is never rendered."""
    sources: list[tuple[Any, str]] = []
    if spec.get("template") is not None:
        sources.append(("template", spec["template"]))
    sources += [(index, message["content"]) for index, message in enumerate(spec.get("messages") or ())]
    constant: dict[Any, frozenset[str]] = {}
    for key, source in sources:
        if not any(marker in source for marker in _MARKERS) or "random" in source:
            continue
        try:
            info = analyze_template(source)
        except TemplateError:
            continue
        if not info.includes and info.dynamic_include_line is None and info.variables.isdisjoint(mutable):
            constant[key] = info.variables
    return constant
