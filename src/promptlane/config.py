"""Settings: CLI flag > ``PROMPTLANE_*`` environment > ``[tool.promptlane]`` or ``promptlane.toml`` > defaults.

The project root is the nearest folder, from the working directory up, holding a ``promptlane.toml`` or a
``pyproject.toml`` with a ``[tool.promptlane]`` table; relative paths in the settings are relative to it.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ._model_strings import MODEL_PROVIDERS, RESERVED_PROVIDERS, OpenAIEndpoint, declare_providers
from ._redact import mask_credentials
from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # pyright: ignore[reportMissingImports]

__all__ = ["DEFAULT_REGISTRY", "Settings", "find_root", "load_settings"]

DEFAULT_REGISTRY = "sqlite:///.promptlane/registry.db"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Resolved promptlane settings."""

    root: Path = field(default_factory=Path.cwd)
    """The project root; relative paths below are resolved against it."""
    registry: str = DEFAULT_REGISTRY
    """Registry URL: ``sqlite:///path``, ``postgresql://...``, or a server, ``http(s)://host:8750``."""
    default_label: str = "production"
    """The label `Registry.get` resolves when none is given (``PROMPTLANE_LABEL``)."""
    protected_labels: tuple[str, ...] = ("production",)
    """Labels whose moves are gated on a passing eval run."""
    prompts: str = "prompts"
    """Folder of prompt files."""
    evals: str = "evals"
    """Folder of scenario files."""
    cache_ttl: float = 30.0
    """Seconds a label resolution is cached in-process by the SDK; 0 turns the cache off. From a server, a
    background refresh keeps cached labels within this age while the server answers."""
    token: str | None = None
    """API token for a registry server (``PROMPTLANE_TOKEN`` only: never read from a file)."""
    fetch_timeout: float = 2.0
    """Seconds an application's first ``get`` of a prompt waits for a registry server."""
    snapshots: str = ".promptlane/snapshots"
    """Folder where the SDK keeps the last good prompts from a server, to start while it is down."""
    render_max_chars: int = 1_000_000
    """Largest rendered output, in characters, before a render is refused."""
    render_max_steps: int = 100_000
    """Loop iterations plus calls a single render may take."""
    render_timeout: float = 2.0
    """Seconds a single render may take."""
    prompt_max_bytes: int = 262_144
    """Largest version a push accepts: its templates, messages, schemas and included prompts, in bytes of JSON."""
    server_max_body_bytes: int = 4_194_304
    """Largest request body a registry server accepts (413 beyond)."""
    author: str | None = None
    """Author recorded on pushes and label moves; defaults to git's user.name, then the login name."""
    recordings: str | None = None
    """Folder of recorded model responses for ``--cache on|replay`` (default: ``<evals>/recordings``)."""
    judge_model: str | None = None
    """Model of ``judge`` expectations that name none (default: the case's model)."""
    gate_model: str | dict[str, str] | None = None
    """The model a run must have used to open a protected label (default: the model the version declares);
    a table maps prompt names to models, ``"*"`` for the others."""
    gate_no_regression: tuple[str, ...] = ("production",)
    """Gated labels a version takes only if it is not significantly worse than the version the label serves, on
    the same scenarios and inputs (``[]``: none)."""
    gate_confidence: float = 0.95
    """The confidence at which the no-regression rule calls a drop significant (from 0.5 to 0.999999)."""
    require_approval: tuple[str, ...] = ()
    """Labels whose moves wait for a second person: a move by one identity (a token's name, or the local author)
    is pending until another approves it (``promptlane approve``), through the gate again."""
    gate_trusted_runners: tuple[str, ...] = ()
    """Who may make the runs that open a protected label: token names (a run recorded through a registry server
    is its token's) or authors (a run stored directly); empty: anyone's runs count."""
    dataset_roots: tuple[str, ...] = ()
    """Folders outside the project that scenario files may read datasets from (relative ones against the root);
    a dataset anywhere else outside the project is refused."""
    providers: dict[str, OpenAIEndpoint] = field(default_factory=dict)
    """OpenAI-compatible endpoints by name (``[tool.promptlane.providers.NAME]``): ``NAME:model-id`` is a model
    one of them serves. From the config file only."""

    def gate_model_for(self, prompt: str) -> str | None:
        """The gate model configured for ``prompt``, if any."""
        if isinstance(self.gate_model, dict):
            return self.gate_model.get(prompt, self.gate_model.get("*"))
        return self.gate_model

    source: str | None = None
    """The config file these settings were read from, if any."""

    def __repr__(self) -> str:
        # The registry URL without its password, the token never (both may be printed in logs and tracebacks).
        shown = (
            f"{f.name}={'***' if f.name == 'token' and self.token else getattr(self, f.name)!r}" for f in fields(self)
        )
        return mask_credentials(f"Settings({', '.join(shown)})")

    @property
    def prompts_dir(self) -> Path:
        """The prompts folder as an absolute path."""
        return self.root / self.prompts

    @property
    def evals_dir(self) -> Path:
        """The scenarios folder as an absolute path."""
        return self.root / self.evals

    @property
    def recordings_dir(self) -> Path:
        """The recordings folder as an absolute path."""
        return self.root / (self.recordings or f"{self.evals}/recordings")

    @property
    def snapshots_dir(self) -> Path:
        """The snapshot folder as an absolute path."""
        return self.root / self.snapshots

    @property
    def dataset_root_dirs(self) -> tuple[Path, ...]:
        """The folders a dataset may be in: the project root, then each of ``dataset_roots``, absolute and with
        symbolic links resolved."""
        return tuple((self.root / folder).resolve() for folder in (".", *self.dataset_roots))

    @property
    def registry_url(self) -> str:
        """The registry URL with a relative SQLite path made absolute against the root."""
        return resolve_registry_url(self.registry, self.root)


def resolve_registry_url(url: str, root: Path) -> str:
    """Make a relative ``sqlite:///`` path absolute against ``root``; other URLs are returned unchanged."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path = url[len(prefix) :]
    if not path or path.startswith(":memory:") or path.startswith("/"):
        return url
    return prefix + str((root / path).resolve())


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {value!r}")
    number = float(value)
    if number < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return number


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected an integer, got {value!r}")
    number = int(value)
    if number <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return number


def _as_str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _as_url(value: Any) -> str:
    text = _as_str(value)
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        # Not a URL, so no telling where a password in it would end: one written with '@' is not repeated.
        shown = "the value" if "@" in text else repr(text)
        raise ValueError(
            f"{shown} is not a registry URL: use sqlite:///PATH, postgresql://USER@HOST/DB or http://HOST:8750"
        )
    if text.count("@") > 1:
        # Drivers split user:pass@host at the first '@', and would print the rest of the password as the host.
        raise ValueError(
            f"{mask_credentials(text)} has more than one '@': write an '@' in a user name or password as %40"
        )
    return text


def _as_model(value: Any) -> str:
    from ._model_strings import check_model

    return check_model(_as_str(value))


def _as_model_or_table(value: Any) -> str | dict[str, str]:
    if isinstance(value, dict):
        if not all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in value.items()):
            raise ValueError("a table of prompt name = model string")
        for prompt, model in value.items():
            try:
                _as_model(model)
            except ValueError as exc:
                raise ValueError(f"{prompt}: {exc}") from None
        return dict(value)
    return _as_model(value)


def _as_confidence(value: Any) -> float:
    confidence = _as_float(value)
    if not 0.5 <= confidence <= 0.999999:
        raise ValueError(f"expected a confidence from 0.5 to 0.999999, got {value!r}")
    return confidence


def _as_names(what: str) -> Callable[[Any], tuple[str, ...]]:
    """A parser of a list of names (``what``: label names, ...); the environment gives it comma-separated."""

    def parse(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a list of {what}, got {value!r}")
        return tuple(v.strip() for v in value if v.strip())

    return parse


def _as_folders(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # the environment: separated as PATH is (':', or ';' on Windows)
        value = value.split(os.pathsep)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of folder paths, got {value!r}")
    return tuple(v.strip() for v in value if v.strip())


_PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROVIDER_KEYS = ("api_key_env", "base_url", "protocol")


def _parse_providers(table: Any, source: str) -> dict[str, OpenAIEndpoint]:
    """The ``providers`` table: OpenAI-compatible endpoints by name, each ``base_url``, ``api_key_env`` and
    ``protocol``; a mistake is a ConfigError naming the key (``providers.NAME.base_url``)."""
    if not isinstance(table, dict):
        raise ConfigError("a table of [providers.NAME] tables", source=source, key="providers")
    endpoints: dict[str, OpenAIEndpoint] = {}
    for name, entry in table.items():
        key = f"providers.{name}"
        if not _PROVIDER_NAME.match(name):
            message = "a provider name is lowercase letters, digits, '-', '_' and '.', starting with a letter"
            raise ConfigError(message, source=source, key=key)
        if name in MODEL_PROVIDERS or name in RESERVED_PROVIDERS:
            message = f"{name!r} is a built-in provider: give the endpoint a name of its own (like 'local')"
            raise ConfigError(message, source=source, key=key)
        if not isinstance(entry, dict):
            raise ConfigError("expected a table with base_url, api_key_env and protocol", source=source, key=key)
        for field_name in entry:
            if field_name not in _PROVIDER_KEYS:
                hint = f"known keys: {', '.join(_PROVIDER_KEYS)}"
                raise ConfigError(f"unknown key; {hint}", source=source, key=f"{key}.{field_name}")
        try:
            base_url = _as_str(entry.get("base_url"))
            if not re.match(r"^https?://[^/\s]+", base_url):
                raise ValueError(f"{mask_credentials(base_url)!r} is not an http:// or https:// URL")
        except ValueError as exc:
            raise ConfigError(str(exc), source=source, key=f"{key}.base_url") from None
        api_key_env = entry.get("api_key_env")
        if api_key_env is not None and not (isinstance(api_key_env, str) and _ENV_VAR.match(api_key_env)):
            message = f"expected the name of an environment variable (like OPENROUTER_API_KEY), got {api_key_env!r}"
            raise ConfigError(message, source=source, key=f"{key}.api_key_env")
        protocol = entry.get("protocol", "chat")
        if protocol not in ("chat", "responses"):
            message = f"{protocol!r} is not one of chat (Chat Completions), responses (OpenAI's Responses API)"
            raise ConfigError(message, source=source, key=f"{key}.protocol")
        endpoints[name] = OpenAIEndpoint(name=name, base_url=base_url, api_key_env=api_key_env, protocol=protocol)
    return endpoints


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "registry": _as_url,
    "default_label": _as_str,
    "protected_labels": _as_names("label names"),
    "prompts": _as_str,
    "evals": _as_str,
    "cache_ttl": _as_float,
    "render_max_chars": _as_int,
    "render_max_steps": _as_int,
    "render_timeout": _as_float,
    "prompt_max_bytes": _as_int,
    "server_max_body_bytes": _as_int,
    "author": _as_str,
    "recordings": _as_str,
    "judge_model": _as_model,
    "gate_model": _as_model_or_table,
    "token": _as_str,
    "fetch_timeout": _as_float,
    "snapshots": _as_str,
    "dataset_roots": _as_folders,
    "gate_trusted_runners": _as_names("token names or authors"),
    "gate_no_regression": _as_names("label names"),
    "require_approval": _as_names("label names"),
    "gate_confidence": _as_confidence,
}
_SECRETS = frozenset({"token"})
"""Keys read from the environment (or flags), never from a config file that may be committed."""
# Environment variables are named after the key, except the label, which reads better short.
_ENV_NAMES = {key: f"PROMPTLANE_{key.upper()}" for key in _PARSERS} | {"default_label": "PROMPTLANE_LABEL"}


def _parse(key: str, value: Any, source: str) -> Any:
    try:
        return _PARSERS[key](value)
    except ValueError as exc:
        raise ConfigError(str(exc), source=source, key=key) from None


def find_root(start: Path | None = None) -> tuple[Path, Path | None, dict[str, Any]]:
    """Find the project root from ``start`` upward.

    Returns:
        The root folder, the config file found (or None), and its promptlane table (empty without one).
    """
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        own = folder / "promptlane.toml"
        if own.is_file():
            return folder, own, _read_toml(own)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("promptlane")
            if table is not None:
                if not isinstance(table, dict):
                    raise ConfigError("[tool.promptlane] must be a table", source=str(pyproject))
                return folder, pyproject, table
    return start, None, {}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", source=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=str(path)) from None


def load_settings(
    start: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load settings for the project around ``start`` (default: the working directory).

    Args:
        start: Folder to search upward from for the project root.
        overrides: Values that win over everything (CLI flags); None values are ignored.
        environ: The environment to read ``PROMPTLANE_*`` from (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    root, config_path, table = find_root(start)
    source = str(config_path) if config_path else None
    values: dict[str, Any] = {}
    # Endpoints first: the model strings below (and every prompt and scenario file read after) may name them.
    providers = _parse_providers(table.get("providers", {}), source or "config")
    declare_providers(providers)
    for key, value in table.items():
        if key == "providers":
            continue
        if key not in _PARSERS:
            known = sorted([*_PARSERS, "providers"])
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"
            raise ConfigError(f"unknown key{hint}", source=source, key=key)
        if key in _SECRETS:
            message = f"a {key} does not belong in a file that may be committed: set {_ENV_NAMES[key]}"
            raise ConfigError(message, source=source, key=key)
        values[key] = _parse(key, value, source or "config")
    for key, env_name in _ENV_NAMES.items():
        if environ.get(env_name):
            values[key] = _parse(key, environ[env_name], env_name)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _parse(key, value, f"--{key.replace('_', '-')}")
    return Settings(root=root, source=source, providers=providers, **values)


def with_overrides(settings: Settings, **values: Any) -> Settings:
    """A copy of ``settings`` with the non-None ``values`` applied (validated like CLI flags)."""
    known = {f.name for f in fields(Settings)}
    parsed = {
        key: _parse(key, value, f"--{key}") if key in _PARSERS else value
        for key, value in values.items()
        if value is not None and key in known
    }
    return replace(settings, **parsed)
