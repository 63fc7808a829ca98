"""The Registry: one object for applications (``get``) and for authoring (push, labels, history).

The application path (``get`` then ``render``) keeps versions in-process forever (they are immutable) and
label resolutions for ``cache_ttl`` seconds, and imports neither pydantic, SQLAlchemy nor pydantic-ai until
it must: the store is opened on the first cache miss.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._budget import RenderLimits
from .._redact import mask_credentials
from ..config import Settings, load_settings, resolve_registry_url
from ..errors import ConfigError, NotFoundError, PromptlaneError, RegistryError, RegistryUnavailableError
from ..otel import record_resolution, resolution_span, resolution_tracer
from ._author import default_author
from .labels import LATEST
from .moves import LabelMoves
from .rollout import choose_version
from .store import LabelEvent, LabelState, PromptSummary, PromptVersion, Store

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

    from ..spec import PromptFile, PromptSpec
    from .http import HttpStore
    from .prompt import Prompt
    from .remote import RemoteCache


__all__ = ["PushResult", "Registry", "parse_ref"]

log = logging.getLogger("promptlane")


@dataclass(frozen=True)
class PushResult:
    """The outcome of pushing one prompt."""

    version: PromptVersion
    """The stored version (new, or the existing one with identical content)."""
    created: bool
    """False when the content was already stored."""
    path: Path | None = None
    """The file it came from."""
    latest: int | None = None
    """The newest version number of the prompt after the push."""

    @property
    def name(self) -> str:
        """The prompt's name."""
        return self.version.name


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``name``, ``name@3`` or ``name:production`` -> (name, version, label)."""
    if "@" in ref:
        name, _, number = ref.rpartition("@")
        if not number.isdigit() or int(number) < 1:
            raise RegistryError(f"invalid reference {ref!r}: write NAME@VERSION with a version number, like {name}@3")
        return name, int(number), None
    if ":" in ref:
        name, _, label = ref.rpartition(":")
        return name, None, label
    return ref, None, None


class Registry(LabelMoves):
    """Prompts, versions and labels, from a local SQLite file, a PostgreSQL database or a registry server.

    Args:
        url: Registry URL; defaults to the configured one (``PROMPTLANE_REGISTRY``, ``[tool.promptlane]``),
            else ``sqlite:///.promptlane/registry.db`` under the project root. ``http(s)://host:8750`` is a
            ``promptlane serve`` server: prompts are then cached in memory and on disk, refreshed in the
            background, and ``get`` never waits on the network for a prompt it has.
        token: API token for a server (default: ``PROMPTLANE_TOKEN``).
        settings: Settings to use instead of loading them from the environment and config files.
        cache_ttl: Seconds a label resolution is cached (0 = always ask the store).
        default_label: The label ``get`` resolves when given none.
        tracer_provider: Where ``get`` records its ``get_prompt`` spans; default: the global TracerProvider
            the application set (none set: no spans).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        settings: Settings | None = None,
        cache_ttl: float | None = None,
        default_label: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.url = resolve_registry_url(url, self.settings.root) if url else self.settings.registry_url
        self._token = token or self.settings.token
        self._is_remote = self.url.startswith(("http://", "https://"))
        self._cache: RemoteCache | None = None
        self.cache_ttl = self.settings.cache_ttl if cache_ttl is None else cache_ttl
        self.default_label = default_label or self.settings.default_label
        self.limits = RenderLimits(
            max_chars=self.settings.render_max_chars,
            max_steps=self.settings.render_max_steps,
            timeout=self.settings.render_timeout,
            max_prompt_bytes=self.settings.prompt_max_bytes,
        )
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._versions: dict[tuple[str, int], PromptVersion] = {}
        self._targets: dict[tuple[str, str], tuple[float, Mapping[int, int]]] = {}
        self._fallbacks: dict[tuple[str, str], PromptVersion] = {}
        # Prompt objects are immutable views of immutable versions: one per (name, version, label, source).
        self._prompts: dict[tuple[str, int | None, str | None, str], Prompt] = {}
        # (name, label) -> (when the label's cached resolution expires, the Prompt a get of it answers): for a
        # label on one version, what a cached get comes down to, in one lookup.
        self._answers: dict[tuple[str, str], tuple[float, Prompt]] = {}
        self._warned: set[str] = set()
        self._tracer = resolution_tracer(tracer_provider) if tracer_provider is not None else None

    # --- store --------------------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The underlying store, opened (and migrated) on first use."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    try:
                        self._store = self._open_store()
                    except (ValueError, TypeError) as exc:  # a port that is not a number, an unclosed [...
                        raise _malformed(self.url, exc) from None
                    except Exception as exc:
                        if type(exc).__name__ in ("ArgumentError", "InvalidURL"):  # SQLAlchemy's, httpx's
                            raise _malformed(self.url, exc) from None
                        raise
        return self._store

    def _open_store(self) -> Store:
        if self._is_remote:
            from .http import HttpStore

            return HttpStore(self.url, token=self._token, timeout=self.settings.fetch_timeout)  # type: ignore[return-value]
        from .sqlite_store import open_sqlite_store

        # An existing local file with a current schema: reads, pushes and runs without importing SQLAlchemy.
        local = open_sqlite_store(self.url)
        if local is not None:
            return local  # type: ignore[return-value]
        from .sql import SQLStore

        return SQLStore(self.url)

    @property
    def remote(self) -> HttpStore | None:
        """The server, when this registry is one (``http(s)://``)."""
        return self.store if self._is_remote else None  # type: ignore[return-value]

    @property
    def _remote_cache(self) -> RemoteCache:
        if self._cache is None:
            remote = self.remote  # opened before taking the lock: opening the store takes it too
            assert remote is not None
            with self._store_lock:
                if self._cache is None:
                    from .remote import RemoteCache, snapshot_file

                    self._cache = RemoteCache(
                        remote,
                        ttl=self.cache_ttl,
                        snapshot=snapshot_file(self.settings.snapshots_dir, self.url),
                    )
        return self._cache

    def close(self) -> None:
        """Stop the background refresh (a server's) and close the store's connections."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __repr__(self) -> str:
        return f"Registry({mask_credentials(self.url)!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the application path ----------------------------------------------------------------------------

    def get(
        self,
        name: str,
        *,
        label: str | None = None,
        version: int | None = None,
        targeting_key: str | None = None,
        fallback: str | Mapping[str, Any] | PromptSpec | None = None,
    ) -> Prompt:
        """Resolve a prompt by label (default: the configured default label) or by version.

        Args:
            name: The prompt's name (``support/reply``).
            label: A label, or ``latest``; ignored when ``version`` is given.
            version: A version number.
            targeting_key: Makes a rollout's choice sticky for this key (a user or session id).
            fallback: A template string or spec used when the prompt or the registry is unavailable.

        Raises:
            NotFoundError: the prompt, version or label does not exist (and no fallback was given).
            RegistryUnavailableError: the store cannot be reached (and no fallback was given).
        """
        if version is not None and label is not None:
            raise ValueError("give a label or a version, not both")
        resolved_label = None if version is not None else (label or self.default_label)
        tracer = self._tracer or resolution_tracer()
        if tracer is not None:
            return self._traced_get(tracer, name, resolved_label, version, targeting_key, fallback)
        try:  # no tracing set up: the hot path makes no span
            if self._is_remote:
                return self._get_remote(name, resolved_label, version, targeting_key)
            return self._get_local(name, resolved_label, version, targeting_key)
        except PromptlaneError as exc:
            return self._serve_fallback(name, resolved_label, fallback, exc)

    def _traced_get(
        self,
        tracer: Tracer,
        name: str,
        label: str | None,
        version: int | None,
        targeting_key: str | None,
        fallback: str | Mapping[str, Any] | PromptSpec | None,
    ) -> Prompt:
        """``get`` inside its ``get_prompt`` span."""
        with resolution_span(tracer, name, label) as span:
            fallback_reason = None
            try:
                if self._is_remote:
                    prompt = self._get_remote(name, label, version, targeting_key)
                else:
                    prompt = self._get_local(name, label, version, targeting_key)
            except PromptlaneError as exc:
                prompt = self._serve_fallback(name, label, fallback, exc)
                fallback_reason = exc
            record_resolution(span, prompt.version, prompt.source, fallback_reason)
        return prompt

    def _serve_fallback(
        self,
        name: str,
        label: str | None,
        fallback: str | Mapping[str, Any] | PromptSpec | None,
        exc: PromptlaneError,
    ) -> Prompt:
        """The fallback for a get that failed with ``exc``; ``exc`` again when there is none, or when the failure
        is not one a fallback stands in for."""
        # From a server, whatever it answered (missing, down, refused, an error of its own, a broken template)
        # is served the fallback; from a local store, what is missing or unreachable.
        if fallback is None or not (self._is_remote or isinstance(exc, (NotFoundError, RegistryUnavailableError))):
            raise exc
        self._warn_once(name, exc)
        return _new_prompt(self._fallback(name, fallback), label=label, source="fallback", limits=self.limits)

    def _get_local(self, name: str, label: str | None, version: int | None, targeting_key: str | None) -> Prompt:
        if version is not None:
            record, fetched = self._version(name, version)
        else:
            assert label is not None
            answer = self._answers.get((name, label))
            if answer is not None and answer[0] > time.monotonic():
                return answer[1]
            target, fetched = self._target(name, label)
            record, fetched_version = self._version(name, choose_version(target, name, label, targeting_key))
            fetched = fetched or fetched_version
        source = "registry" if fetched else "cache"
        key = (name, record.number, label, source)
        prompt = self._prompts.get(key)
        if prompt is None:
            prompt = self._prompts[key] = _new_prompt(record, label=label, source=source, limits=self.limits)
        if label is not None and version is None and not fetched:
            cached = self._targets.get((name, label))
            if cached is not None and len(cached[1]) == 1:  # a rollout's answer depends on the targeting key
                self._answers[(name, label)] = (cached[0], prompt)
        return prompt

    def _get_remote(self, name: str, label: str | None, version: int | None, targeting_key: str | None) -> Prompt:
        cache = self._remote_cache
        if version is not None:
            record, origin = cache.version(name, version)
            source = origin or "cache"
        else:
            assert label is not None
            target, source = cache.target(name, label)
            record, origin = cache.version(name, choose_version(target, name, label, targeting_key))
            source = "disk" if origin == "disk" else source
        key = (name, record.number, label, source)
        prompt = self._prompts.get(key)
        if prompt is None:
            # Compiled inside get's try: a server can send a version that hashes right and does not compile.
            prompt = self._prompts[key] = _new_prompt(record, label=label, source=source, limits=self.limits)
        return prompt

    def prefetch(self, label: str | None = None) -> int:
        """Load every prompt at ``label`` (default: the default label) from a server in one request, so the
        first ``get`` of each is answered from memory; the number of prompts loaded. While the server is down,
        the disk snapshot answers. A local registry needs no warming: returns 0."""
        if not self._is_remote:
            return 0
        return self._remote_cache.prefetch(label or self.default_label)

    def _version(self, name: str, number: int) -> tuple[PromptVersion, bool]:
        record = self._versions.get((name, number))
        if record is not None:
            return record, False
        record = self.store.get_version(name, number)
        self._versions[(name, number)] = record
        return record, True

    def _target(self, name: str, label: str) -> tuple[Mapping[int, int], bool]:
        key = (name, label)
        cached = self._targets.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1], False
        if label == LATEST:
            target: Mapping[int, int] = {self.store.latest_number(name): 100}
        else:
            target = self.store.get_label(name, label).target
        if self.cache_ttl > 0:
            self._targets[key] = (now + self.cache_ttl, target)
        return target, True

    def _fallback(self, name: str, fallback: str | Mapping[str, Any] | PromptSpec) -> PromptVersion:
        from ..spec import PromptSpec, canonical_json

        key = (name, fallback if isinstance(fallback, str) else canonical_json(_spec_data(fallback)))
        record = self._fallbacks.get(key)
        if record is None:
            from .push import freeze

            spec = PromptSpec(template=fallback) if isinstance(fallback, str) else _as_spec(name, fallback)

            def no_includes(included: str) -> PromptVersion:
                raise NotFoundError(f"a fallback cannot include other prompts ({included!r})")

            record = freeze(name, spec, no_includes, limits=self.limits).draft()
            self._fallbacks[key] = record
        return record

    def _warn_once(self, name: str, exc: Exception) -> None:
        key = f"{name}:{type(exc).__name__}"
        if key not in self._warned:
            self._warned.add(key)
            log.warning("promptlane: serving the fallback for %s: %s", name, exc)

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached label resolutions (of one prompt, or all); the next ``get`` asks the store."""
        for key in [k for k in self._targets if name is None or k[0] == name]:
            self._targets.pop(key, None)
        for key in [k for k in self._answers if name is None or k[0] == name]:
            self._answers.pop(key, None)
        if self._cache is not None:
            self._cache.invalidate(name)

    # --- reading -----------------------------------------------------------------------------------------

    def list_prompts(self) -> list[PromptSummary]:
        """Every prompt with its newest version and labels."""
        return self.store.list_prompts()

    def versions(self, name: str) -> list[PromptVersion]:
        """Every version of ``name``, oldest first."""
        return self.store.list_versions(name)

    def version(self, name: str, number: int) -> PromptVersion:
        """One version."""
        return self._version(name, number)[0]

    def labels(self, name: str) -> list[LabelState]:
        """The labels set on ``name``."""
        return self.store.list_labels(name)

    def history(self, name: str, label: str | None = None) -> Sequence[LabelEvent]:
        """The label audit log of ``name`` (one label or all), oldest first."""
        return self.store.label_events(name, label)

    def resolve(self, ref: str) -> PromptVersion:
        """The version a reference names: ``name`` (latest), ``name@3`` or ``name:label`` (a rollout's
        heaviest version)."""
        name, number, label = parse_ref(ref)
        if number is None:
            target = self._target(name, label or LATEST)[0]
            number = max(target, key=lambda v: (target[v], v))
        return self.version(name, number)

    # --- authoring ---------------------------------------------------------------------------------------

    def push(
        self,
        paths: Iterable[Path | str] | None = None,
        *,
        message: str | None = None,
        author: str | None = None,
    ) -> list[PushResult]:
        """Push prompt files (default: the configured prompts folder); each becomes a version unless unchanged.

        Every file is checked and frozen before anything is stored, so one bad file stores nothing.

        Raises:
            SpecError: a file is invalid (naming file, line and key).
            TemplateError: a template does not parse or compile (naming file and line).
        """
        from ..spec import discover_prompt_files, load_prompt_file
        from .push import push_order

        roots = [Path(p) for p in paths] if paths else [self.settings.prompts_dir]
        files = [load_prompt_file(path, self.settings.prompts_dir) for path in discover_prompt_files(roots)]
        if not files:
            raise RegistryError(f"no prompt files (*.yaml) in {', '.join(map(str, roots))}")
        ordered = push_order(files, limits=self.limits)

        pushed = self._push_batch([(file.name, file.spec, file) for file in ordered], message=message, author=author)
        return [pushed[file.name] for file in ordered]

    def push_specs(
        self,
        specs: Sequence[tuple[str, PromptSpec | Mapping[str, Any]]],
        *,
        message: str | None = None,
        author: str | None = None,
    ) -> list[PushResult]:
        """Push several specs given as data, in the order given (a prompt after the ones of the batch it
        includes), all or nothing: one transaction on a SQL store, one request to a server.

        Raises:
            SpecError, IncludeError, TemplateError: a spec is invalid (nothing is stored).
        """
        checked = [(name, _as_spec(name, spec), None) for name, spec in specs]
        pushed = self._push_batch(checked, message=message, author=author)
        return [pushed[name] for name, _, _ in checked]

    def _push_batch(
        self,
        items: Sequence[tuple[str, PromptSpec, PromptFile | None]],
        *,
        message: str | None,
        author: str | None,
    ) -> dict[str, PushResult]:
        """Push specs in order (a prompt after the ones of the batch it includes), all or nothing.

        Pass 1 checks every spec, resolving includes of the batch against its own frozen drafts, so that one bad
        spec stores nothing; pass 2 stores them, freezing each against the versions just stored, in one
        transaction (or one request to a server).
        """
        from .._unicode import check_whole
        from .push import freeze, store_batch

        check_whole(message, "message")
        check_whole(author, "author")
        drafts: dict[str, PromptVersion] = {}
        for name, spec, file in items:
            drafts[name] = freeze(
                name, spec, lambda n: drafts[n] if n in drafts else self._newest(n), file=file, limits=self.limits
            ).draft()
        author = author or self.settings.author or default_author()
        remote = self.remote
        if remote is not None:  # a server: the whole batch in one request, stored in one transaction there
            specs = [(name, spec.canonical()) for name, spec, _ in items]
            try:
                answers = remote.push_batch(specs, message=message, author=author)
            finally:
                self.invalidate()
            return {
                name: PushResult(version=record, created=created, path=file.path if file else None, latest=latest)
                for (name, _, file), (record, created, latest) in zip(items, answers, strict=True)
            }
        stored: dict[str, PromptVersion] = {}
        results: dict[str, PushResult] = {}

        def store_one(item: tuple[str, PromptSpec, PromptFile | None]) -> PromptVersion:
            name, spec, file = item
            frozen = freeze(
                name, spec, lambda n: stored[n] if n in stored else self._newest(n), file=file, limits=self.limits
            )
            record, created = self.store.push_version(
                name, frozen.spec, frozen.content_hash, message=message, author=author
            )
            stored[name] = record
            latest = record.number if created else self.store.latest_number(name)
            results[name] = PushResult(version=record, created=created, path=file.path if file else None, latest=latest)
            return record

        try:
            store_batch(self.store, items, store_one)
        finally:
            self.invalidate()
        return results

    def push_spec(
        self,
        name: str,
        spec: PromptSpec | Mapping[str, Any],
        *,
        message: str | None = None,
        author: str | None = None,
    ) -> PushResult:
        """Push one spec given as data (a PromptSpec or its mapping)."""
        from .push import freeze

        frozen = freeze(name, _as_spec(name, spec), self._newest, limits=self.limits)
        record, created = self.store.push_version(
            name,
            frozen.spec,
            frozen.content_hash,
            message=message,
            author=author or self.settings.author or default_author(),
        )
        self.invalidate(name)
        return PushResult(version=record, created=created)

    def draft(self, name: str, spec: PromptSpec | Mapping[str, Any]) -> Prompt:
        """``spec`` as it would be if pushed now (includes at their newest versions), without storing it: for
        previews. Its ``version`` is None.

        Raises:
            SpecError: the spec is invalid. TemplateError: a template does not compile.
        """
        from .push import freeze

        record = freeze(name, _as_spec(name, spec), self._newest, limits=self.limits).draft()
        return _new_prompt(record, label=None, source="draft", limits=self.limits)

    def push_frozen(
        self,
        name: str,
        spec: Mapping[str, Any],
        content_hash: str,
        *,
        message: str | None = None,
        author: str | None = None,
    ) -> PushResult:
        """Store content frozen elsewhere (a client's ``push`` to a server), once it checks out: freezing it
        again here, against the versions it says it includes, must give the same content.

        Raises:
            SpecError: the content is not valid, or freezing it gives other content (IncludeError: an included
                version does not exist here).
        """
        from .._unicode import check_whole
        from ..errors import IncludeError, SpecError
        from .push import freeze

        check_whole(message, "message")
        check_whole(author, "author")
        includes: Mapping[str, Any] = spec.get("includes") or {}
        if not isinstance(includes, Mapping):
            raise SpecError(f"{name}: `includes` must map prompt names to the versions frozen")

        def pinned(included: str) -> PromptVersion:
            entry = includes.get(included)
            if not isinstance(entry, Mapping) or not isinstance(entry.get("version"), int):
                raise IncludeError(f"{name}: the content includes {included!r} without saying which version")
            try:
                return self.version(included, entry["version"])
            except NotFoundError as exc:
                number = entry["version"]
                raise IncludeError(f"{name} includes {included} v{number}, which is not here: {exc}") from None

        written = {key: value for key, value in spec.items() if key != "includes"}
        frozen = freeze(name, _as_spec(name, written), pinned, limits=self.limits)
        if frozen.content_hash != content_hash:
            raise SpecError(
                f"{name}: the content does not freeze to itself here (hash {content_hash[:12]}, frozen again "
                f"{frozen.content_hash[:12]}): an included version differs, or the client's promptlane freezes "
                "differently; push the spec as written instead (without content_hash)"
            )
        record, created = self.store.push_version(
            name,
            frozen.spec,
            frozen.content_hash,
            message=message,
            author=author or self.settings.author or default_author(),
        )
        self.invalidate(name)
        return PushResult(version=record, created=created)

    def _newest(self, name: str) -> PromptVersion:
        return self.store.get_version(name, self.store.latest_number(name))


def _spec_data(spec: Mapping[str, Any] | PromptSpec) -> Any:
    return spec if isinstance(spec, Mapping) else spec.model_dump(mode="json", exclude_unset=True)


def _malformed(url: str, exc: Exception) -> ConfigError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ConfigError(f"the registry URL {mask_credentials(url)} cannot be used: {mask_credentials(reason)}")


def _as_spec(name: str, spec: Mapping[str, Any] | PromptSpec) -> PromptSpec:
    from pydantic import ValidationError

    from ..errors import SpecError
    from ..spec import PromptSpec, check_prompt_name

    check_prompt_name(name)
    if isinstance(spec, PromptSpec):
        return spec
    try:
        return PromptSpec.model_validate(dict(spec))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise SpecError(f"{name}: invalid spec: {first['msg']}", key=key or None) from None


def _new_prompt(record: PromptVersion, *, label: str | None, source: str, limits: RenderLimits) -> Prompt:
    """A Prompt; its module (templates, Jinja2) is imported on the first, so commands that only list or label
    prompts never import it."""
    from .prompt import Prompt

    return Prompt(record, label=label, source=source, limits=limits)
