"""Dataset rows: JSONL, CSV (typed by the variables schema) and YAML, streamed, with file/line errors."""

from __future__ import annotations

import csv
import inspect
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from promptlane.errors import SpecError
from promptlane.harness.datasets import (
    FirstColumns,
    Row,
    all_columns,
    count_rows,
    first_columns,
    iter_rows,
    resolve_dataset,
    row_lines,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def row_error(path: Path, variables: dict[str, Any] | None = None) -> SpecError:
    with pytest.raises(SpecError) as info:
        list(iter_rows(path, variables))
    return info.value


# --- JSONL ------------------------------------------------------------------------------------------------


def test_jsonl(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tickets.jsonl",
        '{"ticket": "Where is 1001?", "expected": "delivered"}\n'
        "\n"
        "   \n"
        '{"ticket": "Refund", "n": 3, "tags": ["a"], "extra": {"x": null}}\n'
        '{"ticket": "last, no newline"}',
    )

    assert list(iter_rows(path)) == [
        Row(index=1, line=1, values={"ticket": "Where is 1001?", "expected": "delivered"}),
        Row(index=2, line=4, values={"ticket": "Refund", "n": 3, "tags": ["a"], "extra": {"x": None}}),
        Row(index=3, line=5, values={"ticket": "last, no newline"}),
    ]
    assert count_rows(path) == 3


def test_jsonl_values_are_not_coerced(tmp_path: Path) -> None:
    path = write(tmp_path, "rows.jsonl", '{"n": "3", "flag": "true"}\n')

    rows = list(iter_rows(path, {"n": {"type": "integer"}, "flag": {"type": "boolean"}}))

    assert [row.values for row in rows] == [{"n": "3", "flag": "true"}]


def test_empty_files(tmp_path: Path) -> None:
    jsonl = write(tmp_path, "rows.jsonl", "\n\n")
    csv = write(tmp_path, "rows.csv", "")
    header_only = write(tmp_path, "header.csv", "ticket,expected\n")

    assert [list(iter_rows(p)) for p in (jsonl, csv, header_only)] == [[], [], []]
    assert [count_rows(p) for p in (jsonl, csv, header_only)] == [0, 0, 0]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            '{"a": 1}\n\n{"a": 2,}\n',
            3,
            "invalid JSON: Expecting property name enclosed in double quotes: line 1 column 9 (char 8)",
        ),
        ('{"a": 1}\nnot json\n', 2, "invalid JSON: Expecting value: line 1 column 1 (char 0)"),
        ('{"a": 1}\n[1, 2]\n', 2, "a row must be a JSON object"),
        ('"just text"\n', 1, "a row must be a JSON object"),
        ("null\n", 1, "a row must be a JSON object"),
    ],
    ids=["trailing-comma", "not-json", "array", "string", "null"],
)
def test_jsonl_errors(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = write(tmp_path, "rows.jsonl", text)

    error = row_error(path)

    assert (error.path, error.line, error.key, error.reason) == (path, line, None, reason)
    assert str(error) == f"{path}:{line}: {reason}"


def test_rows_before_an_error_are_yielded(tmp_path: Path) -> None:
    path = write(tmp_path, "rows.jsonl", '{"a": 1}\n{"a": 2}\n{oops\n')
    rows = iter_rows(path)

    assert [next(rows).values, next(rows).values] == [{"a": 1}, {"a": 2}]
    with pytest.raises(SpecError) as info:
        next(rows)
    assert info.value.line == 3


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": "caf\xe9"}\n')

    error = row_error(path)

    assert (error.path, error.reason) == (path, "not UTF-8 text")


def test_missing_file_and_bad_suffix(tmp_path: Path) -> None:
    missing = row_error(tmp_path / "nope.csv")
    suffix = row_error(write(tmp_path, "rows.txt", "a\n"))

    assert (missing.path, missing.reason) == (tmp_path / "nope.csv", "cannot read: No such file or directory")
    assert (suffix.path, suffix.reason) == (tmp_path / "rows.txt", "a dataset is a .jsonl, .csv or .yaml file")


# --- CSV --------------------------------------------------------------------------------------------------

VARIABLES: dict[str, Any] = {
    "count": {"type": "integer"},
    "price": {"type": "number"},
    "urgent": {"type": "boolean"},
    "tags": {"type": "array"},
    "meta": {"type": "object"},
    "note": {"type": ["integer", "null"]},
    "ticket": {"type": "string"},
}


def test_csv_values_follow_the_variables_schema(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rows.csv",
        "ticket,count,price,urgent,tags,meta,note,other\n"
        '42,3,2.5,yes,"[""a"", ""b""]","{""k"": 1}",,7\n'
        "007,-4,10,False,[],{},5,\n"
        "hi,many,cheap,maybe,not json,{bad,x,true\n",
    )

    assert list(iter_rows(path, VARIABLES)) == [
        Row(
            index=1,
            line=2,
            values={
                "ticket": "42",  # declared string: kept as text
                "count": 3,
                "price": 2.5,
                "urgent": True,
                "tags": ["a", "b"],
                "meta": {"k": 1},
                "note": None,  # empty, and null is allowed
                "other": "7",  # not declared: text
            },
        ),
        Row(
            index=2,
            line=3,
            values={
                "ticket": "007",
                "count": -4,
                "price": 10,
                "urgent": False,
                "tags": [],
                "meta": {},
                "note": 5,
                "other": "",
            },
        ),
        # Cells that do not convert stay text: the variables check then names the column and the type.
        Row(
            index=3,
            line=4,
            values={
                "ticket": "hi",
                "count": "many",
                "price": "cheap",
                "urgent": "maybe",
                "tags": "not json",
                "meta": "{bad",
                "note": "x",
                "other": "true",
            },
        ),
    ]
    assert count_rows(path) == 3


@pytest.mark.parametrize(
    ("kind", "cell", "value"),
    [
        ("integer", "12", 12),
        ("integer", "-12", -12),
        ("integer", "1.5", "1.5"),
        ("integer", "", ""),  # empty, null not allowed: text
        (["integer", "null"], "", None),
        (["string", "null"], "", ""),  # an empty string is a string
        ("number", "1e3", 1000.0),
        ("number", "-0.5", -0.5),
        ("number", "3", 3),
        ("boolean", "TRUE", True),
        ("boolean", " on ", True),
        ("boolean", "1", True),
        ("boolean", "No", False),
        ("boolean", "off", False),
        ("boolean", "0", False),
        (["integer", "boolean"], "1", 1),
        ("array", "[1, 2]", [1, 2]),
        ("array", "1, 2", "1, 2"),
        ("object", '{"a": [1]}', {"a": [1]}),
        (None, "12", "12"),
    ],
)
def test_csv_cell_coercion(tmp_path: Path, kind: Any, cell: str, value: Any) -> None:
    path = tmp_path / "rows.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([["x"], [cell]])

    (row,) = iter_rows(path, {"x": {"type": kind}} if kind is not None else {"x": {}})

    assert row.values == {"x": value}
    assert type(row.values["x"]) is type(value)


def test_csv_short_row_lacks_its_last_columns(tmp_path: Path) -> None:
    # A missing cell is a missing column (the run names it at the row's line), not a null value.
    path = write(tmp_path, "rows.csv", "a,b,c\n1,2\n1,2,\n")

    assert list(iter_rows(path)) == [
        Row(index=1, line=2, values={"a": "1", "b": "2"}),
        Row(index=2, line=3, values={"a": "1", "b": "2", "c": ""}),
    ]


def test_csv_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "rows.csv", "a\n1\n\n2\n")

    assert [(row.index, row.line, row.values) for row in iter_rows(path)] == [(1, 2, {"a": "1"}), (2, 4, {"a": "2"})]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("a,b\n1,2\n3,4,5\n", 3, "the row has more cells than the header"),
        ("a,b,a\n1,2,3\n", 1, "the header names a column twice"),
    ],
    ids=["too-many-cells", "duplicated-header"],
)
def test_csv_errors(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = write(tmp_path, "rows.csv", text)

    error = row_error(path)

    assert (error.path, error.line, error.reason) == (path, line, reason)
    assert str(error) == f"{path}:{line}: {reason}"


def test_csv_multiline_cell_row_line_is_where_it_starts(tmp_path: Path) -> None:
    path = write(tmp_path, "rows.csv", 'ticket,n\n"line one\nline two",1\nplain,2\n')

    assert [(row.line, row.values["ticket"]) for row in iter_rows(path)] == [(2, "line one\nline two"), (4, "plain")]


@pytest.mark.parametrize("cell", ["--5", "²"])
def test_csv_integer_cell_that_int_rejects_stays_text(tmp_path: Path, cell: str) -> None:
    path = write(tmp_path, "rows.csv", f"n\n{cell}\n")

    assert [row.values for row in iter_rows(path, {"n": {"type": "integer"}})] == [{"n": cell}]


def test_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes("ticket,n\nhi,1\n".encode("utf-8-sig"))

    assert [row.values for row in iter_rows(path)] == [{"ticket": "hi", "n": "1"}]


# --- YAML -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_yaml(tmp_path: Path, suffix: str) -> None:
    path = write(
        tmp_path,
        f"rows{suffix}",
        '# tickets\n- {ticket: "Where is 1001?", expected: delivered}\n- ticket: Refund\n  n: 3\n  tags: [a]\n',
    )

    assert list(iter_rows(path, {"n": {"type": "string"}})) == [
        Row(index=1, line=2, values={"ticket": "Where is 1001?", "expected": "delivered"}),
        Row(index=2, line=3, values={"ticket": "Refund", "n": 3, "tags": ["a"]}),
    ]
    assert count_rows(path) == 2


@pytest.mark.parametrize(
    ("text", "line", "key", "reason"),
    [
        ("ticket: hi\n", 1, None, "a YAML dataset is a list of mappings"),
        ("", None, None, "a YAML dataset is a list of mappings"),
        ("- {a: 1}\n- just text\n", 2, "1", "a row must be a mapping"),
        ("- {a: 1}\n- a: b: c\n", 2, None, "invalid YAML: mapping values are not allowed here"),
    ],
    ids=["mapping", "empty", "row-not-a-mapping", "bad-yaml"],
)
def test_yaml_errors(tmp_path: Path, text: str, line: int | None, key: str | None, reason: str) -> None:
    path = write(tmp_path, "rows.yaml", text)

    error = row_error(path)

    assert (error.path, error.line, error.key, error.reason) == (path, line, key, reason)


# --- streaming --------------------------------------------------------------------------------------------


BIG_FILES = {
    "jsonl": ("", json.dumps({"ticket": "x" * 100, "expected": "delivered"}) + "\n", 1, "{not json\n"),
    "csv": ("ticket,expected\n", "x" * 100 + ",delivered\n", 2, "a,b,too many cells\n"),
}


@pytest.mark.parametrize("suffix", list(BIG_FILES))
def test_iter_rows_streams_a_big_file(tmp_path: Path, suffix: str) -> None:
    """Streaming, shown without a clock: the first rows of a ~10 MB file come with a few kilobytes allocated,
    and before the bad line at its end is read."""
    header, line, first_line, bad_last_line = BIG_FILES[suffix]
    path = tmp_path / f"big.{suffix}"
    path.write_text(header + line * 100_000)
    assert count_rows(path) == 100_000
    with path.open("a") as file:
        file.write(bad_last_line)

    rows = iter_rows(path)
    assert inspect.isgenerator(rows)
    tracemalloc.start()
    try:
        first = [next(rows) for _ in range(3)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        rows.close()

    assert [(row.index, row.line) for row in first] == [(1, first_line), (2, first_line + 1), (3, first_line + 2)]
    assert peak < 1_000_000, f"reading 3 rows allocated {peak} bytes: the file is not streamed"
    with pytest.raises(SpecError) as info:
        for _ in iter_rows(path):
            pass
    assert info.value.line == first_line + 100_000


# --- columns, without reading every row -------------------------------------------------------------------


def test_first_columns_of_a_csv_file_are_its_header_and_complete(tmp_path: Path) -> None:
    path = write(tmp_path, "rows.csv", "ticket,expected\nhi,there\n")

    assert first_columns(path) == FirstColumns(columns=frozenset({"ticket", "expected"}), complete=True, line=1)
    assert first_columns(write(tmp_path, "header.csv", "ticket\n")) == FirstColumns(
        columns=frozenset({"ticket"}), complete=True, line=1
    )
    assert first_columns(write(tmp_path, "empty.csv", "")) is None


def test_first_columns_of_a_jsonl_file_are_its_first_rows_and_incomplete(tmp_path: Path) -> None:
    path = write(tmp_path, "rows.jsonl", '\n{"ticket": "a"}\n{"ticket": "b", "expected": "c"}\n{oops\n')

    assert first_columns(path) == FirstColumns(columns=frozenset({"ticket"}), complete=False, line=2)
    assert all_columns(path) == {"ticket", "expected"}  # the line that does not parse is the run's to report
    assert first_columns(write(tmp_path, "empty.jsonl", "\n")) is None
    assert all_columns(write(tmp_path, "none.jsonl", "")) == frozenset()


def test_first_columns_of_a_jsonl_file_read_one_row(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text('{"ticket": "a"}\n' * 100_000 + "{not json\n")

    tracemalloc.start()
    try:
        first = first_columns(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert first == FirstColumns(columns=frozenset({"ticket"}), complete=False, line=1)
    assert peak < 1_000_000, f"reading the first row allocated {peak} bytes"


def test_columns_of_a_yaml_file_are_every_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "rows.yaml", "- {ticket: a}\n- {ticket: b, expected: c}\n")

    assert first_columns(path) == FirstColumns(columns=frozenset({"ticket", "expected"}), complete=True, line=None)
    assert all_columns(path) == {"ticket", "expected"}
    assert first_columns(write(tmp_path, "empty.yaml", "[]\n")) is None


def test_row_lines(tmp_path: Path) -> None:
    jsonl = write(tmp_path, "rows.jsonl", '{"a": 1}\n\n{"a": 2}\n')
    csv_file = write(tmp_path, "rows.csv", 'a\n"one\ntwo"\n3\n')
    yaml_file = write(tmp_path, "rows.yaml", "# rows\n- {a: 1}\n- a: 2\n")

    assert [list(row_lines(path)) for path in (jsonl, csv_file, yaml_file)] == [[1, 3], [2, 4], [2, 3]]


# --- where a dataset may be -----------------------------------------------------------------------------------

OUTSIDE = (
    "is outside the project folder: a dataset is read only from the project, or from a folder listed in the "
    "`dataset_roots` setting"
)


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(project root, a scenario file in evals/, a shared folder outside the project with rows.jsonl)."""
    root, shared = tmp_path / "project", tmp_path / "shared"
    (root / "evals" / "data").mkdir(parents=True)
    (root / "datasets").mkdir()
    shared.mkdir()
    (shared / "rows.jsonl").write_text('{"a": 1}\n')
    scenario = root / "evals" / "support.yaml"
    scenario.write_text("prompt: p\n")
    return root, scenario, shared


@pytest.mark.parametrize("name", ["rows.jsonl", "data/rows.jsonl", "../datasets/rows.jsonl", "data/../rows.csv"])
def test_a_dataset_inside_the_project_is_the_path_as_written(layout: tuple[Path, Path, Path], name: str) -> None:
    root, scenario, _ = layout
    assert resolve_dataset(scenario, name, roots=[root]) == scenario.parent / name


def outside_names(root: Path, shared: Path) -> dict[str, str]:
    """Ways to name a file outside the project, from evals/support.yaml."""
    return {
        "dot-dot": "../../shared/rows.jsonl",
        "absolute": str(shared / "rows.jsonl"),
        "system file": "../" * 40 + "etc/passwd",
        "absolute system file": "/etc/passwd",
        "missing file": "../../shared/no-such.jsonl",  # refused the same: no probing for what exists
        "sibling prefix": "../../project-other/rows.jsonl",  # /x/project-other is not inside /x/project
    }


def test_a_dataset_outside_the_project_is_refused(layout: tuple[Path, Path, Path]) -> None:
    root, scenario, shared = layout
    for case, name in outside_names(root, shared).items():
        with pytest.raises(SpecError) as refused:
            resolve_dataset(scenario, name, roots=[root])
        assert (refused.value.path, refused.value.reason) == (scenario, f"dataset {name} {OUTSIDE}"), case


def test_a_symbolic_link_out_of_the_project_is_refused(layout: tuple[Path, Path, Path]) -> None:
    root, scenario, shared = layout
    (scenario.parent / "link.jsonl").symlink_to(shared / "rows.jsonl")
    (scenario.parent / "linked").symlink_to(shared, target_is_directory=True)
    (root / "datasets" / "inner.jsonl").write_text("{}\n")
    (scenario.parent / "inner.jsonl").symlink_to(root / "datasets" / "inner.jsonl")

    for name, target in [("link.jsonl", shared / "rows.jsonl"), ("linked/rows.jsonl", shared / "rows.jsonl")]:
        with pytest.raises(SpecError) as refused:
            resolve_dataset(scenario, name, roots=[root])
        assert refused.value.reason == f"dataset {name} (a symbolic link to {target.resolve()}) {OUTSIDE}"
    assert resolve_dataset(scenario, "inner.jsonl", roots=[root]) == scenario.parent / "inner.jsonl"


def test_a_folder_the_settings_allow_may_hold_datasets(layout: tuple[Path, Path, Path]) -> None:
    root, scenario, shared = layout
    (scenario.parent / "link.jsonl").symlink_to(shared / "rows.jsonl")
    roots = [root, shared]
    for name in ("../../shared/rows.jsonl", str(shared / "rows.jsonl"), "link.jsonl"):
        assert resolve_dataset(scenario, name, roots=roots) == scenario.parent / name
    with pytest.raises(SpecError, match="outside the project folder"):
        resolve_dataset(scenario, "/etc/passwd", roots=roots)


def test_a_scenario_file_finds_the_project_it_is_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_scenario_file without settings: the project around the file (its config's dataset_roots); without
    a config file, the file's folder and the working directory."""
    from promptlane.config import Settings
    from promptlane.harness.scenarios import load_scenario_file

    project, shared = tmp_path / "project", tmp_path / "shared"
    (project / "evals").mkdir(parents=True)
    shared.mkdir()
    (shared / "rows.jsonl").write_text('{"a": 1}\n')
    (project / "rows.jsonl").write_text('{"a": 1}\n')
    scenario = project / "evals" / "s.yaml"

    def load(dataset: str, **kw: Any) -> str:
        scenario.write_text(f"prompt: p\nscenarios:\n  - name: rows\n    dataset: {dataset}\n")
        try:
            load_scenario_file(scenario, **kw)
        except SpecError as exc:
            assert (exc.path, exc.line, exc.key) == (scenario, 4, "scenarios.0.dataset")
            return exc.reason
        return "read"

    monkeypatch.chdir(tmp_path / "shared")
    assert load("../rows.jsonl").startswith("dataset ../rows.jsonl is outside the project folder")
    monkeypatch.chdir(project)
    assert load("../rows.jsonl") == "read"  # no config: the working directory's folder is the project
    assert load("../../shared/rows.jsonl").endswith(OUTSIDE)

    (project / "promptlane.toml").write_text('dataset_roots = ["../shared"]\n')
    monkeypatch.chdir(tmp_path)
    assert load("../../shared/rows.jsonl") == "read"
    assert load("../rows.jsonl") == "read"
    assert load("../../shared/rows.jsonl", settings=Settings(root=project)).endswith(OUTSIDE)


# --- half a surrogate pair (a lone JSON "\ud800" escape): no run record could store it -------------------------


def test_a_jsonl_row_with_half_a_surrogate_pair_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "rows.jsonl", '{"who": "Zo\\u00eb \\ud83d\\ude00"}\n{"who": "ok", "tags": ["a", "b\\ud800"]}\n'
    )
    error = row_error(path)
    assert (error.path, error.line, error.key) == (path, 2, "tags.1")
    assert "U+D800 is half of a UTF-16 surrogate pair, without its other half" in error.reason
    # The row before it, with a whole pair, is the characters it stands for.
    assert next(iter(iter_rows(path))).values == {"who": "Zoë \U0001f600"}


def test_a_csv_json_cell_with_half_a_surrogate_pair_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "rows.csv", 'tags\n"[""\\ud83d\\ude00""]"\n"[""\\udc00""]"\n')
    error = row_error(path, {"tags": {"type": "array"}})
    assert (error.line, error.key) == (3, "tags.0")
    assert next(iter(iter_rows(path, {"tags": {"type": "array"}}))).values == {"tags": ["\U0001f600"]}
