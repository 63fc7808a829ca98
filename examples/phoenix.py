"""The demo's runs in Arize Phoenix, a real OpenTelemetry backend: ``make traces`` runs this.

Phoenix lives in a virtualenv of its own (``.phoenix/venv``, which ``make traces`` creates; never the project's,
so ``make test`` does not install it). This script starts it on loopback with a fresh working folder, runs the
demo project's scenarios with ``promptlane eval --otlp-endpoint``, waits until Phoenix has every span, prints
the UI's URL and the filter expressions to try, and serves until Ctrl-C.

The runs are made in a copy of the demo's folder (``.phoenix/demo``), so the demo's own registry, which
``make ui`` serves, is left as the tour made it:

- ``promptlane eval``: the files on disk, v2, under no label (``latest``);
- ``promptlane eval --label production``: the version production serves, v1;
- one scenario that fails on purpose (the reply never states the refund's amount), so there is a failed case
  to find.

``tests/test_phoenix.py`` starts Phoenix with :func:`serve` and reads spans with :func:`trace_spans`.

Usage: ``python examples/phoenix.py DEMO_FOLDER [--port 6006]``. ``PROMPTLANE_PHOENIX`` names another
``phoenix`` executable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".phoenix"
"""Phoenix's virtualenv, its data and the demo's copy (git-ignored)."""
DEFAULT_EXECUTABLE = STATE / "venv" / "bin" / "phoenix"
PROJECT = "promptlane-demo"
"""The Phoenix project the demo's traces go to (``openinference.project.name``)."""
PATIENCE = 300.0
"""Seconds to wait for Phoenix to start or to store a run's spans: about 20 s on an idle two-core machine.
A bound against a hang, never a measurement."""

FAILING_SCENARIO = """\
# A scenario that fails on purpose (the reply never states the amount), so that Phoenix has a failed case.
prompt: support/reply
model: python:evals.models:support_agent
scenarios:
  - name: refund-amount
    variables: {customer: Ana, ticket: "I want a refund for order 123"}
    tools:
      lookup_order:
        - returns: {status: delivered, total: 42.5}
    expect:
      - contains: "42.50"
"""

FILTERS = {
    "a prompt version": "gen_ai.prompt.version == '1'",
    "a label": "promptlane.prompt.label == 'production'",
    "failed cases": "promptlane.case.passed == False",
}
"""Span filter expressions that work in Phoenix's filter bar (docs/evals.md; checked by tests/test_phoenix.py)."""


def executable(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The ``phoenix`` command: ``PROMPTLANE_PHOENIX``, else the one ``make traces`` installs; None if absent."""
    named = environ.get("PROMPTLANE_PHOENIX")
    path = Path(named) if named else DEFAULT_EXECUTABLE
    return path if path.is_file() and os.access(path, os.X_OK) else None


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(kw_only=True)
class PhoenixServer:
    """A Phoenix process serving on loopback."""

    url: str
    """Its base URL: the UI, the REST API under ``/v1`` and OTLP/HTTP at ``/v1/traces``."""
    process: subprocess.Popen[bytes]
    """The ``phoenix serve`` process."""
    log: Path
    """Where its output goes."""

    def get(self, path: str, **query: Any) -> Any:
        """The JSON answer to ``GET path?query`` (list values repeat the parameter)."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(query, doseq=True)}"
        with urllib.request.urlopen(url, timeout=60) as answer:
            return json.load(answer)

    def graphql(self, query: str, **variables: Any) -> Any:
        """The ``data`` of a GraphQL query (what the UI asks); an error is an AssertionError with its message."""
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", body, {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            result = json.load(answer)
        if result.get("errors"):
            raise AssertionError(result["errors"][0]["message"])
        return result["data"]

    def log_tail(self, lines: int = 30) -> str:
        """The end of Phoenix's output, for an error message."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def serve(
    command: Path, working_dir: Path, *, port: int | None = None, patience: float = PATIENCE
) -> Iterator[PhoenixServer]:
    """Run ``phoenix serve`` on 127.0.0.1:``port`` (a free one by default) with its data in ``working_dir``,
    once its REST API answers; stop it on exit. Nothing reaches beyond loopback (no telemetry, no web fonts)."""
    port = port or free_port()
    working_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("PHOENIX_", "OTEL_"))},
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_WORKING_DIR": str(working_dir),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    log = working_dir / "phoenix.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(command), "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    server = PhoenixServer(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        _wait(lambda: _answers(server), f"Phoenix answering at {server.url}", server, patience)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(server: PhoenixServer) -> bool:
    try:
        server.get("/v1/projects")
    except (urllib.error.URLError, ConnectionError):
        return False
    return True


def _wait(condition: Any, what: str, server: PhoenixServer, patience: float) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        if server.process.poll() is not None:
            raise RuntimeError(f"Phoenix stopped (exit {server.process.returncode}):\n{server.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {patience:.0f} s: {what}\n{server.log_tail()}")
        time.sleep(0.5)


def trace_spans(server: PhoenixServer, project: str, trace_id: str) -> list[dict[str, Any]]:
    """Every span Phoenix has of a trace, from its REST API (``GET /v1/projects/{project}/spans``, page by
    page): each a dict with ``name``, ``span_kind``, ``context``, ``parent_id``, ``attributes`` (flattened) and
    ``events``. Empty while the project does not exist yet."""
    spans: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"trace_id": trace_id, "limit": 1000}
        if cursor:
            query["cursor"] = cursor
        try:
            page = server.get(f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans", **query)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise
        spans.extend(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            return spans


def wait_for_spans(
    server: PhoenixServer, project: str, trace_id: str, at_least: int, patience: float = PATIENCE
) -> list[dict[str, Any]]:
    """The trace's spans once Phoenix stores ``at_least`` of them and every parent of one (Phoenix takes
    OTLP requests at once and stores them a moment later)."""
    found: list[dict[str, Any]] = []

    def complete() -> bool:
        found[:] = trace_spans(server, project, trace_id)
        ids = {span["context"]["span_id"] for span in found}
        return len(found) >= at_least and all(span["parent_id"] in ids for span in found if span["parent_id"])

    _wait(complete, f"{at_least} spans of trace {trace_id} in Phoenix", server, patience)
    return found


def expected_spans(run: Mapping[str, Any]) -> int:
    """How many spans a run's ``--json`` record implies at least: the run, and for each case the case, one chat
    span a model request (turn) and one span a tool call."""
    return 1 + sum(1 + case["turns"] + len(case["tool_calls"]) for case in run["cases"])


def _environment(server: PhoenixServer) -> dict[str, str]:
    """The demo's commands' environment: this interpreter's scripts first on PATH, the traces to the demo's
    Phoenix project."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PROMPTLANE_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["OTEL_RESOURCE_ATTRIBUTES"] = f"openinference.project.name={PROJECT}"
    return env


def send_demo_runs(server: PhoenixServer, demo: Path, folder: Path) -> list[dict[str, Any]]:
    """Copy the demo to ``folder``, run its evaluations traced to ``server``, and return the runs (as
    ``--json`` writes them) once Phoenix has their spans."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(demo, folder)
    (folder / "checks").mkdir()
    (folder / "checks" / "refund.yaml").write_text(FAILING_SCENARIO)
    env = _environment(server)
    runs: list[dict[str, Any]] = []
    for arguments in ([], ["--label", "production", "--allow-version-code"], ["checks"]):
        command = ["promptlane", "eval", *arguments, "--otlp-endpoint", server.url, "--json", "run.json"]
        print(f"$ {' '.join(command)}", flush=True)
        done = subprocess.run(command, cwd=folder, env=env, check=False)
        if done.returncode not in (0, 1):  # 1: a case failed, as the last one does on purpose
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}")
        runs.extend(json.loads((folder / "run.json").read_text())["runs"])
    for run in runs:
        wait_for_spans(server, PROJECT, run["trace_id"], expected_spans(run))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The demo's runs in Arize Phoenix (make traces).")
    parser.add_argument("demo", type=Path, help="the folder `make demo` left (the README's tour)")
    parser.add_argument("--port", type=int, default=6006, help="Phoenix's port on 127.0.0.1 (6006)")
    args = parser.parse_args(argv)
    command = executable()
    if command is None:
        print(f"Phoenix is not installed at {DEFAULT_EXECUTABLE} (make traces installs it)", file=sys.stderr)
        return 2
    data = STATE / "data"
    shutil.rmtree(data, ignore_errors=True)
    with serve(command, data, port=args.port) as server:
        runs = send_demo_runs(server, args.demo, STATE / "demo")
        project = server.get(f"/v1/projects/{PROJECT}")["data"]["id"]
        print(f"\n{len(runs)} runs in Phoenix: {server.url}/projects/{project}")
        for run in runs:
            print(f"  {run['prompt']} v{run['version']}  {run['status']}  trace {run['trace_id']}")
        print("\nFilter the spans by")
        for what, expression in FILTERS.items():
            print(f"  {what + ':':<18} {expression}")
        print("\nPhoenix serves until Ctrl-C.", flush=True)
        # A plain `kill` stops Phoenix too (through serve's cleanup), not only Ctrl-C.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            server.process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
