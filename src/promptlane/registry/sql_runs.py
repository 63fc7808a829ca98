"""Eval runs in the SQL store: a run row updated as it goes, and its cases appended in batches.

Every write by the process running a run refreshes its heartbeat; a read that finds a ``running`` run past its
lease (:func:`~promptlane.registry.runs.run_lease`) tallies it from its stored cases and saves it ``interrupted``
(see :mod:`promptlane.registry.runs`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, select
from sqlalchemy import exc as sa_exc

from ..errors import NotFoundError, RegistryError
from ._sqlbase import now, unavailable, utc
from .runs import LEASE_EXPIRED, CaseResult, RunRecord, case_inserts, retally, run_lease
from .tables import prompts, run_cases, runs

log = logging.getLogger("promptlane")

__all__ = ["SQLRuns"]

_PAGE = 500


class SQLRuns:
    """The run methods of SQLStore (it provides ``engine``, ``_read``, ``_write`` and ``_prompt_id``)."""

    engine: Engine

    def _read(self) -> AbstractContextManager[Connection]: ...  # pragma: no cover - provided by SQLStore
    def _write(self) -> AbstractContextManager[Connection]: ...  # pragma: no cover - provided by SQLStore
    def _prompt_id(self, conn: Connection, name: str, *, lock: bool = False) -> int: ...  # pragma: no cover

    @staticmethod
    def _counts(record: RunRecord) -> dict[str, Any]:
        return {
            "status": record.status,
            "reason": record.reason,
            "finished_at": record.finished_at,
            "trace_id": record.trace_id,
            "cases": record.cases,
            "passed": record.passed,
            "failed": record.failed,
            "errored": record.errored,
            "cost_usd": record.cost_usd,
            "details": json.dumps(record.details(), default=str),
        }

    @unavailable
    def create_run(self, record: RunRecord) -> None:
        """Store a new run (status ``running``); its lease starts now."""
        with self._write() as conn:
            prompt_id = self._prompt_id(conn, record.prompt)
            conn.execute(
                runs.insert().values(
                    id=record.id,
                    prompt_id=prompt_id,
                    version=record.version,
                    label=record.label,
                    model=record.model,
                    started_at=record.started_at,
                    created_by=record.created_by,
                    heartbeat_at=now(),
                    **self._counts(record),
                )
            )

    @staticmethod
    def _beat(conn: Connection, run_id: str) -> int:
        """Refresh a run's heartbeat: the rows touched. A run a reader took for dead (its lease ran out while
        the process was stopped, or its machine slept) is ``running`` again, since its process is alive."""
        revived = (runs.c.status == "interrupted") & (runs.c.reason == LEASE_EXPIRED)
        return conn.execute(
            runs.update()
            .where(runs.c.id == run_id, (runs.c.status == "running") | revived)
            .values(heartbeat_at=now(), status="running", reason=None, finished_at=None)
        ).rowcount

    @unavailable
    def heartbeat_run(self, run_id: str) -> None:
        """Say that the process running ``run_id`` is alive (a finished run is left as it is).

        Raises:
            NotFoundError: there is no run ``run_id`` (the whole id).
        """
        with self._write() as conn:
            if self._beat(conn, run_id):
                return
            if conn.execute(select(runs.c.id).where(runs.c.id == run_id)).first() is None:
                raise NotFoundError(f"no run {run_id!r}")

    @unavailable
    def add_cases(self, run_id: str, cases: Sequence[CaseResult]) -> None:
        """Append finished cases to a run, in one transaction (the eval runner calls it from its writer thread,
        never from the event loop)."""
        if not cases:
            return
        # Each case encoded once, straight into the driver's parameters, before the transaction starts.
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        inserts = list(case_inserts(run_cases.name, mark, run_id, cases))
        with self._write() as conn:
            for statement, parameters in inserts:
                conn.exec_driver_sql(statement, tuple(parameters))
            self._beat(conn, run_id)

    @unavailable
    def update_run(self, record: RunRecord) -> None:
        """Save a run's status, tallies and end."""
        with self._write() as conn:
            conn.execute(runs.update().where(runs.c.id == record.id).values(heartbeat_at=now(), **self._counts(record)))

    @staticmethod
    def _run(row: Row[Any]) -> RunRecord:
        record = RunRecord(
            id=row.id,
            prompt=row.name,
            version=row.version,
            label=row.label,
            model=row.model,
            status=row.status,
            reason=row.reason,
            started_at=utc(row.started_at),
            finished_at=utc(row.finished_at) if row.finished_at else None,
            trace_id=row.trace_id,
            cost_usd=row.cost_usd,
            created_by=row.created_by,
        )
        return record.with_details(json.loads(row.details))

    def _settle(self, rows: Sequence[Row[Any]]) -> list[RunRecord]:
        """The runs of ``rows``, every ``running`` run past its lease found interrupted (and saved so)."""
        records = []
        lease: float | None = None
        for row in rows:
            record = self._run(row)
            if record.status == "running":
                lease = run_lease() if lease is None else lease
                seen = utc(row.heartbeat_at or row.started_at)
                if now() - seen >= timedelta(seconds=lease):
                    record = self._interrupt(record, seen, lease)
            records.append(record)
        return records

    def _interrupt(self, record: RunRecord, seen: datetime, lease: float) -> RunRecord:
        """A run whose process stopped heartbeating: tallied from its stored cases, ``interrupted`` at its last
        sign of life, and saved so unless its process spoke meanwhile (then it is read again)."""
        retally(record, (data for _, data in self._all_cases(record.id)))
        record.status = "interrupted"
        record.reason = LEASE_EXPIRED
        record.finished_at = seen
        still_expired = func.coalesce(runs.c.heartbeat_at, runs.c.started_at) <= now() - timedelta(seconds=lease)
        try:
            with self._write() as conn:
                saved = conn.execute(
                    runs.update()
                    .where(runs.c.id == record.id, runs.c.status == "running", still_expired)
                    .values(**self._counts(record))
                ).rowcount
        except sa_exc.DBAPIError as exc:  # a read-only database, a replica: say what it is, save nothing
            log.warning("promptlane: run %s lost its process, but saving it as interrupted failed: %s", record.id, exc)
            return record
        if saved:
            return record
        with self._read() as conn:  # its process spoke, or another reader saved it first
            row = conn.execute(self._runs_query().where(runs.c.id == record.id)).first()
        return self._run(row) if row is not None else record

    def _all_cases(self, run_id: str) -> Iterator[tuple[int, str]]:
        last = 0
        while True:
            page = self.case_page(run_id, after=last)
            yield from page
            if len(page) < _PAGE:
                return
            last = page[-1][0]

    def _runs_query(self) -> Any:
        return select(runs, prompts.c.name).join(prompts, prompts.c.id == runs.c.prompt_id)

    @unavailable
    def get_run(self, run_id: str) -> RunRecord:
        """A run by id or unique id prefix."""
        prefix = run_id.strip().lower()
        if not prefix:
            raise NotFoundError("no run id given")
        with self._read() as conn:
            rows = conn.execute(self._runs_query().where(runs.c.id.startswith(prefix, autoescape=True)).limit(2)).all()
        if not rows:
            raise NotFoundError(f"no run {run_id!r}")
        if len(rows) > 1:
            raise RegistryError(f"run id {run_id!r} is ambiguous: give more of it")
        return self._settle(rows)[0]

    @unavailable
    def list_runs(self, name: str | None = None, *, version: int | None = None, limit: int = 50) -> list[RunRecord]:
        """Runs, newest first (of one prompt, or one version)."""
        query = self._runs_query()
        if name is not None:
            query = query.where(prompts.c.name == name)
        if version is not None:
            query = query.where(runs.c.version == version)
        with self._read() as conn:
            rows = conn.execute(query.order_by(runs.c.started_at.desc(), runs.c.id).limit(limit)).all()
        return self._settle(rows)

    def run_cases(self, run_id: str, *, statuses: Sequence[str] | None = None) -> Iterator[CaseResult]:
        """A run's cases in the order they finished, read a page at a time."""
        last = 0
        while True:
            page = self.case_page(run_id, after=last, statuses=statuses)
            for row_id, data in page:
                last = row_id
                yield CaseResult.from_json(json.loads(data))
            if len(page) < _PAGE:
                return

    @unavailable
    def case_page(
        self, run_id: str, *, after: int = 0, limit: int = _PAGE, statuses: Sequence[str] | None = None
    ) -> list[tuple[int, str]]:
        """Up to ``limit`` of a run's cases stored after position ``after``: (position, case JSON text)."""
        query = select(run_cases.c.id, run_cases.c.data).where(run_cases.c.run_id == run_id, run_cases.c.id > after)
        if statuses:
            query = query.where(run_cases.c.status.in_(list(statuses)))
        with self._read() as conn:
            return [(row.id, row.data) for row in conn.execute(query.order_by(run_cases.c.id).limit(limit))]

    @unavailable
    def count_cases(self, run_id: str) -> dict[str, int]:
        """A run's stored cases by status."""
        with self._read() as conn:
            rows = conn.execute(
                select(run_cases.c.status, func.count())
                .where(run_cases.c.run_id == run_id)
                .group_by(run_cases.c.status)
            ).all()
        return {status: count for status, count in rows}
