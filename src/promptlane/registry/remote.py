"""The SDK's cache for a registry server: an application never waits on the network for a prompt it has.

- Memory: label targets and versions. Once a label is cached, ``get`` answers from memory; a background thread
  revalidates every cached label each ``ttl / 2`` seconds (one snapshot request per label, ``304`` when nothing
  moved), so a label move reaches the application within ``ttl``.
- Disk: the last good targets and versions, written after every change, so an application that starts while
  the server is down serves what it served before.
- The first ``get`` of a label waits at most the fetch timeout. After a failure the request path stops trying
  the network for a few seconds (the background thread keeps trying), so an outage costs one timeout, not one
  per prompt. An outage is logged once, and its end once.
- Trust: every version served was checked against its content hash and against the prompt and version asked for,
  whether it came from the server or from the disk snapshot (:mod:`.wire`). An answer that is not what was asked
  (another shape, HTML, a tampered version, one too slow or too long) is an outage like a server that is down:
  the caches and the fallback answer, and the background thread keeps trying until the server answers well.

Sources, as ``Prompt.source`` reports them: ``registry`` (fetched by this call), ``cache`` (memory, revalidated
within ``ttl``), ``stale`` (memory, older: the server has not answered since), ``disk`` (the snapshot file; the
server has not confirmed it yet).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._redact import mask_credentials
from ..errors import AuthError, RegistryUnavailableError
from .wire import target_from_json, target_out, version_from_json, version_to_json

if TYPE_CHECKING:
    from .http import HttpStore, Snapshot
    from .store import PromptVersion

__all__ = ["RemoteCache", "snapshot_file"]

log = logging.getLogger("promptlane")

_SNAPSHOT_FORMAT = 1
_QUIET_AFTER_FAILURE = 5.0
"""Seconds the request path goes straight to memory or disk after the server failed to answer."""
_Unreachable = (RegistryUnavailableError, AuthError)
"""Failures that cached prompts answer for (a bad token too: the application keeps serving, and says so)."""


@dataclass
class _Label:
    target: dict[int, int]
    checked: float
    """When the server last confirmed this target (monotonic); -inf for one read from disk."""
    origin: str
    """``registry`` or ``disk``."""


class RemoteCache:
    """Label targets and versions from a registry server, kept fresh in the background.

    Args:
        store: The server.
        ttl: Seconds within which a label move reaches this process (0: no background refresh; every first
            ``get`` of a label asks the server).
        snapshot: The file for the last good prompts (None: no disk snapshot).
    """

    def __init__(self, store: HttpStore, *, ttl: float, snapshot: Path | None) -> None:
        self.store = store
        self.ttl = ttl
        self.snapshot_path = snapshot
        self._labels: dict[tuple[str, str], _Label] = {}
        self._versions: dict[tuple[str, int], PromptVersion] = {}
        self._etags: dict[str, str] = {}  # label -> the snapshot's ETag
        self._disk: tuple[dict[tuple[str, str], dict[int, int]], dict[tuple[str, int], PromptVersion]] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._dirty = False
        self._thread: threading.Thread | None = None
        self._quiet_until = 0.0
        self._down: Exception | None = None  # why the server cannot answer, while it cannot

    # --- the request path ----------------------------------------------------------------------------------

    def target(self, name: str, label: str) -> tuple[dict[int, int], str]:
        """Where ``label`` of ``name`` points, and the source of the answer.

        Raises:
            NotFoundError: the server says the prompt or label does not exist.
            RegistryUnavailableError: the server cannot answer and neither memory nor disk has it.
        """
        entry = self._labels.get((name, label))
        if entry is not None:
            if entry.origin == "disk":
                return entry.target, "disk"
            return entry.target, "cache" if time.monotonic() - entry.checked <= self.ttl else "stale"
        failure: Exception | None = None
        if time.monotonic() >= self._quiet_until:
            try:
                resolved = self.store.resolve(name, label)
            except _Unreachable as exc:
                failure = self._failed(exc)
            else:
                assert resolved is not None
                self._reachable()
                with self._lock:
                    self._keep_version(resolved.version)
                self._fetch_rollout(name, resolved.target)
                with self._lock:
                    self._labels[(name, label)] = _Label(resolved.target, time.monotonic(), "registry")
                self._changed()
                return resolved.target, "registry"
        target = self._disk_state()[0].get((name, label))
        if target is None:
            raise failure or self._unreachable()
        with self._lock:
            self._labels.setdefault((name, label), _Label(target, float("-inf"), "disk"))
        self._start()
        return target, "disk"

    def version(self, name: str, number: int) -> tuple[PromptVersion, str | None]:
        """Version ``number`` of ``name`` and where it came from (None: memory, ``registry`` or ``disk``)."""
        record = self._versions.get((name, number))
        if record is not None:
            return record, None
        failure: Exception | None = None
        if time.monotonic() >= self._quiet_until:
            try:
                record = self.store.get_version(name, number)
            except _Unreachable as exc:
                failure = self._failed(exc)
            else:
                self._reachable()
                with self._lock:
                    self._keep_version(record)
                self._changed()
                return record, "registry"
        record = self._disk_state()[1].get((name, number))
        if record is None:
            raise failure or self._unreachable()
        with self._lock:
            self._keep_version(record)
        return record, "disk"

    def prefetch(self, label: str) -> int:
        """Load every prompt at ``label`` in one request; the number of prompts now cached for it (from disk
        when the server cannot answer)."""
        try:
            answer = self.store.snapshot(label)
        except _Unreachable as exc:
            self._failed(exc)
            targets = self._disk_state()[0]
            with self._lock:
                for (name, at), target in targets.items():
                    if at == label:
                        self._labels.setdefault((name, at), _Label(target, float("-inf"), "disk"))
            self._start()
            return sum(1 for (_, at) in targets if at == label)
        self._reachable()
        assert answer is not None  # no ETag was sent
        self._apply(label, *answer, add=True)
        self._changed()
        return len(answer[0])

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached targets (of one prompt or all): the next ``get`` asks the server."""
        with self._lock:
            for key in [key for key in self._labels if name is None or key[0] == name]:
                del self._labels[key]
            self._etags.clear()

    def close(self) -> None:
        """Stop the background refresh (writing the snapshot first if it changed)."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._save()

    def _fetch_rollout(self, name: str, target: dict[int, int]) -> None:
        """Every version of a rollout, so that any targeting key is answered from memory afterwards (a failure
        here leaves the version to be fetched when a key first needs it)."""
        for number in target:
            if (name, number) not in self._versions:
                try:
                    record = self.store.get_version(name, number)
                except _Unreachable as exc:
                    self._failed(exc)
                    return
                with self._lock:
                    self._keep_version(record)

    # --- outages -------------------------------------------------------------------------------------------

    def _unreachable(self) -> Exception:
        """Why nothing can answer: a new exception each time (one shared instance would gather tracebacks)."""
        if self._down is not None:
            return copy.copy(self._down).with_traceback(None)
        return RegistryUnavailableError(f"registry server {self.store.url} is unreachable")

    def _failed(self, exc: Exception) -> Exception:
        if not isinstance(exc, _Unreachable):  # not the store's own failure: say where it happened, keep the type
            exc = RegistryUnavailableError(
                f"registry server {self.store.url}: refreshing the cached prompts failed "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            )
        self._quiet_until = time.monotonic() + _QUIET_AFTER_FAILURE
        if self._down is None:
            log.warning("promptlane: %s; serving cached prompts until it answers again", exc)
        self._down = exc
        return exc

    def _reachable(self) -> None:
        if self._down is not None:
            self._down = None
            self._quiet_until = 0.0
            log.warning("promptlane: registry server %s answers again", mask_credentials(self.store.url))

    # --- the background refresh ----------------------------------------------------------------------------

    def _changed(self) -> None:
        self._dirty = True
        self._start()
        self._wake.set()

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="promptlane-refresh", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        interval = max(self.ttl / 2, 0.05) if self.ttl > 0 else None
        next_refresh = time.monotonic() + (interval or 0)
        while not self._closed:
            timeout = None if interval is None else max(next_refresh - time.monotonic(), 0)
            self._wake.wait(timeout)
            self._wake.clear()
            if self._closed:
                break
            # Nothing may end this loop but close(): whatever a round raises is an outage, and the next round
            # tries again.
            try:
                if interval is not None and time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + interval
                    self._refresh()
                self._save()
            except Exception as exc:
                self._failed(exc)

    def _refresh(self) -> None:
        with self._lock:
            labels = sorted({label for _, label in self._labels})
        for label in labels:
            try:
                answer = self.store.snapshot(label, etag=self._etags.get(label))
            except Exception as exc:  # _Unreachable, or anything else: an outage until the server answers well
                self._failed(exc)
                return
            self._reachable()
            if answer is None:  # 304: nothing moved
                now = time.monotonic()
                with self._lock:
                    for key, entry in self._labels.items():
                        if key[1] == label and entry.origin == "registry":
                            entry.checked = now
            else:
                self._apply(label, *answer, add=False)

    def _apply(self, label: str, prompts: Snapshot, etag: str | None, *, add: bool) -> None:
        """Take a snapshot of ``label`` (checked by the store): the cached prompts (or, with ``add``, all)."""
        now = time.monotonic()
        changed = False
        with self._lock:
            for name, (target, versions) in prompts.items():
                key = (name, label)
                if not add and key not in self._labels:
                    continue
                current = self._labels.get(key)
                changed |= current is None or current.target != target or current.origin != "registry"
                self._labels[key] = _Label(target, now, "registry")
                for record in versions:
                    changed |= self._keep_version(record)
            if etag:
                self._etags[label] = etag
        if changed:
            self._dirty = True

    def _keep_version(self, record: PromptVersion) -> bool:
        assert record.number is not None
        if (record.name, record.number) in self._versions:
            return False
        self._versions[(record.name, record.number)] = record
        return True

    # --- the disk snapshot ---------------------------------------------------------------------------------

    def _save(self) -> None:
        if not self._dirty or self.snapshot_path is None:
            return
        self._dirty = False
        with self._lock:
            disk_targets, disk_versions = self._disk_state()
            targets = {**disk_targets, **{k: e.target for k, e in self._labels.items() if e.origin == "registry"}}
            versions = {**disk_versions, **self._versions}
        needed = {(name, number) for (name, _), target in targets.items() for number in target}
        data = {
            "format": _SNAPSHOT_FORMAT,
            "url": mask_credentials(self.store.url),  # a file on disk: no password in it
            "saved_at": datetime.now(timezone.utc).isoformat(),
            "labels": [
                {"prompt": name, "label": label, "target": target_out(target)}
                for (name, label), target in sorted(targets.items())
            ],
            "versions": [version_to_json(v) for key, v in sorted(versions.items()) if key in needed],
        }
        try:
            self.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
            unique = f"{os.getpid()}.{threading.get_ident()}.{id(self)}"  # one writer per file
            temporary = self.snapshot_path.with_name(f".{self.snapshot_path.name}.{unique}.tmp")
            temporary.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
            os.replace(temporary, self.snapshot_path)
        except OSError as exc:
            log.warning("promptlane: cannot write the prompt snapshot %s: %s", self.snapshot_path, exc)

    def _disk_state(
        self,
    ) -> tuple[dict[tuple[str, str], dict[int, int]], dict[tuple[str, int], PromptVersion]]:
        if self._disk is None:
            self._disk = self._load()
        return self._disk

    def _load(self) -> tuple[dict[tuple[str, str], dict[int, int]], dict[tuple[str, int], PromptVersion]]:
        """The snapshot file, checked as a server's answer is (each version against its content hash); a file
        that does not check out is ignored whole, with one warning: it is not what this process wrote."""
        if self.snapshot_path is None:
            return {}, {}
        try:
            if not self.snapshot_path.is_file():
                return {}, {}
            return _snapshot_in(json.loads(self.snapshot_path.read_text(encoding="utf-8")))
        except Exception as exc:  # whatever is in the file, the application starts
            log.warning("promptlane: ignoring the prompt snapshot %s: %s", self.snapshot_path, str(exc)[:300])
            return {}, {}


def _snapshot_in(data: Any) -> tuple[dict[tuple[str, str], dict[int, int]], dict[tuple[str, int], PromptVersion]]:
    """The targets and versions of a snapshot file's JSON; ValueError saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"not a snapshot: the file holds {type(data).__name__}, not an object")
    if data.get("format") != _SNAPSHOT_FORMAT:
        raise ValueError(f"unknown format {data.get('format')!r}")
    labels, versions = data.get("labels"), data.get("versions")
    if not isinstance(labels, list) or not isinstance(versions, list):
        raise ValueError("`labels` and `versions` must be lists")
    targets: dict[tuple[str, str], dict[int, int]] = {}
    for item in labels:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("prompt"), str)
            or not isinstance(item.get("label"), str)
        ):
            raise ValueError(f"a label entry must name its prompt and label: {str(item)[:80]}")
        targets[(item["prompt"], item["label"])] = target_from_json(item.get("target"))
    records = [version_from_json(item) for item in versions]
    return targets, {(record.name, record.number or 0): record for record in records}


def snapshot_file(folder: Path, url: str) -> Path:
    """The snapshot file of the server at ``url`` inside ``folder``."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return folder / f"{digest}.json"
