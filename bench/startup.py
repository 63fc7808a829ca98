"""The fixed cost of ``promptlane eval``, whole process, beside pydantic-evals running a bare task.

Most evals in CI are small, so what a user waits for is mostly start-up and shut-down. Each round runs, in
turn (so load elsewhere on the machine hits every command alike):

- ``promptlane eval`` of a project scaffolded by ``promptlane init``, its scenario sweeping a dataset of N rows
  (N = 1 and 100) through the scaffold's offline ``python:`` model with two expectations (``contains``,
  ``starts_with``), on a SQLite registry that exists already (the first run of each project is not timed), and
  for 1 case on a new registry as well (its ``.promptlane`` folder removed before each run, as in a fresh clone
  in CI: the run makes the registry and pushes the prompt);
- the same with ``--json`` and ``--junit`` reports (100 cases);
- pydantic-evals: a ``Dataset`` of N cases, a trivial async task, two evaluators (``EqualsExpected``,
  ``Contains``), ``evaluate_sync``, in a fresh interpreter.

It prints the median wall time (and CPU time, user + system) of each, and its ratio to pydantic-evals with as
many cases. Targets: 1 case within 0.9x of pydantic-evals (its wall time over promptlane's at least 0.9), 100
cases faster than it.

pydantic-evals is not in the project's virtualenv (its newest release pins an older pydantic-ai): the bench uses
``.venv-oldest/bin/python`` when it can import pydantic_evals, else a virtualenv of its own under
``.promptlane/bench-venv`` (made with ``pip install pydantic-evals`` on first use). Children run without
``PYTHONDONTWRITEBYTECODE``, so both sides load compiled bytecode, as an installed package does.

Importing pydantic-ai is most of either side's start-up, and its releases differ in that: when that interpreter
has promptlane installed too (``.venv-oldest`` has), each ``promptlane eval`` row is run by it as well, on the
same pydantic-ai as pydantic-evals (rows marked ``same pydantic-ai``): the like-for-like comparison.

    python bench/startup.py [--rounds 3] [--cases 1,100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCENARIOS = """\
prompt: support/reply
model: python:evals.models:support_agent
scenarios:
  - name: greet
    dataset: rows.jsonl
    expect:
      - contains: thanks
      - starts_with: "Hi {{ customer }}"
"""

PYDANTIC_EVALS = """\
import sys

from pydantic_evals import Case, Dataset
from pydantic_evals.evaluators import Contains, EqualsExpected


async def task(customer: str) -> str:
    return f"Hi {customer}, thanks for reaching out. How can I help?"


cases = [
    Case(
        name=f"greet[row-{n}]",
        inputs=f"Ana{n}",
        expected_output=f"Hi Ana{n}, thanks for reaching out. How can I help?",
    )
    for n in range(1, int(sys.argv[1]) + 1)
]
dataset = Dataset(name="bare", cases=cases, evaluators=[EqualsExpected(), Contains(value="thanks")])
report = dataset.evaluate_sync(task, progress=False)
assert len(report.cases) == len(cases), report
"""


def _environment() -> dict[str, str]:
    """The children's environment: compiled bytecode allowed, no exporters or settings from this shell."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "PYTHONDONTWRITEBYTECODE" and not key.startswith(("OTEL_", "PROMPTLANE_", "LOGFIRE_"))
    }
    return env


def _pydantic_evals_python(env: dict[str, str]) -> str:
    """An interpreter that imports pydantic_evals: .venv-oldest's, else a virtualenv made for the bench."""
    for python in (REPO / ".venv-oldest" / "bin" / "python", REPO / ".promptlane" / "bench-venv" / "bin" / "python"):
        if python.exists() and _imports_pydantic_evals(str(python), env):
            return str(python)
    venv = REPO / ".promptlane" / "bench-venv"
    print(f"making {venv} with pydantic-evals (once)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "pydantic-evals"], check=True, env=env)
    return str(python)


def _pydantic_ai_version(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('pydantic-ai-slim'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()


def _imports_pydantic_evals(python: str, env: dict[str, str]) -> bool:
    return subprocess.run([python, "-c", "import pydantic_evals"], env=env, capture_output=True).returncode == 0


def _project(folder: Path, cases: int, promptlane: str, env: dict[str, str]) -> Path:
    """A project from ``promptlane init`` whose scenario sweeps ``cases`` dataset rows, run once (not timed)."""
    folder.mkdir()
    subprocess.run([promptlane, "init"], cwd=folder, env=env, check=True, capture_output=True)
    (folder / "evals" / "support" / "reply.yaml").write_text(SCENARIOS)
    rows = "".join(f'{{"customer": "Ana{n}", "ticket": "Hello!"}}\n' for n in range(1, cases + 1))
    (folder / "evals" / "support" / "rows.jsonl").write_text(rows)
    subprocess.run([promptlane, "eval"], cwd=folder, env=env, check=True, capture_output=True)
    return folder


def _timed(command: list[str], cwd: Path, env: dict[str, str], fresh: bool = False) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run, which must succeed; ``fresh``: on a new registry."""
    if fresh:
        shutil.rmtree(cwd / ".promptlane", ignore_errors=True)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd}:\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="1,100", help="comma-separated case counts")
    args = parser.parse_args()
    sizes = [int(n) for n in args.cases.split(",")]
    env = _environment()
    theirs = _pydantic_evals_python(env)
    # promptlane as installed here, and beside pydantic-evals when its interpreter has it (same pydantic-ai).
    installs = {"": str(Path(sys.executable).parent / "promptlane")}
    beside = Path(theirs).parent / "promptlane"
    if beside.exists() and _pydantic_ai_version(theirs) != _pydantic_ai_version(sys.executable):
        installs[", same pydantic-ai"] = str(beside)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        script = folder / "bare_task.py"
        script.write_text(PYDANTIC_EVALS)
        commands: dict[str, tuple[list[str], Path, bool]] = {}
        for n in sizes:
            cases = f"{n} case{'s' * (n != 1)}"
            for index, (mark, promptlane) in enumerate(installs.items()):
                project = _project(folder / f"project-{n}-{index}", n, promptlane, env)
                commands[f"promptlane eval, {cases}{mark}"] = ([promptlane, "eval"], project, False)
                if n == min(sizes):
                    fresh = _project(folder / f"fresh-{n}-{index}", n, promptlane, env)
                    commands[f"promptlane eval, {cases}, new registry{mark}"] = ([promptlane, "eval"], fresh, True)
            commands[f"pydantic-evals, {cases}"] = ([theirs, str(script), str(n)], folder, False)
        biggest = max(sizes)
        commands[f"promptlane eval --json --junit, {biggest} cases"] = (
            [installs[""], "eval", "--json", "out.json", "--junit", "out.xml"],
            folder / f"project-{biggest}-0",
            False,
        )
        for command, cwd, fresh in commands.values():  # warm the page cache and compile bytecode, not timed
            _timed(command, cwd, env, fresh)
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        names = list(commands)
        for round_number in range(args.rounds):
            shift = round_number % len(names)  # a different command goes first each round
            for name in names[shift:] + names[:shift]:
                command, cwd, fresh = commands[name]
                wall, cpu = _timed(command, cwd, env, fresh)
                walls[name].append(wall)
                cpus[name].append(cpu)
    _report(walls, cpus, args.rounds, sizes, theirs)


def _report(
    walls: dict[str, list[float]], cpus: dict[str, list[float]], rounds: int, sizes: list[int], theirs: str
) -> None:
    evals = subprocess.run(
        [theirs, "-c", "import importlib.metadata as m; print(m.version('pydantic-evals'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"whole process, median of {rounds} rounds (interleaved), {os.cpu_count()} CPUs")
    print(
        f"promptlane on pydantic-ai {_pydantic_ai_version(sys.executable)}; pydantic-evals {evals} on pydantic-ai "
        f"{_pydantic_ai_version(theirs)} ({theirs})"
    )
    print(f"{'command':<58} {'wall':>8} {'cpu':>8} {'theirs/ours':>12}")
    for name in walls:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        ratio = ""
        if name.startswith("promptlane"):
            n = int(name.split(", ")[1].split()[0])
            baseline = statistics.median(walls[f"pydantic-evals, {n} case{'s' * (n != 1)}"])
            ratio = f"{baseline / wall:.2f}"
        print(f"{name:<58} {wall:>7.3f}s {cpu:>7.3f}s {ratio:>12}")
    print(
        textwrap.fill(
            "targets: theirs/ours >= 0.9 for 1 case (existing and new registry), > 1.0 for 100 cases", width=100
        )
    )


if __name__ == "__main__":
    main()
