"""The remote SDK against a live server on loopback: stale-while-revalidate, the disk snapshot, outages, and the
CLI pointed at a server URL as at a database URL.

Nothing here measures time. "Never waits on the network" is asserted as "sent no request" (a silent server
counts what it is sent) and "returned while a request hung" (under a generous bound); "within the ttl" as "the
next revalidation brings the move"; sleeps are replaced by waiting for counted events.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import types
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import promptlane.registry.remote as remote_module
from _live import PATIENCE, LiveServer, SilentServer, finishes, served_registry, wait_for
from promptlane import AuthError, RegistryUnavailableError
from promptlane.cli import app
from promptlane.config import Settings
from promptlane.registry import Registry

REPO = Path(__file__).resolve().parents[1]
NAME = "support/reply"

MakeClient = Callable[..., Registry]


class Served:
    """A server on loopback and, behind it, the registry it serves (for moves the test makes 'elsewhere')."""

    def __init__(self, root: Path, url: str | None = None) -> None:
        self.registry, self.secrets = served_registry(root, url or f"sqlite:///{root / 'server.db'}")
        self.registry.push_spec(NAME, {"template": "Hello {{ name }}"})
        self.move(1)
        self.server = LiveServer(self.registry).start()

    @property
    def url(self) -> str:
        return self.server.url

    def move(self, version: int, name: str = NAME) -> None:
        """Move ``production`` behind the server's back, as another server process would (its answer cache
        is bypassed, so the move shows once the server's cache TTL has passed)."""
        self.registry.set_label(name, "production", version, force=True, reason="test")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    served = Served(tmp_path / "server")
    yield served
    served.server.stop()
    served.registry.close()


@pytest.fixture
def client(served: Served, tmp_path: Path) -> Iterator[MakeClient]:
    """Make SDK clients of ``served`` (read token, an app folder for snapshots); all closed afterwards."""
    made: list[Registry] = []

    def make(ttl: float = 30.0, *, folder: str = "app", token: str | None = None, timeout: float = 2.0) -> Registry:
        settings = Settings(root=tmp_path / folder, cache_ttl=ttl, fetch_timeout=timeout)
        registry = Registry(served.url, token=token or served.secrets["read"], settings=settings)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.close()


class Clock:
    """The remote cache's clock: ``time.monotonic()`` as promptlane.registry.remote sees it, moved only by the
    test. Staleness ("older than the ttl") and the refresh schedule ("every ttl / 2") follow it, so neither
    depends on how fast the machine runs the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(remote_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    return clock


def count_revalidations(app: Registry, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the background revalidations (snapshot requests) of ``app`` by outcome: ``answered``, ``unreachable``
    (the server cannot be reached), ``refused`` (an auth error)."""
    remote = app.remote
    assert remote is not None
    outcomes: Counter[str] = Counter()
    snapshot = remote.snapshot

    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            answer = snapshot(*args, **kwargs)
        except RegistryUnavailableError:
            outcomes["unreachable"] += 1
            raise
        except AuthError:
            outcomes["refused"] += 1
            raise
        outcomes["answered"] += 1
        return answer

    monkeypatch.setattr(remote, "snapshot", counted)
    return outcomes


def served_as(app: Registry) -> tuple[int | None, str]:
    """(version, source) of what ``app`` serves for ``production``."""
    prompt = app.get(NAME, label="production")
    return prompt.version, prompt.source


# --- fetching -------------------------------------------------------------------------------------------------


def test_get_fetches_then_answers_from_memory_then_says_stale_once_the_server_is_silent(
    served: Served, client: MakeClient, clock: Clock
) -> None:
    app = client(ttl=0.3)

    first = app.get(NAME, label="production")
    assert (first.source, first.version) == ("registry", 1)
    assert first.render(name="Ana").messages == [{"role": "user", "content": "Hello Ana"}]
    assert app.get(NAME, label="production").source == "cache"

    served.server.stop()
    clock.advance(0.31)  # past the ttl, and no revalidation can succeed now
    prompt = app.get(NAME, label="production")
    assert (prompt.source, prompt.version) == ("stale", 1)


def test_a_server_on_either_database_serves_pushes_moves_and_snapshots(store_url: str, tmp_path: Path) -> None:
    served = Served(tmp_path / "server", store_url)
    try:
        settings = Settings(root=tmp_path / "app", cache_ttl=0.2)
        writer = Registry(served.url, token=served.secrets["admin"], settings=settings)
        reader = Registry(served.url, token=served.secrets["read"], settings=settings)
        writer.push_spec(NAME, {"template": "Hi {{ name }}"})
        assert reader.get(NAME, label="production").version == 1
        writer.set_label(NAME, "production", 2, force=True, reason="test")
        wait_for(lambda: reader.get(NAME, label="production").version == 2, "the reader seeing the move")
        assert reader.prefetch("production") == 1
        writer.close()
        reader.close()
    finally:
        served.server.stop()
        served.registry.close()


def test_a_version_by_number_is_fetched_once_and_kept(served: Served, client: MakeClient) -> None:
    app = client()
    assert app.get(NAME, version=1).source == "registry"
    served.server.stop()
    assert (app.get(NAME, version=1).source, app.get(NAME, version=1).version) == ("cache", 1)


def test_a_label_move_reaches_the_app_within_the_ttl(
    served: Served, client: MakeClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background refresh revalidates every ttl / 2 on the cache's clock: once the clock has moved that
    far, the move is served (from memory, revalidated), after exactly one revalidation."""
    ttl = 1.0
    app = client(ttl=ttl)
    promoter = client(token=served.secrets["admin"])
    served.registry.push_spec(NAME, {"template": "Hi {{ name }}"})
    assert app.get(NAME, label="production").version == 1
    revalidations = count_revalidations(app, monkeypatch)

    promoter.set_label(NAME, "production", 2, force=True, reason="through the API")  # the server's own path
    assert app.get(NAME, label="production").version == 1  # the clock has not moved: no revalidation yet
    clock.advance(ttl / 2)
    wait_for(lambda: app.get(NAME, label="production").version == 2, "the revalidation due ttl / 2 later")

    assert revalidations == {"answered": 1}
    prompt = app.get(NAME, label="production")
    assert (prompt.version, prompt.source) == (2, "cache")


def test_a_targeting_key_picks_a_sticky_version_of_a_rollout(served: Served, client: MakeClient) -> None:
    served.registry.push_spec(NAME, {"template": "Hi {{ name }}"})
    served.registry.set_rollout(NAME, "production", {1: 50, 2: 50}, force=True, reason="test")
    app = client()
    chosen = {key: app.get(NAME, label="production", targeting_key=key).version for key in map(str, range(40))}
    assert set(chosen.values()) == {1, 2}
    assert all(app.get(NAME, label="production", targeting_key=k).version == v for k, v in chosen.items())


def test_prefetch_loads_every_prompt_at_a_label_in_one_request(served: Served, client: MakeClient) -> None:
    for name in ("a/one", "a/two"):
        served.registry.push_spec(name, {"template": f"{name} {{{{ x }}}}"})
        served.move(1, name)
    app = client()
    calls: list[str] = []
    remote = app.remote
    assert remote is not None
    for method in ("snapshot", "resolve", "get_version"):
        original = getattr(remote, method)
        setattr(remote, method, lambda *a, _m=method, _o=original, **k: calls.append(_m) or _o(*a, **k))

    assert app.prefetch("production") == 3
    served.server.stop()

    assert {name: app.get(name, label="production").source for name in (NAME, "a/one", "a/two")} == dict.fromkeys(
        (NAME, "a/one", "a/two"), "cache"
    )
    assert calls == ["snapshot"]


def test_the_environment_names_the_server_and_the_token(
    served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMPTLANE_REGISTRY", served.url)
    monkeypatch.setenv("PROMPTLANE_TOKEN", served.secrets["read"])
    monkeypatch.chdir(tmp_path)
    with Registry() as app:
        assert app.get(NAME, label="production").render(name="Bo").messages[0]["content"] == "Hello Bo"


# --- outages --------------------------------------------------------------------------------------------------


def test_a_cached_prompt_never_waits_on_a_hung_server(served: Served, client: MakeClient) -> None:
    # The fetch timeout outlasts the test: the background revalidation sent to the hung server stays stuck
    # throughout, so a get that waited on it (or on a lock it holds) would never return.
    app = client(ttl=0.2, timeout=10 * PATIENCE)
    app.get(NAME, label="production")
    served.server.stop()
    with SilentServer(served.server.port) as silent:
        wait_for(lambda: silent.count("/snapshot?") >= 1, "the background revalidation asking the hung server")
        prompts = finishes(
            lambda: [app.get(NAME, label="production") for _ in range(300)], "cached gets while a revalidation hangs"
        )
        sent = silent.requests
    assert {(prompt.version, prompt.source) for prompt in prompts} <= {(1, "cache"), (1, "stale")}
    assert len(sent) == 1 and "/snapshot?label=production" in sent[0], sent  # the revalidation; no get asked


def test_every_version_of_a_cached_rollout_is_answered_without_the_network(served: Served, client: MakeClient) -> None:
    served.registry.push_spec(NAME, {"template": "Hi {{ name }}"})
    served.registry.set_rollout(NAME, "production", {1: 50, 2: 50}, force=True, reason="test")
    # No revalidation within the test, and a get that asked the hung server would not return.
    app = client(ttl=10 * PATIENCE, timeout=10 * PATIENCE)
    app.get(NAME, label="production", targeting_key="first")
    served.server.stop()
    with SilentServer(served.server.port) as silent:
        prompts = finishes(
            lambda: [app.get(NAME, label="production", targeting_key=str(key)) for key in range(50)],
            "gets of every version of a cached rollout",
        )
        sent = silent.requests
    assert {prompt.version for prompt in prompts} == {1, 2}
    assert {prompt.source for prompt in prompts} == {"cache"}
    assert sent == []


def test_each_failure_raised_is_a_new_exception(served: Served, client: MakeClient) -> None:
    app = client()
    served.server.stop()
    raised = []
    for name in ("a", "b", "c"):
        with pytest.raises(RegistryUnavailableError) as caught:
            app.get(name, label="production")
        raised.append(caught.value)
    assert len({id(exc) for exc in raised}) == 3  # a shared instance would gather every raise's traceback
    assert all("cannot be reached" in str(exc) for exc in raised)


def test_the_first_get_gives_up_after_the_fetch_timeout_and_the_outage_costs_one_request(
    served: Served, client: MakeClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # After a failure the request path stays off the network for a few seconds; here for longer than any
    # scheduling delay between two calls, so that "one request, not one per call" does not depend on speed.
    monkeypatch.setattr(remote_module, "_QUIET_AFTER_FAILURE", 10 * PATIENCE)
    fallback = "Hello {{ name }}, from the fallback"
    served.server.stop()
    with SilentServer(served.server.port) as silent, caplog.at_level(logging.WARNING, logger="promptlane"):
        app = client(timeout=0.5)
        # Without the fetch timeout the get would wait for the silent server for good (or the 60 s write timeout).
        prompt = finishes(lambda: app.get(NAME, label="production", fallback=fallback), "a get", timeout=30)
        again = finishes(lambda: app.get(NAME, label="production", fallback=fallback), "a second get")
        other = finishes(lambda: app.get("other", label="production", fallback=fallback), "a get of another prompt")
        sent = silent.requests
    assert [p.source for p in (prompt, again, other)] == ["fallback"] * 3
    assert prompt.render(name="Cy").messages[0]["content"] == "Hello Cy, from the fallback"
    assert len(sent) == 1 and f"/prompts/{NAME}/-/resolve?label=production" in sent[0], sent
    assert any("did not answer in time" in record.getMessage() for record in caplog.records), caplog.text


def test_without_a_fallback_a_prompt_nobody_has_is_an_error_naming_the_server(
    served: Served, client: MakeClient
) -> None:
    served.server.stop()
    with pytest.raises(RegistryUnavailableError, match=f"registry server {served.url}"):
        client().get(NAME, label="production")


def test_an_app_starting_while_the_server_is_down_serves_the_disk_snapshot(served: Served, client: MakeClient) -> None:
    served.registry.push_spec(NAME, {"template": "Hi {{ name }}"})
    served.move(2)
    before = client(folder="app")
    assert before.get(NAME, label="production").version == 2
    before.close()  # writes the snapshot
    served.server.stop()

    after = client(folder="app")
    prompt = after.get(NAME, label="production", fallback="never used")
    assert (prompt.source, prompt.version) == ("disk", 2)
    assert prompt.render(name="Di").messages[0]["content"] == "Hi Di"
    assert after.prefetch("production") == 1  # from disk too
    assert client(folder="elsewhere").get(NAME, label="production", fallback="x").source == "fallback"


def test_the_snapshot_is_written_while_the_app_runs_not_only_at_close(
    served: Served, client: MakeClient, tmp_path: Path
) -> None:
    client(ttl=0.2).get(NAME, label="production")
    folder = tmp_path / "app" / ".promptlane" / "snapshots"
    wait_for(lambda: any(folder.glob("*.json")), "a snapshot file")
    served.server.stop()
    shutil.copytree(tmp_path / "app", tmp_path / "copy")  # as if the first process had been killed
    assert client(folder="copy").get(NAME, label="production").source == "disk"


def test_registries_in_one_process_share_a_snapshot_folder_safely(
    served: Served, client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    threads, rounds = 8, 5
    closing = threading.Barrier(threads, timeout=PATIENCE)

    def fetch_and_close(_: int) -> None:
        for _ in range(rounds):
            registry = client()
            registry.get(NAME, label="production")
            closing.wait()  # the eight close at once: each writes the same snapshot file at the same moment
            registry.close()

    with caplog.at_level(logging.WARNING, logger="promptlane"), ThreadPoolExecutor(threads) as pool:
        list(pool.map(fetch_and_close, range(threads)))
    assert caplog.records == []
    served.server.stop()
    assert client().get(NAME, label="production").source == "disk"


def test_a_corrupt_snapshot_is_ignored_with_a_warning(
    served: Served, client: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    earlier = client()
    earlier.get(NAME, label="production")
    earlier.close()  # its refresh thread writes the snapshot: closed, it cannot overwrite the corrupt one below
    for made in (tmp_path / "app" / ".promptlane" / "snapshots").glob("*.json"):
        made.unlink()
    first = client()
    first.get(NAME, label="production")
    first.close()
    (snapshot,) = (tmp_path / "app" / ".promptlane" / "snapshots").glob("*.json")
    snapshot.write_text('{"format": 1, "labels": [')
    served.server.stop()

    with caplog.at_level(logging.WARNING, logger="promptlane"):
        prompt = client().get(NAME, label="production", fallback="Hello {{ name }}")
    assert prompt.source == "fallback"
    assert any(f"ignoring the prompt snapshot {snapshot}" in r.getMessage() for r in caplog.records)


def test_the_app_recovers_when_the_server_is_back(served: Served, client: MakeClient) -> None:
    app = client(ttl=0.3)
    app.get(NAME, label="production")
    served.server.stop()
    wait_for(lambda: app.get(NAME, label="production").source == "stale", "the cached prompt turning stale")
    served.registry.push_spec(NAME, {"template": "Hi {{ name }}"})
    served.move(2)  # while the server is down

    served.server.start()

    wait_for(lambda: served_as(app) == (2, "cache"), "the app serving the move made while down, revalidated")


def test_an_outage_and_its_end_are_logged_once(
    served: Served, client: MakeClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    served.registry.push_spec("other", {"template": "x"})
    served.move(1, "other")
    app = client(ttl=0.1)
    app.prefetch("production")
    revalidations = count_revalidations(app, monkeypatch)

    def get_everything() -> None:
        for _ in range(20):
            app.get(NAME, label="production")
            app.get("other", label="production")
            app.get("never/seen", label="production", fallback="x")

    with caplog.at_level(logging.WARNING, logger="promptlane"):
        served.server.stop()
        get_everything()
        wait_for(lambda: revalidations["unreachable"] >= 3, "three revalidations failing during the outage")
        get_everything()
        served.server.start()
        wait_for(lambda: app.get(NAME, label="production").source == "cache", "the app revalidating again")
        answered = revalidations["answered"]
        wait_for(lambda: revalidations["answered"] >= answered + 3, "three more revalidations after the outage")

    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "serving cached prompts until it answers again" in m]) == 1, messages
    assert len([m for m in messages if m.endswith(f"{served.url} answers again")]) == 1, messages
    assert len([m for m in messages if "serving the fallback for never/seen" in m]) == 1, messages


def test_a_bad_token_is_an_auth_error_not_an_outage(served: Served, client: MakeClient) -> None:
    with pytest.raises(AuthError, match="the token is unknown or revoked"):
        client(token="plt_not-a-token").get(NAME, label="production")
    assert client(token="plt_not-a-token").get(NAME, label="production", fallback="x").source == "fallback"


def test_a_revoked_token_keeps_serving_what_the_app_has(
    served: Served, client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = client(ttl=0.1)
    app.get(NAME, label="production")
    revalidations = count_revalidations(app, monkeypatch)
    served.registry.store.revoke_token("read-token", revoked_by="test")
    served.server.stop()
    served.server.start()  # a new process: no cached token answers
    wait_for(lambda: revalidations["refused"] >= 2, "two revalidations refused for the revoked token")
    assert app.get(NAME, label="production").version == 1
    with pytest.raises(AuthError, match="unknown or revoked"):  # the reason, also while the request path stays quiet
        app.get(NAME, version=2)


# --- the CLI against a server URL ------------------------------------------------------------------------------

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def remote_project(project: Path, served: Served, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The support example's prompts and scenarios, with PROMPTLANE_REGISTRY naming the server."""
    shutil.rmtree(project / "prompts")
    shutil.copytree(REPO / "examples" / "support" / "prompts", project / "prompts")
    shutil.copytree(REPO / "examples" / "support" / "evals", project / "evals")
    with (project / "promptlane.toml").open("a") as config:  # the example's runs use its model function
        config.write('gate_model = "python:examples.support.model:respond"\n')
    # ...and so must the server's configuration: the gate model is the server's, never what a client asks for.
    served.registry.settings = dataclasses.replace(
        served.registry.settings, gate_model="python:examples.support.model:respond"
    )
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.setenv("PROMPTLANE_REGISTRY", served.url)
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    return project


def cli(token: str, *args: str) -> Result:
    return runner.invoke(app, list(args), env={"PROMPTLANE_TOKEN": token})


def test_the_cli_works_against_a_server_as_against_a_database(served: Served, remote_project: Path) -> None:
    write, promote, read = (served.secrets[scope] for scope in ("write", "promote", "read"))

    pushed = cli(write, "push", "-m", "over http")
    assert pushed.exit_code == 0, pushed.output
    assert "support/reply: v2 (new)" in pushed.stdout
    assert cli(write, "push").stdout.count("(unchanged)") == 2

    refused = cli(promote, "label", NAME, "production", "2")
    assert refused.exit_code == 1, refused.output + refused.stderr
    assert "production is protected: support/reply@2 needs a passing eval run first" in refused.stderr

    evaluated = cli(write, "eval", "--cache", "off")
    assert evaluated.exit_code == 0, evaluated.output
    refused = cli(promote, "promote", NAME, "--to", "production")  # no worse than what production serves: v1...
    assert refused.exit_code == 1
    assert f"run `promptlane eval --prompt {NAME} --version 1`" in refused.stderr  # ...which has no run to compare
    # v1 cannot run the example's scenarios (it offers none of their tools): this server opts out of the rule.
    served.registry.settings = dataclasses.replace(served.registry.settings, gate_no_regression=())
    runs = cli(read, "runs", "list", "--prompt", NAME)
    assert runs.exit_code == 0 and "support/reply" in runs.stdout and "v2" in runs.stdout

    promoted = cli(promote, "promote", NAME, "--to", "production")
    assert promoted.exit_code == 0, promoted.output
    assert served.registry.labels(NAME)[0].target == {2: 100}
    (event, *_) = served.registry.history(NAME, "production")[::-1]
    assert event.actor == "tester (token promote-token)"

    listed = cli(read, "list")
    assert "support/reply" in listed.stdout and "production" in listed.stdout
    rendered = cli(read, "render", f"{NAME}:production", "--var", "customer=Ana", "--var", "ticket=Hi")
    assert rendered.exit_code == 0, rendered.output
    assert "Ana" in rendered.stdout


def test_the_cli_names_a_missing_scope_and_a_missing_token(served: Served, remote_project: Path) -> None:
    forbidden = cli(served.secrets["read"], "push")
    assert forbidden.exit_code == 2  # a configuration error: the token
    assert "token 'read-token' (read) does not allow this: it needs write" in forbidden.stderr

    anonymous = runner.invoke(app, ["list"])
    assert anonymous.exit_code == 2
    assert "this call needs a token" in anonymous.stderr and "no token given: set PROMPTLANE_TOKEN" in anonymous.stderr


def test_the_servers_gate_model_wins_over_the_clients(served: Served, remote_project: Path) -> None:
    served.registry.settings = dataclasses.replace(served.registry.settings, gate_model="openai:gpt-4o-mini")
    assert cli(served.secrets["write"], "push").exit_code == 0
    assert cli(served.secrets["write"], "eval", "--cache", "off").exit_code == 0  # with the example's function

    refused = cli(served.secrets["promote"], "promote", NAME, "--to", "production")

    assert refused.exit_code == 1
    assert "used python:examples.support.model:respond, and the gate needs openai:gpt-4o-mini" in refused.stderr
    assert served.registry.labels(NAME)[0].target == {1: 100}


def test_the_servers_own_scenario_files_are_required_too(served: Served, remote_project: Path) -> None:
    server_evals = served.registry.settings.evals_dir
    server_evals.mkdir(parents=True)
    extra = "prompt: support/reply\nscenarios:\n  - name: server-only\n    variables: {customer: A, ticket: B}\n"
    (server_evals / "server-only.yaml").write_text(extra)
    assert cli(served.secrets["write"], "push").exit_code == 0
    assert cli(served.secrets["write"], "eval", "--cache", "off").exit_code == 0  # the client's files only

    refused = cli(served.secrets["promote"], "promote", NAME, "--to", "production")

    assert refused.exit_code == 1
    assert "evals/server-only.yaml" in refused.stderr
    assert served.registry.labels(NAME)[0].target == {1: 100}


def test_tokens_are_managed_over_http_with_an_admin_token(served: Served, remote_project: Path) -> None:
    created = cli(served.secrets["admin"], "token", "create", "--name", "app2", "--scope", "read")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("plt_")
    assert "app2" in cli(served.secrets["admin"], "token", "list").stdout
    assert cli(secret, "list").exit_code == 0
    assert cli(served.secrets["admin"], "token", "revoke", "app2").exit_code == 0
    assert cli(served.secrets["write"], "token", "list").exit_code == 2
