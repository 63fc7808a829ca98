"""The remote SDK against a server that answers badly: garbage, HTML, tampered or wrong versions, a slow drip, an
endless body; and against a bad snapshot file. Whatever it gets, the application keeps serving what it has (its
memory, its disk snapshot, its fallback), the background refresh keeps going, and the outage is logged once.

A *front* server on loopback stands between the SDK and a real registry server: it passes requests through, or
answers what the test scripted. Nothing here measures time: a drip that would take a minute must not hold
``get`` for the 30 s guard, and "the client gave up" is the count of bytes the front managed to send.
"""

from __future__ import annotations

import http.client
import http.server
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _live import PATIENCE, LiveServer, finishes, served_registry, wait_for
from promptlane import RegistryUnavailableError
from promptlane.config import Settings
from promptlane.registry import Registry
from promptlane.registry.http import HttpStore
from promptlane.registry.wire import target_from_json, version_from_json, version_to_json

NAME = "support/reply"
FALLBACK = "Hello {{ name }}, from the fallback"
OUTAGE = "serving cached prompts until it answers again"

Script = Callable[["_Handler"], None]
"""What the front answers instead of the real server (None in ``Front.script``: pass through)."""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _FrontHTTP

    def do_GET(self) -> None:
        front = self.server.front
        front.record(self.path)
        script = front.script
        if script is None:
            self.relay(pass_etag=True)
        else:
            script(self)

    def upstream(self, *, pass_etag: bool) -> tuple[int, dict[str, str], bytes]:
        """The real server's answer to this request."""
        keep = ("authorization", "accept") + (("if-none-match",) if pass_etag else ())
        connection = http.client.HTTPConnection("127.0.0.1", self.server.front.upstream_port, timeout=PATIENCE)
        try:
            connection.request("GET", self.path, headers={k: v for k, v in self.headers.items() if k.lower() in keep})
            response = connection.getresponse()
            headers = {k: v for k, v in response.getheaders() if k.lower() in ("content-type", "etag")}
            return response.status, headers, response.read()
        finally:
            connection.close()

    def relay(self, *, pass_etag: bool) -> None:
        status, headers, body = self.upstream(pass_etag=pass_etag)
        self.answer(status, body, headers)

    def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _FrontHTTP(http.server.ThreadingHTTPServer):
    daemon_threads = True
    front: Front

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up on a drip is the point, not an error


class Front:
    """A server on loopback in front of ``upstream``: passes requests through until ``script`` is set."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.script: Script | None = None
        self.sent = 0
        """Bytes a drip (the dripped part) or an endless answer managed to send."""
        self.hung_up = threading.Event()
        """Set when the client closed the connection in the middle of a drip or an endless answer."""
        self._paths: list[str] = []
        self._lock = threading.Lock()
        self._http = _FrontHTTP(("127.0.0.1", 0), _Handler)
        self._http.front = self
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, name="front", daemon=True).start()

    def record(self, path: str) -> None:
        with self._lock:
            self._paths.append(path)

    def count(self, fragment: str) -> int:
        with self._lock:
            return sum(fragment in path for path in self._paths)

    def close(self) -> None:
        self.script = None
        self._http.shutdown()
        self._http.server_close()


# --- scripts ------------------------------------------------------------------------------------------------


def fixed(status: int, body: bytes, content_type: str = "application/json") -> Script:
    return lambda handler: handler.answer(status, body, {"Content-Type": content_type})


def rewritten(change: Callable[[dict[str, Any]], None]) -> Script:
    """The real answer with ``change`` applied to its JSON (asked without the ETag, so that there is one)."""

    def script(handler: _Handler) -> None:
        status, headers, body = handler.upstream(pass_etag=False)
        data = json.loads(body)
        if status == 200:
            change(data)
        handler.answer(status, json.dumps(data).encode(), headers)

    return script


def versions_in(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The versions of an answer: a snapshot's, a resolve answer's, or the answer itself."""
    if "prompts" in data:
        return [item for entry in data["prompts"].values() for item in entry["versions"].values()]
    return [data["version"]] if "version" in data else [data]


def targets_in(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects holding a target: a snapshot's entries, or a resolve answer."""
    if "prompts" in data:
        return list(data["prompts"].values())
    return [data] if "target" in data else []


def tampered(data: dict[str, Any]) -> None:
    for item in versions_in(data):
        item["spec"]["template"] = "Tampered {{ name }}"  # the content hash still names the original


def another_prompt(data: dict[str, Any]) -> None:
    for item in versions_in(data):
        item["name"] = "other/prompt"


def another_version(data: dict[str, Any]) -> None:
    for item in versions_in(data):
        item["number"] += 1


def weights_as_text(data: dict[str, Any]) -> None:
    for entry in targets_in(data):
        entry["target"] = {version: str(weight) for version, weight in entry["target"].items()}
    for item in versions_in(data):
        item["number"] = str(item["number"])


def another_label(data: dict[str, Any]) -> None:
    data["label"] = "staging"


def drip(*, head: bool) -> Script:
    """A real-looking answer sent one byte every 0.2 s: 300+ bytes, a minute or more in all. With ``head``,
    the status line and headers drip too; otherwise they arrive at once and the body drips."""

    def script(handler: _Handler) -> None:
        front: Front = handler.server.front
        body = b'{"label": "production", "prompts": {}}'.ljust(300)
        start = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        head_bytes = start + b"X-Padding: " + b"x" * 250 + b"\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode()
        try:
            if not head:
                handler.wfile.write(head_bytes)
            for byte in head_bytes + body if head else body:
                handler.wfile.write(bytes([byte]))
                front.sent += 1
                time.sleep(0.2)
        except OSError:
            front.hung_up.set()

    return script


def endless(handler: _Handler) -> None:
    """A 200 whose body never ends (no Content-Length: it would end when the connection closes)."""
    front: Front = handler.server.front
    chunk = b"[" * 65536
    try:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
        while True:
            handler.wfile.write(chunk)
            front.sent += len(chunk)
    except OSError:
        front.hung_up.set()


BAD_ANSWERS: dict[str, Script] = {
    "empty-list": fixed(200, b"[]"),
    "null": fixed(200, b"null"),
    "empty-body": fixed(200, b""),
    "html": fixed(200, b"<html><body>Welcome to nginx</body></html>", "text/html"),
    "prompts-a-list": fixed(200, b'{"label": "production", "prompts": [], "target": [], "version": []}'),
    "weights-as-text": rewritten(weights_as_text),
    "tampered-content": rewritten(tampered),
    "another-prompt": rewritten(another_prompt),
    "another-version": rewritten(another_version),
    "another-label": rewritten(another_label),
    "304-to-no-etag": fixed(304, b""),
    "400-html": fixed(400, b"<html>Bad Request</html>", "text/html"),
    "500-html": fixed(500, b"<html>Internal Server Error</html>", "text/html"),
    "gzip-body": lambda handler: handler.answer(200, b"\x1f\x8b not really", {"Content-Encoding": "gzip"}),
}


# --- fixtures -----------------------------------------------------------------------------------------------


class Served:
    """A registry server on loopback (prompt support/reply, production at v1) behind a front."""

    def __init__(self, root: Path) -> None:
        self.registry, self.secrets = served_registry(root, f"sqlite:///{root / 'server.db'}")
        self.registry.push_spec(NAME, {"template": "Hello {{ name }}"})
        self.move(1)
        self.server = LiveServer(self.registry).start()
        self.front = Front(self.server.port)

    def move(self, version: int) -> None:
        self.registry.set_label(NAME, "production", version, force=True, reason="test")

    def close(self) -> None:
        self.front.close()
        self.server.stop()
        self.registry.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    served = Served(tmp_path / "server")
    yield served
    served.close()


MakeClient = Callable[..., Registry]


@pytest.fixture
def client(served: Served, tmp_path: Path) -> Iterator[MakeClient]:
    """SDK clients of the front (read token; an app folder for the disk snapshot); all closed afterwards."""
    made: list[Registry] = []

    # A generous deadline: a busy CI machine must not turn a bad answer into "did not answer in time" (the drip
    # test gives its own, short one: it is about the deadline).
    def make(ttl: float = 30.0, *, folder: str = "app", timeout: float = PATIENCE) -> Registry:
        settings = Settings(root=tmp_path / folder, cache_ttl=ttl, fetch_timeout=timeout)
        registry = Registry(served.front.url, token=served.secrets["read"], settings=settings)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.close()


def messages(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if fragment in record.getMessage()]


# --- bad answers while a label moves ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_bad_answers_while_a_label_moves_never_raise_and_the_move_arrives_once_the_server_answers_well(
    served: Served, client: MakeClient, bad: Script, caplog: pytest.LogCaptureFixture
) -> None:
    app = client(ttl=0.2)
    assert app.get(NAME, label="production").version == 1
    served.registry.push_spec(NAME, {"template": "Hi {{ name }}"})

    with caplog.at_level(logging.WARNING, logger="promptlane"):
        served.front.script = bad
        served.move(2)
        asked = served.front.count("/snapshot?")
        # The refresh thread survives every bad answer: it keeps asking, round after round.
        wait_for(lambda: served.front.count("/snapshot?") >= asked + 3, "three refreshes answered badly")
        during = [app.get(NAME, label="production") for _ in range(5)]
        unknown = app.get("never/seen", label="production", fallback=FALLBACK)

        served.front.script = None
        wait_for(lambda: app.get(NAME, label="production").version == 2, "the move, once the server answers well")

    assert {(prompt.version, prompt.source in ("cache", "stale")) for prompt in during} == {(1, True)}
    assert unknown.source == "fallback"
    assert app.get(NAME, label="production").render(name="Bo").messages[0]["content"] == "Hi Bo"
    assert len(messages(caplog, OUTAGE)) == 1, caplog.text
    assert len(messages(caplog, f"{served.front.url} answers again")) == 1, caplog.text


@pytest.mark.parametrize("bad", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_an_app_starting_on_a_bad_answer_serves_its_snapshot_or_its_fallback(
    served: Served, client: MakeClient, bad: Script
) -> None:
    before = client(folder="app")
    assert before.get(NAME, label="production").version == 1
    before.close()  # writes the snapshot
    served.front.script = bad

    from_disk = client(folder="app").get(NAME, label="production", fallback=FALLBACK)
    fallback = client(folder="elsewhere").get(NAME, label="production", fallback=FALLBACK)

    assert (from_disk.source, from_disk.version) == ("disk", 1)
    assert fallback.source == "fallback"
    with pytest.raises(RegistryUnavailableError, match=f"registry server {served.front.url}"):
        client(folder="third").get(NAME, label="production")  # nothing to serve: the reason, as an outage


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (tampered, "support/reply v1: the content does not match its content hash"),
        (another_prompt, "asked for a version of 'support/reply', got one of 'other/prompt'"),
        (another_version, "asked for support/reply v1, got v2"),
    ],
    ids=["tampered-content", "another-prompt", "another-version"],
)
def test_a_version_is_served_only_if_it_is_the_one_asked_for_and_matches_its_content_hash(
    served: Served,
    client: MakeClient,
    change: Callable[[dict[str, Any]], None],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    served.front.script = rewritten(change)
    app = client()
    with caplog.at_level(logging.WARNING, logger="promptlane"):
        prompt = app.get(NAME, version=1, fallback=FALLBACK)
    assert prompt.source == "fallback"
    assert prompt.render(name="Cy").messages[0]["content"] == "Hello Cy, from the fallback"
    [outage] = messages(caplog, OUTAGE)
    assert reason in outage, outage


def test_a_resolve_answer_carrying_a_version_its_target_does_not_name_is_an_outage(
    served: Served, client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    def elsewhere(data: dict[str, Any]) -> None:
        data["target"] = {"7": 100}

    served.front.script = rewritten(elsewhere)
    with caplog.at_level(logging.WARNING, logger="promptlane"):
        prompt = client().get(NAME, label="production", fallback=FALLBACK)
    assert prompt.source == "fallback"
    assert "support/reply:production points at [7], the answer carries v1" in messages(caplog, OUTAGE)[0]


# --- the deadline and the size bound -------------------------------------------------------------------------


@pytest.mark.parametrize("head", [True, False], ids=["headers-drip", "body-drips"])
def test_a_slow_drip_cannot_hold_get_past_the_deadline(
    served: Served, client: MakeClient, head: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Each byte arrives well within the 0.5 s read timeout; the whole answer would take a minute. Only a total
    # deadline returns within the 30 s guard, and the front sees the client hang up before its last byte.
    served.front.script = drip(head=head)
    app = client(timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="promptlane"):
        prompt = finishes(lambda: app.get(NAME, label="production", fallback=FALLBACK), "a get", timeout=30)
    assert prompt.source == "fallback"
    assert "did not answer in time" in messages(caplog, OUTAGE)[0]
    wait_for(served.front.hung_up.is_set, "the front seeing the client hang up")
    assert served.front.sent < 300


def test_an_endless_answer_is_cut_at_the_size_bound(served: Served) -> None:
    served.front.script = endless
    store = HttpStore(served.front.url, token=served.secrets["read"], timeout=10 * PATIENCE, max_answer=1_000_000)
    try:
        with pytest.raises(RegistryUnavailableError, match="answered more than 1000000 bytes"):
            finishes(lambda: store.snapshot("production"), "a snapshot of an endless answer")
    finally:
        store.close()
    # The client stopped reading and hung up: an answer that kept being read would never end.
    wait_for(served.front.hung_up.is_set, "the front seeing the client hang up")


def test_an_answer_declaring_more_than_the_bound_is_refused_before_it_is_read(served: Served) -> None:
    served.front.script = fixed(200, b"x" * 2000)
    store = HttpStore(served.front.url, token=served.secrets["read"], max_answer=1000)
    try:
        with pytest.raises(RegistryUnavailableError, match="answered more than 1000 bytes"):
            store.get_version(NAME, 1)
    finally:
        store.close()


# --- the disk snapshot ---------------------------------------------------------------------------------------


def _snapshot_text(served: Served, client: MakeClient, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The snapshot file an app wrote, and its JSON."""
    first = client(folder="app")
    first.get(NAME, label="production")
    first.close()
    (snapshot,) = (tmp_path / "app" / ".promptlane" / "snapshots").glob("*.json")
    return snapshot, json.loads(snapshot.read_text())


def _with(data: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> str:
    change(data)
    return json.dumps(data)


BAD_FILES: dict[str, Callable[[dict[str, Any]], str]] = {
    "empty-list": lambda data: "[]",
    "null": lambda data: "null",
    "truncated": lambda data: json.dumps(data)[:-40],
    "not-utf8": lambda data: "\udcff",
    "labels-an-object": lambda data: _with(data, lambda d: d.update(labels={})),
    "label-entry-a-string": lambda data: _with(data, lambda d: d.update(labels=["support/reply"])),
    "weights-summing-to-90": lambda data: _with(data, lambda d: d["labels"][0].update(target={"1": 90})),
    "number-as-text": lambda data: _with(data, lambda d: d["versions"][0].update(number="1")),
    "spec-a-list": lambda data: _with(data, lambda d: d["versions"][0].update(spec=[])),
    "tampered-version": lambda data: _with(data, lambda d: d["versions"][0]["spec"].update(template="Tampered")),
    "deeply-nested": lambda data: "[" * 100_000,
}


@pytest.mark.parametrize("make_bad", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_snapshot_file_is_ignored_with_one_warning(
    served: Served,
    client: MakeClient,
    tmp_path: Path,
    make_bad: Callable[[dict[str, Any]], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    snapshot, data = _snapshot_text(served, client, tmp_path)
    snapshot.write_bytes(make_bad(data).encode("utf-8", "surrogateescape"))
    served.front.script = fixed(503, b"")

    app = client(folder="app")
    with caplog.at_level(logging.WARNING, logger="promptlane"):
        prompts = [app.get(NAME, label="production", fallback=FALLBACK) for _ in range(3)]
        with pytest.raises(RegistryUnavailableError):
            app.get(NAME, version=1)  # nothing to serve, and no fallback: the outage, not the file's error
    assert {prompt.source for prompt in prompts} == {"fallback"}
    assert len(messages(caplog, f"ignoring the prompt snapshot {snapshot}")) == 1, caplog.text


def test_a_good_snapshot_file_still_serves(served: Served, client: MakeClient, tmp_path: Path) -> None:
    _snapshot_text(served, client, tmp_path)
    served.front.script = fixed(503, b"")
    prompt = client(folder="app").get(NAME, label="production", fallback=FALLBACK)
    assert (prompt.source, prompt.version) == ("disk", 1)


# --- the wire readers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ([], "a target must be an object"),
        ({}, "a label must point at least at one version"),
        ({"1": True}, "the weight of v1 must be an integer"),
        ({"1": 100.0}, "the weight of v1 must be an integer"),
        ({"01": 100}, "versions must be numbers"),
        ({"+1": 100}, "versions must be numbers"),
        ({"1": 60, "2": 30}, "must sum to 100"),
        ({"0": 100}, "invalid version 0"),
    ],
)
def test_a_target_is_read_strictly(target: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        target_from_json(target)


def test_a_version_round_trips_and_is_checked_against_what_was_asked() -> None:
    from promptlane.registry.store import PromptVersion
    from promptlane.spec import content_hash

    spec = {"template": "Hi {{ name }}", "model_settings": {"temperature": 0.7}}
    record = PromptVersion(name=NAME, number=3, content_hash=content_hash(spec), spec=spec)
    data = json.loads(json.dumps(version_to_json(record)))
    assert version_from_json(data, name=NAME, number=3) == record
    with pytest.raises(ValueError, match="asked for support/reply v4, got v3"):
        version_from_json(data, name=NAME, number=4)
    del data["message"], data["author"]  # optional fields may be left out
    assert version_from_json(data).spec == spec


def _uncompilable(data: dict[str, Any]) -> None:
    from promptlane._canonical import content_hash

    for item in versions_in(data):
        item["spec"]["template"] = "Hello {{ name "  # hashed anew: a server that means it
        item["content_hash"] = content_hash(item["spec"])


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (rewritten(_uncompilable), "support/reply"),
        (fixed(422, b'{"error": "label: something the server refuses", "type": "ValidationError"}'), "refuses"),
        (fixed(409, b'{"error": "a conflict of its own", "type": "LabelError"}'), "conflict of its own"),
    ],
    ids=["a version that does not compile", "a 422 of the API", "a 409 of the API"],
)
def test_an_app_with_a_fallback_serves_it_whatever_error_the_server_answers(
    served: Served, client: MakeClient, bad: Script, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    served.front.script = bad
    app = client()
    with caplog.at_level(logging.WARNING, logger="promptlane"):
        prompt = app.get(NAME, version=1, fallback=FALLBACK)
    assert prompt.source == "fallback"
    assert prompt.render(name="Di").messages[0]["content"] == "Hello Di, from the fallback"
    assert any(reason in line for line in messages(caplog, "serving the fallback for support/reply")), caplog.text
