"""The ``promptlane`` Typer app, its global options, exit statuses, and the one place errors become a line on
stderr.

Start-up cost is the first thing a command-line user feels, so this module and every command module import
only Typer and the standard library at the top; the registry, rich and the harness are imported by the
commands that use them. ``promptlane --help`` never imports them at all.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from ..errors import PromptlaneError

if TYPE_CHECKING:
    from rich.console import Console

    from ..config import Settings
    from ..registry import Registry

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "AsJson",
    "app",
    "err",
    "exit_status",
    "fail",
    "out",
    "print_json",
    "registry",
    "settings",
]

EXIT_OK = 0
"""Everything passed."""
EXIT_FAILED = 1
"""A scenario failed, or the gate refused a label move: the change is the problem."""
EXIT_USAGE = 2
"""A usage or configuration error: a bad option, file, name or setting."""
EXIT_UNREACHABLE = 3
"""The registry or a model provider could not be reached: an outage, not a regression."""


AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text (for scripts and jq).")]
"""The ``--json`` flag of the commands that list or show."""


class _LazyConsole:
    """A rich Console made on first use: rich costs 40-150 ms to import, which `--help` should not pay."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def _get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            # Piped output is read by people too: do not squeeze tables into 80 columns. Prompt text is printed
            # as it is: no emoji codes, no highlighting; user text goes through rich's `escape`.
            width = None if stream.isatty() else 160
            self._console = Console(stderr=self._stderr, highlight=False, emoji=False, soft_wrap=True, width=width)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


out: Any = _LazyConsole(stderr=False)
"""Standard output, through rich."""
err: Any = _LazyConsole(stderr=True)
"""Standard error, through rich."""


def exit_status(exc: PromptlaneError) -> int:
    """The exit status a known error means: 1 for a refusal (the gate, an approval), 3 for an unreachable
    registry, else 2."""
    from ..errors import ApprovalError, RegistryUnavailableError
    from ..registry.gate import GateError

    if isinstance(exc, (GateError, ApprovalError)):
        return EXIT_FAILED
    if isinstance(exc, RegistryUnavailableError):
        return EXIT_UNREACHABLE
    return EXIT_USAGE


def fail(exc: PromptlaneError, status: int | None = None) -> typer.Exit:
    """Print ``error: <message>`` on stderr; the Exit to raise (its status from the error unless given)."""
    from rich.markup import escape

    from .._redact import mask_credentials

    # The message is masked when the error is made; again here, for one whose args were set some other way.
    err.print(f"[red]error:[/red] {escape(mask_credentials(str(exc)))}")
    return typer.Exit(exit_status(exc) if status is None else status)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (no colour, nothing else on the line): for scripts and ``jq``."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


_ORDER = (
    "init", "check", "push", "list", "show", "history", "diff", "render", "eval", "runs", "label", "rollout",
    "promote", "rollback", "gate", "pending", "approve", "reject", "schema", "serve", "token",
)  # fmt: skip
"""Commands in the order of a prompt's life, for ``--help``."""


class _Group(TyperGroup):
    """Lists commands in the order of a prompt's life; turns a known promptlane error into ``error: <message>``
    on stderr and its exit status."""

    def list_commands(self, ctx: Any) -> list[str]:
        rank = {name: index for index, name in enumerate(_ORDER)}
        return sorted(super().list_commands(ctx), key=lambda name: (rank.get(name, len(rank)), name))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PromptlaneError as exc:
            raise fail(exc) from None


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("promptlane")
        except PackageNotFoundError:  # running from a source tree that is not installed
            from .. import __version__ as number
        sys.stdout.write(f"promptlane {number}\n")
        raise typer.Exit()


app = typer.Typer(
    name="promptlane",
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: rich's help formatter costs ~150 ms of imports and reads `python:m:f` as an emoji code.
    rich_markup_mode=None,
    help="Prompt management with evaluation built in: push prompt files as versions, evaluate them against "
    "scenarios, label and roll them out.\n\n"
    "Exit status: 0 success; 1 a scenario failed or the gate refused a move; 2 a usage or configuration error; "
    "3 the registry or a model provider could not be reached.",
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
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True),
    ] = False,
) -> None:
    if project is not None:
        os.chdir(project)
    ctx.obj = {"registry": registry_url}


def settings(ctx: typer.Context) -> Settings:
    """The settings for this invocation (CLI flags win)."""
    from ..config import load_settings

    root = ctx.find_root()
    cached = root.meta.get("promptlane.settings")
    if cached is None:
        cached = load_settings(overrides={"registry": (root.obj or {}).get("registry")})
        root.meta["promptlane.settings"] = cached
    return cached


def registry(ctx: typer.Context) -> Registry:
    """A Registry for this invocation, closed when the command ends."""
    from ..registry import Registry

    reg = Registry(settings=settings(ctx))
    ctx.call_on_close(reg.close)
    return reg
