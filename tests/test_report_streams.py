"""``--json`` and ``--junit`` copy a run's cases as the store keeps them: the same documents as decoding and
encoding every case gave, valid whatever the cases hold, and written as the cases are read."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from promptlane.harness import reports
from promptlane.harness.reports import run_json, stored_cases, write_json, write_junit, write_run_json
from promptlane.registry import sql_run_pages, sqlite_store
from promptlane.registry.runs import CaseError, CaseResult, EvaluationResult, RunRecord, ScenarioStats
from promptlane.registry.sql import SQLStore
from promptlane.registry.sqlite_store import open_sqlite_store

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
HOSTILE = 'Zoë ]]> <b>&amp; \x00\x01\x1b[31mred\x7f \r\n\t \u2028\u2029 \ufffe\uffff 🎉 "quoted" \\ end'
"""Unicode, markup, CDATA's end, control characters (XML 1.0 cannot hold most, even escaped), line separators."""
ESCAPED = 'Zoë ]]> <b>&amp; \\x00\\x01\\x1b[31mred\x7f \r\n\t \u2028\u2029 \\ufffe\\uffff 🎉 "quoted" \\ end'
"""``HOSTILE`` in JUnit XML: what XML cannot hold is written as its escape, the rest as it is."""


def _case(number: int) -> CaseResult:
    status = ("passed", "failed", "error")[number % 3]
    return CaseResult(
        scenario=f"greet {HOSTILE}" if number % 7 == 0 else "greet",
        case=f"greet[row-{number}]",
        file="evals/rows.jsonl",
        line=number,
        row=number,
        status=status,  # type: ignore[arg-type]
        variables={"customer": HOSTILE, "n": number},
        output=f"{HOSTILE} {number}" if number % 2 else {"answer": HOSTILE, "n": [number, 1.5, None]},
        evaluations=[
            EvaluationResult(name="contains", passed=status == "passed", reason=f"missing {HOSTILE}"),
            EvaluationResult(name="python:checks.x", passed=True, score=0.25),
        ],
        latency_ms=number / 3,
        cost_usd=None if number % 2 else 0.001,
        error=CaseError(type="ValueError", message=f"bad {HOSTILE}") if status == "error" else None,
    )


CASES = 1234  # more than two pages


def _record(run_id: str) -> RunRecord:
    stats = ScenarioStats(name="greet", file="evals/reply.yaml")
    for number in range(CASES):
        stats.count(_case(number).status)
    return RunRecord(
        id=run_id,
        prompt="support/reply",
        version=1,
        model="python:m:f",
        status="failed",
        started_at=START,
        finished_at=START + timedelta(seconds=2),
        scenarios=[stats],
    )


@pytest.fixture(params=["sql", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A store holding one run of CASES cases: the SQL store, and the local store on the same kind of file."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    made = SQLStore(url)
    spec = {"template": "hi", "variables": {}}
    made.push_version("support/reply", spec, "0" * 64, message=None, author=None)
    made.create_run(_record("a" * 32))
    for start in range(0, CASES, 200):
        made.add_cases("a" * 32, [_case(n) for n in range(start, min(start + 200, CASES))])
    if request.param == "sql":
        yield made
        made.close()
        return
    made.close()
    local = open_sqlite_store(url)
    yield local
    assert local is not None
    local.close()


def _old_json(record: RunRecord, cases: list[CaseResult]) -> str:
    """What ``--json`` wrote before: every case decoded, then encoded again."""
    head = json.dumps(run_json(record), ensure_ascii=False, default=str)
    body = ",".join(json.dumps(case.to_json(), ensure_ascii=False, default=str) for case in cases)
    return head[:-1] + ', "cases": [' + body + "]}"


def test_the_json_report_is_what_decoding_and_encoding_gave(store: Any) -> None:
    record = _record("a" * 32)
    stream = io.StringIO()
    write_run_json(stream, record, stored_cases(store, record.id))
    old = _old_json(record, list(store.run_cases(record.id)))
    assert json.loads(stream.getvalue()) == json.loads(old)
    assert stream.getvalue() == old  # the very same text: the store encodes a case as the report did
    cases = json.loads(stream.getvalue())["cases"]
    assert len(cases) == CASES and cases[7]["variables"]["customer"] == HOSTILE


def test_a_report_of_several_runs_is_one_document(store: Any, tmp_path: Path) -> None:
    record = _record("a" * 32)
    path = tmp_path / "out.json"
    write_json(path, [(record, stored_cases(store, record.id)), (record, iter([]))])
    data = json.loads(path.read_text(encoding="utf-8"))
    assert [len(run["cases"]) for run in data["runs"]] == [CASES, 0]


def test_the_junit_report_stays_xml_whatever_the_cases_hold(store: Any, tmp_path: Path) -> None:
    record = _record("a" * 32)
    path = tmp_path / "out.xml"
    write_junit(path, [(record, stored_cases(store, record.id))])
    (suite,) = ET.parse(path).getroot().findall("testsuite")
    testcases = suite.findall("testcase")
    assert (suite.get("tests"), len(testcases)) == (str(CASES), CASES)
    expected = list(store.run_cases(record.id))
    for case, element in zip(expected, testcases, strict=True):
        assert element.get("name") == case.case
        assert element.get("time") == f"{case.latency_ms / 1000:.3f}"
        failure = element.find("failure" if case.status == "failed" else "error")
        assert (failure is None) == (case.status == "passed")
    assert testcases[1].get("classname") == "support/reply.greet"
    assert testcases[0].get("classname") == f"support/reply.greet {ESCAPED}"
    failed = testcases[1].find("failure")
    assert failed is not None and failed.text is not None
    assert f"contains: missing {ESCAPED}" in failed.text
    errored = testcases[2].find("error")
    assert errored is not None and errored.get("message", "").startswith("bad Zoë ]]>")


def test_reports_write_each_case_as_it_is_read(store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No list of the cases: the writers take one case from the store, write it, then take the next."""
    events: list[str] = []

    def watched(texts: Iterator[str]) -> Iterator[str]:
        for text in texts:
            events.append("read")
            yield text

    class Stream(io.StringIO):
        def write(self, text: str) -> int:
            if text.startswith('{"scenario"'):
                events.append("write")
            return super().write(text)

    record = _record("a" * 32)
    write_run_json(Stream(), record, watched(stored_cases(store, record.id)))
    assert events == ["read", "write"] * CASES

    events.clear()
    written = reports._write_testcase

    def testcase(*args: Any) -> None:
        events.append("write")
        written(*args)

    monkeypatch.setattr(reports, "_write_testcase", testcase)
    write_junit(tmp_path / "out.xml", [(record, watched(stored_cases(store, record.id)))])
    assert events == ["read", "write"] * CASES


def test_the_store_reads_a_page_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    made = SQLStore(url)
    made.push_version("support/reply", {"template": "hi", "variables": {}}, "0" * 64, message=None, author=None)
    made.create_run(_record("a" * 32))
    made.add_cases("a" * 32, [_case(n) for n in range(10)])
    for module in (sql_run_pages, sqlite_store):
        monkeypatch.setattr(module, "_PAGE", 3)
    queries: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "pl_run_cases" in statement:
            queries.append(statement)

    event.listen(made.engine, "before_cursor_execute", seen)
    texts = made.case_texts("a" * 32)
    assert [next(texts) for _ in range(3)] and len(queries) == 1
    next(texts)
    assert len(queries) == 2
    assert len(list(texts)) == 6 and len(queries) == 4  # the last page is short: no query after it
    made.close()

    local = open_sqlite_store(url)
    assert local is not None
    pages: list[int] = []
    read = local._case_page
    monkeypatch.setattr(local, "_case_page", lambda *args: pages.append(1) or read(*args))
    texts = local.case_texts("a" * 32)
    assert [next(texts) for _ in range(3)] and len(pages) == 1
    assert len(list(texts)) == 7 and len(pages) == 4
    local.close()


def test_a_remote_store_is_read_as_it_decodes_and_encoded_again() -> None:
    """A store without stored texts (the HTTP client): its cases, encoded as a store encodes them."""
    cases = [_case(n) for n in range(5)]

    class Remote:
        def run_cases(self, run_id: str) -> Iterator[CaseResult]:
            return iter(cases)

    texts = list(stored_cases(Remote(), "r"))
    assert texts == [json.dumps(case.to_json(), ensure_ascii=False, default=str) for case in cases]
