"""Freezing prompt specs into version content: variables checked or inferred, includes resolved, compiled.

Pushing is all-or-nothing per file set: every file is loaded, checked and frozen before the first version
is stored, so a bad file in a batch leaves the registry as it was; and on a SQL store the versions of a batch
are stored in one transaction (:func:`store_batch`), so a failure while storing (a database constraint, an
outage) leaves it as it was too. A registry server takes the batch in one request and stores it in one
transaction of its own (``HttpStore.push_batch``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .._budget import RenderLimits
from .._canonical import canonical_json
from .._unicode import find_surrogate
from ..errors import IncludeError, NotFoundError, PromptlaneError, SpecError, TemplateError
from ..spec import PromptFile, PromptSpec, content_hash
from ..templates import TemplateInfo, analyze_template, compile_prompt, first_use_line
from .store import PromptVersion

__all__ = ["FileCheck", "check_files", "freeze", "push_order", "store_batch"]

T = TypeVar("T")

IncludeResolver = Callable[[str], PromptVersion]
"""Returns the version of an included prompt to freeze (raises NotFoundError when there is none)."""


@dataclass(frozen=True)
class FrozenSpec:
    """The content of a version, ready to store."""

    name: str
    """The prompt's name."""
    spec: dict[str, Any]
    """Canonical spec with variables and resolved includes."""
    content_hash: str
    """sha256 of the canonical JSON of ``spec``."""

    def draft(self) -> PromptVersion:
        """This content as an unpushed version (number None)."""
        return PromptVersion(name=self.name, number=None, content_hash=self.content_hash, spec=self.spec)


def _relocate(exc: TemplateError, file: PromptFile | None, loc: Sequence[str | int]) -> TemplateError:
    """A template error re-pointed at the prompt file's line (from the line inside the template)."""
    if file is None:
        return exc
    return type(exc)(
        exc.reason,
        prompt=file.name,
        template=exc.template,
        path=file.path,
        line=file.template_line(loc, exc.line),
    )


def freeze(
    name: str,
    spec: PromptSpec,
    resolve: IncludeResolver,
    *,
    file: PromptFile | None = None,
    limits: RenderLimits | None = None,
) -> FrozenSpec:
    """The version content of ``spec``.

    Raises:
        SpecError: an undeclared variable (naming file and line when ``file`` is given).
        IncludeError: an include that is dynamic, missing, a chat prompt, a cycle or a version conflict.
        TemplateError: a template that does not parse or compile.
    """

    def spec_error(
        message: str, loc: Sequence[str | int], line_in_template: int | None = None, near: str | None = None
    ) -> SpecError:
        if file is None:
            return SpecError(f"{name}: {message}")
        line = file.template_line(loc, line_in_template, near=near)
        return SpecError(message, path=file.path, line=line, key=".".join(map(str, loc)))

    limits = limits or RenderLimits()

    def check_size(content: Mapping[str, Any], what: str) -> None:
        try:
            size = _size(content)
        except UnicodeEncodeError as exc:  # a string from Python or JSON holding half of a surrogate pair
            loc, half = find_surrogate(content) or ((), exc.object[exc.start])
            raise spec_error(
                f"{'.'.join(map(str, loc)) or 'the prompt'} holds U+{ord(half):04X}, half of a UTF-16 surrogate pair"
                " without its other half, which cannot be stored as text: write the character itself",
                loc,
            ) from None
        if size > limits.max_prompt_bytes:
            raise spec_error(
                f"{what} is {size:,} bytes, over the limit of {limits.max_prompt_bytes:,} (prompt_max_bytes)", ()
            )

    check_size(spec.canonical(), "the prompt")  # before anything parses it
    syntax = _syntax_bytes(spec)
    if syntax > limits.max_prompt_bytes // 16:
        raise spec_error(
            f"the templates hold {syntax:,} bytes of Jinja2 syntax ({{{{ }}}} and {{% %}}), over the limit of "
            f"{limits.max_prompt_bytes // 16:,} (a sixteenth of prompt_max_bytes)",
            (),
        )
    own: list[tuple[str, tuple[str | int, ...], str, TemplateInfo]] = []
    for label, loc, source in spec.templates():
        try:
            info = analyze_template(source, prompt=name, template=label)
        except TemplateError as exc:
            raise _relocate(exc, file, loc) from None
        if info.dynamic_include_line is not None:
            raise _include_error(
                "an include must name a prompt as a literal string, like {% include 'shared/tone' %}",
                file,
                name,
                loc,
                info.dynamic_include_line,
            )
        own.append((label, loc, source, info))

    includes = _resolve_includes(name, own, resolve, file)
    used: dict[str, tuple[str, tuple[str | int, ...], str] | str] = {}
    for label, loc, source, info in own:
        for variable in sorted(info.variables):
            used.setdefault(variable, (label, loc, source))
    for included, entry in includes.items():
        for variable in sorted(analyze_template(entry["template"], prompt=included).variables):
            used.setdefault(variable, included)

    if spec.variables is None:
        variables: dict[str, Any] = {variable: {"type": "string"} for variable in sorted(used)}
    else:
        variables = spec.canonical()["variables"]
        for variable, where in used.items():
            if variable in variables:
                continue
            if isinstance(where, str):
                raise spec_error(
                    f"variable {variable!r} is used by included prompt {where!r} but not declared in `variables`",
                    ("variables",),
                )
            _, loc, source = where
            raise spec_error(
                f"variable {variable!r} is used but not declared in `variables`",
                loc,
                first_use_line(source, variable),
                near=variable,
            )

    data = spec.canonical()
    data["variables"] = variables
    if includes:
        data["includes"] = includes
    if includes:
        check_size(data, "the prompt with its includes")
    digest = content_hash(data)
    try:
        compile_prompt(name=name, version=None, content_hash=digest, spec=data, limits=limits)
    except TemplateError as exc:
        loc = next((loc for label, loc, _, _ in own if label == exc.template), ())
        raise _relocate(exc, file, loc) from None
    return FrozenSpec(name=name, spec=data, content_hash=digest)


def _include_error(
    message: str, file: PromptFile | None, name: str, loc: Sequence[str | int], line: int | None = None
) -> IncludeError:
    if file is None:
        return IncludeError(f"{name}: {message}")
    return IncludeError(message, path=file.path, line=file.template_line(loc, line), key=".".join(map(str, loc)))


def _resolve_includes(
    name: str,
    own: Sequence[tuple[str, tuple[str | int, ...], str, TemplateInfo]],
    resolve: IncludeResolver,
    file: PromptFile | None,
) -> dict[str, dict[str, Any]]:
    """The frozen text of every prompt ``name`` includes, directly or through its includes."""
    resolved: dict[str, dict[str, Any]] = {}
    via: dict[str, str | None] = {}  # included prompt -> the direct include it came through (None: direct)
    seen: set[str] = set()
    for _, loc, _, info in own:
        for included in info.includes:
            if included in seen:
                continue
            seen.add(included)

            def fail(message: str, loc: Sequence[str | int] = loc) -> IncludeError:
                return _include_error(message, file, name, loc)

            if included == name:
                raise fail(f"include cycle: {name} -> {name}")
            try:
                version = resolve(included)
            except NotFoundError:
                raise fail(f"included prompt {included!r} does not exist (push it first)") from None
            if version.spec.get("template") is None:
                raise fail(
                    f"included prompt {included!r} is a chat prompt; only text prompts (`template:`) can be included"
                )
            nested: Mapping[str, Any] = version.spec.get("includes") or {}
            if name in nested:
                raise fail(f"include cycle: {name} -> {included} -> ... -> {name}")
            entries = [(included, {"version": version.number, "template": version.spec["template"]}, None)]
            entries += [(inner, dict(entry), included) for inner, entry in nested.items()]
            for inner, entry, through in entries:
                existing = resolved.get(inner)
                if existing is not None and existing != entry:
                    first, second = via[inner] or "a direct include", through or "a direct include"
                    raise fail(
                        f"{inner!r} would be frozen twice, as v{existing['version']} (via {first}) and as "
                        f"v{entry['version']} (via {second}); push {through or via[inner]} again so both use "
                        "one version"
                    )
                resolved[inner] = entry
                via.setdefault(inner, through)
    return dict(sorted(resolved.items()))


_SYNTAX = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


def _syntax_bytes(spec: PromptSpec) -> int:
    """Bytes of Jinja2 syntax in ``spec``'s templates: what compiling costs (tens of microseconds a byte, and
    memory), where literal text costs next to nothing."""
    return sum(len(match.group().encode()) for _, _, source in spec.templates() for match in _SYNTAX.finditer(source))


def _size(content: Mapping[str, Any]) -> int:
    """Bytes of a version's content: what a push compiles (tens of microseconds a byte for dense Jinja2) and
    every reader of the version loads."""
    return len(canonical_json(content).encode())


def push_order(files: Sequence[PromptFile], *, limits: RenderLimits | None = None) -> list[PromptFile]:
    """``files`` ordered so that a prompt comes after the prompts of the set it includes.

    A file over ``limits.max_prompt_bytes`` is not parsed for its includes: :func:`freeze` refuses it.

    Raises:
        SpecError: two files declare the same prompt name.
        IncludeError: the files include each other in a cycle (named in the message).
    """
    by_name: dict[str, PromptFile] = {}
    for file in files:
        if file.name in by_name:
            raise SpecError(f"prompt {file.name!r} is also defined in {by_name[file.name].path}", path=file.path)
        by_name[file.name] = file
    edges: dict[str, list[str]] = {}
    max_bytes = (limits or RenderLimits()).max_prompt_bytes
    for file in files:
        targets: list[str] = []
        if _size(file.spec.canonical()) > max_bytes or _syntax_bytes(file.spec) > max_bytes // 16:
            edges[file.name] = targets
            continue
        for label, _, source in file.spec.templates():
            with contextlib.suppress(TemplateError):  # freeze reports it, with the file's line
                targets += [
                    t for t in analyze_template(source, prompt=file.name, template=label).includes if t in by_name
                ]
        edges[file.name] = targets
    ordered: list[PromptFile] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*trail[trail.index(name) :], name]
            raise IncludeError(f"include cycle: {' -> '.join(cycle)}", path=by_name[name].path)
        state[name] = 1
        for target in edges[name]:
            visit(target, [*trail, name])
        state[name] = 2
        ordered.append(by_name[name])

    for file in sorted(files, key=lambda f: f.name):
        visit(file.name, [])
    return ordered


@dataclass(frozen=True)
class FileCheck:
    """What checking one prompt file found."""

    file: PromptFile
    """The file."""
    frozen: FrozenSpec | None
    """Its content as a push would store it, when it is valid."""
    error: PromptlaneError | None
    """Why it is not, when it is not."""


def check_files(
    files: Sequence[PromptFile], resolve: IncludeResolver, *, limits: RenderLimits | None = None
) -> list[FileCheck]:
    """Freeze every file as a push would, storing nothing, and say what is wrong with each (not only the first).

    Includes of prompts in ``files`` resolve to their drafts; others go to ``resolve``. A file that includes a
    file with an error is reported as such.

    Raises:
        SpecError, IncludeError: the set itself is wrong: two files declare one name, or they include each other
            in a cycle.
    """
    drafts: dict[str, PromptVersion] = {}
    broken: set[str] = set()
    checks = []

    def resolver(name: str) -> PromptVersion:
        if name in broken:
            raise _IncludedFileBroken(name)
        return drafts[name] if name in drafts else resolve(name)

    for file in push_order(files, limits=limits):
        try:
            frozen = freeze(file.name, file.spec, resolver, file=file, limits=limits)
        except _IncludedFileBroken as exc:
            error = IncludeError(f"includes {exc.name!r}, whose file has an error", path=file.path)
            broken.add(file.name)
            checks.append(FileCheck(file=file, frozen=None, error=error))
        except PromptlaneError as exc:
            broken.add(file.name)
            checks.append(FileCheck(file=file, frozen=None, error=exc))
        else:
            drafts[file.name] = frozen.draft()
            checks.append(FileCheck(file=file, frozen=frozen, error=None))
    return checks


class _IncludedFileBroken(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def store_batch(store: Any, items: Sequence[T], store_one: Callable[[T], PromptVersion]) -> list[PromptVersion]:
    """``store_one(item)`` for every item in order, all or nothing where the store can: one transaction
    (``store.atomic``) on a SQL store. A store without transactions stores item by item; if one fails after
    others were stored, its error says which were.
    """
    atomic = getattr(store, "atomic", None)
    if atomic is not None:
        return atomic(lambda: [store_one(item) for item in items])
    stored: list[PromptVersion] = []
    try:
        for item in items:
            stored.append(store_one(item))
    except PromptlaneError as exc:
        if stored:
            refs = ", ".join(version.ref for version in stored)
            exc.args = (f"{exc} (stored before this failed, one file at a time: {refs})",)
        raise
    return stored
