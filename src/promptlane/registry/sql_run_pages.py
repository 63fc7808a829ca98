"""A run's cases as stored, read a page at a time: by position, for screens that show a run a page at a time (the
web UI's run page), and in order, for reports that write every case (``promptlane eval --json``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

from sqlalchemy import Connection, select

from ._sqlbase import unavailable
from .tables import run_cases

__all__ = ["SQLRunPages"]

_PAGE = 500


class SQLRunPages:
    """The paged case reads of SQLStore (it provides ``_read``)."""

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

    def case_texts(self, run_id: str) -> Iterator[str]:
        """A run's cases in the order they finished, each the JSON text stored (``CaseResult.to_json``, encoded
        once when the case was saved), read a page at a time: a report copies them as they are."""
        after = 0
        while True:
            page = self._text_page(run_id, after)
            for _, data in page:
                yield data
            if len(page) < _PAGE:
                return
            after = page[-1][0]

    @unavailable
    def _text_page(self, run_id: str, after: int) -> list[tuple[int, str]]:
        query = (
            select(run_cases.c.id, run_cases.c.data)
            .where(run_cases.c.run_id == run_id, run_cases.c.id > after)
            .order_by(run_cases.c.id)
            .limit(_PAGE)
        )
        with self._read() as conn:
            return [(row.id, row.data) for row in conn.execute(query)]
