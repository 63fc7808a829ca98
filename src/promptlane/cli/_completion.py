"""Shell completion: ``promptlane --show-completion`` prints the script for the current shell,
``--install-completion`` installs it; then the shell asks ``promptlane`` itself for completions.

The scripts are click's for bash, zsh and fish (the shell sets ``_PROMPTLANE_COMPLETE=bash_complete`` and the
words typed so far), plus one for PowerShell, which click does not ship. The bash script that promptlane
installed before (it sets ``_PROMPTLANE_COMPLETE=complete_bash``) still gets its answers, values one a line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from click.shell_completion import BashComplete, CompletionItem, ShellComplete, add_completion_class, split_arg_string

from ..errors import ConfigError

__all__ = ["LEGACY_BASH", "PROG_NAME", "install_option", "legacy_bash", "show_option"]

PROG_NAME = "promptlane"
COMPLETE_VAR = "_PROMPTLANE_COMPLETE"
LEGACY_BASH = "complete_bash"
"""The instruction of the bash script installed before completion moved to click's scripts."""

_POWERSHELL = """\
Register-ArgumentCompleter -Native -CommandName %(prog_name)s -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $Env:%(complete_var)s = "powershell_complete"
    $Env:%(complete_var)s_ARGS = $commandAst.ToString()
    $Env:%(complete_var)s_WORD = $wordToComplete
    %(prog_name)s | ForEach-Object {
        $value, $help = $_ -Split ":::", 2
        [System.Management.Automation.CompletionResult]::new($value, $value, 'ParameterValue', $help)
    }
    Remove-Item Env:%(complete_var)s, Env:%(complete_var)s_ARGS, Env:%(complete_var)s_WORD
}
"""


class _PowerShellComplete(ShellComplete):
    """PowerShell: the command line and the word being completed come in two variables; each answer is
    ``value:::help``."""

    name = "powershell"
    source_template = _POWERSHELL

    def get_completion_args(self) -> tuple[list[str], str]:
        words = split_arg_string(os.environ.get(f"{self.complete_var}_ARGS", ""))
        incomplete = os.environ.get(f"{self.complete_var}_WORD", "")
        return (words[1:-1] if incomplete else words[1:]), incomplete

    def format_completion(self, item: CompletionItem) -> str:
        return f"{item.value}:::{' '.join((item.help or '').split()) or ' '}"


add_completion_class(_PowerShellComplete, "powershell")
add_completion_class(_PowerShellComplete, "pwsh")


class _BashValues(BashComplete):
    """The answers the old bash script reads: values only, one a line."""

    def format_completion(self, item: CompletionItem) -> str:
        return item.value


def legacy_bash(cli: click.Command, ctx_args: Any, prog_name: str, complete_var: str) -> int:
    """Answer the bash script installed before (``complete_bash``); the exit status."""
    click.echo(_BashValues(cli, ctx_args, prog_name, complete_var).complete())
    return 0


def _shell() -> str:
    """The user's shell, by ``$SHELL`` (PowerShell on Windows when it is not set)."""
    value = os.environ.get("SHELL") or ("powershell" if sys.platform == "win32" else "")
    name = Path(value).name.lower().removesuffix(".exe")
    if name not in ("bash", "zsh", "fish", "powershell", "pwsh"):
        raise ConfigError(
            f"cannot complete for the shell in $SHELL ({value or 'not set'}): completion is for bash, zsh, fish "
            "and PowerShell"
        )
    return name


def _script(ctx: click.Context, shell: str) -> str:
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    assert complete is not None  # every shell _shell() returns has a class
    return complete(ctx.find_root().command, {}, PROG_NAME, COMPLETE_VAR).source().rstrip("\n") + "\n"


def _append_line(path: Path, line: str) -> None:
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if line not in text.splitlines():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + ("\n" if text and not text.endswith("\n") else "") + line + "\n", encoding="utf-8")


def _powershell_profile(shell: str) -> Path:
    import subprocess

    try:
        done = subprocess.run(
            [shell, "-NoProfile", "-Command", "echo", "$profile"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"cannot ask {shell} where its profile is: {exc}") from None
    return Path(done.stdout.strip())


def _install(ctx: click.Context, shell: str) -> Path:
    """Write the script where the shell finds it; the file written."""
    home = Path.home()
    script = _script(ctx, shell)
    if shell == "bash":
        path = home / ".bash_completions" / f"{PROG_NAME}.sh"
        _append_line(home / ".bashrc", f"source '{path}'")
    elif shell == "zsh":
        path = home / ".zfunc" / f"_{PROG_NAME}"
        _append_line(home / ".zshrc", "fpath+=~/.zfunc; autoload -Uz compinit; compinit")
    elif shell == "fish":
        path = home / ".config" / "fish" / "completions" / f"{PROG_NAME}.fish"
    else:
        profile = _powershell_profile(shell)
        text = profile.read_text(encoding="utf-8") if profile.is_file() else ""
        if script not in text:
            profile.parent.mkdir(parents=True, exist_ok=True)
            profile.write_text(text + ("\n" if text and not text.endswith("\n") else "") + script, encoding="utf-8")
        return profile
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script, encoding="utf-8")
    return path


def _show(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        try:
            script = _script(ctx, _shell())
        except ConfigError as exc:  # an eager option runs before the group's error handling
            from ._app import fail

            raise fail(exc) from None
        sys.stdout.write(script)
        ctx.exit()


def _install_now(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from ._app import fail

        try:
            shell = _shell()
            path = _install(ctx, shell)
        except ConfigError as exc:
            raise fail(exc) from None
        except OSError as exc:
            raise fail(ConfigError(f"cannot install completion: {exc}")) from None
        sys.stdout.write(f"{shell} completion installed in {path}\n")
        sys.stdout.write("Completion will take effect once you restart the terminal\n")
        ctx.exit()


install_option = click.option(
    "--install-completion",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_install_now,
    help="Install completion for the current shell.",
)
show_option = click.option(
    "--show-completion",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show,
    help="Show completion for the current shell, to copy it or customize the installation.",
)
