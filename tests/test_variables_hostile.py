"""A variables schema comes from a prompt's author and is loaded by every application that renders the prompt: it
must not run code, fetch anything, hang a render or take the process down, whether it came through a push (checked
with file and line) or straight from a store (checked again when an application compiles it)."""

from __future__ import annotations

import http.server
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from promptlane._schema import MAX_DEPTH, MAX_PATTERNS, MAX_SUBSCHEMAS, MAX_VALUE_DEPTH
from promptlane.errors import SpecError, VariableError
from promptlane.registry import Registry
from promptlane.spec import load_prompt_file
from promptlane.variables import compile_variables

HANG_GUARD = 120  # seconds: only there so that a regression fails instead of hanging the suite


def _run(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (a crash or a hang there cannot take the test run with it)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=HANG_GUARD
    )


def test_catastrophic_patterns_do_not_hang_a_render() -> None:
    # Each of these takes a backtracking engine (Python's re) exponential time on the subject below.
    result = _run(
        """
        from promptlane.errors import VariableError
        from promptlane.variables import compile_variables

        subject = "a" * 100_000 + "!"
        for pattern in ["(a+)+$", "^(a|a)*$", "^(a|aa)+$", "(.*a){20}$", "^(\\\\w+\\\\s?)*$"]:
            validate = compile_variables({"s": {"type": "string", "pattern": pattern}}, prompt="p", version=1)
            try:
                validate({"s": subject})
            except VariableError as exc:
                print(exc.reason[:40])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("does not match pattern") == 5, result.stdout


HOSTILE = [
    "'); import os; os.system('touch PWNED'); ('",
    '"); __import__("os").system("touch PWNED"); ("',
    "\\'; open('PWNED', 'w'); #",
    "}}\n    open('PWNED', 'w')\n    {{",
    "${__import__('os').system('touch PWNED')}",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_schema_text_is_data_never_code(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Property names, patterns, defaults, enum values and descriptions shaped like code are only ever data (the
    validator generates no code from a schema)."""
    monkeypatch.chdir(tmp_path)
    schema = {
        "v": {
            "type": "object",
            "description": text,
            "properties": {text: {"type": "string", "default": text, "enum": [text, "ok"]}},
            "patternProperties": {"^" + "x" * 3: {"const": text}},
            "$defs": {"d": {"type": "string", "description": text}},
            "additionalProperties": {"$ref": "#/$defs/d"},
        },
        "code": {"type": "string", "pattern": "^[a-z]+$", "default": text, "$comment": text},
    }
    validate = compile_variables(schema, prompt="p", version=1)
    assert validate({"v": {text: "ok"}}) == {"v": {text: "ok"}, "code": text}
    assert validate({"v": {}}) == {"v": {text: text}, "code": text}
    with pytest.raises(VariableError):
        validate({"v": {text: "other"}})
    with pytest.raises(VariableError, match="does not match pattern"):
        validate({"v": {}, "code": text})
    assert not (tmp_path / "PWNED").exists()


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        body = b'{"type": "integer"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def schema_server() -> Iterator[str]:
    """A schema server on this machine, counting the requests it gets."""
    _CountingHandler.requests = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _remote_refs(server: str, tmp_path: Path) -> list[str]:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text('{"type": "integer"}')
    return [
        f"{server}/schema.json",
        f"{server}/schema.json#/type",
        schema_file.as_uri(),
        "schema.json",
        "schema.json#",
        "//127.0.0.1/schema.json",
        "urn:example:schema",
        "#anchor",
    ]


def test_references_outside_the_schema_are_refused_at_load(
    schema_server: str, tmp_path: Path, write_prompt: Callable[[str, str], Path]
) -> None:
    for ref in _remote_refs(schema_server, tmp_path):
        path = write_prompt("p", f"template: '{{{{ v }}}}'\nvariables:\n  v:\n    items: {{$ref: '{ref}'}}\n")
        with pytest.raises(SpecError) as info:
            load_prompt_file(path)
        assert str(info.value) == (
            f"{path}:4: variables.v.items.$ref: $ref {ref!r} points outside the schema: only references inside it "
            "resolve (#/$defs/NAME); promptlane never fetches a schema"
        )
    assert _CountingHandler.requests == []


def test_references_outside_the_schema_are_refused_when_a_stored_version_is_compiled(
    schema_server: str, tmp_path: Path
) -> None:
    """A version written to the store by something other than promptlane's push is checked again."""
    for ref in _remote_refs(schema_server, tmp_path):
        stored = {"v": {"$defs": {"a": {"$ref": ref}}, "items": {"$ref": "#/$defs/a"}}}
        with pytest.raises(SpecError) as info:
            compile_variables(stored, prompt="shop/order", version=3)
        assert str(info.value).startswith(f"shop/order@3: variables.v.$defs.a.$ref: $ref {ref!r} points outside")
    assert _CountingHandler.requests == []


def test_a_stored_schema_with_a_keyword_promptlane_does_not_know_is_refused() -> None:
    for keyword, value in [("$id", "http://example.com/s"), ("promptlane:integer", True), ("patern", "x")]:
        with pytest.raises(SpecError, match=re.escape(f"p@1: variables.v.{keyword}: unknown key {keyword!r}")):
            compile_variables({"v": {"type": "string", keyword: value}}, prompt="p", version=1)


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for _ in range(depth):
        schema = {"items": schema}
    return schema


def test_schemas_are_bounded_in_depth_size_and_regular_expressions(
    write_prompt: Callable[[str, str], Path],
) -> None:
    import json

    cases = [
        (_nested(MAX_DEPTH + 1), f"schemas nested more than {MAX_DEPTH} levels deep"),
        ({"anyOf": [{}] * MAX_SUBSCHEMAS}, f"the schema holds more than {MAX_SUBSCHEMAS} schemas"),
        (
            {"anyOf": [{"pattern": f"^{i}$"} for i in range(MAX_PATTERNS + 1)]},
            f"the schema holds more than {MAX_PATTERNS} regular expressions",
        ),
        ({"pattern": "a" * 1001}, "pattern is 1001 characters long, over the limit of 1000"),
        ({"pattern": ".{1000}"}, "pattern '.{1000}' compiles to more than 256 KiB"),
    ]
    for schema, message in cases:
        path = write_prompt("p", f"template: x\nvariables:\n  v: {json.dumps(schema)}\n")
        with pytest.raises(SpecError) as info:
            load_prompt_file(path)
        assert message in str(info.value)
        assert str(info.value).startswith(f"{path}:3: variables.v")
        with pytest.raises(SpecError, match=re.escape(message)):  # and when compiled from a store
            compile_variables({"v": schema}, prompt="p", version=1)
    assert load_prompt_file(write_prompt("p", f"template: x\nvariables:\n  v: {json.dumps(_nested(MAX_DEPTH))}\n"))


def test_the_regular_expressions_of_all_the_variables_are_bounded_together(registry: Registry) -> None:
    per_variable = MAX_PATTERNS // 2 + 1
    variables = {name: {"anyOf": [{"pattern": f"^{i}$"} for i in range(per_variable)]} for name in ("a", "b")}
    with pytest.raises(SpecError, match=f"the variables hold {2 * per_variable} regular expressions"):
        registry.push_spec("p", {"template": "{{ a }}{{ b }}", "variables": variables})


def test_a_schema_that_refers_to_itself_bounds_the_depth_of_values() -> None:
    """The validator recurses as deep as such a schema leads it: a value deep enough would overflow its native
    stack (a crash, not an exception), so the depth is checked first. In a subprocess, where a crash is only a
    failed test."""
    result = _run(
        f"""
        from promptlane.errors import VariableError
        from promptlane.variables import compile_variables

        tree = {{"$defs": {{"node": {{"type": "object", "properties": {{"kids": {{"type": "array",
                 "items": {{"$ref": "#/$defs/node"}}, "default": []}}}}}}}}, "$ref": "#/$defs/node"}}
        validate = compile_variables({{"t": tree, "l": {{"type": "array", "items": {{"$ref": "#"}}}}}}, prompt="p")
        node = {{"kids": []}}
        for _ in range({MAX_VALUE_DEPTH} // 2 - 1):
            node = {{"kids": [node]}}
        validate({{"t": node, "l": []}})
        print("shallow ok")
        for deep in (200_000, 1_000):
            value = []
            for _ in range(deep):
                value = [value]
            try:
                validate({{"t": {{"kids": []}}, "l": value}})
            except VariableError as exc:
                print(exc)
        cycle = []
        cycle.append(cycle)
        try:
            validate({{"t": {{"kids": []}}, "l": cycle}})
        except VariableError as exc:
            print(exc)
        loop = {{"$defs": {{"a": {{"$ref": "#/$defs/b"}}, "b": {{"$ref": "#/$defs/a"}}}}, "$ref": "#/$defs/a"}}
        print(compile_variables({{"x": loop}})({{"x": 1}}))
        """
    )
    assert result.returncode == 0, result.stderr
    deep = f"p, variable 'l': nested more than {MAX_VALUE_DEPTH} levels deep (its schema refers to itself)"
    assert result.stdout.splitlines() == ["shallow ok", deep, deep, deep, "{'x': 1}"]


def test_values_too_deep_or_inside_themselves_for_a_whole_value_keyword_are_refused() -> None:
    validate = compile_variables({"v": {"enum": [[1]]}}, prompt="p", version=1)
    cycle: list[Any] = []
    cycle.append(cycle)
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    for value in (cycle, deep):
        with pytest.raises(VariableError) as info:
            validate({"v": value})
        assert (info.value.variable, info.value.reason) == (
            "v",
            "nested too deep to check (more than 250 levels, or inside itself)",
        )
