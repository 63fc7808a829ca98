"""``promptlane check``: validate prompt and scenario files without pushing or running anything (for editors,
CI and pre-commit). Needs no registry, no network and no model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from ._app import EXIT_USAGE, app, argument, err, out, settings
from ._table import printable

if TYPE_CHECKING:
    from ..config import Settings
    from ..errors import PromptlaneError
    from ..registry.push import FrozenSpec

__all__: list[str] = []

_SCENARIO_KEYS = re.compile(rb"^(scenarios|prompt)\s*:", re.M)

Problems = list[tuple[Path, "PromptlaneError | None"]]


@app.command()
@argument(
    "paths",
    nargs=-1,
    type=click.Path(path_type=Path),
    help="Prompt files, scenario files or folders (default: the prompts and evals folders).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the errors.")
@click.pass_context
def check(ctx: click.Context, paths: tuple[Path, ...], quiet: bool) -> None:
    """Check prompt and scenario files as push and eval would, without pushing or running: YAML, keys, types,
    templates, variables, includes, expectations, and the dataset columns scenarios use. Exits 2 when a file
    is invalid."""
    config = settings(ctx)
    defaults = [folder for folder in (config.prompts_dir, config.evals_dir) if folder.is_dir()]
    prompt_paths, scenario_paths = _classify(list(paths) or defaults, config)
    prompt_results, frozen = _check_prompts(prompt_paths, config)
    errors = 0
    results = [*prompt_results, *_check_scenarios(scenario_paths, frozen, config)]
    for path, problem in results:
        if problem is None:
            if not quiet:
                out(f"ok     {printable(str(path))}")
        else:
            errors += 1
            err(f"error: {printable(str(problem), multiline=True)}")
    files = f"{len(results)} file{'' if len(results) == 1 else 's'}"
    if errors:
        err(f"{errors} of {files} {'has' if len(results) == 1 else 'have'} errors")
        raise click.exceptions.Exit(EXIT_USAGE)
    if not quiet:
        out(f"{files} checked: no errors" if results else "no prompt or scenario files found")


def _classify(paths: list[Path], config: Settings) -> tuple[list[Path], list[Path]]:
    """(prompt files, scenario files) under ``paths``: YAML in the prompts folder is a prompt file (by where it
    is, as push sees it, even when it links elsewhere); other YAML with a top-level ``scenarios:`` or
    ``prompt:`` key is a scenario file (a misspelt ``scenarios:`` is then reported, not skipped). In folders
    anything else (YAML datasets, CI files) is not ours; a file named explicitly that is neither is an error."""
    from ..errors import SpecError
    from ..spec import discover_yaml_files

    prompts_dir = config.prompts_dir.absolute()
    prompt_files, scenario_files = [], []
    for path in discover_yaml_files(paths):
        if path.absolute().is_relative_to(prompts_dir):
            prompt_files.append(path)
        elif _SCENARIO_KEYS.search(_head(path)):
            scenario_files.append(path)
        elif path in paths or path.absolute() in {given.absolute() for given in paths}:
            raise SpecError(
                f"not a prompt file (those are in {_shown(config.prompts_dir)}) nor a scenario file (no top-level "
                "`scenarios:`)",
                path=path,
            )
    return prompt_files, scenario_files


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when it is under it, as error messages show paths."""
    try:
        return path.absolute().relative_to(Path.cwd())
    except ValueError:
        return path


def _head(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b"scenarios:"  # unreadable: let the loader say why


def _check_prompts(paths: list[Path], config: Settings) -> tuple[Problems, dict[str, FrozenSpec]]:
    """Each of ``paths`` with its error (or None), and every valid prompt of the prompts folder frozen by name
    (includes resolve against the folder's files, and scenarios are checked against their prompt)."""
    from ..errors import NotFoundError, PromptlaneError
    from ..registry.push import check_files
    from ..spec import discover_prompt_files, load_prompt_file

    wanted = {path.resolve() for path in paths}
    everything = discover_prompt_files([config.prompts_dir]) if config.prompts_dir.is_dir() else []
    results: Problems = []
    files = []
    for path in sorted({*paths, *everything}):
        try:
            files.append(load_prompt_file(path, config.prompts_dir))
        except PromptlaneError as exc:
            if path.resolve() in wanted:
                results.append((path, exc))

    def outside(name: str) -> NoReturn:
        raise NotFoundError(f"{name} is not among the prompt files in {_shown(config.prompts_dir)}")

    try:
        checks = check_files(files, outside)
    except PromptlaneError as exc:  # two files with one name, or an include cycle: the set itself is wrong
        return [*results, (Path(str(getattr(exc, "path", None) or config.prompts_dir)), exc)], {}
    results += [(c.file.path, c.error) for c in checks if c.file.path.resolve() in wanted]
    frozen = {c.file.name: c.frozen for c in checks if c.frozen is not None}
    return sorted(results, key=lambda item: str(item[0])), frozen


def _check_scenarios(paths: list[Path], frozen: dict[str, FrozenSpec], config: Settings) -> Problems:
    """Each scenario file with its error (or None): the file itself, and, when its prompt is one of the
    project's prompt files, the variables and dataset columns its scenarios need from it."""
    from ..errors import PromptlaneError
    from ..harness.scenarios import load_scenario_file, scenario_needs

    results: Problems = []
    for path in paths:
        try:
            document = load_scenario_file(path, settings=config)
            prompt = frozen.get(document.spec.prompt)
            if prompt is not None:
                for index in range(len(document.spec.scenarios)):
                    scenario_needs(
                        document,
                        index,
                        variables=prompt.spec.get("variables") or {},
                        prompt=f"{prompt.name} (prompts folder)",
                        root=config.root,
                    )
        except PromptlaneError as exc:
            results.append((path, exc))
        else:
            results.append((path, None))
    return results
