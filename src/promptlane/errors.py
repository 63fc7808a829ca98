"""Every error promptlane raises on purpose, each carrying the context a user needs to fix it.

The tree::

    PromptlaneError
    ├── ConfigError                  bad [tool.promptlane] / promptlane.toml / PROMPTLANE_* value
    ├── SpecError                    a prompt or scenario file: YAML, unknown key, wrong type (file, line, key)
    │   └── IncludeError             an include that is missing, dynamic, not a text prompt, or a cycle
    ├── TemplateError                a template, at push or render time (prompt, version, template, line)
    │   ├── TemplateSyntaxError
    │   ├── TemplateSecurityError    Python internals, or resource abuse (size, loops, recursion, time)
    │   └── TemplateRenderError      anything else raised while rendering (undefined attribute, type error)
    ├── VariableError                a render variable: missing, unknown, wrong type or enum (prompt, variable)
    └── RegistryError
        ├── NotFoundError            a prompt, version or label that does not exist
        ├── LabelError               a label move that is not allowed (reserved name, bad rollout weights)
        └── RegistryUnavailableError the store or server cannot be reached or is locked

Lower-level errors (YAML, Jinja2, SQLAlchemy, OS) are mapped to one of these at the boundary, with the
original kept as ``__cause__``.

No message carries a password: a URL's credentials (``postgresql://app:secret@db``) are masked when the error
is made (``postgresql://app:***@db``), so neither the CLI, a log line nor a server's answer can print them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ApprovalError",
    "AuthError",
    "ConfigError",
    "IncludeError",
    "LabelError",
    "MissingExtraError",
    "NotFoundError",
    "PromptlaneError",
    "RegistryError",
    "RegistryUnavailableError",
    "SpecError",
    "TemplateError",
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TokenError",
    "VariableError",
]


class PromptlaneError(Exception):
    """Base class of every error promptlane raises on purpose; its message never holds a URL's password."""

    def __init__(self, *args: object) -> None:
        from ._redact import mask_credentials  # here, not at the top: `promptlane --help` imports this module

        super().__init__(*(mask_credentials(arg) if isinstance(arg, str) else arg for arg in args))


class ConfigError(PromptlaneError):
    """A configuration value is invalid; names the source (file or environment variable) and the key."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        self.source = source
        """Where the value came from: a file path or an environment variable name."""
        self.key = key
        """The configuration key."""
        where = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


def _location(path: Path | str | None, line: int | None) -> str:
    if path is None:
        return ""
    return f"{path}:{line}" if line else str(path)


class MissingExtraError(ConfigError, ImportError):
    """A command or import needs one of promptlane's extras that is not installed; the message ends with the
    ``pip install`` line. An ImportError too, so code that imports optional parts can catch it as one."""

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(message)
        self.extra = extra
        """The extra to install (``eval``, ``server``, ``postgres``, ``pydantic-evals``)."""


class SpecError(PromptlaneError):
    """A prompt or scenario file is invalid: bad YAML, an unknown key, a wrong type, an undeclared variable."""

    def __init__(
        self, message: str, *, path: Path | str | None = None, line: int | None = None, key: str | None = None
    ) -> None:
        self.path = path
        """The file that holds the error, when it came from a file."""
        self.line = line
        """1-based line in that file."""
        self.key = key
        """Dotted path of the offending key (``messages.0.content``)."""
        self.reason = message
        """The message without its location."""
        prefix = ": ".join(part for part in (_location(path, line), key) if part)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class IncludeError(SpecError):
    """An ``{% include %}`` that cannot be resolved: missing prompt, dynamic name, chat prompt, or a cycle."""


class TemplateError(PromptlaneError):
    """A template failed to compile or render."""

    def __init__(
        self,
        message: str,
        *,
        prompt: str | None = None,
        version: int | None = None,
        template: str | None = None,
        path: Path | str | None = None,
        line: int | None = None,
    ) -> None:
        self.prompt = prompt
        """The prompt name."""
        self.version = version
        """The version number, or None for files on disk and fallbacks."""
        self.template = template
        """Which template of the prompt: ``template``, ``messages[1]``, or an included prompt's name."""
        self.path = path
        """The source file, when known."""
        self.line = line
        """1-based line: in ``path`` when it is known, else inside the template."""
        self.reason = message
        """The message without its location."""
        super().__init__(f"{self.where}: {message}" if self.where else message)

    @property
    def where(self) -> str:
        """``reply.yaml:12 (support/reply@3 messages[0])``-style location."""
        what = self.prompt or ""
        if what and self.version is not None:
            what += f"@{self.version}"
        if self.template:
            what = f"{what} {self.template}".strip()
        if self.path is not None:
            loc = _location(self.path, self.line)
            return f"{loc} ({what})" if what else loc
        if self.line:
            what = f"{what} line {self.line}".strip()
        return what


class TemplateSyntaxError(TemplateError):
    """A template does not parse."""


class TemplateSecurityError(TemplateError):
    """A template reached for Python internals or tried to exhaust the process (size, loops, recursion, time)."""


class TemplateRenderError(TemplateError):
    """A template raised while rendering: an undefined attribute, a type error, a division by zero."""


class VariableError(PromptlaneError):
    """A render variable is missing, unknown, of the wrong type, or not one of its enum values."""

    def __init__(
        self,
        message: str,
        *,
        prompt: str | None = None,
        version: int | None = None,
        variable: str | None = None,
    ) -> None:
        self.prompt = prompt
        """The prompt name."""
        self.version = version
        """The version number, or None for files on disk and fallbacks."""
        self.variable = variable
        """The variable, dotted for nested values (``order.items[2].sku``)."""
        self.reason = message
        """The message without its location."""
        who = prompt or ""
        if who and version is not None:
            who += f"@{version}"
        parts = [part for part in (who, f"variable {variable!r}" if variable else "") if part]
        super().__init__(f"{', '.join(parts)}: {message}" if parts else message)


class RegistryError(PromptlaneError):
    """A registry operation failed."""


class NotFoundError(RegistryError):
    """A prompt, version or label does not exist."""


class LabelError(RegistryError):
    """A label move is not allowed: a reserved name, bad rollout weights, nothing to roll back to."""


class ApprovalError(LabelError):
    """A move that waits for a second person cannot be approved: its requester is approving it, the label moved
    since it was asked for, or the request reviewed is not the one pending."""


class RegistryUnavailableError(RegistryError):
    """The registry's store or server cannot be reached, or stayed locked past the timeout."""


class AuthError(RegistryError):
    """The registry server refused the call: no token or a bad one (401), or a scope that does not allow it (403)."""

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status: 401 (who are you?) or 403 (not allowed)."""


class TokenError(RegistryError):
    """An API token cannot be created or revoked: a bad name or scope, a name in use, an unknown token."""
