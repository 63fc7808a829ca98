"""The ``promptlane`` command."""

from __future__ import annotations

from . import check, evals, gate, init, labels, prompts, runs, serve, tokens  # noqa: F401 - registers the commands
from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    import gc
    import signal

    # Start-up makes objects that live until the process ends (modules, classes, click's commands): the cyclic
    # collector's passes over them as they are made free nothing and cost about a seventh of importing the
    # harness. A command whose work grows with its input turns it back on (_app.resume_collection).
    gc.disable()
    if hasattr(signal, "SIGPIPE"):
        # `promptlane runs show X --json | head` ends as any Unix tool does when its reader goes away (killed by
        # SIGPIPE, status 141), not with a Python error and a status that reads as a failed scenario.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        app()
    finally:
        # Everything alive now dies with the process: frozen, the interpreter's last collection does not walk it
        # (a quarter of a second after an eval). Nothing is lost: the command has closed its files and the
        # registry's connections, and shut its exporters down; the streams are flushed at exit as always.
        gc.freeze()
