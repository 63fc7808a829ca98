"""The N sweep: whole-process wall time of one eval, side by side with pydantic-evals and promptfoo.

Every cell is one process from start to exit, timed from here: N cases (1, 100, 1,000, 10,000) of bench/
harness.py's workload (a two-message chat prompt, a deterministic model that adds two numbers, two
expectations a case: equals and contains the expected answer) with 0 or 50 ms of simulated model latency, at
concurrency 50. The tools:

- ``promptlane``: ``promptlane eval -c 50 --json out.json`` of a project on a new SQLite registry (it pushes the
  prompt, runs, saves the run, prints the report), its ``python:`` model sleeping the latency;
- ``pydantic-evals (Agent)``: ``Dataset.evaluate(max_concurrency=50)`` of an Agent on a ``FunctionModel`` with
  the same model function, ``EqualsExpected`` and ``Contains``;
- ``pydantic-evals (bare task)``: the same dataset, its task an async function that sleeps and answers;
- ``promptfoo (JS provider)``: ``promptfoo eval --no-cache --max-concurrency 50`` of a config with the same chat
  prompt, a custom JavaScript provider that sleeps and answers, ``equals`` and ``contains`` assertions.

Each cell is the median of ``--repeats`` runs, taken in turns across the tools (a different tool first each
round, so a burst of load elsewhere hits all alike), after one untimed run of each tool (bytecode compiled, page
cache warm). promptfoo keeps its results database under ``.promptlane/bench/promptfoo/home`` (as promptlane
saves its run to the registry). Every run's case count and passes are read from the tool's own output
(promptlane's ``--json`` export, pydantic-evals' report, promptfoo's JSON output); a miss stops the bench. With
latency, it also prints the wall time over the ideal ceil(N / 50) x latency.

pydantic-evals is not in the project's virtualenv (its newest release pins an older pydantic-ai): its columns run
on ``.venv-oldest/bin/python`` and are skipped, saying why, without it. promptfoo is installed with npm into
``.promptlane/bench/promptfoo`` on first use (never a project dependency); its column is skipped without Node.js.
Scratch projects live under ``.promptlane/bench/`` (git-ignored).

    python bench/sweep.py [--sizes 1 100 1000 10000] [--latencies 0 50] [--repeats 3] [--tools ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import MODEL_SOURCE, PROMPT, _project  # the workload bench/harness.py measures

REPO = Path(__file__).resolve().parents[1]
SCRATCH = REPO / ".promptlane" / "bench"
CONCURRENCY = 50
TOOLS = ("promptlane", "pydantic-evals-agent", "pydantic-evals-bare", "promptfoo")
TITLES = {
    "promptlane": "promptlane",
    "pydantic-evals-agent": "pydantic-evals (Agent)",
    "pydantic-evals-bare": "pydantic-evals (bare task)",
    "promptfoo": "promptfoo (JS provider)",
}

# harness.py's model with its latency read from the environment, so one project serves every latency.
_LATENCY_LINE = "LATENCY = 0.0"
assert _LATENCY_LINE in MODEL_SOURCE, "bench/harness.py's model changed: update bench/sweep.py"
MODEL = "import os\n" + MODEL_SOURCE.replace(_LATENCY_LINE, 'LATENCY = float(os.environ.get("BENCH_LATENCY", "0"))')

PYDANTIC_EVALS = """\
import asyncio, json, os, sys

sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[5])

import bench_model
from harness import sums_dataset
from pydantic_ai import Agent
from pydantic_ai.models.function import FunctionModel

cases, way, concurrency = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
LATENCY = float(os.environ.get("BENCH_LATENCY", "0"))
SYSTEM = "You are a calculator. Answer with the number only."

if way == "agent":
    agent = Agent(FunctionModel(bench_model.respond), system_prompt=SYSTEM)

    async def task(question: str) -> str:
        return (await agent.run(question)).output

else:

    async def task(question: str) -> str:
        if LATENCY:
            await asyncio.sleep(LATENCY)
        a, b = question.removeprefix("What is ").rstrip("?").split(" + ")
        return str(int(a) + int(b))


dataset = sums_dataset(cases)
report = dataset.evaluate_sync(task, max_concurrency=concurrency, progress=False)
passed = sum(all(a.value for a in case.assertions.values()) and len(case.assertions) == 2 for case in report.cases)
print(json.dumps({"cases": len(report.cases), "passed": passed}))
"""

PROMPTFOO_PROVIDER = """\
// The deterministic model: reads the user message of the rendered chat prompt, sleeps, adds the two numbers.
const LATENCY = Number(process.env.BENCH_LATENCY || "0");

class BenchProvider {
  constructor(options) {
    this.providerId = (options && options.id) || "bench";
  }
  id() {
    return this.providerId;
  }
  async callApi(prompt) {
    if (LATENCY) await new Promise((resolve) => setTimeout(resolve, LATENCY * 1000));
    const messages = JSON.parse(prompt);
    const question = messages.filter((m) => m.role === "user").pop().content;
    const [a, b] = question.replace("What is ", "").replace("?", "").split(" + ");
    return { output: String(Number(a) + Number(b)) };
  }
}

module.exports = BenchProvider;
"""


@dataclass(kw_only=True)
class Run:
    """What one timed process did."""

    wall: float
    """Seconds from the process's start to its exit."""
    cases: int
    """Cases the tool's own output reports."""
    passed: int
    """Cases whose two checks passed, by the tool's own output."""


def _environment(latency: float) -> dict[str, str]:
    """The children's environment: the latency, compiled bytecode allowed, no exporters, settings or telemetry."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "PYTHONDONTWRITEBYTECODE" and not key.startswith(("OTEL_", "PROMPTLANE_", "LOGFIRE_", "PROMPTFOO_"))
    }
    env["BENCH_LATENCY"] = str(latency)
    env["PROMPTFOO_DISABLE_TELEMETRY"] = "1"
    env["PROMPTFOO_DISABLE_UPDATE"] = "1"
    env["PROMPTFOO_CONFIG_DIR"] = str(SCRATCH / "promptfoo" / "home")  # its database, not the user's ~/.promptfoo
    return env


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds, stdout) of one process, which must succeed."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd} (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return wall, result.stdout


def _workload(n: int) -> Path:
    """The promptlane project of N rows (harness.py's), its model's latency read from BENCH_LATENCY."""
    folder = SCRATCH / f"sweep-{n}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    _project(folder, n)
    (folder / "bench_model.py").write_text(MODEL)
    return folder


def _promptlane(folder: Path, env: dict[str, str]) -> Run:
    registry = folder / "registry.db"
    registry.unlink(missing_ok=True)  # a new registry each run: the push is part of the process
    out = folder / "promptlane.json"
    out.unlink(missing_ok=True)
    command = [str(Path(sys.executable).parent / "promptlane"), "eval", "-c", str(CONCURRENCY), "--json", str(out)]
    wall, _ = _timed(command, folder, {**env, "PROMPTLANE_REGISTRY": f"sqlite:///{registry}"})
    (run,) = json.loads(out.read_text())["runs"]
    statuses = [case["status"] for case in run["cases"]]
    return Run(wall=wall, cases=len(statuses), passed=statuses.count("passed"))


def _pydantic_evals(python: str, way: str) -> Callable[[Path, dict[str, str]], Run]:
    def measure(folder: Path, env: dict[str, str]) -> Run:
        n = sum(1 for _ in (folder / "evals" / "rows.jsonl").open())
        script = SCRATCH / "sweep_pydantic_evals.py"
        command = [python, str(script), str(folder), str(n), way, str(CONCURRENCY), str(Path(__file__).parent)]
        wall, stdout = _timed(command, folder, env)
        counts = json.loads(stdout.strip().splitlines()[-1])
        return Run(wall=wall, cases=counts["cases"], passed=counts["passed"])

    return measure


def _promptfoo_config(folder: Path) -> Path:
    """promptfoo's copy of the workload in ``folder``: the chat prompt, the JS provider, N tests."""
    target = folder / "promptfoo"
    target.mkdir(exist_ok=True)
    (target / "prompt.json").write_text(json.dumps(PROMPT["messages"]).replace("{{ question }}", "{{question}}"))
    (target / "provider.js").write_text(PROMPTFOO_PROVIDER)
    tests = []
    with (folder / "evals" / "rows.jsonl").open() as rows:
        for line in rows:
            row = json.loads(line)
            tests.append(
                {
                    "vars": {"question": row["question"]},
                    "assert": [
                        {"type": "equals", "value": row["expected"]},
                        {"type": "contains", "value": row["expected"]},
                    ],
                }
            )
    config = {"prompts": ["file://prompt.json"], "providers": ["file://provider.js"], "tests": tests}
    path = target / "promptfooconfig.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _promptfoo(npx: str) -> Callable[[Path, dict[str, str]], Run]:
    def measure(folder: Path, env: dict[str, str]) -> Run:
        target = folder / "promptfoo"
        out = target / "out.json"
        out.unlink(missing_ok=True)
        command = [
            npx,
            "--no-install",
            "promptfoo",
            "eval",
            "-c",
            str(target / "promptfooconfig.yaml"),
            "--no-cache",
            "--max-concurrency",
            str(CONCURRENCY),
            "--no-table",
            "--no-progress-bar",
            "-o",
            str(out),
        ]
        wall, _ = _timed(command, SCRATCH / "promptfoo", env)
        results = json.loads(out.read_text())["results"]["results"]
        passed = sum(
            1
            for result in results
            if result["success"] and len(result["gradingResult"]["componentResults"]) == 2  # both checks ran
        )
        return Run(wall=wall, cases=len(results), passed=passed)

    return measure


def _pydantic_evals_python() -> tuple[str | None, str]:
    """(.venv-oldest's interpreter, "") when it imports pydantic_evals, else (None, why not)."""
    python = REPO / ".venv-oldest" / "bin" / "python"
    if not python.exists():
        return None, f"{python} does not exist (make it with the Makefile's test-oldest)"
    check = subprocess.run([str(python), "-c", "import pydantic_evals"], capture_output=True, text=True)
    if check.returncode != 0:
        return None, f"{python} cannot import pydantic_evals"
    return str(python), ""


def _promptfoo_npx() -> tuple[str | None, str]:
    """(npx, "") with promptfoo installed into .promptlane/bench/promptfoo (once), else (None, why not)."""
    node, npm, npx = shutil.which("node"), shutil.which("npm"), shutil.which("npx")
    if node is None or npm is None or npx is None:
        return None, "Node.js (node, npm, npx) is not on PATH"
    folder = SCRATCH / "promptfoo"
    if not (folder / "node_modules" / ".bin" / "promptfoo").exists():
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "package.json").exists():
            (folder / "package.json").write_text('{"name": "promptlane-bench-promptfoo", "private": true}\n')
        print(f"installing promptfoo into {folder} (once)...", file=sys.stderr)
        install = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "promptfoo"], cwd=folder, capture_output=True, text=True
        )
        if install.returncode != 0:
            return None, f"npm install promptfoo failed: {install.stderr.strip()[-500:]}"
    return npx, ""


def _version(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=_environment(0))
    return result.stdout.strip().splitlines()[-1] if result.returncode == 0 and result.stdout.strip() else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000, 10_000], help="cases a run")
    parser.add_argument("--latencies", type=float, nargs="+", default=[0, 50], help="model latency in ms")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs a cell (the median is printed)")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    args = parser.parse_args()
    if any(n < 1 for n in args.sizes) or any(ms < 0 for ms in args.latencies) or args.repeats < 1:
        parser.error("--sizes and --repeats must be >= 1, --latencies >= 0")

    tools: dict[str, Callable[[Path, dict[str, str]], Run]] = {}
    skipped: dict[str, str] = {}
    if "promptlane" in args.tools:
        tools["promptlane"] = _promptlane
    if {"pydantic-evals-agent", "pydantic-evals-bare"} & set(args.tools):
        python, why = _pydantic_evals_python()
        for tool, way in (("pydantic-evals-agent", "agent"), ("pydantic-evals-bare", "bare")):
            if tool in args.tools:
                if python is None:
                    skipped[tool] = why
                else:
                    tools[tool] = _pydantic_evals(python, way)
    if "promptfoo" in args.tools:
        npx, why = _promptfoo_npx()
        if npx is None:
            skipped["promptfoo"] = why
        else:
            tools["promptfoo"] = _promptfoo(npx)

    SCRATCH.mkdir(parents=True, exist_ok=True)
    (SCRATCH / "sweep_pydantic_evals.py").write_text(PYDANTIC_EVALS)
    names = list(tools)
    medians: dict[tuple[int, float, str], float] = {}
    for n in args.sizes:
        folder = _workload(n)
        if "promptfoo" in tools:
            _promptfoo_config(folder)
        for ms in args.latencies:
            env = _environment(ms / 1000)
            if n == args.sizes[0] and ms == args.latencies[0]:
                for name in names:  # warm-up, not timed
                    tools[name](folder, env)
            walls: dict[str, list[float]] = {name: [] for name in names}
            for repeat in range(args.repeats):
                shift = repeat % len(names) if names else 0
                for name in names[shift:] + names[:shift]:
                    run = tools[name](folder, env)
                    if run.cases != n or run.passed != n:
                        raise SystemExit(f"{TITLES[name]}, N={n}, {ms:g} ms: {run.passed}/{run.cases} passed, not {n}")
                    walls[name].append(run.wall)
                    print(f"  {TITLES[name]:<27} N={n:<6} {ms:>4g} ms  {run.wall:7.2f}s", file=sys.stderr)
            for name in names:
                medians[n, ms, name] = statistics.median(walls[name])
    _report(args, names, skipped, medians)


def _report(
    args: argparse.Namespace, names: list[str], skipped: dict[str, str], medians: dict[tuple[int, float, str], float]
) -> None:
    print(
        f"whole process, two-message chat prompt, deterministic model, two expectations a case, concurrency "
        f"{CONCURRENCY}, median of {args.repeats} interleaved run{'s' * (args.repeats != 1)}, {os.cpu_count()} CPUs; "
        f"every case checked from each tool's own output"
    )
    versions = {"promptlane": _version([sys.executable, "-c", _VERSION.format("promptlane")])}
    python, _ = _pydantic_evals_python()
    if python is not None:
        versions["pydantic-evals"] = _version([python, "-c", _VERSION.format("pydantic-evals")])
    if "promptfoo" in names:
        npx = [str(shutil.which("npx")), "--no-install", "promptfoo", "--version"]
        versions["promptfoo"] = _version(npx, cwd=SCRATCH / "promptfoo")
        versions["node"] = _version(["node", "--version"])
    print("versions: " + ", ".join(f"{tool} {version}" for tool, version in versions.items()))
    for tool, why in skipped.items():
        print(f"skipped {TITLES[tool]}: {why}")
    print()
    header = ["N cases", "model latency", *(TITLES[name] for name in names)]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for n in args.sizes:
        for ms in args.latencies:
            cells = [f"{medians[n, ms, name]:.2f} s" for name in names]
            print(f"| {n:,} | {ms:g} ms | " + " | ".join(cells) + " |")
    slow = [ms for ms in args.latencies if ms > 0]
    if slow:
        print()
        print(f"ratio to ideal, ceil(N / {CONCURRENCY}) x latency")
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for n in args.sizes:
            for ms in slow:
                ideal = math.ceil(n / CONCURRENCY) * ms / 1000
                cells = [f"{medians[n, ms, name] / ideal:.2f}x" for name in names]
                print(f"| {n:,} | {ms:g} ms (ideal {ideal:.2f} s) | " + " | ".join(cells) + " |")


_VERSION = "import importlib.metadata as m; print(m.version({!r}))"


if __name__ == "__main__":
    main()
