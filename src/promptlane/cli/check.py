"""``promptlane check``: validate prompt and scenario files without pushing or running anything (for editors,
CI and pre-commit). Needs no registry, no network and no model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._app import EXIT_USAGE, app, err, out, settings

if TYPE_CHECKING:
    from ..config import Settings
    from ..errors import PromptlaneError
    from ..registry import PromptVersion

__all__: list[str] = []


@app.command()
def check(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Prompt files, scenario files or folders (default: the prompts and evals folders)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the errors.")] = False,
) -> None:
    """Check prompt and scenario files as push and eval would, without pushing or running: YAML, keys, types,
    templates, variables, includes, scenario expectations and datasets. Exits 2 when a file is invalid."""
    from rich.markup import escape

    config = settings(ctx)
    defaults = [folder for folder in (config.prompts_dir, config.evals_dir) if folder.is_dir()]
    prompt_paths, scenario_paths = _classify(paths or defaults, config)
    errors: list[PromptlaneError] = []
    checked = 0
    for path, problem in [*_check_prompts(prompt_paths, config), *_check_scenarios(scenario_paths)]:
        checked += 1
        if problem is None:
            if not quiet:
                out.print(f"ok     {escape(str(path))}")
        else:
            errors.append(problem)
            err.print(f"[red]error:[/red] {escape(str(problem))}")
    if errors:
        err.print(f"{len(errors)} of {checked} files have errors")
        raise typer.Exit(EXIT_USAGE)
    if not quiet:
        out.print(f"{checked} files checked: no errors" if checked else "no prompt or scenario files found")


def _classify(paths: list[Path], config: Settings) -> tuple[list[Path], list[Path]]:
    """(prompt files, scenario files) under ``paths``: YAML under the prompts folder is a prompt file; other
    YAML with a top-level ``scenarios:`` is a scenario file; anything else (datasets, CI files) is not ours."""
    import re

    from ..spec import discover_yaml_files

    scenarios_key = re.compile(rb"^scenarios\s*:", re.M)
    prompts_dir = config.prompts_dir.resolve()
    prompt_files, scenario_files = [], []
    for path in discover_yaml_files(paths):
        if path.resolve().is_relative_to(prompts_dir):
            prompt_files.append(path)
        elif scenarios_key.search(path.read_bytes()):
            scenario_files.append(path)
    return prompt_files, scenario_files


def _check_prompts(paths: list[Path], config: Settings) -> list[tuple[Path, PromptlaneError | None]]:
    """Each prompt file and its error (or None), frozen against the whole prompts folder for its includes."""
    from ..errors import NotFoundError, PromptlaneError
    from ..registry.push import check_files
    from ..spec import discover_prompt_files, load_prompt_file

    if not paths:
        return []
    results: list[tuple[Path, PromptlaneError | None]] = []
    wanted = {path.resolve() for path in paths}
    others = discover_prompt_files([config.prompts_dir]) if config.prompts_dir.is_dir() else []
    files = []
    for path in sorted({*paths, *others}):
        try:
            files.append(load_prompt_file(path, config.prompts_dir))
        except PromptlaneError as exc:
            if path.resolve() in wanted:
                results.append((path, exc))

    def outside(name: str) -> PromptVersion:
        raise NotFoundError(f"{name} is not among the prompt files in {config.prompts_dir}")

    try:
        checks = check_files(files, outside)
    except PromptlaneError as exc:  # two files with one name, or an include cycle: the set is wrong
        return [*results, (Path(str(getattr(exc, "path", None) or config.prompts_dir)), exc)]
    results += [(c.file.path, c.error) for c in checks if c.file.path.resolve() in wanted]
    return sorted(results, key=lambda item: str(item[0]))


def _check_scenarios(paths: list[Path]) -> list[tuple[Path, PromptlaneError | None]]:
    from ..errors import PromptlaneError
    from ..harness.scenarios import load_scenario_file

    results: list[tuple[Path, PromptlaneError | None]] = []
    for path in paths:
        try:
            load_scenario_file(path)
        except PromptlaneError as exc:
            results.append((path, exc))
        else:
            results.append((path, None))
    return results
