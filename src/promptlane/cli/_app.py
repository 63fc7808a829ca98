"""The ``promptlane`` Typer app, its global options, and the one place errors become a line on stderr."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from ..config import Settings, load_settings
from ..errors import PromptlaneError

__all__ = ["app", "err", "out", "registry", "settings"]

# Piped output is read by people too: do not squeeze tables into 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
# Prompt text is printed as it is: no emoji codes, no highlighting; user text goes through rich's `escape`.
out = Console(highlight=False, emoji=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True, width=_WIDTH)


class _Group(TyperGroup):
    """Turns a known promptlane error into ``error: <message>`` on stderr and exit status 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PromptlaneError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from None


app = typer.Typer(
    name="promptlane",
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Prompt management with evaluation built in: push prompt files as versions, label and roll them out.",
)


@app.callback()
def _options(
    ctx: typer.Context,
    registry_url: Annotated[
        str | None,
        typer.Option("--registry", help="Registry URL (default: config, then .promptlane/registry.db)."),
    ] = None,
    project: Annotated[
        Path | None,
        typer.Option("--project", "-C", help="Run as if started in this folder.", exists=True, file_okay=False),
    ] = None,
) -> None:
    if project is not None:
        os.chdir(project)
    ctx.obj = {"registry": registry_url}


def settings(ctx: typer.Context) -> Settings:
    """The settings for this invocation (CLI flags win)."""
    root = ctx.find_root()
    cached = root.meta.get("promptlane.settings")
    if cached is None:
        cached = load_settings(overrides={"registry": (root.obj or {}).get("registry")})
        root.meta["promptlane.settings"] = cached
    return cached


def registry(ctx: typer.Context) -> Any:
    """A Registry for this invocation, closed when the command ends."""
    from ..registry import Registry

    reg = Registry(settings=settings(ctx))
    ctx.call_on_close(reg.close)
    return reg
