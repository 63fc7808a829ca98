"""`pytest --prompt-evals`: cases run concurrently while pytest reports them one by one.

500 cases with 50 ms of simulated model latency at concurrency 50. The ideal is ceil(500/50) x 50 ms = 0.5 s,
against 25 s if the cases ran one after another. Measured: the session's run as the registry recorded it (first
case started to last case saved), against the ideal (target: within 1.3x), and the whole pytest session beside
the same session with a zero-latency model, which is pytest's own cost (imports, collection, 500 reports).

    python bench/plugin.py [--cases 500]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import _project  # bench/ is on the path when this runs as a script


def _session(folder: Path, model: str, *extra: str) -> tuple[float, str]:
    """Wall time of one pytest session inside the process (pytest's own 'in N.NNs'), and its summary line."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--prompt-evals",
        "--prompt-evals-concurrency",
        "50",
        "--prompt-evals-model",
        model,
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(folder)}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [line for line in result.stdout.splitlines() if " in " in line and "passed" in line]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"pytest failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    found = re.search(r"in ([\d.]+)s", lines[-1])
    return (float(found.group(1)) if found else wall), lines[-1].strip("= ")


def _newest_run_seconds(folder: Path) -> float:
    from promptlane.config import load_settings
    from promptlane.registry import Registry

    registry = Registry(settings=load_settings(folder))
    try:
        record = registry.store.list_runs()[0]
        assert record.finished_at is not None
        return (record.finished_at - record.started_at).total_seconds()
    finally:
        registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _project(folder, args.cases)
        _session(folder, "python:bench_model:respond")  # warm: push, imports, file caches
        base, _ = _session(folder, "python:bench_model:respond")
        slow, summary = _session(folder, "python:bench_model:respond_slow")
        ideal = math.ceil(args.cases / 50) * 0.05
        run = _newest_run_seconds(folder)
        print(f"{args.cases} cases, 50 ms model latency, concurrency 50 ({summary})")
        print(
            f"    the run {run:.2f}s  ideal {ideal:.2f}s  ratio {run / ideal:.2f}   target <= 1.3   "
            f"{'ok' if run / ideal <= 1.3 else 'OVER'}"
        )
        print(
            f"    session {slow:.2f}s   same session, zero latency {base:.2f}s   "
            f"serial would be {args.cases * 0.05:.0f}s"
        )
        try:
            import xdist  # noqa: F401
        except ImportError:
            return
        distributed, summary = _session(folder, "python:bench_model:respond_slow", "-n", "2")
        print(f"    with -n 2: {distributed:.2f}s ({summary})")


if __name__ == "__main__":
    main()
