"""The ``promptlane`` command."""

from __future__ import annotations

from . import check, evals, init, labels, prompts, runs, serve, tokens  # noqa: F401 - registers the commands
from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
