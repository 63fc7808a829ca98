"""How long the command line takes to answer, whole process, on a SQLite registry.

A project is scaffolded with `promptlane init` and pushed; then each command runs 7 times, round-robin (so a
burst of load elsewhere hits every command alike), and the median wall time and CPU time (user + system of the
child) are printed against the targets: `--help` <= 0.2 s, `render`/`list`/`show` <= 0.35 s.

Run: `.venv/bin/python bench/cli.py` (uses the `promptlane` next to this interpreter).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 7
COMMANDS = {
    "--help": ["--help"],
    "list": ["list"],
    "show": ["show", "support/reply"],
    "render": ["render", "support/reply", "--var", "customer=Ana", "--var", "ticket=Where is order 123?"],
    "check": ["check"],
}
TARGETS = {"--help": 0.2, "list": 0.35, "show": 0.35, "render": 0.35}


def _run(executable: str, args: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    start = time.perf_counter()
    process = subprocess.Popen([executable, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        message = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"promptlane {' '.join(args)} failed: {message}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    executable = str(Path(sys.executable).parent / "promptlane")
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        for args in (["init"], ["push", "-m", "first"]):
            subprocess.run([executable, *args], cwd=project, check=True, capture_output=True)
        walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
        cpus: dict[str, list[float]] = {name: [] for name in COMMANDS}
        _run(executable, ["list"], project)  # warm the page cache
        for _ in range(ROUNDS):
            for name, args in COMMANDS.items():
                wall, cpu = _run(executable, args, project)
                walls[name].append(wall)
                cpus[name].append(cpu)
    print(f"promptlane CLI, whole process, median of {ROUNDS} (round-robin), SQLite registry")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("(PYTHONDONTWRITEBYTECODE is set: an editable install recompiles promptlane's modules at every start)")
    print(f"{'command':<10} {'wall':>8} {'cpu':>8} {'target':>8}")
    for name in COMMANDS:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        target = TARGETS.get(name)
        verdict = "" if target is None else ("ok" if wall <= target else "SLOW")
        shown = f"{target:.2f}s" if target else "-"
        print(f"{name:<10} {wall:>7.3f}s {cpu:>7.3f}s {shown:>8} {verdict}")


if __name__ == "__main__":
    main()
