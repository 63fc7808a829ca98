"""API tokens: scopes and secrets, the SQL store on SQLite and PostgreSQL, the migration, and ``promptlane token``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from dirty_equals import IsDatetime
from sqlalchemy import create_engine, inspect, select

from promptlane.cli import app
from promptlane.config import load_settings
from promptlane.errors import NotFoundError, TokenError
from promptlane.registry import migrate
from promptlane.registry.migrate import current_revision
from promptlane.registry.sql import SQLStore, normalize_url
from promptlane.registry.store import TokenRecord
from promptlane.registry.tables import HEAD_REVISION, metadata, prompts, tokens
from promptlane.registry.tokens import (
    SCOPES,
    allows,
    authenticate,
    check_token_name,
    create_token,
    format_scopes,
    hash_secret,
    new_secret,
    parse_scopes,
)

SECRET = re.compile(r"plt_[A-Za-z0-9_-]{43}")
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d"
VALID = "the scopes are read, write, promote, admin"


@pytest.fixture
def store(store_url: str) -> Iterator[SQLStore]:
    store = SQLStore(store_url)
    yield store
    store.close()


# --- scopes and secrets ---------------------------------------------------------------------------------------


def test_scopes_are_parsed_from_repeated_and_comma_separated_values() -> None:
    assert parse_scopes(["read"]) == {"read"}
    assert parse_scopes(["read,write", "promote"]) == {"read", "write", "promote"}
    assert parse_scopes([" read , write ", "read"]) == {"read", "write"}
    assert parse_scopes("admin") == {"admin"}  # one string is one value, not its characters


@pytest.mark.parametrize("values", [["reed"], ["read,Write"], ["read", "all"]])
def test_an_unknown_scope_is_named_with_the_valid_ones(values: list[str]) -> None:
    with pytest.raises(TokenError, match=f"unknown scope '[A-Za-z]+': {VALID}$"):
        parse_scopes(values)


@pytest.mark.parametrize("values", [[], [""], [" , "]])
def test_a_token_needs_a_scope(values: list[str]) -> None:
    with pytest.raises(TokenError, match=r"^a token needs at least one scope: read, write, promote, admin$"):
        parse_scopes(values)


def test_what_each_scope_allows() -> None:
    allowed = {(granted, needed) for granted in SCOPES for needed in SCOPES if allows([granted], needed)}
    assert allowed == {
        ("read", "read"),
        ("write", "write"),
        ("write", "read"),
        ("promote", "promote"),
        ("promote", "read"),
        *(("admin", needed) for needed in SCOPES),
    }
    assert allows({"write", "promote"}, "promote")
    assert not allows(set(), "read")
    assert not allows({"superuser"}, "read")  # a scope this version does not know allows nothing
    with pytest.raises(TokenError, match=f"unknown scope 'delete': {VALID}"):
        allows({"admin"}, "delete")


def test_scopes_are_shown_in_their_order() -> None:
    assert format_scopes({"admin", "read", "promote"}) == "read, promote, admin"


def test_secrets_are_random_prefixed_and_hashed_with_sha256() -> None:
    first, second = new_secret(), new_secret()
    assert SECRET.fullmatch(first) and SECRET.fullmatch(second)
    assert first != second
    assert hash_secret("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_secret(first) == hashlib.sha256(first.encode()).hexdigest()


@pytest.mark.parametrize("name", ["app1", "ci", "0", "svc.reader_2-b", "a" * 63])
def test_good_token_names(name: str) -> None:
    assert check_token_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "a token needs a name"),
        ("App1", "invalid token name 'App1': token names are lowercase, like 'app1'"),
        ("-app", "invalid token name '-app': use lowercase letters, digits, '_', '.' and '-', starting with"),
        ("my app", "invalid token name 'my app': use lowercase letters"),
        ("a" * 64, "invalid token name 'aaaaaaaaaaaaaaaaaaaa...': at most 63 characters, got 64"),
    ],
)
def test_bad_token_names_say_what_is_wrong(name: str, message: str) -> None:
    with pytest.raises(TokenError, match=f"^{re.escape(message)}"):
        check_token_name(name)


# --- the store ------------------------------------------------------------------------------------------------


def test_create_returns_the_record_and_a_secret_that_authenticates(store: SQLStore) -> None:
    record, secret = create_token(store, "app1", ["read,write"], created_by="ana")
    assert record == TokenRecord(
        id=record.id,
        name="app1",
        scopes=frozenset({"read", "write"}),
        created_at=IsDatetime(),
        created_by="ana",
    )
    assert record.active and record.created_at.utcoffset() is not None
    assert SECRET.fullmatch(secret)
    assert authenticate(store, secret) == record
    assert store.token_by_hash(hash_secret(secret)) == record


def test_the_secret_is_never_stored(store: SQLStore) -> None:
    _, secret = create_token(store, "app1", ["admin"], created_by="ana")
    with store.engine.connect() as conn:
        stored = {table.name: conn.execute(select(table)).all() for table in metadata.sorted_tables}
    assert secret not in repr(stored) and secret[4:] not in repr(stored)
    assert [row.secret_hash for row in stored["pl_tokens"]] == [hash_secret(secret)]


def test_a_name_is_taken_for_good_even_after_a_revoke(store: SQLStore) -> None:
    create_token(store, "app1", ["read"], created_by="ana")
    with pytest.raises(TokenError, match=rf"^a token named 'app1' exists \(active, created {WHEN} UTC by ana\)"):
        create_token(store, "app1", ["write"], created_by="bo")
    store.revoke_token("app1", revoked_by="bo")
    create_token(store, "app1-2", ["read"], created_by="ana")
    with pytest.raises(TokenError) as caught:
        create_token(store, "app1", ["read"], created_by="ana")
    assert re.fullmatch(
        rf"a token named 'app1' exists \(revoked {WHEN} UTC by bo\); revoked tokens keep their names: "
        r"choose another name, like 'app1-3'",
        str(caught.value),
    )
    assert [token.name for token in store.list_tokens()] == ["app1", "app1-2"]


def test_losing_a_race_for_a_name_says_the_name_is_taken(store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes check the same free name at once; the unique constraint stops the second insert."""
    create_token(store, "app1", ["read"], created_by="ana")
    checks: list[str] = []
    original = SQLStore._name_taken

    def raced(self: SQLStore, conn: Any, name: str) -> TokenError | None:
        checks.append(name)
        return None if len(checks) == 1 else original(self, conn, name)  # the first check ran before the insert

    monkeypatch.setattr(SQLStore, "_name_taken", raced)
    with pytest.raises(TokenError, match=r"^a token named 'app1' exists .* revoked tokens keep their names"):
        create_token(store, "app1", ["write"], created_by="bo")
    assert checks == ["app1", "app1"]
    assert [(token.name, token.scopes) for token in store.list_tokens()] == [("app1", {"read"})]


def test_the_suggested_name_for_a_long_name_fits(store: SQLStore) -> None:
    name = "a" * 63
    create_token(store, name, ["read"], created_by=None)
    with pytest.raises(TokenError, match=r"like '(a{61}-2)'$") as caught:
        create_token(store, name, ["read"], created_by=None)
    suggestion = re.search(r"like '(.+)'$", str(caught.value))
    assert suggestion is not None and check_token_name(suggestion.group(1))


def test_the_store_checks_what_it_is_given(store: SQLStore) -> None:
    good = hash_secret(new_secret())
    with pytest.raises(TokenError, match="invalid token name 'App'"):
        store.create_token("App", ["read"], good, created_by=None)
    with pytest.raises(TokenError, match=f"unknown scope 'root': {VALID}"):
        store.create_token("app", ["root"], good, created_by=None)
    with pytest.raises(TokenError, match="at least one scope"):
        store.create_token("app", [], good, created_by=None)
    with pytest.raises(TokenError, match="must be the 64 lowercase hex digits of a sha256 digest"):
        store.create_token("app", ["read"], "plt_not-a-hash", created_by=None)
    store.create_token("app", ["read"], good, created_by=None)
    with pytest.raises(TokenError, match="a token with this secret exists already"):
        store.create_token("other", ["read"], good, created_by=None)
    assert [token.name for token in store.list_tokens()] == ["app"]


def test_tokens_are_listed_oldest_first_revoked_ones_too(store: SQLStore) -> None:
    assert store.list_tokens() == []
    for name in ("web", "ci", "batch"):
        create_token(store, name, ["read"], created_by="ana")
    store.revoke_token("ci", revoked_by="bo")
    listed = store.list_tokens()
    assert [(token.name, token.active, token.revoked_by) for token in listed] == [
        ("web", True, None),
        ("ci", False, "bo"),
        ("batch", True, None),
    ]
    assert [token.id for token in listed] == sorted(token.id for token in listed)


def test_a_revoked_token_stops_authenticating(store: SQLStore) -> None:
    record, secret = create_token(store, "app1", ["promote"], created_by="ana")
    revoked = store.revoke_token("app1", revoked_by="bo")
    assert revoked == TokenRecord(
        id=record.id,
        name="app1",
        scopes=frozenset({"promote"}),
        created_at=record.created_at,
        created_by="ana",
        revoked_at=IsDatetime(),
        revoked_by="bo",
    )
    assert not revoked.active
    assert authenticate(store, secret) is None
    found = store.token_by_hash(hash_secret(secret))  # the record is still there, for the caller to refuse
    assert found is not None and (found.active, found.revoked_by) == (False, "bo")
    assert store.list_tokens() == [found]


def test_revoking_twice_or_an_unknown_token_is_an_error(store: SQLStore) -> None:
    create_token(store, "app1", ["read"], created_by="ana")
    store.revoke_token("app1", revoked_by="bo")
    with pytest.raises(TokenError, match=rf"^token 'app1' was already revoked at {WHEN} UTC by bo$"):
        store.revoke_token("app1", revoked_by="cy")
    with pytest.raises(NotFoundError, match=r"^no token named 'nope'$"):
        store.revoke_token("nope", revoked_by="cy")
    assert store.list_tokens()[0].revoked_by == "bo"


def test_unknown_secrets_do_not_authenticate(store: SQLStore) -> None:
    create_token(store, "app1", ["read"], created_by="ana")
    assert authenticate(store, new_secret()) is None
    assert authenticate(store, "") is None
    assert store.token_by_hash(hash_secret("nope")) is None


# --- the migration --------------------------------------------------------------------------------------------


def test_a_store_at_0003_is_upgraded_with_the_tokens_table(store_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    engine = create_engine(normalize_url(store_url))
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        conn.execute(prompts.insert().values(name="kept", created_at=datetime.now(timezone.utc)))
    with engine.connect() as conn:
        assert current_revision(conn) == "0003"
        assert not inspect(conn).has_table(tokens.name)
    engine.dispose()

    store = SQLStore(store_url)
    with store.engine.connect() as conn:
        assert current_revision(conn) == HEAD_REVISION
        assert inspect(conn).has_table(tokens.name)
        assert conn.execute(select(prompts.c.name)).scalars().all() == ["kept"]
    _, secret = create_token(store, "app1", ["read"], created_by=None)
    assert authenticate(store, secret) is not None
    store.close()


# --- the command ----------------------------------------------------------------------------------------------

runner = CliRunner(env={"COLUMNS": "200"})


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def fails(*args: str) -> str:
    """The message of a command that must fail as designed: one ``error: ...`` line on stderr, exit 2 (usage)."""
    result = run(*args)
    assert isinstance(result.exception, SystemExit), result.exception
    assert (result.exit_code, result.stdout) == (2, "")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0].removeprefix("error: ")


def rows(text: str) -> list[dict[str, str]]:
    """The rows of a table printed without borders, as {column: cell}."""
    header, *lines = text.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    return [
        {name: line[start:end].strip() for name, start, end in zip(names, starts, [*starts[1:], None], strict=True)}
        for line in lines
    ]


@pytest.fixture
def project_store(project: Path) -> Iterator[SQLStore]:
    """The store the command uses in ``project``."""
    store = SQLStore(load_settings().registry_url)
    yield store
    store.close()


def test_create_prints_the_secret_alone_on_stdout(project_store: SQLStore) -> None:
    result = run("token", "create", "--name", "app1", "--scope", "read")
    assert result.exit_code == 0, result.exception
    assert SECRET.fullmatch(result.stdout.removesuffix("\n"))
    assert result.stderr == "token app1 (read) created; it is not shown again: store it now\n"
    record = authenticate(project_store, result.stdout.strip())
    assert record is not None and (record.name, record.scopes, record.created_by) == ("app1", {"read"}, "tester")


def test_list_shows_every_token_and_no_secret(project_store: SQLStore) -> None:
    assert run("token", "list").stdout == "no tokens yet: promptlane token create --name NAME --scope SCOPE\n"
    first = run("token", "create", "--name", "app1", "--scope", "read,write").stdout.strip()
    second = run("token", "create", "--name", "ci", "--scope", "admin", "--scope", "promote").stdout.strip()
    assert run("token", "revoke", "app1").stdout == "token app1 revoked\n"
    result = run("token", "list")
    assert (result.exit_code, result.stderr) == (0, "")
    for secret in (first, second):
        assert secret not in result.stdout and hash_secret(secret) not in result.stdout
    listed = rows(result.stdout)
    assert [row["name"] for row in listed] == ["app1", "ci"]
    assert [row["scopes"] for row in listed] == ["read, write", "promote, admin"]
    assert all(re.fullmatch(WHEN, row["created"]) and row["by"] == "tester" for row in listed)
    assert re.fullmatch(rf"revoked {WHEN} by tester", listed[0]["status"])
    assert listed[1]["status"] == "active"


def test_revoke_errors_are_one_line(project_store: SQLStore) -> None:
    assert fails("token", "revoke", "nope") == "no token named 'nope'"
    run("token", "create", "--name", "app1", "--scope", "read")
    run("token", "revoke", "app1")
    assert re.fullmatch(rf"token 'app1' was already revoked at {WHEN} UTC by tester", fails("token", "revoke", "app1"))
    assert "revoked tokens keep their names" in fails("token", "create", "--name", "app1", "--scope", "read")


def test_a_bad_scope_names_the_valid_ones(project_store: SQLStore) -> None:
    assert fails("token", "create", "--name", "app1", "--scope", "read,writ") == f"unknown scope 'writ': {VALID}"
    assert project_store.list_tokens() == []


def test_a_bad_name_is_refused(project_store: SQLStore) -> None:
    assert fails("token", "create", "--name", "App1", "--scope", "read") == (
        "invalid token name 'App1': token names are lowercase, like 'app1'"
    )
    assert project_store.list_tokens() == []
