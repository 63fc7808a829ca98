"""Registry.push: version numbering, identical content, variables, includes, and all-or-nothing batches.

Every test runs on SQLite and (with PROMPTLANE_TEST_POSTGRES_URL) on PostgreSQL through the ``registry`` fixture.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from dirty_equals import IsDatetime, IsStr

from promptlane.config import Settings
from promptlane.errors import IncludeError, NotFoundError, RegistryError, SpecError, TemplateError, TemplateSyntaxError
from promptlane.registry import PushResult, Registry

WritePrompt = Callable[[str, str], Path]

TICKET = {"customer": "Ann", "ticket": "Where is my order?"}


def located(error: Exception) -> tuple[Path | None, int | None, str | None]:
    """An error's (resolved path, line, key): push may show paths relative to the working directory."""
    path = getattr(error, "path", None)
    return (
        Path(path).resolve() if path is not None else None,
        getattr(error, "line", None),
        getattr(error, "key", None),
    )


def outcome(results: Iterable[PushResult]) -> list[tuple[str, int | None, bool]]:
    """(name, version, created) of each pushed prompt."""
    return [(result.name, result.version.number, result.created) for result in results]


@pytest.fixture
def reopen(registry: Registry) -> Iterator[Callable[[], Registry]]:
    """Fresh Registry objects on the same store, so nothing is served from the first one's caches."""
    opened: list[Registry] = []

    def reopen() -> Registry:
        opened.append(Registry(settings=registry.settings))
        return opened[-1]

    yield reopen
    for reg in opened:
        reg.close()


# --- versions -----------------------------------------------------------------------------------------


def test_versions_are_numbered_without_gaps(registry: Registry, write_prompt: WritePrompt) -> None:
    write_prompt("greet", "template: Hello\n")
    assert outcome(registry.push()) == [("greet", 1, True)]
    assert outcome(registry.push()) == [("greet", 1, False)]
    write_prompt("greet", "template: Hello there\n")
    assert outcome(registry.push()) == [("greet", 2, True)]
    assert outcome(registry.push()) == [("greet", 2, False)]
    write_prompt("greet", "template: Hi\n")
    assert outcome(registry.push()) == [("greet", 3, True)]

    assert [(v.number, v.spec["template"]) for v in registry.versions("greet")] == [
        (1, "Hello"),
        (2, "Hello there"),
        (3, "Hi"),
    ]


def test_each_prompt_has_its_own_numbers(registry: Registry, write_prompt: WritePrompt) -> None:
    write_prompt("a", "template: A\n")
    registry.push()
    write_prompt("a", "template: A2\n")
    write_prompt("b", "template: B\n")

    assert outcome(registry.push()) == [("a", 2, True), ("b", 1, True)]


def test_identical_repush_returns_the_existing_version(registry: Registry, write_prompt: WritePrompt) -> None:
    path = write_prompt(
        "support/greet",
        """\
        description: Greet
        model_settings: {temperature: 0.2, max_tokens: 50}
        variables:
          name: {type: string}
        messages:
          - {role: system, content: Be brief.}
          - {role: user, content: "Greet {{ name }}"}
        """,
    )
    [first] = registry.push(message="first")

    [again] = registry.push(message="again")

    assert (again.created, again.version.number, again.version.content_hash) == (
        False,
        1,
        first.version.content_hash,
    )
    assert (again.version.message, again.path and again.path.resolve()) == ("first", path)

    # Whitespace, comments, quoting and key order are not changes.
    write_prompt(
        "support/greet",
        """\
        # reformatted
        messages:
        - content: "Be brief."
          role: system

        - role: user
          content: 'Greet {{ name }}'
        variables: {name: {type: string}}
        model_settings:
            max_tokens: 50
            temperature: 0.2
        description: "Greet"
        """,
    )
    [reformatted] = registry.push(message="reformatted")

    assert outcome([reformatted]) == [("support/greet", 1, False)]
    assert [v.number for v in registry.versions("support/greet")] == [1]


def test_push_records_message_and_author(registry: Registry, write_prompt: WritePrompt) -> None:
    write_prompt("greet", "template: Hello\n")
    registry.push(message="first draft", author="alice")
    write_prompt("greet", "template: Hello!\n")
    registry.push()

    now = datetime.now(timezone.utc)
    assert [(v.number, v.message, v.author, v.created_at) for v in registry.versions("greet")] == [
        (1, "first draft", "alice", IsDatetime(approx=now, delta=60)),
        (2, None, IsStr(min_length=1), IsDatetime(approx=now, delta=60)),
    ]
    assert registry.version("greet", 2).author != "alice"  # the default author, not the previous one


def test_push_author_comes_from_promptlane_author(store_url: str, project: Path, write_prompt: WritePrompt) -> None:
    write_prompt("greet", "template: Hello\n")
    with Registry(store_url) as reg:  # settings loaded from the environment: PROMPTLANE_AUTHOR=tester
        [result] = reg.push(message="m")

        assert (result.version.author, reg.version("greet", 1).author) == ("tester", "tester")


def test_push_given_files_pushes_only_those(registry: Registry, write_prompt: WritePrompt) -> None:
    write_prompt("a", "template: A\n")
    b = write_prompt("b", "template: B\n")

    assert outcome(registry.push([b])) == [("b", 1, True)]
    assert [p.name for p in registry.list_prompts()] == ["b"]


# --- variables ----------------------------------------------------------------------------------------


def test_undeclared_variable_names_file_line_and_variable(registry: Registry, write_prompt: WritePrompt) -> None:
    path = write_prompt(
        "reply",
        """\
        variables:
          customer: {type: string}
        messages:
          - role: system
            content: |
              You help {{ customer }}.
              Their plan: {{ tier }}.
          - {role: user, content: "{{ customer }} asks"}
        """,
    )

    with pytest.raises(SpecError) as info:
        registry.push()

    error = info.value
    assert located(error) == (path, 7, "messages.0.content")
    assert str(error) == f"{error.path}:7: messages.0.content: variable 'tier' is used but not declared in `variables`"
    assert registry.list_prompts() == []


def test_variables_are_inferred_as_required_strings(
    registry: Registry, write_prompt: WritePrompt, reopen: Callable[[], Registry]
) -> None:
    write_prompt(
        "reply",
        """\
        messages:
          - {role: system, content: "You help {{ customer }}. {% for x in items %}{{ x }}{% endfor %}"}
          - {role: user, content: "{{ ticket }} {{ range(2) | list }}"}
        """,
    )

    [result] = registry.push()

    assert result.version.spec["variables"] == {
        "customer": {"type": "string"},
        "items": {"type": "string"},
        "ticket": {"type": "string"},
    }
    assert reopen().version("reply", 1).spec == result.version.spec


def test_variables_of_an_included_prompt_are_inferred(registry: Registry, write_prompt: WritePrompt) -> None:
    write_prompt("shared/sign", "template: 'Regards, {{ agent }}'\n")
    write_prompt("reply", "template: \"Hi {{ customer }}. {% include 'shared/sign' %}\"\n")

    results = {result.name: result for result in registry.push()}

    assert results["reply"].version.spec["variables"] == {"agent": {"type": "string"}, "customer": {"type": "string"}}
    assert results["shared/sign"].version.spec["variables"] == {"agent": {"type": "string"}}


def test_variable_of_an_included_prompt_must_be_declared(registry: Registry, write_prompt: WritePrompt) -> None:
    write_prompt("shared/sign", "template: 'Regards, {{ agent }}'\n")
    path = write_prompt(
        "reply",
        """\
        variables: {customer: {type: string}}
        template: "Hi {{ customer }}. {% include 'shared/sign' %}"
        """,
    )

    with pytest.raises(SpecError) as info:
        registry.push()

    assert located(info.value) == (path, 1, "variables")
    assert info.value.reason == (
        "variable 'agent' is used by included prompt 'shared/sign' but not declared in `variables`"
    )
    assert registry.list_prompts() == []


# --- includes -----------------------------------------------------------------------------------------


def test_include_freezes_the_newest_text(
    registry: Registry, support_prompts: None, write_prompt: WritePrompt, reopen: Callable[[], Registry]
) -> None:
    assert outcome(registry.push()) == [("shared/tone", 1, True), ("support/reply", 1, True)]
    reply = registry.version("support/reply", 1)
    assert reply.spec["includes"] == {"shared/tone": {"version": 1, "template": "Be warm and concise."}}
    assert "includes" not in registry.version("shared/tone", 1).spec
    v1_messages = [
        {"role": "system", "content": "You help Ann (free plan). Be warm and concise."},
        {"role": "user", "content": "Where is my order?"},
    ]
    assert registry.get("support/reply", version=1).render(TICKET).messages == v1_messages

    # A new tone does not change what was pushed.
    tone = write_prompt("shared/tone", 'description: House tone\ntemplate: "Be formal."\n')
    assert outcome(registry.push([tone])) == [("shared/tone", 2, True)]
    fresh = reopen()
    assert [v.number for v in fresh.versions("support/reply")] == [1]
    assert fresh.version("support/reply", 1).spec == reply.spec
    assert fresh.get("support/reply", label="latest").render(TICKET).messages == v1_messages

    # Pushing the includer again freezes the new tone: a new version.
    assert outcome(registry.push()) == [("shared/tone", 2, False), ("support/reply", 2, True)]
    fresh = reopen()
    assert fresh.version("support/reply", 2).spec["includes"] == {
        "shared/tone": {"version": 2, "template": "Be formal."}
    }
    assert fresh.get("support/reply", label="latest").render(TICKET).messages == [
        {"role": "system", "content": "You help Ann (free plan). Be formal."},
        {"role": "user", "content": "Where is my order?"},
    ]
    assert fresh.get("support/reply", version=1).render(TICKET).messages == v1_messages


def test_include_of_a_prompt_pushed_earlier(registry: Registry, write_prompt: WritePrompt) -> None:
    write_prompt("shared/tone", "template: Be warm.\n")
    write_prompt("shared/tone", "template: Be warmer.\n")
    registry.push()
    tone = write_prompt("shared/tone", "template: Be warmest.\n")
    registry.push([tone])
    reply = write_prompt("reply", "template: \"{% include 'shared/tone' %} Go.\"\n")

    [result] = registry.push([reply])

    assert result.version.spec["includes"] == {"shared/tone": {"version": 2, "template": "Be warmest."}}
    assert registry.get("reply", version=1).render().text == "Be warmest. Go."


def test_nested_includes_are_frozen_too(registry: Registry, write_prompt: WritePrompt) -> None:
    write_prompt("shared/sign", "template: Bye.\n")
    write_prompt("shared/tone", "template: \"Be warm. {% include 'shared/sign' %}\"\n")
    write_prompt("reply", "template: \"Hi. {% include 'shared/tone' %}\"\n")

    results = {result.name: result for result in registry.push()}

    assert results["reply"].version.spec["includes"] == {
        "shared/sign": {"version": 1, "template": "Bye."},
        "shared/tone": {"version": 1, "template": "Be warm. {% include 'shared/sign' %}"},
    }
    assert registry.get("reply", version=1).render().text == "Hi. Be warm. Bye."


def test_include_frozen_at_two_versions_is_an_error(registry: Registry, write_prompt: WritePrompt) -> None:
    write_prompt("shared/sign", "template: Bye.\n")
    write_prompt("shared/tone", "template: \"Be warm. {% include 'shared/sign' %}\"\n")
    reply = write_prompt("reply", "template: \"{% include 'shared/sign' %} {% include 'shared/tone' %}\"\n")
    registry.push()
    sign = write_prompt("shared/sign", "template: Cheers.\n")
    registry.push([sign])

    with pytest.raises(IncludeError) as info:
        registry.push([reply])

    assert located(info.value)[0] == reply
    assert "'shared/sign' would be frozen twice" in info.value.reason
    assert info.value.reason.endswith("push shared/tone again so both use one version")


INCLUDE_ERRORS = {
    "missing": (
        "template: \"Hi {% include 'shared/nope' %}\"\n",
        "included prompt 'shared/nope' does not exist (push it first)",
    ),
    "chat-prompt": (
        "template: \"Hi {% include 'chat' %}\"\n",
        "included prompt 'chat' is a chat prompt; only text prompts (`template:`) can be included",
    ),
    "dynamic": (
        'template: "Hi {% include which %}"\n',
        "an include must name a prompt as a literal string, like {% include 'shared/tone' %}",
    ),
}


@pytest.mark.parametrize(("text", "reason"), INCLUDE_ERRORS.values(), ids=INCLUDE_ERRORS.keys())
def test_include_error(registry: Registry, write_prompt: WritePrompt, text: str, reason: str) -> None:
    write_prompt("chat", "messages: [{role: user, content: Hi}]\n")
    path = write_prompt("reply", text)

    with pytest.raises(IncludeError) as info:
        registry.push()

    error = info.value
    assert (*located(error), error.reason) == (path, 1, "template", reason)
    assert str(error) == f"{error.path}:1: template: {reason}"
    assert registry.list_prompts() == []


def test_include_of_a_chat_prompt_in_the_registry(registry: Registry, write_prompt: WritePrompt) -> None:
    registry.push([write_prompt("chat", "messages: [{role: user, content: Hi}]\n")])
    path = write_prompt("reply", "template: \"{% include 'chat' %}\"\n")

    with pytest.raises(IncludeError) as info:
        registry.push([path])

    assert (located(info.value)[0], info.value.reason) == (
        path,
        "included prompt 'chat' is a chat prompt; only text prompts (`template:`) can be included",
    )


def test_self_include(registry: Registry, write_prompt: WritePrompt) -> None:
    path = write_prompt("loop", "template: \"again {% include 'loop' %}\"\n")

    with pytest.raises(IncludeError) as info:
        registry.push()

    assert (located(info.value)[0], info.value.reason) == (path, "include cycle: loop -> loop")
    assert str(info.value).startswith(f"{info.value.path}: ")
    assert registry.list_prompts() == []


def test_include_cycle_in_one_push(registry: Registry, write_prompt: WritePrompt) -> None:
    a = write_prompt("a", "template: \"A {% include 'b' %}\"\n")
    write_prompt("b", "template: \"B {% include 'a' %}\"\n")
    write_prompt("c", "template: C\n")

    with pytest.raises(IncludeError) as info:
        registry.push()

    assert (located(info.value)[0], info.value.reason) == (a, "include cycle: a -> b -> a")
    assert str(info.value).startswith(f"{info.value.path}: ")
    assert registry.list_prompts() == []


def test_include_cycle_across_pushes(registry: Registry, write_prompt: WritePrompt) -> None:
    write_prompt("b", "template: B\n")
    write_prompt("a", "template: \"A {% include 'b' %}\"\n")
    registry.push()
    b = write_prompt("b", "template: \"B {% include 'a' %}\"\n")

    with pytest.raises(IncludeError) as info:
        registry.push([b])

    assert (located(info.value)[0], info.value.reason) == (b, "include cycle: b -> a -> ... -> b")
    assert [v.number for v in registry.versions("b")] == [1]


# --- batches ------------------------------------------------------------------------------------------

BAD_FILES = {
    "invalid-yaml": ("template: [unclosed\n", SpecError),
    "unknown-key": ("template: hi\ntemprature: 1\n", SpecError),
    "undeclared-variable": ("variables: {}\ntemplate: '{{ x }}'\n", SpecError),
    "model-without-a-provider": ("template: hi\nmodel: gpt-4o-mini\n", SpecError),
    "template-syntax": ("template: '{% if %}'\n", TemplateSyntaxError),
    "missing-include": ("template: \"{% include 'nope' %}\"\n", IncludeError),
}


@pytest.mark.parametrize("bad_name", ["aaa/bad", "zzz/bad"])
@pytest.mark.parametrize(("text", "error"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_one_bad_file_stores_nothing(
    registry: Registry,
    support_prompts: None,
    write_prompt: WritePrompt,
    bad_name: str,
    text: str,
    error: type[Exception],
) -> None:
    registry.push()
    before = registry.list_prompts()
    write_prompt("shared/tone", "template: A new tone.\n")
    write_prompt("new/good", "template: Fine.\n")
    bad = write_prompt(bad_name, text)

    with pytest.raises(error) as info:
        registry.push()

    assert located(info.value)[0] == bad
    assert registry.list_prompts() == before
    assert [v.number for v in registry.versions("shared/tone")] == [1]


REFUSE_SQLITE = """
CREATE TRIGGER refuse_versions BEFORE INSERT ON pl_versions
WHEN NEW.prompt_id = (SELECT id FROM pl_prompts WHERE name = 'zzz/refused')
BEGIN SELECT RAISE(ABORT, 'versions of zzz/refused are refused here'); END
"""
REFUSE_POSTGRES = [
    """
    CREATE FUNCTION refuse_versions() RETURNS trigger AS $$ BEGIN
      IF NEW.prompt_id = (SELECT id FROM pl_prompts WHERE name = 'zzz/refused') THEN
        RAISE EXCEPTION 'versions of zzz/refused are refused here' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$ LANGUAGE plpgsql
    """,
    "CREATE TRIGGER refuse_versions BEFORE INSERT ON pl_versions FOR EACH ROW EXECUTE FUNCTION refuse_versions()",
]


def test_a_file_the_database_refuses_while_storing_leaves_no_version_of_the_batch(
    registry: Registry, support_prompts: None, write_prompt: WritePrompt
) -> None:
    """Every file checks out; the database refuses the last one (a trigger, as a constraint or a full disk
    would) after the others were stored in the same push: none of them stays."""
    registry.push()
    before = registry.list_prompts()
    engine = registry.store.engine
    with engine.begin() as conn:
        for statement in [REFUSE_SQLITE] if engine.dialect.name == "sqlite" else REFUSE_POSTGRES:
            conn.exec_driver_sql(statement)
    write_prompt("shared/tone", "template: A new tone.\n")  # stored first (support/reply includes it)...
    write_prompt("new/good", "template: Fine.\n")
    write_prompt("zzz/refused", "template: Refused.\n")  # ...this one last, and the database refuses it

    with pytest.raises(RegistryError, match=r"^could not store a version of 'zzz/refused': versions of zzz/refused"):
        registry.push()

    assert registry.list_prompts() == before
    assert [v.number for v in registry.versions("shared/tone")] == [1]
    assert [v.number for v in registry.versions("support/reply")] == [1]
    with pytest.raises(NotFoundError):
        registry.versions("new/good")


def test_a_model_without_a_provider_is_refused_at_push_naming_file_and_line(
    registry: Registry, write_prompt: WritePrompt
) -> None:
    path = write_prompt("reply", "description: Reply\nmodel: gpt-4o-mini\ntemplate: hi\n")

    with pytest.raises(SpecError) as info:
        registry.push()

    assert located(info.value) == (path.resolve(), 2, "model")
    assert info.value.reason == "model 'gpt-4o-mini' has no provider: did you mean 'openai:gpt-4o-mini'?"
    assert registry.list_prompts() == []


def test_a_spec_pushed_as_data_has_its_model_checked(registry: Registry) -> None:
    with pytest.raises(SpecError, match=r"unknown provider 'opnai': did you mean 'openai'\?"):
        registry.push_spec("reply", {"template": "hi", "model": "opnai:gpt-4o-mini"})
    assert registry.list_prompts() == []


def test_template_syntax_error_names_file_and_line(registry: Registry, write_prompt: WritePrompt) -> None:
    path = write_prompt(
        "reply",
        """\
        description: Reply
        messages:
          - role: system
            content: Be brief.
          - role: user
            content: |
              Line one {{ ticket }}
              {% if ticket %}
              Line three {{ ticket }
              {% endif %}
        """,
    )

    with pytest.raises(TemplateError) as info:
        registry.push()

    error = info.value
    assert isinstance(error, TemplateSyntaxError)
    assert (*located(error)[:2], error.prompt, error.template) == (path, 9, "reply", "messages[1]")
    assert str(error).startswith(f"{error.path}:9 (reply messages[1]): ")
    assert registry.list_prompts() == []


def test_two_files_with_the_same_name(registry: Registry, write_prompt: WritePrompt) -> None:
    first = write_prompt("one", "name: support/reply\ntemplate: A\n")
    second = write_prompt("two", "name: support/reply\ntemplate: B\n")

    with pytest.raises(SpecError) as info:
        registry.push()

    error = info.value
    assert located(error)[0] == second
    assert re.fullmatch(r"prompt 'support/reply' is also defined in (\S+)", error.reason)
    assert Path(error.reason.rpartition(" ")[2]).resolve() == first
    assert registry.list_prompts() == []


def test_yaml_and_yml_with_the_same_name(registry: Registry, project: Path) -> None:
    (project / "prompts" / "greet.yaml").write_text("template: A\n")
    (project / "prompts" / "greet.yml").write_text("template: B\n")

    with pytest.raises(SpecError, match="prompt 'greet' is also defined in"):
        registry.push()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('variables: {a: {type: string}}\ntemplate: "Hello {{ a }}\\n\\nand {{ b }}"\n', 2),
        ("variables: {a: {type: string}}\ntemplate: >\n  Hello {{ a }}\n  and {{ b }}\n", 4),
    ],
    ids=["double-quoted", "folded"],
)
def test_undeclared_variable_line_in_a_flowing_scalar(
    registry: Registry, write_prompt: WritePrompt, text: str, line: int
) -> None:
    write_prompt("reply", text)

    with pytest.raises(SpecError) as info:
        registry.push()

    assert info.value.line == line


def test_over_http_a_batch_push_is_whole_or_absent(
    tmp_path: Path, project: Path, support_prompts: None, write_prompt: WritePrompt
) -> None:
    """A push to a registry server is one request, stored in one transaction there: a file the server's
    database refuses leaves no version of any file of the push."""
    from _live import LiveServer, served_registry

    served, secrets = served_registry(tmp_path / "server", f"sqlite:///{tmp_path / 'server.db'}")
    with served.store.engine.begin() as conn:
        conn.exec_driver_sql(REFUSE_SQLITE)
    write_prompt("zzz/refused", "template: Refused.\n")
    with LiveServer(served) as server:
        client = Registry(server.url, token=secrets["write"], settings=Settings(root=project))
        try:
            with pytest.raises(RegistryError) as info:
                client.push()
            (project / "prompts" / "zzz" / "refused.yaml").unlink()
            pushed = client.push()  # and without the refused file, the batch goes through whole
        finally:
            client.close()
    names = sorted(summary.name for summary in served.store.list_prompts())
    served.close()
    assert str(info.value) == ("could not store a version of 'zzz/refused': versions of zzz/refused are refused here")
    assert [(result.name, result.version.number, result.created) for result in pushed] == [
        ("shared/tone", 1, True),
        ("support/reply", 1, True),
    ]
    assert names == ["shared/tone", "support/reply"]


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"template": "a \ud800 b"}, "template"),
        ({"messages": [{"role": "user", "content": "x\udc00"}]}, "messages.0.content"),
        ({"template": "x", "model_settings": {"stop_sequences": ["\ud83d"]}}, "model_settings.stop_sequences.0"),
    ],
)
def test_a_spec_from_python_with_half_a_surrogate_pair_is_refused(
    tmp_path: Path, spec: dict[str, Any], where: str
) -> None:
    # A string from Python or from JSON ("\ud800") that no database can store: a SpecError naming where, not a
    # UnicodeEncodeError from deep inside the push.
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}", settings=Settings(root=tmp_path))
    with pytest.raises(SpecError, match=rf"^p: {re.escape(where)} holds U\+D[0-9A-F]{{3}}, half of a UTF-16 surrogate"):
        registry.push_spec("p", spec)
    assert registry.store.list_prompts() == []
