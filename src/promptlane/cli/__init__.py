"""The ``promptlane`` command."""

from __future__ import annotations

import os
import signal
import sys

from . import check, evals, gate, init, labels, prompts, runs, serve, tokens  # noqa: F401 - registers the commands
from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    import gc

    # Start-up makes objects that live until the process ends (modules, classes, click's commands): the cyclic
    # collector's passes over them as they are made free nothing and cost about a seventh of importing the
    # harness. A command whose work grows with its input turns it back on (_app.resume_collection).
    gc.disable()
    try:
        app()
    except SystemExit as exit:
        # SIGPIPE stays ignored while a command runs (Python's default): a registry server or an OTLP collector
        # that resets a connection mid-request is an error the command reports, where SIGPIPE's default would
        # kill it silently. Only when the reader of our output went away (`promptlane runs show X --json | head`)
        # does the process end as any Unix tool does, killed by SIGPIPE (status 141), rather than with the
        # status 1 click gives it (which reads as a failed scenario): click saw a broken pipe (it swaps the
        # streams for quiet ones and exits 1), and it is standard output's.
        swapped = sys.stdout is not sys.__stdout__
        if exit.code == 1 and swapped and hasattr(signal, "SIGPIPE") and _reader_gone():
            gc.freeze()
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGPIPE)
        raise
    finally:
        # Everything alive now dies with the process: frozen, the interpreter's last collection does not walk it
        # (a quarter of a second after an eval). Nothing is lost: the command has closed its files and the
        # registry's connections, and shut its exporters down; the streams are flushed at exit as always.
        gc.freeze()


def _reader_gone() -> bool:
    """Standard output is a pipe whose reading end is closed."""
    import select
    import stat

    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # closed, not a file, no poll() (Windows)
        return False
