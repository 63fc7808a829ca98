"""Eval harness throughput, latency overlap and memory, measured side by side in one run.

(a) 2,000 cases, zero-latency FunctionModel, spans on (an SDK TracerProvider with a batch processor) and the
    run saved to a SQLite registry, in cases/s, beside the same workload through pydantic-evals
    ``Dataset.evaluate`` (an Agent on the same model function, the same two checks). Target: >= 10x.
(b) 1,000 cases with 50 ms of simulated model latency at concurrency 50: wall time over the ideal
    ceil(N/c) x latency. Target: <= 1.15.
(c) Peak RSS of a fresh process streaming a 100,000-row dataset through a run. Target: <= 300 MB.
(d) 10,000 cases with 50 ms of simulated model latency at concurrency 50 on a new SQLite registry, each
    round in a fresh process, two ways taken in turns: `promptlane eval -c 50` (it pushes the prompt, runs,
    prints the report), and a script calling the library with spans on (an SDK TracerProvider, a batch
    processor). The case phase (the run, its first and last writes included: the run's own times as stored,
    for the command; ``EvalRun.run()`` for the script) and the whole process (Python's start to its exit) over
    the ideal of 200 waves x 50 ms, the median of 3 rounds. Targets: case phase <= 1.05, whole process <= 1.12
    (for the command: a script's whole process includes its own imports and its exit, tearing down what it made).
    Beside them, the floor: a fresh process that only imports the model function, which imports pydantic-ai
    (as every model function returning a ``ModelResponse`` does); no whole process that runs it can be faster.

    python bench/harness.py [--cases 2000] [--rows 100000] [--latency-cases 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

PROMPT = {
    "model": "python:bench_model:respond",
    "variables": {"question": {"type": "string"}},
    "messages": [
        {"role": "system", "content": "You are a calculator. Answer with the number only."},
        {"role": "user", "content": "{{ question }}"},
    ],
}

MODEL_SOURCE = """
import asyncio
from pydantic_ai.messages import ModelResponse, TextPart, UserPromptPart

LATENCY = 0.0

def _answer(messages):
    question = [p.content for m in messages for p in getattr(m, "parts", []) if isinstance(p, UserPromptPart)][-1]
    a, b = question.removeprefix("What is ").rstrip("?").split(" + ")
    return str(int(a) + int(b))

async def respond(messages, info):
    if LATENCY:
        await asyncio.sleep(LATENCY)
    return ModelResponse(parts=[TextPart(_answer(messages))])

async def respond_slow(messages, info):
    await asyncio.sleep(0.05)
    return ModelResponse(parts=[TextPart(_answer(messages))])
"""


def _project(folder: Path, rows: int) -> None:
    (folder / "promptlane.toml").write_text('prompts = "prompts"\nevals = "evals"\n')
    (folder / "prompts").mkdir()
    (folder / "prompts" / "calc.yaml").write_text(json.dumps(PROMPT))
    (folder / "evals").mkdir()
    (folder / "bench_model.py").write_text(MODEL_SOURCE)
    with (folder / "evals" / "rows.jsonl").open("w") as file:
        for i in range(rows):
            file.write(json.dumps({"question": f"What is {i} + {i + 1}?", "expected": str(2 * i + 1)}) + "\n")
    (folder / "evals" / "calc.yaml").write_text(
        textwrap.dedent(
            """\
            prompt: calc
            scenarios:
              - name: sums
                dataset: rows.jsonl
                expect:
                  - equals: "{{ expected }}"
                  - contains: "{{ expected }}"
            """
        )
    )


async def _promptlane(folder: Path, *, concurrency: int, model: str | None, spans: bool) -> tuple[float, int, int]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from promptlane.config import Settings
    from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
    from promptlane.registry import Registry

    class Discard(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = None
    if spans:
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Discard()))
    registry = Registry(settings=Settings(root=folder, registry=f"sqlite:///{folder}/registry.db"))
    registry.push([folder / "prompts"])
    prompt = registry.get("calc", label="latest")
    options = EvalOptions(concurrency=concurrency, model=model, root=folder)
    run = EvalRun(
        store=registry.store,
        prompt=prompt,
        documents=[load_scenario_file(folder / "evals" / "calc.yaml")],
        options=options,
        tracer_provider=provider,
    )
    start = time.perf_counter()
    record = await run.run()
    elapsed = time.perf_counter() - start
    if provider is not None:
        provider.shutdown()
    registry.close()
    return elapsed, record.cases, record.passed


def sums_dataset(cases: int) -> Any:
    """The workload as a pydantic-evals ``Dataset`` (this bench's comparison and bench/sweep.py's): ``cases``
    sums, each answer checked with ``EqualsExpected`` and ``Contains``."""
    from pydantic_evals import Case, Dataset
    from pydantic_evals.evaluators import Contains, EqualsExpected

    return Dataset(
        name="sums",
        cases=[
            Case(
                name=f"row-{i}",
                inputs=f"What is {i} + {i + 1}?",
                expected_output=str(2 * i + 1),
                evaluators=[Contains(str(2 * i + 1))],
            )
            for i in range(cases)
        ],
        evaluators=[EqualsExpected()],
    )


async def _pydantic_evals(folder: Path, cases: int, concurrency: int) -> tuple[float, int, int]:
    import bench_model  # type: ignore[import-not-found]
    from pydantic_ai import Agent
    from pydantic_ai.models.function import FunctionModel

    system = "You are a calculator. Answer with the number only."
    agent = Agent(FunctionModel(bench_model.respond), system_prompt=system)

    async def task(question: str) -> str:
        return (await agent.run(question)).output

    dataset = sums_dataset(cases)
    start = time.perf_counter()
    report = await dataset.evaluate(task, max_concurrency=concurrency, progress=False)
    elapsed = time.perf_counter() - start
    passed = sum(all(a.value for a in case.assertions.values()) for case in report.cases)
    return elapsed, len(report.cases), passed


RSS_PROBE = """
import asyncio, resource, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import harness
from pathlib import Path


def peak_mb():
    # Peak RSS of this process. VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a child started
    # by a large parent (a long pytest session) would report the parent's size.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


elapsed, cases, passed = asyncio.run(harness._promptlane(Path(sys.argv[1]), concurrency=16, model=None, spans=False))
print(peak_mb(), cases, passed, elapsed)
"""


LATENCY_PROBE = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import harness
from pathlib import Path

elapsed, cases, passed = asyncio.run(
    harness._promptlane(Path(sys.argv[1]), concurrency=50, model="python:bench_model:respond_slow", spans=True)
)
print(elapsed, cases, passed)
"""


def latency_round(folder: Path) -> tuple[float, float, int]:
    """One round of (d) through the library, in a fresh process: (case phase seconds, whole process seconds,
    cases passed)."""
    (folder / "registry.db").unlink(missing_ok=True)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", LATENCY_PROBE, str(folder), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    whole = time.perf_counter() - start
    elapsed, _, passed = result.stdout.split()
    return float(elapsed), whole, int(passed)


def command_round(folder: Path) -> tuple[float, float, int]:
    """One round of (d) through ``promptlane eval``: (case phase seconds, from the stored run; whole process
    seconds; cases passed)."""
    from promptlane.config import Settings
    from promptlane.registry import Registry

    (folder / "registry.db").unlink(missing_ok=True)
    url = f"sqlite:///{folder}/registry.db"
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PROMPTLANE_", "OTEL_"))}
    command = [str(Path(sys.executable).parent / "promptlane"), "eval", "-c", "50"]
    start = time.perf_counter()
    subprocess.run(
        [*command, "--model", "python:bench_model:respond_slow"],
        cwd=folder,
        env={**environment, "PROMPTLANE_REGISTRY": url},
        capture_output=True,
        check=True,
    )
    whole = time.perf_counter() - start
    registry = Registry(settings=Settings(root=folder, registry=url))
    try:
        (run,) = registry.store.list_runs("calc")
    finally:
        registry.close()
    assert run.finished_at is not None
    return (run.finished_at - run.started_at).total_seconds(), whole, run.passed


def import_round(folder: Path) -> float:
    """Seconds a fresh process takes to start, import the bench's model function (its module imports
    pydantic-ai's messages, as a model function returning a ``ModelResponse`` does) and exit: a floor under any
    harness's whole process that runs this function, set before its first case can start."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import bench_model"], cwd=folder, check=True, env=os.environ)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--latency-cases", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _project(folder, args.cases)
        sys.path.insert(0, str(folder))
        ours, cases, passed = asyncio.run(_promptlane(folder, concurrency=16, model=None, spans=True))
        print(f"(a) {cases} cases, zero-latency model, spans on, run saved")
        print(f"    promptlane              {cases / ours:8.0f} cases/s  ({ours:.2f}s, {passed}/{cases} passed)")
        try:
            theirs, their_cases, their_passed = asyncio.run(_pydantic_evals(folder, args.cases, 16))
        except ImportError:  # the main virtualenv leaves pydantic-evals out (see the Makefile's test-oldest)
            print("    pydantic-evals Dataset  not installed: no comparison (pip install pydantic-evals)")
        else:
            ratio = (cases / ours) / (their_cases / theirs)
            print(
                f"    pydantic-evals Dataset  {their_cases / theirs:8.0f} cases/s  "
                f"({theirs:.2f}s, {their_passed}/{their_cases} passed)"
            )
            print(f"    ratio                   {ratio:8.1f}x    target >= 10x   {'ok' if ratio >= 10 else 'UNDER'}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _project(folder, 1000)
        sys.path.insert(0, str(folder))
        slow, cases, _ = asyncio.run(
            _promptlane(folder, concurrency=50, model="python:bench_model:respond_slow", spans=True)
        )
        ideal = math.ceil(cases / 50) * 0.05
        print(f"(b) {cases} cases, 50 ms latency, concurrency 50")
        print(
            f"    wall {slow:.3f}s  ideal {ideal:.3f}s  ratio {slow / ideal:.3f}   target <= 1.15   "
            f"{'ok' if slow / ideal <= 1.15 else 'OVER'}"
        )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _project(folder, args.rows)
        result = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, str(folder), str(Path(__file__).parent)],
            capture_output=True,
            text=True,
            check=True,
        )
        rss, cases, passed, elapsed = result.stdout.split()
        print(f"(c) {cases} rows streamed ({passed} passed, {float(elapsed):.1f}s)")
        print(f"    peak RSS {float(rss):.0f} MB   target <= 300 MB   {'ok' if float(rss) <= 300 else 'OVER'}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _project(folder, args.latency_cases)
        ideal = math.ceil(args.latency_cases / 50) * 0.05
        ways = {"promptlane eval": command_round, "library, spans on": latency_round}
        rounds: dict[str, list[tuple[float, float, int]]] = {way: [] for way in ways}
        floors: list[float] = []
        for _ in range(args.rounds):
            for way, measure in ways.items():  # in turns: a burst of load elsewhere hits both alike
                rounds[way].append(measure(folder))
            floors.append(import_round(folder))
        print(f"(d) {args.latency_cases} cases, 50 ms latency, concurrency 50, fresh process (median of {args.rounds})")
        for way, measured in rounds.items():
            phase = statistics.median(r[0] / ideal for r in measured)
            whole = statistics.median(r[1] / ideal for r in measured)
            print(f"    {way}  (case phase / whole, s: {'  '.join(f'{r[0]:.2f}/{r[1]:.2f}' for r in measured)})")
            print(f"      case phase  ratio {phase:.3f}   target <= 1.05   {'ok' if phase <= 1.05 else 'OVER'}")
            if way == "promptlane eval":
                print(f"      whole       ratio {whole:.3f}   target <= 1.12   {'ok' if whole <= 1.12 else 'OVER'}")
            else:  # the script's own start-up (the OTel SDK) and exit (its objects torn down) are the script's
                print(f"      whole       ratio {whole:.3f}   (no target: the script's start-up and exit are its own)")
        floor = statistics.median(floors)
        print(
            f"    floor: a process that only imports the model function (pydantic-ai) takes {floor:.2f}s: no whole "
            f"process can do much better than ratio {(ideal + floor) / ideal:.3f} on this machine"
        )


if __name__ == "__main__":
    main()
