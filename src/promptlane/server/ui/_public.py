"""Messages as the web UI shows them: without the server's file paths.

An error about a project file names it as the project does (``evals/plain.yaml:5: ...``), relative to the
project root; any other absolute path on the server (the registry file, an installed package, a temporary
folder) is cut to its last part (``.../registry.db``). The server's log keeps the full text.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

__all__ = ["public_text"]

# An absolute POSIX path (or a Windows one, C:\...) that starts a word: at the start, after a space, a quote,
# a bracket, '=' or ',' (not inside a URL path or a prompt name like support/reply), or after a sqlite:///.
_ABSOLUTE = re.compile(
    r"""(?:(?<=^)|(?<=[\s'"(\[=,<])|(?<=sqlite:///))"""
    r"""(?P<path>(?:/|[A-Za-z]:\\)(?=[^\s'"()\[\]<>:,;\\/])(?:[^\s'"()\[\]<>:,;\\/]+[\\/])*(?P<last>[^\s'"()\[\]<>:,;\\/]*))""",
    re.MULTILINE,
)


def _roots(root: Path) -> list[str]:
    """The ways the project root may be spelled in a message, longest first, each ending in a separator."""
    spellings = {str(root), os.path.abspath(root)}
    with contextlib.suppress(OSError):  # a root that cannot be resolved keeps its other spellings
        spellings.add(str(root.resolve()))
    return sorted({s.rstrip("/\\") + os.sep for s in spellings if s not in ("", "/")}, key=len, reverse=True)


def public_text(text: object, root: Path | None) -> str:
    """``text`` with paths under ``root`` relative to it and every other absolute path cut to its last part."""
    shown = "" if text is None else str(text)
    if root is not None:
        for prefix in _roots(root):
            shown = shown.replace(prefix, "")
    return _ABSOLUTE.sub(lambda match: f".../{match['last']}" if match["last"] else "...", shown)
