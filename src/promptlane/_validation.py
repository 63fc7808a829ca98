"""pydantic validation errors of a YAML file, as one SpecError naming the file, line and key."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ._yaml import YamlDocument

__all__ = ["spec_error_from_validation"]


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def _is_tag(part: str | int, prefix: tuple[str, ...], document: YamlDocument) -> bool:
    """Union members, dict keys and validators show up in locations as tags ('[key]', 'function-after[...]',
    'str', a model's class name); a real key of the file is never one."""
    if not isinstance(part, str) or (*prefix, part) in document.positions:
        return False
    return "[" in part or part in _TYPE_TAGS or bool(re.match(r"^_?[A-Z][A-Za-z0-9_]*$", part))


def _clean(loc: Sequence[str | int], document: YamlDocument) -> tuple[tuple[str | int, ...], int]:
    """``loc`` without tags, and how many parts came before the first tag (the union the error is in)."""
    kept: list[str | int] = []
    first_tag = len(loc)
    for index, part in enumerate(loc):
        if _is_tag(part, tuple(str(p) for p in kept), document):
            first_tag = min(first_tag, index)
        else:
            kept.append(part)
    return tuple(kept), first_tag


def _union_member(annotation: Any, part: str) -> Any:
    """The member of a (possibly Annotated, discriminated) union that is a model with field ``part``."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) not in (Union, types.UnionType):
        return None
    for member in get_args(annotation):
        if get_origin(member) is Annotated:
            member = get_args(member)[0]
        if isinstance(member, type) and issubclass(member, BaseModel) and part in member.model_fields:
            return member.model_fields[part].annotation
    return None


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        models = [arg for arg in members if isinstance(arg, type) and issubclass(arg, BaseModel)]
        containers = [arg for arg in members if get_origin(arg) in (list, dict, tuple)]
        return (models or containers or members or [annotation])[0]
    return annotation


def model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc`` (None if it is not a model)."""
    annotation: Any = model
    for part in loc:
        member = _union_member(annotation, str(part))
        if member is not None:
            annotation = member
            continue
        annotation = _strip_optional(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
        elif get_origin(annotation) in (list, tuple):
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    annotation = _strip_optional(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


UnknownKeyHint = Callable[[tuple[str | int, ...], str], "str | None"]
"""Given the parent location and an unknown key, a better hint than the closest field name, or None."""


ErrorExplainer = Callable[[dict[str, Any]], "str | None"]
"""Given a pydantic error, a better message for it, or None."""


def spec_error_from_validation(
    exc: ValidationError,
    document: YamlDocument,
    model: type[BaseModel],
    hint: UnknownKeyHint | None = None,
    explain: ErrorExplainer | None = None,
) -> Exception:
    """The most useful validation error of ``exc`` as a SpecError naming file, line and key.

    An unknown key is reported before anything else, with a suggestion: a misspelt required key shows up as
    both "unknown key 'rol'" and "missing key 'role'", and the first is the one to fix.
    """
    errors = []
    for raw in exc.errors():
        loc, union_depth = _clean(raw["loc"], document)
        errors.append({**raw, "loc": loc, "union": tuple(raw["loc"][:union_depth])})
    errors.sort(key=lambda error: error["type"] != "extra_forbidden")
    error = errors[0]
    # Within one union (`str | {...}`), the member that got furthest explains the problem best.
    siblings = [e for e in errors if e["union"] == error["union"] and e["type"] != "extra_forbidden"]
    if error["type"] != "extra_forbidden" and siblings:
        error = max(siblings, key=lambda e: len(e["loc"]))
    loc: tuple[str | int, ...] = error["loc"]
    explained = explain(error) if explain else None
    if explained:
        return document.error(explained, loc)
    if error["type"] == "extra_forbidden":
        parent = loc[:-1]
        missing = [e["loc"][-1] for e in errors if e["type"] == "missing" and e["loc"][:-1] == parent]
        known = missing or list((model_at(model, parent) or BaseModel).model_fields)
        special = hint(parent, str(loc[-1])) if hint else None
        close = difflib.get_close_matches(str(loc[-1]), [str(k) for k in known], n=1)
        if special:
            advice = f" ({special})"
        elif close:
            advice = f" (did you mean {close[0]!r}?)"
        else:
            advice = f"; expected one of {', '.join(map(str, known))}" if known else ""
        return document.error(f"unknown key {loc[-1]!r}{advice}", loc)
    if error["type"] == "missing" and loc:
        return document.error(f"missing key {loc[-1]!r}", loc[:-1])
    return document.error(error["msg"].removeprefix("Value error, "), loc)
