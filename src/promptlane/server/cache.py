"""What the server keeps in memory for the application path: resolve and snapshot answers, ready to send.

Versions are immutable, so their JSON is kept for good (up to a bound). Label targets are kept ``ttl`` seconds:
server processes are stateless and share the database, so a label moved through another process is served
within ``ttl``; a move through this process clears its entries at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry
from ..registry.labels import LATEST
from ..registry.rollout import choose_version
from ..registry.wire import target_out, version_to_json
from ._http import dumps, etag_of

__all__ = ["Answer", "ServerCache"]

_VERSION_LIMIT = 20_000


@dataclass(frozen=True)
class Answer:
    """A response body ready to send, and its ETag."""

    body: bytes
    etag: str


@dataclass
class _Label:
    expires: float
    target: dict[int, int]
    answers: dict[int, Answer] = field(default_factory=dict)  # chosen version -> resolve answer


class ServerCache:
    """Ready answers for resolve, snapshot and version reads."""

    def __init__(self, registry: Registry, *, ttl: float = 1.0) -> None:
        self.registry = registry
        self.ttl = ttl
        self._versions: dict[tuple[str, int], tuple[dict[str, Any], Answer]] = {}
        self._labels: dict[tuple[str, str], _Label] = {}
        self._snapshots: dict[str, tuple[float, Answer]] = {}
        self._lock = threading.Lock()
        self._generation = 0
        """Counts invalidations: an answer read from the database before one is not kept (it may predate a
        move this process just confirmed)."""

    # --- without the database (the hot path, on the event loop) -------------------------------------------

    def resolved(self, name: str, label: str, targeting_key: str | None) -> Answer | None:
        """The cached resolve answer, or None when the database must be asked."""
        entry = self._labels.get((name, label))
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry.answers.get(choose_version(entry.target, name, label, targeting_key))

    def snapshotted(self, label: str) -> Answer | None:
        cached = self._snapshots.get(label)
        return cached[1] if cached is not None and cached[0] >= time.monotonic() else None

    def version_answer(self, name: str, number: int) -> Answer | None:
        cached = self._versions.get((name, number))
        return cached[1] if cached is not None else None

    # --- with the database (in a worker thread) ------------------------------------------------------------

    def version(self, name: str, number: int) -> tuple[dict[str, Any], Answer]:
        cached = self._versions.get((name, number))
        if cached is None:
            data = version_to_json(self.registry.store.get_version(name, number))
            cached = (data, Answer(dumps(data), f'"{data["content_hash"][:32]}"'))
            with self._lock:
                if len(self._versions) >= _VERSION_LIMIT:
                    self._versions.clear()
                self._versions[(name, number)] = cached
        return cached

    def resolve(self, name: str, label: str, targeting_key: str | None) -> Answer:
        """Where ``label`` points and the version ``targeting_key`` gets (NotFoundError when unset)."""
        key = (name, label)
        entry = self._labels.get(key)
        if entry is None or entry.expires < time.monotonic():
            generation = self._generation
            store = self.registry.store
            target = {store.latest_number(name): 100} if label == LATEST else dict(store.get_label(name, label).target)
            entry = _Label(time.monotonic() + self.ttl, target)
            with self._lock:
                if generation == self._generation:
                    self._labels[key] = entry
        number = choose_version(entry.target, name, label, targeting_key)
        answer = entry.answers.get(number)
        if answer is None:
            data, _ = self.version(name, number)
            weights = target_out(entry.target)
            body = dumps({"label": label, "target": weights, "version": data})
            answer = entry.answers[number] = Answer(body, etag_of(dumps(weights), data["content_hash"]))
        return answer

    def snapshot(self, label: str) -> Answer:
        """Every prompt at ``label`` with the versions its target names."""
        cached = self._snapshots.get(label)
        if cached is not None and cached[0] >= time.monotonic():
            return cached[1]
        generation = self._generation
        prompts: dict[str, Any] = {}
        for summary in self.registry.store.list_prompts():
            target = {summary.latest: 100} if label == LATEST else summary.labels.get(label)
            if not target:
                continue
            prompts[summary.name] = {
                "target": target_out(target),
                "versions": {str(number): self.version(summary.name, number)[0] for number in sorted(target)},
            }
        body = dumps({"label": label, "prompts": prompts})
        answer = Answer(body, etag_of(body))
        with self._lock:
            if generation == self._generation:
                self._snapshots[label] = (time.monotonic() + self.ttl, answer)
        return answer

    def invalidate(self, name: str | None = None) -> None:
        """Forget label answers (of one prompt, or all) and every snapshot: something moved here."""
        with self._lock:
            self._generation += 1
            for key in [key for key in self._labels if name is None or key[0] == name]:
                del self._labels[key]
            self._snapshots.clear()
