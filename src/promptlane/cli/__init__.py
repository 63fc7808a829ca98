"""The ``promptlane`` command."""

from __future__ import annotations

from . import check, evals, gate, init, labels, prompts, runs, serve, tokens  # noqa: F401 - registers the commands
from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    import signal

    if hasattr(signal, "SIGPIPE"):
        # `promptlane runs show X --json | head` ends as any Unix tool does when its reader goes away (killed by
        # SIGPIPE, status 141), not with a Python error and a status that reads as a failed scenario.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app()
