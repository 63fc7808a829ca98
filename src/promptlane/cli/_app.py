"""The ``promptlane`` click group, its global options, exit statuses, output, and the one place errors become a
line on stderr.

Start-up cost is the first thing a command-line user feels, so this module and every command module import
only click and the standard library at the top; the registry and the harness are imported by the commands that
use them. ``promptlane --help`` never imports them at all.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import PromptlaneError
from . import _completion

if TYPE_CHECKING:
    from ..config import Settings
    from ..registry import Registry

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "app",
    "argument",
    "as_json",
    "err",
    "exit_status",
    "fail",
    "literal",
    "out",
    "print_json",
    "registry",
    "resume_collection",
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

F = TypeVar("F", bound=Callable[..., Any])


def resume_collection() -> None:
    """Turn Python's cyclic garbage collector back on (``main`` keeps it off through start-up), before work that
    grows with its input: a run's cases, a server's requests.

    What start-up made (modules, classes, plans: nearly all of it lives until exit) is frozen first: never
    collected, its first collection would walk all of it at once (a tenth of a second after importing the
    harness) and free next to nothing.
    """
    import gc

    gc.freeze()
    gc.enable()


def out(text: str = "", *, end: str = "\n") -> None:
    """Write ``text`` to standard output as it is (the caller escapes what came from elsewhere)."""
    sys.stdout.write(text + end)


def err(text: str) -> None:
    """Write a line to standard error."""
    sys.stderr.write(text + "\n")


def literal(text: str) -> str:
    """Text to print as it is (a rendered prompt): unchanged into a pipe or a file; on a terminal, with its
    control characters but line breaks and tabs escaped, so that it cannot drive the terminal."""
    from ._table import printable

    return printable(text, multiline=True) if sys.stdout.isatty() else text


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


def fail(exc: PromptlaneError, status: int | None = None) -> click.exceptions.Exit:
    """Print ``error: <message>`` on stderr; the Exit to raise (its status from the error unless given)."""
    from .._redact import mask_credentials
    from ._table import printable

    # The message is masked when the error is made; again here, for one whose args were set some other way.
    err(f"error: {printable(mask_credentials(str(exc)), multiline=True)}")
    return click.exceptions.Exit(exit_status(exc) if status is None else status)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (no colour, nothing else on the line): for scripts and ``jq``. The
    characters a string hides (bidi controls, zero-width and tag characters) are written as JSON escapes."""
    import json

    from ._table import printable_json

    sys.stdout.write(printable_json(json.dumps(data, indent=2, ensure_ascii=False, default=str)) + "\n")


class _Argument(click.Argument):
    """An argument with a help text, listed under "Arguments" in ``--help`` (click before 8.5 has no such
    thing)."""

    def __init__(self, param_decls: Sequence[str], *, help: str | None = None, **attrs: Any) -> None:
        super().__init__(param_decls, **attrs)
        self.help = help

    def help_row(self) -> tuple[str, str]:
        """Its name as the usage line shows it, and its help."""
        name = self.metavar or ((self.name or "").upper() + ("..." if self.nargs != 1 else ""))
        text = self.help or ""
        if isinstance(self.default, (str, int, float, Path)):  # not None, nor click's marker of no default
            text += f"  [default: {self.default}]"
        return name, text


def argument(*param_decls: str, help: str, **attrs: Any) -> Callable[[F], F]:
    """``click.argument`` with a help text."""
    return click.argument(*param_decls, cls=_Argument, help=help, **attrs)


as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text (for scripts and jq).")
"""The ``--json`` flag of the commands that list or show."""


class _Command(click.Command):
    """A command whose ``--help`` lists its arguments with their help, then its options."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # As click 8.5 does; before it, format_help had no arguments step.
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        self.format_arguments(ctx, formatter)
        self.format_options(ctx, formatter)
        self.format_epilog(ctx, formatter)

    def format_arguments(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [param.help_row() for param in self.get_params(ctx) if isinstance(param, _Argument)]
        if rows:
            with formatter.section("Arguments"):
                formatter.write_dl(rows)


_ORDER = (
    "init", "check", "push", "list", "show", "history", "diff", "render", "eval", "runs", "label", "rollout",
    "promote", "rollback", "gate", "pending", "approve", "reject", "schema", "serve", "token",
)  # fmt: skip
"""Commands in the order of a prompt's life, for ``--help``."""


class _Group(click.Group):
    """A group of commands (``runs``, ``token``): listed as defined, each with its arguments' help."""

    command_class = _Command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            # A command is missing: the help on stderr and status 2, as click 8.2 and later do (8.1 exits 0).
            click.echo(ctx.get_help(), err=True)
            ctx.exit(EXIT_USAGE)
        return super().parse_args(ctx, args)


class _Root(_Group):
    """``promptlane``: lists commands in the order of a prompt's life; turns a known promptlane error into
    ``error: <message>`` on stderr and its exit status."""

    group_class = _Group

    def list_commands(self, ctx: click.Context) -> list[str]:
        rank = {name: index for index, name in enumerate(_ORDER)}
        return sorted(self.commands, key=lambda name: (rank.get(name, len(rank)), name))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PromptlaneError as exc:
            raise fail(exc) from None

    def _main_shell_completion(self, ctx_args: Any, prog_name: str, complete_var: str | None = None) -> None:
        if complete_var is None:
            complete_var = f"_{prog_name.replace('-', '_').replace('.', '_')}_COMPLETE".upper()
        if os.environ.get(complete_var) == _completion.LEGACY_BASH:
            sys.exit(_completion.legacy_bash(self, ctx_args, prog_name, complete_var))
        super()._main_shell_completion(ctx_args, prog_name, complete_var)


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("promptlane")
        except PackageNotFoundError:  # running from a source tree that is not installed
            from .. import __version__ as number
        sys.stdout.write(f"promptlane {number}\n")
        ctx.exit()


@click.group(
    "promptlane",
    cls=_Root,
    no_args_is_help=True,
    help="Prompt management with evaluation built in: push prompt files as versions, evaluate them against "
    "scenarios, label and roll them out.\n\n"
    "Exit status: 0 success; 1 a scenario failed or the gate refused a move; 2 a usage or configuration error; "
    "3 the registry or a model provider could not be reached.",
)
@click.option("--registry", "registry_url", help="Registry URL (default: config, then .promptlane/registry.db).")
@click.option(
    "--project",
    "-C",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Run as if started in this folder.",
)
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_version, help="Print the version and exit."
)
@_completion.install_option
@_completion.show_option
@click.pass_context
def app(ctx: click.Context, registry_url: str | None, project: Path | None) -> None:
    if project is not None:
        os.chdir(project)
    ctx.obj = {"registry": registry_url}


def settings(ctx: click.Context) -> Settings:
    """The settings for this invocation (CLI flags win)."""
    from ..config import load_settings

    root = ctx.find_root()
    cached = root.meta.get("promptlane.settings")
    if cached is None:
        cached = load_settings(overrides={"registry": (root.obj or {}).get("registry")})
        root.meta["promptlane.settings"] = cached
    return cached


def registry(ctx: click.Context) -> Registry:
    """A Registry for this invocation, closed when the command ends."""
    from ..registry import Registry

    reg = Registry(settings=settings(ctx))
    ctx.call_on_close(reg.close)
    return reg
