"""Reads of a local SQLite registry without SQLAlchemy answer exactly what the SQL store answers."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptlane.config import Settings
from promptlane.errors import NotFoundError
from promptlane.registry import Registry
from promptlane.registry.sql import SQLStore
from promptlane.registry.sqlite_reads import SQLiteReads, open_sqlite_reads


def _spec(text: str, description: str | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"template": text, "variables": {}}
    if description is not None:
        spec["description"] = description
    return spec


def _populate(store: SQLStore) -> None:
    for number, text in enumerate(["one", "two", "three"], start=1):
        store.push_version("support/reply", _spec(text, "Reply"), f"{number:064x}", message=f"v{number}", author="ana")
    store.push_version("shared/tone", _spec("Be warm."), "f" * 64, message=None, author=None)
    store.push_version("empty/labels", _spec("x"), "e" * 64, message="only", author="bo")
    move = store.move_label
    move(
        "support/reply", "production", {1: 100}, actor="ana", reason="first", kind="move", gate="passed", evidence="r1"
    )
    move("support/reply", "production", {1: 90, 2: 10}, actor="bo", reason="canary", kind="rollout", gate=None)
    move("support/reply", "staging", {3: 100}, actor=None, reason=None, kind="move", gate="forced")
    store.rollback_label("support/reply", "production", actor="ana", reason="too terse", gate=None)


READS = [
    ("list_prompts", ()),
    ("get_version", ("support/reply", 1)),
    ("get_version", ("support/reply", 3)),
    ("get_version", ("shared/tone", 1)),
    ("latest_number", ("support/reply",)),
    ("latest_number", ("shared/tone",)),
    ("list_versions", ("support/reply",)),
    ("list_versions", ("empty/labels",)),
    ("get_label", ("support/reply", "production")),
    ("get_label", ("support/reply", "staging")),
    ("list_labels", ("support/reply",)),
    ("list_labels", ("shared/tone",)),
    ("label_events", ("support/reply",)),
    ("label_events", ("support/reply", "production")),
    ("label_events", ("shared/tone",)),
]

MISSING = [
    ("get_version", ("nope", 1)),
    ("get_version", ("support/reply", 9)),
    ("get_version", ("support/reply", 0)),
    ("get_version", ("support/reply", 2**40)),
    ("latest_number", ("nope",)),
    ("list_versions", ("nope",)),
    ("get_label", ("nope", "production")),
    ("get_label", ("support/reply", "nope")),
    ("list_labels", ("nope",)),
    ("label_events", ("nope",)),
]


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SQLStore, SQLiteReads]]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    store = SQLStore(url)
    _populate(store)
    reads = open_sqlite_reads(url)
    assert reads is not None
    yield store, reads
    reads.close()
    store.close()


def _is_patched(method: str) -> bool:
    """The read is SQLiteReads' own, not delegated to the SQL store (which would make the comparison moot)."""
    return method in SQLiteReads.__dict__


@pytest.mark.parametrize(("method", "args"), READS, ids=[f"{m}{a}" for m, a in READS])
def test_reads_equal_the_sql_stores(stores: tuple[SQLStore, SQLiteReads], method: str, args: tuple) -> None:
    store, reads = stores
    assert _is_patched(method)
    assert getattr(reads, method)(*args) == getattr(store, method)(*args)


@pytest.mark.parametrize(("method", "args"), MISSING, ids=[f"{m}{a}" for m, a in MISSING])
def test_missing_things_are_the_same_errors(stores: tuple[SQLStore, SQLiteReads], method: str, args: tuple) -> None:
    store, reads = stores
    with pytest.raises(NotFoundError) as expected:
        getattr(store, method)(*args)
    with pytest.raises(NotFoundError) as actual:
        getattr(reads, method)(*args)
    assert str(actual.value) == str(expected.value)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.text(max_size=40), min_size=1, max_size=4, unique=True),
    description=st.none() | st.text(max_size=20),
    weights=st.integers(min_value=1, max_value=99),
)
def test_any_content_reads_back_the_same(tmp_path_factory: pytest.TempPathFactory, texts, description, weights) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'registry.db'}"
    store = SQLStore(url)
    for index, text in enumerate(texts):
        store.push_version("p/q", _spec(text, description), f"{index:064x}", message=text or None, author=text[:5])
    if len(texts) > 1:
        target = {1: weights, 2: 100 - weights}
        store.move_label("p/q", "prod", target, actor=None, reason=description, kind="rollout", gate=None)
    reads = open_sqlite_reads(url)
    assert reads is not None
    try:
        assert reads.list_prompts() == store.list_prompts()
        assert reads.list_versions("p/q") == store.list_versions("p/q")
        assert reads.list_labels("p/q") == store.list_labels("p/q")
        assert reads.label_events("p/q") == store.label_events("p/q")
    finally:
        reads.close()
        store.close()


def test_writes_go_to_the_sql_store_and_reads_see_them(stores: tuple[SQLStore, SQLiteReads]) -> None:
    _, reads = stores
    record, created = reads.push_version("new/one", _spec("hi"), "a" * 64, message="m", author="x")
    assert created and reads.get_version("new/one", 1) == record
    assert [prompt.name for prompt in reads.list_prompts()] == [
        "empty/labels",
        "new/one",
        "shared/tone",
        "support/reply",
    ]


def test_only_a_current_or_new_registry_is_read_this_way(tmp_path: Path) -> None:
    made = open_sqlite_reads(f"sqlite:///{tmp_path / 'absent.db'}")  # made a registry: tests/test_sqlite_schema.py
    assert made is not None
    made.close()
    assert open_sqlite_reads("sqlite:///:memory:") is None
    assert open_sqlite_reads("postgresql://x/y") is None
    not_a_database = tmp_path / "junk.db"
    not_a_database.write_text("hello")
    assert open_sqlite_reads(f"sqlite:///{not_a_database}") is None
    older = tmp_path / "older.db"
    SQLStore(f"sqlite:///{older}").close()
    import sqlite3

    with sqlite3.connect(older) as conn:
        conn.execute("UPDATE pl_alembic_version SET version_num = '0003'")
    assert open_sqlite_reads(f"sqlite:///{older}") is None


def test_the_registry_reads_a_local_file_without_sqlalchemy(tmp_path: Path) -> None:
    (tmp_path / "promptlane.toml").write_text('prompts = "prompts"\n')
    registry = Registry(settings=Settings(root=tmp_path))
    registry.push_spec("greet", {"template": "Hi {{ name }}"})
    registry.close()
    code = (
        "import sys\n"
        "from promptlane import Registry\n"
        "registry = Registry()\n"
        "print(registry.get('greet', label='latest').render(name='Ana').text)\n"
        "print([p.name for p in registry.list_prompts()], 'sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Hi Ana", "['greet'] False"]


def test_many_threads_share_a_few_connections(stores: tuple[SQLStore, SQLiteReads]) -> None:
    import threading

    _, reads = stores
    database = str(Path(reads.url.removeprefix("sqlite:///")).resolve())
    failures: list[BaseException] = []

    def read(barrier: threading.Barrier) -> None:
        try:
            barrier.wait(timeout=60)
            for _ in range(20):
                reads.get_version("support/reply", 1)
                reads.list_prompts()
        except BaseException as exc:
            failures.append(exc)

    def open_files() -> int:
        """Files of the registry this process holds open (Linux), whatever holds them."""
        return sum(_target(fd).startswith(database) for fd in Path("/proc/self/fd").iterdir())

    # Threads come and go (as a server's worker threads do): connections must not pile up with them.
    held = []
    for _ in range(3):
        barrier = threading.Barrier(20)
        threads = [threading.Thread(target=read, args=(barrier,)) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        if Path("/proc/self/fd").is_dir():
            held.append(open_files())
    assert failures == []
    if held:
        # At most 4 idle pooled connections (3 files each: the database, its WAL and shared memory) and the SQL
        # store's few; a connection per thread held 20 x 3 more files each round (45, 85, 125).
        assert max(held) < 40, held


def _target(fd: Path) -> str:
    try:
        return str(fd.readlink())
    except OSError:
        return ""


def test_a_listing_is_one_snapshot_while_another_process_writes(tmp_path: Path) -> None:
    # A writer pushes a version and then points a label at it, over and over; every listing must show a label
    # pointing at a version that its `latest` includes (two reads outside one transaction would not).
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    store = SQLStore(url)
    store.push_version("p/q", _spec("v1"), f"{1:064x}", message=None, author=None)
    store.close()
    writer = textwrap.dedent(
        f"""
        from promptlane.registry.sql import SQLStore
        store = SQLStore({url!r})
        for number in range(2, 150):
            spec = {{"template": str(number), "variables": {{}}}}
            store.push_version("p/q", spec, f"{{number:064x}}", message=None, author=None)
            store.move_label("p/q", "staging", {{number: 100}}, actor=None, reason=None, kind="move", gate=None)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", writer])
    reads = open_sqlite_reads(url)
    assert reads is not None
    listings = 0
    try:
        while process.poll() is None or listings < 10:
            [summary] = reads.list_prompts()
            assert all(number <= summary.latest for number in summary.labels.get("staging", {})), summary
            listings += 1
    finally:
        process.wait(timeout=300)
        reads.close()
    assert process.returncode == 0


def test_a_locked_registry_is_an_outage_not_a_new_registry(tmp_path: Path) -> None:
    import sqlite3

    from promptlane.errors import RegistryUnavailableError

    path = tmp_path / "registry.db"
    SQLStore(f"sqlite:///{path}").close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RegistryUnavailableError, match="is unavailable: database is locked"):
            open_sqlite_reads(f"sqlite:///{path}", busy_timeout=0.1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_fork_closes_the_idle_connections_first(tmp_path: Path) -> None:
    # SQLite forbids using a connection across fork() (gunicorn --preload, multiprocessing), and a child of a
    # process with the file open would write without its locks (tests/test_sqlite_fork.py).
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    SQLStore(url).push_version("greet", {"template": "hi"}, "h1", message=None, author="t")
    reads = open_sqlite_reads(url)
    assert reads is not None
    assert reads.latest_number("greet") == 1
    parents = list(reads._idle)
    assert parents

    def child() -> None:
        assert not reads._idle
        assert reads.latest_number("greet") == 1

    from _live import in_forked_child

    assert in_forked_child(child) == 0
    for conn in parents:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    assert reads.latest_number("greet") == 1  # the parent opens a new one


def test_a_percent_escaped_path_is_one_file_for_every_operation(tmp_path: Path) -> None:
    # SQLAlchemy reads `a%20b.db` as `a b.db`; the standard-library store must not open the literal name.
    SQLStore(f"sqlite:///{tmp_path / 'made.db'}").close()
    shutil.copy(tmp_path / "made.db", tmp_path / "a%20b.db")
    registry = Registry(f"sqlite:///{tmp_path / 'a%20b.db'}", settings=Settings(root=tmp_path))

    registry.push_spec("greet", {"template": "hi"})
    registry.store.move_label("greet", "production", {1: 100}, kind="move", actor=None, reason=None, gate=None)

    assert registry.get("greet", label="production").version == 1
