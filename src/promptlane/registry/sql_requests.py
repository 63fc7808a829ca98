"""Pending label moves in the SQL store (``require_approval``): a row per request, kept after it is decided."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Row, func, select

from ..errors import ApprovalError, NotFoundError
from ._sqlbase import now, unavailable, utc
from .labels import check_label_name, check_target
from .store import LabelRequest, RequestStatus, Target, target_from_json, target_to_json
from .tables import label_events, label_requests, prompts

__all__ = ["SQLRequests"]


class SQLRequests:
    """The pending-move methods of SQLStore (it provides ``_read``, ``_write`` and ``_prompt_id``)."""

    def _read(self) -> AbstractContextManager[Connection]: ...  # pragma: no cover - provided by SQLStore
    def _write(self) -> AbstractContextManager[Connection]: ...  # pragma: no cover - provided by SQLStore
    def _prompt_id(self, conn: Connection, name: str, *, lock: bool = False) -> int: ...  # pragma: no cover

    @staticmethod
    def _request(name: str, row: Row[Any]) -> LabelRequest:
        return LabelRequest(
            id=row.id,
            prompt=name,
            label=row.label,
            kind=row.kind,
            from_target=target_from_json(row.from_target),
            after_event=row.after_event,
            to_target=target_from_json(row.to_target) or {},
            reason=row.reason,
            requested_by=row.requested_by,
            requester=row.requester,
            requested_at=utc(row.requested_at),
            evidence=row.evidence,
            status=row.status,
            decided_by=row.decided_by,
            decided_at=utc(row.decided_at) if row.decided_at else None,
            decision=row.decision,
            event_id=row.event_id,
        )

    @unavailable
    def request_move(
        self,
        name: str,
        label: str,
        target: Target,
        *,
        kind: str,
        from_target: Target | None,
        reason: str | None,
        requested_by: str | None,
        requester: str,
        evidence: str | None,
    ) -> LabelRequest:
        """Record a move of ``label`` that waits for approval; an older pending request for the label is
        superseded (one pending move per label)."""
        check_label_name(label)
        target = check_target(target)
        asked_at = now()
        with self._write() as conn:
            prompt_id = self._prompt_id(conn, name, lock=True)
            after_event = conn.execute(
                select(func.max(label_events.c.id)).where(
                    label_events.c.prompt_id == prompt_id, label_events.c.label == label
                )
            ).scalar()
            conn.execute(
                label_requests.update()
                .where(
                    label_requests.c.prompt_id == prompt_id,
                    label_requests.c.label == label,
                    label_requests.c.status == "pending",
                )
                .values(status="superseded", decided_at=asked_at)
            )
            row = {
                "prompt_id": prompt_id,
                "label": label,
                "kind": kind,
                "from_target": target_to_json(from_target),
                "after_event": after_event,
                "to_target": target_to_json(target),
                "reason": reason,
                "requested_by": requested_by,
                "requester": requester,
                "requested_at": asked_at,
                "evidence": evidence,
                "status": "pending",
            }
            inserted = conn.execute(label_requests.insert().values(**row)).inserted_primary_key
            assert inserted is not None
            return self._request(
                name, conn.execute(select(label_requests).where(label_requests.c.id == inserted[0])).one()
            )

    @unavailable
    def label_requests(
        self, name: str | None = None, *, status: RequestStatus | None = "pending"
    ) -> list[LabelRequest]:
        """Requests (of one prompt, or all), newest first; by default only the pending ones."""
        query = select(label_requests, prompts.c.name.label("prompt_name")).join(
            prompts, prompts.c.id == label_requests.c.prompt_id
        )
        if name is not None:
            query = query.where(prompts.c.name == name)
        if status is not None:
            query = query.where(label_requests.c.status == status)
        with self._read() as conn:
            rows = conn.execute(query.order_by(label_requests.c.id.desc()).limit(500)).all()
        return [self._request(row.prompt_name, row) for row in rows]

    @unavailable
    def get_request(self, name: str, request_id: int) -> LabelRequest:
        """Request ``request_id`` of prompt ``name``; NotFoundError when there is none."""
        with self._read() as conn:
            prompt_id = self._prompt_id(conn, name)
            row = conn.execute(
                select(label_requests).where(label_requests.c.id == request_id, label_requests.c.prompt_id == prompt_id)
            ).first()
        if row is None:
            raise NotFoundError(f"prompt {name!r} has no request {request_id}")
        return self._request(name, row)

    @unavailable
    def decide_request(
        self,
        name: str,
        request_id: int,
        *,
        status: RequestStatus,
        decided_by: str | None,
        decision: str | None,
        event_id: int | None = None,
    ) -> LabelRequest:
        """Mark a pending request ``approved`` or ``rejected``.

        Raises:
            NotFoundError: no such request.
            ApprovalError: it is not pending any more.
        """
        with self._write() as conn:
            prompt_id = self._prompt_id(conn, name, lock=True)
            where = (label_requests.c.id == request_id, label_requests.c.prompt_id == prompt_id)
            row = conn.execute(select(label_requests).where(*where)).first()
            if row is None:
                raise NotFoundError(f"prompt {name!r} has no request {request_id}")
            if row.status != "pending":
                raise ApprovalError(f"request {request_id} is {row.status}, not pending")
            values = {"status": status, "decided_by": decided_by, "decided_at": now(), "decision": decision}
            conn.execute(label_requests.update().where(*where).values(**values, event_id=event_id))
            return self._request(name, conn.execute(select(label_requests).where(*where)).one())
