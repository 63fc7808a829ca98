"""A page of a run's cases by position, for screens that show a run a page at a time (the web UI's run page)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from sqlalchemy import Connection, select

from ._sqlbase import unavailable
from .tables import run_cases

__all__ = ["SQLRunPages"]


class SQLRunPages:
    """The paged case read of SQLStore (it provides ``_read``)."""

    def _read(self) -> AbstractContextManager[Connection]: ...  # pragma: no cover - provided by SQLStore

    @unavailable
    def case_slice(
        self, run_id: str, *, offset: int, limit: int, statuses: Sequence[str] | None = None
    ) -> list[tuple[int, str]]:
        """Up to ``limit`` of a run's cases (of ``statuses``), skipping the first ``offset`` in the order they
        were stored: (position, case JSON text). Only that page is read from the database."""
        query = select(run_cases.c.id, run_cases.c.data).where(run_cases.c.run_id == run_id)
        if statuses:
            query = query.where(run_cases.c.status.in_(list(statuses)))
        query = query.order_by(run_cases.c.id).offset(max(offset, 0)).limit(max(limit, 0))
        with self._read() as conn:
            return [(row.id, row.data) for row in conn.execute(query)]
