"""The ``promptlane`` process: no cyclic collection through start-up, none at exit, nothing lost for it; an eval
never imports SQLAlchemy, whether its local registry exists or it makes it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from promptlane.config import load_settings
from promptlane.registry import Registry

# The console script's main, with a report made at exit (after main returned, before the interpreter's own last
# collection): the collector's passes since main started, and whether SQLAlchemy or Alembic was imported.
PROCESS = """
import atexit, gc, sys

def collections():
    return sum(generation["collections"] for generation in gc.get_stats())

def report():
    made = collections() - before
    loaded = sorted({name.split(".")[0] for name in sys.modules} & {"sqlalchemy", "alembic"})
    sys.stderr.write(f"\\nAT EXIT frozen={gc.get_freeze_count()} collections={made} loaded={loaded}\\n")

atexit.register(report)
sys.argv[0] = "promptlane"
from promptlane.cli import main
before = collections()  # the ones while importing the command line (as the console script does)
main()
"""

ECHO = '''
import gc

from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart


def echo(messages, info):
    """The ticket back, and whether the cyclic collector runs while cases run."""
    requests = [m for m in messages if isinstance(m, ModelRequest)]
    asked = [p.content for m in requests for p in m.parts if isinstance(p, UserPromptPart)]
    return ModelResponse(parts=[TextPart(f"{asked[-1]} gc={'on' if gc.isenabled() else 'off'}")])
'''

SCENARIOS = """\
prompt: support/reply
model: python:evals.echo:echo
scenarios:
  - name: rows
    dataset: rows.jsonl
    expect:
      - contains: "{{ expected }}"
      - contains: "gc=on"
"""

TICKET = "Zoë ]]> <b> \x01\x1b[31m \u2028 🎉"
ROWS = 700  # more than a page of the store's reads


def _promptlane(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTLANE_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-c", PROCESS, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard only
    )


def _at_exit(stderr: str) -> dict[str, str]:
    match = re.search(r"AT EXIT frozen=(\d+) collections=(\d+) loaded=(.*)$", stderr, flags=re.MULTILINE)
    assert match is not None, stderr
    return {"frozen": match.group(1), "collections": match.group(2), "loaded": match.group(3)}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``promptlane init``, its scenario sweeping ROWS rows through an echoing model; pushed (so the registry
    exists)."""
    assert _promptlane(tmp_path, "init").returncode == 0
    (tmp_path / "evals" / "echo.py").write_text(ECHO)
    (tmp_path / "evals" / "support" / "reply.yaml").write_text(SCENARIOS)
    rows = [
        {"customer": "Ana", "ticket": f"{TICKET} {n}", "expected": "gc=on" if n % 3 else "never"} for n in range(ROWS)
    ]
    (tmp_path / "evals" / "support" / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    pushed = _promptlane(tmp_path, "push")
    assert pushed.returncode == 0, pushed.stderr
    return tmp_path


@pytest.mark.slow
def test_an_eval_process_writes_its_reports_and_run_whole_and_skips_the_last_collection(project: Path) -> None:
    result = _promptlane(project, "eval", "--json", "out.json", "--junit", "out.xml")
    assert result.returncode == 1, result.stderr  # a third of the rows fail
    at_exit = _at_exit(result.stderr)
    assert int(at_exit["frozen"]) > 0  # the interpreter's last collection has nothing to walk
    assert at_exit["loaded"] == "[]"  # the registry existed: neither SQLAlchemy nor Alembic

    (report,) = json.loads((project / "out.json").read_text(encoding="utf-8"))["runs"]
    assert len(report["cases"]) == ROWS
    assert {case["output"].rsplit(" ", 1)[1] for case in report["cases"]} == {"gc=on"}  # collected while running
    assert sum(case["status"] == "failed" for case in report["cases"]) == len(range(0, ROWS, 3))
    with Registry(settings=load_settings(project)) as registry:
        run = registry.store.get_run(report["id"])
        stored = [case.to_json() for case in registry.store.run_cases(run.id)]
    assert (run.status, run.cases, run.finished_at is not None) == ("failed", ROWS, True)
    assert report["cases"] == stored

    (suite,) = ET.parse(project / "out.xml").getroot().findall("testsuite")
    assert len(suite.findall("testcase")) == ROWS
    failure = suite.find("testcase/failure")
    assert failure is not None and "Zoë ]]> <b>" in (failure.text or "")


def test_the_first_eval_of_a_fresh_clone_makes_the_registry_without_sqlalchemy(tmp_path: Path) -> None:
    assert _promptlane(tmp_path, "init").returncode == 0
    assert not (tmp_path / ".promptlane").exists()  # as in CI: the registry is not under version control

    result = _promptlane(tmp_path, "eval", "--json", "out.json")

    assert result.returncode == 0, result.stderr
    assert _at_exit(result.stderr)["loaded"] == "[]"
    (report,) = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))["runs"]
    with Registry(settings=load_settings(tmp_path)) as registry:  # what it made, read back through SQLAlchemy
        from promptlane.registry.sql import SQLStore

        store = SQLStore(registry.url)
        assert store.get_run(report["id"]).status == "passed"
        assert [version.number for version in store.list_versions("support/reply")] == [1]
        store.close()


@pytest.mark.slow
def test_a_command_makes_no_collection_at_all(project: Path) -> None:
    """Start-up makes objects that live until exit: the collector stays off until a command's work grows with its
    input (an eval's cases, a server)."""
    result = _promptlane(project, "list")
    assert result.returncode == 0, result.stderr
    at_exit = _at_exit(result.stderr)
    assert at_exit["collections"] == "0"
    assert int(at_exit["frozen"]) > 0


SIGNALS = '''
from pathlib import Path


def ignored(messages, info):
    """The signals this process ignores (its SigIgn mask, hex), read while a case runs."""
    status = Path("/proc/self/status").read_text().splitlines()
    return next(line for line in status if line.startswith("SigIgn:")).split()[1]
'''


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc")
def test_a_command_ignores_sigpipe_while_it_runs(tmp_path: Path) -> None:
    """A registry server or an OTLP collector that resets a connection mid-request is an error the command
    reports; with SIGPIPE's default action, a write on that connection would kill the process silently."""
    import signal

    assert _promptlane(tmp_path, "init").returncode == 0
    (tmp_path / "evals" / "signals.py").write_text(SIGNALS)
    (tmp_path / "evals" / "support" / "reply.yaml").write_text(
        "prompt: support/reply\nmodel: python:evals.signals:ignored\n"
        "scenarios:\n  - name: one\n    variables: {customer: Ana, ticket: Hi}\n    expect: [{contains: '0'}]\n"
    )

    result = _promptlane(tmp_path, "eval", "--json", "out.json")

    assert result.returncode == 0, result.stderr
    (report,) = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))["runs"]
    assert int(report["cases"][0]["output"], 16) & (1 << (signal.SIGPIPE - 1))


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="a POSIX pipe")
def test_a_reader_that_goes_away_ends_the_command_as_sigpipe_does(tmp_path: Path) -> None:
    """`promptlane show big | head`: killed by SIGPIPE (the shell's 141), no traceback, not the status of a
    failed scenario."""
    import signal

    assert _promptlane(tmp_path, "init").returncode == 0
    (tmp_path / "prompts" / "big.yaml").write_text("template: |\n  " + "x" * 250_000 + "\n")  # over a pipe's buffer
    assert _promptlane(tmp_path, "push").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTLANE_", "OTEL_"))}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "promptlane"), "show", "big"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(6) == b"big v1"  # the first bytes, then the reader goes away
    process.stdout.close()
    status = process.wait(timeout=600)  # a hang guard only
    stderr = process.stderr.read().decode()
    process.stderr.close()

    assert status == -signal.SIGPIPE, stderr
    assert stderr == ""
