"""What an eval run depended on, as the gate recomputes it: a run's fingerprint.

A run records one part per input, each a :class:`~promptlane.registry.runs.ScenarioFileRef` (a name and a content
hash), and the gate recomputes every part from the files as they are now; a part that differs makes the run stale.
The parts, by name:

- a scenario file (``evals/support.yaml``): the file's SHA-256;
- a dataset a scenario reads (``evals/datasets/tickets.jsonl``): its SHA-256, or ``missing``;
- a Python target a scenario file names (``python:examples.support.checks``, for a model, a mock or an evaluator):
  the SHA-256 of the module's file, or ``dist:NAME==VERSION`` for a module an installed distribution provides;
- the Python model a run used (the same form);
- ``judge model``: the configured judge model, when a scenario judges (a judge naming its own model is part of its
  scenario file already);
- ``version``: the content hash of the version evaluated;
- ``repeat``: ``as written`` when each scenario ran its own ``repeat``, else the count ``--repeat`` forced (a run
  with fewer repeats than its scenarios ask would dodge their thresholds and the no-regression comparison).

Both sides compute the parts with the functions here, from the same inputs: the runner from the scenario files it
read, the gate from the scenario files it finds. Finding those needs no harness: a scenario file is YAML with
``prompt:`` and ``scenarios:``. A module is found without importing it (the gate never runs project code).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .runs import ScenarioFileRef

__all__ = [
    "AS_WRITTEN",
    "JUDGE_MODEL",
    "NOT_FOUND",
    "REPEAT",
    "VERSION",
    "dataset_refs",
    "file_parts",
    "is_scenario_file",
    "judge_part",
    "looks_like_scenario_file",
    "merge",
    "model_parts",
    "python_part",
    "relative_path",
    "repeat_part",
    "scenario_files_for",
    "version_part",
]

JUDGE_MODEL = "judge model"
"""The part that holds the configured judge model."""
VERSION = "version"
"""The part that holds the evaluated version's content hash."""
REPEAT = "repeat"
"""The part that says whether the scenarios ran their own ``repeat``."""
AS_WRITTEN = "as written"
NOT_FOUND = "not found here"
"""A ``python:`` part's value where its module cannot be found."""
"""The ``repeat`` part's value for a run of the scenarios as written."""
_CASE_MODEL = "(the case's model)"
"""The judge model part's value when no judge model is configured: each judge uses its case's model."""


def relative_path(path: Path, root: Path | None) -> str:
    """A path as runs record it, with forward slashes: relative to the project root when one is known, resolved
    first (``../shared/names.jsonl`` for a dataset beside the project: the same name for the runner and the gate,
    and in every checkout with the same layout)."""
    if root is not None:
        resolved, base = path.resolve(), root.resolve()
        try:
            return resolved.relative_to(base).as_posix()
        except ValueError:
            try:
                return Path(os.path.relpath(resolved, base)).as_posix()
            except ValueError:  # another drive (Windows): no relative path
                return resolved.as_posix()
    return path.as_posix()


def _sha256_of(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def dataset_refs(scenario_file: Path, datasets: Iterable[object], root: Path | None) -> list[ScenarioFileRef]:
    """The datasets a scenario file's scenarios read (their ``dataset:`` values, relative to the file's folder),
    with their content hashes. A dataset that is not there hashes as ``missing``."""
    refs: dict[str, ScenarioFileRef] = {}
    for name in datasets:
        if not isinstance(name, str) or not name:
            continue
        path = scenario_file.parent / name
        ref = ScenarioFileRef(path=relative_path(path, root), sha256=_sha256_of(path) or "missing")
        refs.setdefault(ref.path, ref)
    return list(refs.values())


def _python_references(data: Any) -> Iterator[str]:
    """Every ``module:function`` a scenario file's data names: ``python:module:function`` strings (models) and
    ``python:`` keys (mocks and evaluators, as text or as ``{function: ...}``)."""
    if isinstance(data, str):
        if data.startswith("python:"):
            yield data.removeprefix("python:")
    elif isinstance(data, dict):
        for key, value in data.items():
            if key == "python" and isinstance(value, str):
                yield value
            elif key == "python" and isinstance(value, dict) and isinstance(value.get("function"), str):
                yield value["function"]
            else:
                yield from _python_references(value)
    elif isinstance(data, list):
        for item in data:
            yield from _python_references(item)


def _judges(data: Any) -> bool:
    """Whether a scenario file's data has a ``judge`` expectation."""
    if isinstance(data, dict):
        return "judge" in data or any(_judges(value) for value in data.values())
    if isinstance(data, list):
        return any(_judges(item) for item in data)
    return False


def _module_file(module: str, root: Path | None) -> Path | None:
    """The file that ``import module`` loads, found without importing anything: under the project root first (the
    harness puts it first on ``sys.path``), then where this process loaded it from, then on ``sys.path``."""
    parts = module.split(".")
    if not all(part.isidentifier() for part in parts):
        return None
    found = None
    for base in (root, root / "src") if root is not None else ():  # a src layout too, as pytest's pythonpath
        found = found or _under(base, parts)
    loaded = sys.modules.get(module)
    if found is None and loaded is not None and isinstance(getattr(loaded, "__file__", None), str):
        found = Path(loaded.__file__)  # type: ignore[arg-type]
    for entry in sys.path if found is None else ():
        found = _under(Path(entry or "."), parts)
        if found is not None:
            break
    return found


def _under(base: Path, parts: Sequence[str]) -> Path | None:
    stem = base.joinpath(*parts)
    for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    import importlib.metadata

    return dict(importlib.metadata.packages_distributions())


def _distribution(path: Path, module: str) -> str | None:
    """``dist:NAME==VERSION`` when an installed distribution provides ``module`` from ``path``, else None."""
    import importlib.metadata
    import sysconfig

    installed = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    resolved = path.resolve()
    if not any(resolved.is_relative_to(directory) for directory in installed):
        return None
    names = _packages_distributions().get(module.split(".")[0], [])
    for name in sorted(names):
        try:
            return f"dist:{name}=={importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def python_part(reference: str, root: Path | None) -> ScenarioFileRef:
    """The part for a ``module:function`` reference: ``python:module``, with the module's content hash, or the
    distribution that provides it, or :data:`NOT_FOUND` when the module cannot be found here: a run that found
    it is then not evidence here (a registry server without the project's code skips such parts instead: the
    client that sends its requirements checks them)."""
    module = reference.partition(":")[0]
    path = _module_file(module, root)
    found = None if path is None else _distribution(path, module) or _sha256_of(path)
    return ScenarioFileRef(path=f"python:{module}", sha256=found or NOT_FOUND)


def file_parts(path: Path, sha256: str, data: Any, root: Path | None) -> list[ScenarioFileRef]:
    """A scenario file's parts: the file, then the datasets and the Python modules it names."""
    parts = [ScenarioFileRef(path=relative_path(path, root), sha256=sha256)]
    scenarios = data.get("scenarios") if isinstance(data, dict) else None
    names = [s.get("dataset") for s in scenarios if isinstance(s, dict)] if isinstance(scenarios, list) else []
    parts += dataset_refs(path, names, root)
    parts += [python_part(reference, root) for reference in _python_references(data)]
    return parts


def judge_part(datas: Iterable[Any], judge_model: str | None, root: Path | None) -> list[ScenarioFileRef]:
    """The ``judge model`` part (and the judge's Python module, for a ``python:`` judge), when a scenario
    judges."""
    if not any(_judges(data) for data in datas):
        return []
    parts = [ScenarioFileRef(path=JUDGE_MODEL, sha256=judge_model or _CASE_MODEL)]
    return parts + model_parts(judge_model, root)


def model_parts(model: str | None, root: Path | None) -> list[ScenarioFileRef]:
    """The part of a ``python:`` model's module (none for any other model)."""
    if model is None or not model.startswith("python:"):
        return []
    return [python_part(model.removeprefix("python:"), root)]


def repeat_part(repeat: int | None) -> ScenarioFileRef:
    """The part that says how many times each case ran: as each scenario says, or as ``--repeat`` forced."""
    return ScenarioFileRef(path=REPEAT, sha256=AS_WRITTEN if repeat is None else str(repeat))


def version_part(content_hash: str) -> ScenarioFileRef:
    """The part of the version evaluated."""
    return ScenarioFileRef(path=VERSION, sha256=content_hash)


def merge(parts: Iterable[ScenarioFileRef]) -> list[ScenarioFileRef]:
    """``parts`` with each name once (the first wins), in order."""
    merged: dict[str, ScenarioFileRef] = {}
    for part in parts:
        merged.setdefault(part.path, part)
    return list(merged.values())


_SCENARIOS_KEY = re.compile(r"^(scenarios|prompt)\s*:", re.MULTILINE)


def looks_like_scenario_file(text: str) -> bool:
    """Whether a YAML file's text has a top-level ``scenarios:`` or ``prompt:`` key: how ``promptlane eval``, the
    pytest plugin and the gate all tell a scenario file from a dataset beside it, without parsing it (a scenario
    file written as JSON is not one for any of them)."""
    return _SCENARIOS_KEY.search(text) is not None


def _scenario_data(path: Path, raw: bytes) -> Any:
    """The parsed scenario file at ``path``, or None when it is not one (see :func:`looks_like_scenario_file`)."""
    from .._yaml import load_data
    from ..errors import SpecError

    if not looks_like_scenario_file(raw.decode("utf-8", errors="replace")):
        return None
    try:
        data = load_data(raw, path)
    except SpecError:
        return None  # not a scenario file anyone could have run (eval refuses it, naming the line)
    return data if isinstance(data, dict) and "prompt" in data and "scenarios" in data else None


def is_scenario_file(path: Path) -> bool:
    """Whether ``path`` is a scenario file, not a dataset or another part the gate's requirements list after
    one."""
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    return _scenario_data(path, path.read_bytes()) is not None


def scenario_files_for(
    prompt: str, evals_dir: Path, root: Path, *, judge_model: str | None = None
) -> list[ScenarioFileRef]:
    """The parts of every scenario file under ``evals_dir`` whose ``prompt:`` is ``prompt``: each file, followed
    by the datasets and Python modules it names; then the judge model, when one judges."""
    from ..spec import discover_yaml_files  # the YAML files `promptlane eval` looks through, in its order

    found: list[ScenarioFileRef] = []
    datas: list[Any] = []
    if not evals_dir.is_dir():
        return found
    for path in discover_yaml_files([evals_dir]):
        raw = path.read_bytes()
        data = _scenario_data(path, raw)
        if data is not None and data.get("prompt") == prompt:
            found += file_parts(path, hashlib.sha256(raw).hexdigest(), data, root)
            datas.append(data)
    return merge(found + judge_part(datas, judge_model, root)) + ([repeat_part(None)] if found else [])
