"""Passwords out of anything promptlane prints: the one place a URL's credentials are masked.

A registry URL may carry a password (``postgresql://app:secret@db/prompts``, ``https://user:token@host``).
Every message that can name the registry goes through :func:`mask_credentials`: error texts (the base
:class:`~promptlane.errors.PromptlaneError` masks its message, so every error does), log lines, ``repr()``
of the registry and its settings, and the lines the CLI prints.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "mask_credentials"]

MASK = "***"
"""What a password is replaced with (as SQLAlchemy's ``hide_password`` does)."""

# scheme://user:password@ - the password runs to the last '@' before whitespace, so one holding an
# unencoded '@', '/' or ':' is masked whole; masking too much of a malformed URL is the safe mistake.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*):\S*@")


def mask_credentials(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``; the user name is kept.

    >>> mask_credentials("registry postgresql://app:s3cret@db:5432/prompts is unavailable")
    'registry postgresql://app:***@db:5432/prompts is unavailable'
    """
    if "://" not in text:  # the common case, checked first: errors are built on hot paths too
        return text
    return _USERINFO.sub(rf"\g<head>:{MASK}@", text)
