"""The README's five-minute tour, run as written: ``make demo`` runs it, and ``tests/test_docs.py`` checks it.

The tour is every code block under the README's "A five-minute tour" heading, in order:

- a ``console`` block: each ``$ command`` runs in a shell in the tour's folder and must succeed; the lines up to
  the next command are what it prints (stdout and stderr, as a terminal shows them). ``...`` stands for any text
  within a line, and a line of just ``...`` for any number of lines;
- a ``yaml title="PATH"`` block: the file as ``promptlane init`` wrote it, which must be identical; with
  ``tour="write"``, an edit the reader makes, which is written;
- a ``python`` block: a script run in the folder; its ``#>`` comments are what it prints.

Nothing else is done: no environment variable, file or path is set up behind the reader's back. The commands
run with this interpreter's ``bin`` folder first on PATH (where ``promptlane`` is installed), and without
``PYTHONPATH`` or ``PROMPTLANE_*`` settings.

Usage: ``python examples/tour.py FOLDER`` (an empty or new folder).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "## A five-minute tour"
TIMEOUT = 300
"""Seconds one command may take before the tour gives up on it (a guard against hangs, not a speed check)."""

_FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_SETTING = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Block:
    """One code block of the tour."""

    kind: str
    """``console``, ``yaml`` or ``python``."""
    text: str
    """Its content."""
    line: int
    """The README line of its first content line."""
    settings: dict[str, str]
    """``key="value"`` pairs after the language (``title``, ``tour``)."""


@dataclass(frozen=True)
class Command:
    """A ``$ command`` of a console block and what it prints."""

    command: str
    expected: str
    line: int


def tour_blocks(readme: Path = README) -> list[Block]:
    """The code blocks under the tour's heading, in order."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    section = text[start : end if end >= 0 else len(text)]
    offset = text[:start].count("\n")
    blocks = []
    for match in _FENCE.finditer(section):
        line = offset + section[: match.start(3)].count("\n") + 1
        settings = dict(_SETTING.findall(match.group(2)))
        blocks.append(Block(kind=match.group(1), text=match.group(3), line=line, settings=settings))
    return blocks


def commands(block: Block) -> list[Command]:
    """The commands of a console block, each with the output shown after it."""
    found: list[Command] = []
    lines = block.text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("$ "):
            found.append(Command(line[2:], "", block.line + index))
        elif found:
            last = found[-1]
            found[-1] = Command(last.command, last.expected + line + "\n", last.line)
        elif line.strip():
            raise ValueError(f"README.md:{block.line + index}: output before the first `$ ` command")
    return found


def printed(source: str) -> str:
    """What a python block says it prints: its ``#>`` lines, in order."""
    lines = [line.strip() for line in source.splitlines()]
    return "".join(line[3:] + "\n" for line in lines if line.startswith("#> ") or line == "#>")


def _pattern(expected: str) -> re.Pattern[str]:
    parts = []
    for line in expected.rstrip("\n").splitlines():
        line = line.rstrip()
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        pieces = [re.escape(piece) for piece in line.split("...")]
        # Columns of a table are padded to the widest cell: any run of spaces matches any other.
        pieces = [re.sub(r"(?:\\ ){2,}", " +", piece) for piece in pieces]
        parts.append(".*?".join(pieces) + r"[ \t]*\n")
    return re.compile("".join(parts))


def mismatch(expected: str, actual: str) -> str | None:
    """None when ``actual`` is what ``expected`` shows (see the module docstring), else a description."""
    if not expected.strip():
        return None
    actual = "".join(line.rstrip() + "\n" for line in actual.rstrip().splitlines())
    if _pattern(expected).fullmatch(actual):
        return None
    return f"the README shows:\n{_indent(expected)}\nit printed:\n{_indent(actual)}"


def _indent(text: str) -> str:
    return "".join(f"    | {line}\n" for line in text.rstrip("\n").splitlines()) or "    | (nothing)\n"


def environment() -> dict[str, str]:
    """The environment the tour's commands run in: the user's, with this interpreter's scripts on PATH and no
    PYTHONPATH or PROMPTLANE_* settings (which would hide what the reader's folder lacks)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "PYTHONPATH" and not (key.startswith("PROMPTLANE_") and key != "PROMPTLANE_AUTHOR")
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_command(command: Command, folder: Path, env: dict[str, str]) -> tuple[str, str | None]:
    """Run one command; (its output, None) when it succeeded and printed what the README shows, else the reason."""
    return _run(command.command, folder, env, expected=command.expected, shell=True)


def run_python(block: Block, folder: Path, env: dict[str, str]) -> tuple[str, str | None]:
    """Run a python block as a script in ``folder``; (its output, None or the reason it differs)."""
    return _run([sys.executable, "-c", block.text], folder, env, expected=printed(block.text), shell=False)


def _run(
    args: str | list[str], folder: Path, env: dict[str, str], *, expected: str, shell: bool
) -> tuple[str, str | None]:
    result = subprocess.run(
        args,
        shell=shell,
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # interleaved as a terminal shows them
        text=True,
        timeout=TIMEOUT,
    )
    if result.returncode != 0:
        return result.stdout, f"exited with status {result.returncode}:\n{_indent(result.stdout)}"
    return result.stdout, mismatch(expected, result.stdout)


def check_file(block: Block, folder: Path) -> str | None:
    """Write the file of a ``tour="write"`` block, or check that init wrote it as the README shows it."""
    path = folder / block.settings["title"]
    if block.settings.get("tour") == "write":
        path.write_text(block.text, encoding="utf-8")
        return None
    if not path.is_file():
        return f"{block.settings['title']} does not exist"
    if path.read_text(encoding="utf-8") != block.text:
        return f"{block.settings['title']} differs from the README:\n{_indent(path.read_text(encoding='utf-8'))}"
    return None


def main(folder: Path) -> int:
    """Run the tour in ``folder``, printing each step as a terminal would; 1 at the first step that differs."""
    folder.mkdir(parents=True, exist_ok=True)
    env = environment()
    bold, dim, red, plain = ("\033[1m", "\033[2m", "\033[31m", "\033[0m") if sys.stdout.isatty() else ("",) * 4
    print(f"{dim}# the README's tour, in {folder}{plain}")
    for block in tour_blocks():
        problem: str | None
        if block.kind == "console":
            for command in commands(block):
                print(f"\n{bold}$ {command.command}{plain}")
                output, problem = run_command(command, folder, env)
                print(output.rstrip("\n"))
                if problem:
                    print(f"{red}README.md:{command.line}: `{command.command}` {problem}{plain}", file=sys.stderr)
                    return 1
        elif block.kind == "yaml" and "title" in block.settings:
            verb = "write" if block.settings.get("tour") == "write" else "read"
            print(f"\n{dim}# {verb} {block.settings['title']}{plain}")
            if block.settings.get("tour") == "write":
                print(block.text, end="")
            problem = check_file(block, folder)
            if problem:
                print(f"{red}README.md:{block.line}: {problem}{plain}", file=sys.stderr)
                return 1
        elif block.kind == "python" and block.settings.get("test") != "skip":
            print(f"\n{bold}$ python  {dim}# the README's snippet{plain}")
            output, problem = run_python(block, folder, env)
            print(output.rstrip("\n"))
            if problem:
                print(f"{red}README.md:{block.line}: the python snippet {problem}{plain}", file=sys.stderr)
                return 1
    print(f"\n{dim}# done: the tour's project is in {shlex.quote(str(folder))}{plain}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]).resolve()))
