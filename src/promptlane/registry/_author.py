"""Who is acting, when nobody says: recorded on pushes, label moves and runs."""

from __future__ import annotations

import getpass
import shutil
import subprocess

__all__ = ["default_author"]

_author_cache: list[str] = []


def default_author() -> str:
    """git's user.name, else the login name."""
    if not _author_cache:
        name = ""
        if shutil.which("git"):
            try:
                result = subprocess.run(
                    ["git", "config", "user.name"], capture_output=True, text=True, timeout=2, check=False
                )
                name = result.stdout.strip()
            except (OSError, subprocess.SubprocessError):
                name = ""
        if not name:
            try:
                name = getpass.getuser()
            except Exception:
                name = "unknown"
        _author_cache.append(name)
    return _author_cache[0]
