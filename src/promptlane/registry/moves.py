"""Label moves, through the gate: the part of :class:`~promptlane.registry.Registry` that moves labels.

Every move of a gated label (protected, or a promotion) checks the gate on the target it writes and writes it in
one transaction under the prompt's write lock (:meth:`LabelMoves._move`); a label in ``require_approval`` does
not move at once but waits for a second person (:meth:`LabelMoves.approve`), through the gate again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from .._unicode import check_whole
from ..config import Settings
from ..errors import ApprovalError, LabelError, NotFoundError
from ._author import default_author
from .fingerprint import NOT_FOUND, model_parts, scenario_files_for, version_part
from .gate import (
    GateError,
    GateReport,
    GateRequirements,
    GateVerdict,
    PartState,
    candidate_runs,
    check_gate,
    newest_comparable,
)
from .labels import check_label_name, check_target, rollback_point
from .store import LabelEvent, LabelRequest, PromptVersion, Store, Target, format_target

if TYPE_CHECKING:
    from .http import HttpStore
    from .no_regression import Comparison
    from .runs import RunRecord, ScenarioFileRef

__all__ = ["LabelMoves"]

T = TypeVar("T")


class LabelMoves:
    """The label-moving methods of Registry (it provides the settings, the store, the remote and the reads)."""

    settings: Settings
    store: Store
    remote: HttpStore | None

    def version(self, name: str, number: int) -> PromptVersion: ...  # pragma: no cover - provided by Registry
    def versions(self, name: str) -> list[PromptVersion]: ...  # pragma: no cover - provided by Registry
    def _newest(self, name: str) -> PromptVersion: ...  # pragma: no cover - provided by Registry
    def invalidate(self, name: str | None = None) -> None: ...  # pragma: no cover - provided by Registry

    def gate_requirements(self, name: str) -> GateRequirements:
        """What this project asks of a run of ``name`` to open a protected label: the fingerprint of its scenario
        files that target the prompt, as they are now, and the configured gate model."""
        settings = self.settings
        files = scenario_files_for(name, settings.evals_dir, settings.root, judge_model=settings.judge_model)
        return GateRequirements(scenario_files=tuple(files), model=settings.gate_model_for(name))

    def _gate_parts(
        self, version: PromptVersion, requirements: GateRequirements
    ) -> tuple[list[ScenarioFileRef], str | None]:
        """(the fingerprint a run of ``version`` needs, the model it needs)."""
        model = requirements.model or version.spec.get("model")
        if not requirements.scenario_files:
            return [], model
        # What only the version decides, computed here (a client's word does not count): its content, and the
        # module of its python: model where this process can find it.
        own = [version_part(version.content_hash), *model_parts(model, self.settings.root)]
        mine = {part.path for part in own}
        parts = [*own, *(part for part in requirements.scenario_files if part.path not in mine)]
        if not requirements.unfound:  # a server without the project's code: its client checks these
            parts = [part for part in parts if part.sha256 != NOT_FOUND]
        return parts, model

    def gate_verdict(
        self,
        version: PromptVersion,
        requirements: GateRequirements | None = None,
        *,
        label: str | None = None,
        share: int = 100,
    ) -> GateVerdict:
        """Whether ``version`` may take a protected label now (see :mod:`promptlane.registry.gate`), by this
        project's requirements or the ones given (a server checks a client's). With ``label``, where the
        no-regression rule applies to it, also not worse than the version it serves now, when the move gives
        ``version`` a larger ``share`` of the label than it has."""
        requirements = requirements or self.gate_requirements(version.name)
        parts, model = self._gate_parts(version, requirements)
        trusted = self.settings.gate_trusted_runners
        verdict = check_gate(candidate_runs(self.store, version), version, parts, model, trusted=trusted)
        if not verdict.passed or label is None or label not in self.settings.gate_no_regression:
            return verdict
        assert verdict.run is not None
        comparison = self._compare_with_serving(version, verdict.run, label, requirements, share)
        if comparison is None:
            return verdict
        problems = comparison.problems(version, label)
        return replace(verdict, passed=not problems, problems=problems, comparison=comparison)

    def gate_report(
        self,
        name: str,
        *,
        version: int | None = None,
        label: str | None = None,
        requirements: GateRequirements | None = None,
    ) -> GateReport:
        """The gate's verdict on ``version`` (default: the newest) for ``label`` (default: the first protected
        label, else ``production``), part by part: what ``promptlane gate`` prints."""
        label = label or next(iter(self.settings.protected_labels), "production")
        check_label_name(label)
        if self.remote is not None:
            return self.remote.gate_report(name, version=version, label=label)
        record = self._newest(name) if version is None else self.version(name, version)
        requirements = requirements or self.gate_requirements(name)
        verdict = self.gate_verdict(record, requirements, label=label)
        parts, _ = self._gate_parts(record, requirements)
        recorded = {part.path: part.sha256 for part in verdict.run.scenario_files} if verdict.run else {}
        states = [PartState(name=part.path, now=part.sha256, then=recorded.get(part.path)) for part in parts]
        gated = label in self.settings.protected_labels
        return GateReport(version=record, label=label, gated=gated, verdict=verdict, parts=states)

    def _compare_with_serving(
        self, version: PromptVersion, evidence: RunRecord, label: str, requirements: GateRequirements, share: int
    ) -> Comparison | None:
        """``version``'s evidence run against the newest complete run on the same inputs of the version ``label``
        serves besides it (the largest share of a rollout), when the move gives ``version`` a larger share than it
        has (a canary taking the whole label is compared again); None when there is nothing to compare with."""
        from .no_regression import compare, scores_by_scenario  # the statistics load only for a gated move

        try:
            current = self.store.get_label(version.name, label).target
        except NotFoundError:
            return None
        others = {number: weight for number, weight in current.items() if number != version.number}
        if not others or share <= current.get(version.number or 0, 0):
            return None
        serving = self.version(version.name, max(others, key=lambda number: (others[number], number)))
        parts, model = self._gate_parts(serving, requirements)
        runs = candidate_runs(self.store, serving)
        baseline = newest_comparable(runs, parts, model, self.settings.gate_trusted_runners)
        scores = None
        if baseline is not None:
            scores = (
                scores_by_scenario(self.store.run_cases(evidence.id)),
                scores_by_scenario(self.store.run_cases(baseline.id)),
            )
        return compare(serving, evidence, baseline, scores=scores, confidence=self.settings.gate_confidence)

    def _gate(
        self,
        name: str,
        label: str,
        target: Target,
        requirements: GateRequirements | None,
        *,
        compare: bool = True,
    ) -> tuple[str | None, str | None]:
        """(gate, evidence) for a move of ``label`` to ``target``: GateError when a version has no qualifying run
        (or, with ``compare``, one that gains share is worse than what the label serves). Without requirements (an
        ungated move), no gate."""
        if requirements is None:
            return None, None
        evidence = None
        for number in sorted(target):
            version = self.version(name, number)
            compared = label if compare else None
            verdict = self.gate_verdict(version, requirements, label=compared, share=target[number])
            if not verdict.passed:
                serving = verdict.comparison.serving if verdict.comparison is not None else None
                protected = label in self.settings.protected_labels
                raise GateError(label, version, verdict.problems, protected=protected, serving=serving)
            assert verdict.run is not None
            evidence = verdict.run.id
        return "passed", evidence

    def _move(
        self,
        name: str,
        label: str,
        destination: Callable[[], Target],
        write: Callable[[Target, str | None, str | None], T],
        *,
        force: bool,
        reason: str | None,
        gated: bool = False,
        requirements: GateRequirements | None = None,
        compare: bool = True,
    ) -> T:
        """Check the gate on the target a move writes, and write it, in one transaction holding the prompt's write
        lock: a concurrent move can change neither the target (a rollback's destination) nor the evidence between
        the check and the write. The project's files are read before the lock is taken."""
        check_whole(reason, "reason")
        if force and not (reason and reason.strip()):
            raise LabelError("a forced move needs a reason (--reason)")
        through_gate = gated or label in self.settings.protected_labels
        requirements = (requirements or self.gate_requirements(name)) if through_gate and not force else None
        forced = "forced" if force and through_gate else None

        def check_and_write() -> T:
            target = destination()
            gate, evidence = self._gate(name, label, target, requirements, compare=compare)
            return write(target, gate or forced, evidence)

        locked = getattr(self.store, "locked", None)
        return check_and_write() if locked is None else locked(name, check_and_write)

    def _needs_approval(self, label: str, force: bool) -> bool:
        """Whether a move of ``label`` waits for a second person (``require_approval``; a forced move does not:
        it needs an admin and a reason instead)."""
        return label in self.settings.require_approval and not force

    def _current(self, name: str, label: str) -> Target | None:
        try:
            return self.store.get_label(name, label).target
        except NotFoundError:
            return None

    def _request(
        self, name: str, label: str, kind: str, reason: str | None, actor: str, identity: str | None
    ) -> Callable[[Target, str | None, str | None], LabelRequest]:
        """The write of a move that waits for approval: a pending request, checked by the gate first."""

        def request(target: Target, gate: str | None, evidence: str | None) -> LabelRequest:
            return self.store.request_move(  # type: ignore[attr-defined]
                name,
                label,
                target,
                kind=kind,
                from_target=self._current(name, label),
                reason=reason,
                requested_by=actor,
                requester=identity or actor,
                evidence=evidence,
            )

        return request

    def set_label(
        self,
        name: str,
        label: str,
        version: int,
        *,
        reason: str | None = None,
        force: bool = False,
        actor: str | None = None,
        identity: str | None = None,
    ) -> LabelEvent | LabelRequest:
        """Point ``label`` at ``version``; recorded in the audit log."""
        return self.set_rollout(
            name, label, {version: 100}, reason=reason, force=force, actor=actor, identity=identity, kind="move"
        )

    def set_rollout(
        self,
        name: str,
        label: str,
        target: Target,
        *,
        reason: str | None = None,
        force: bool = False,
        actor: str | None = None,
        identity: str | None = None,
        kind: str = "rollout",
        gated: bool = False,
        requirements: GateRequirements | None = None,
    ) -> LabelEvent | LabelRequest:
        """Point ``label`` at a weighted rollout (``{3: 90, 4: 10}``); recorded in the audit log. Moves of
        protected labels (and every move when ``gated``) need each version to pass the gate. A label that
        requires approval does not move: the move waits for someone other than ``identity`` (default:
        ``actor``) to approve it (:meth:`approve`)."""
        check_label_name(label)
        target = check_target(target)
        actor = actor or self.settings.author or default_author()
        if self.remote is not None:  # the server applies its gate to this project's requirements
            event = self.remote.move_label_gated(
                name,
                label,
                target,
                kind=kind,
                reason=reason,
                force=force,
                actor=actor,
                gated=gated,
                requirements=requirements or self.gate_requirements(name),
            )
        else:

            def move(target: Target, gate: str | None, evidence: str | None) -> LabelEvent:
                return self.store.move_label(
                    name, label, target, kind=kind, actor=actor, reason=reason, gate=gate, evidence=evidence
                )

            approval = self._needs_approval(label, force)
            write = self._request(name, label, kind, reason, actor, identity) if approval else move
            event = self._move(
                name,
                label,
                lambda: target,
                write,
                force=force,
                reason=reason,
                gated=gated,
                requirements=requirements,
            )
        self.invalidate(name)
        return event

    def promote(
        self,
        name: str,
        label: str,
        *,
        version: int | None = None,
        reason: str | None = None,
        actor: str | None = None,
        identity: str | None = None,
        requirements: GateRequirements | None = None,
    ) -> LabelEvent | LabelRequest:
        """Move ``label`` to ``version``, or to the newest version that passes the gate, through the gate.

        Raises:
            GateError: the version (or, without one, the newest version) has no qualifying run.
        """
        requirements = requirements or self.gate_requirements(name)
        if self.remote is not None:  # the server finds the version and applies its gate
            event = self.remote.promote(
                name,
                label,
                version=version,
                reason=reason,
                actor=actor or self.settings.author or default_author(),
                requirements=requirements,
            )
            self.invalidate(name)
            return event
        if version is None:
            versions = self.versions(name)[::-1]  # newest first
            if not versions:
                raise NotFoundError(f"prompt {name!r} has no versions")
            for candidate in versions:
                if self.gate_verdict(candidate, requirements).passed:
                    version = candidate.number
                    break
            else:
                newest = versions[0]
                problems = self.gate_verdict(newest, requirements).problems
                raise GateError(label, newest, problems, protected=label in self.settings.protected_labels)
        assert version is not None
        # A promotion is gated even to an unprotected label: "promote" means "with evidence".
        return self.set_rollout(
            name,
            label,
            {version: 100},
            reason=reason,
            actor=actor,
            identity=identity,
            kind="promote",
            gated=True,
            requirements=requirements,
        )

    def rollback(
        self,
        name: str,
        label: str,
        *,
        reason: str | None = None,
        force: bool = False,
        actor: str | None = None,
        identity: str | None = None,
        requirements: GateRequirements | None = None,
    ) -> LabelEvent | LabelRequest:
        """Return ``label`` to where it pointed before its newest move (repeat to walk further back). A
        protected label's rollback goes through the gate like any move (``force`` in an emergency)."""
        check_label_name(label)
        actor = actor or self.settings.author or default_author()
        if self.remote is not None:
            event = self.remote.rollback_gated(
                name,
                label,
                reason=reason,
                force=force,
                actor=actor,
                requirements=requirements or self.gate_requirements(name),
            )
        else:

            def destination() -> Target:  # read under the lock: the point a concurrent rollback leaves
                events = self.store.label_events(name, label)
                if not events:
                    raise NotFoundError(f"prompt {name!r} has no label {label!r}")
                return rollback_point(events).from_target or {}

            def undo(target: Target, gate: str | None, evidence: str | None) -> LabelEvent:
                return self.store.rollback_label(name, label, actor=actor, reason=reason, gate=gate, evidence=evidence)

            approval = self._needs_approval(label, force)
            event = self._move(
                name,
                label,
                destination,
                self._request(name, label, "rollback", reason, actor, identity) if approval else undo,
                force=force,
                reason=reason,
                requirements=requirements,
                compare=False,  # a rollback returns to what served before: evidence, but no comparison
            )
        self.invalidate(name)
        return event

    def requests(self, name: str | None = None) -> list[LabelRequest]:
        """The moves waiting for approval (of one prompt, or all), newest first."""
        if self.remote is not None:
            return self.remote.label_requests(name)
        return self.store.label_requests(name)  # type: ignore[attr-defined]

    def pending(self, name: str, label: str, request: int | None = None) -> LabelRequest:
        """The move of ``label`` waiting for approval (one at a time: a newer request supersedes it).

        Raises:
            NotFoundError: none is pending.
            ApprovalError: the pending one is not ``request`` (a newer request replaced the one reviewed).
        """
        found = next((r for r in self.requests(name) if r.label == label), None)
        if found is None:
            raise NotFoundError(f"no move of {name} {label} is waiting for approval")
        if request is not None and found.id != request:
            raise ApprovalError(
                f"the move of {name} {label} waiting for approval is request {found.id} "
                f"(to {format_target(found.to_target)}, by {found.requested_by}), not {request}: review it first"
            )
        return found

    def approve(
        self,
        name: str,
        label: str,
        *,
        request: int | None = None,
        reason: str | None = None,
        actor: str | None = None,
        identity: str | None = None,
        requirements: GateRequirements | None = None,
    ) -> LabelEvent:
        """Approve the move of ``label`` waiting for approval (``request``: only if it is that one): the label
        moves, through the gate again (the evidence may have gone stale since), and the audit log records the
        requester and the approver.

        Raises:
            ApprovalError: the approver asked for the move (``identity``, default ``actor``: someone else must approve
                it), nothing (or another request) is pending, or the label moved since the request.
            GateError: the version has no qualifying run now.
        """
        actor = actor or self.settings.author or default_author()
        if self.remote is not None:
            event = self.remote.approve_request(name, label, request=request, reason=reason, actor=actor)
            self.invalidate(name)
            return event
        pending = self.pending(name, label, request)
        if (identity or actor) == pending.requester:
            raise ApprovalError(
                f"{pending.requester} asked for this move of {name} {label}: someone else must approve it "
                f"({label} requires approval)"
            )

        def destination() -> Target:  # read under the lock: the label must not have moved since the request
            events = self.store.label_events(name, label)
            if (events[-1].id if events else None) != pending.after_event:  # even away and back
                was, now = format_target(pending.from_target), format_target(self._current(name, label))
                raise ApprovalError(
                    f"{label} moved since request {pending.id} was made (from {was} to {now}): ask for the move again"
                )
            return pending.to_target

        def move(target: Target, gate: str | None, evidence: str | None) -> LabelEvent:
            asked = (pending.requested_by, pending.requested_at)
            said = {"actor": actor, "reason": pending.reason, "gate": gate, "evidence": evidence, "requested": asked}
            if pending.kind == "rollback":
                event = self.store.rollback_label(name, label, **said)
            else:
                event = self.store.move_label(name, label, target, kind=pending.kind, **said)
            self.store.decide_request(  # type: ignore[attr-defined]  # raises if someone decided it meanwhile
                name, pending.id, status="approved", decided_by=actor, decision=reason, event_id=event.id
            )
            return event

        event = self._move(
            name,
            label,
            destination,
            move,
            force=False,
            reason=None,
            gated=pending.kind == "promote",
            requirements=requirements,
            compare=pending.kind != "rollback",
        )
        self.invalidate(name)
        return event

    def reject(
        self, name: str, label: str, *, request: int | None = None, reason: str | None = None, actor: str | None = None
    ) -> LabelRequest:
        """Reject the move of ``label`` waiting for approval (its requester may withdraw it so too); the label
        stays where it is.

        Raises:
            NotFoundError, ApprovalError: nothing (or another request) is pending.
        """
        actor = actor or self.settings.author or default_author()
        if self.remote is not None:
            return self.remote.reject_request(name, label, request=request, reason=reason, actor=actor)
        pending = self.pending(name, label, request)
        return self.store.decide_request(  # type: ignore[attr-defined]
            name, pending.id, status="rejected", decided_by=actor, decision=reason
        )
