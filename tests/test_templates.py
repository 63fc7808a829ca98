"""Compiling and rendering templates: what legitimate prompts render to, and where errors say they happened."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptlane.errors import (
    PromptlaneError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
    VariableError,
)
from promptlane.registry import Registry
from promptlane.templates import (
    CompiledPrompt,
    RenderLimits,
    TemplateInfo,
    analyze_template,
    compile_prompt,
    first_use_line,
)

WritePrompt = Callable[[str, str], Path]

UNHURRIED = RenderLimits(timeout=600)
"""The default limits with a render timeout no test reaches: no render here comes near a limit, and a machine
that stalls for a while must not turn a legitimate render into a refusal."""


def _compile(spec: Mapping[str, Any], limits: RenderLimits = UNHURRIED, name: str = "t/prompt") -> CompiledPrompt:
    digest = hashlib.sha256(repr(sorted(spec.items())).encode()).hexdigest()
    return compile_prompt(name=name, version=4, content_hash=digest, spec=spec, limits=limits)


def _render(template: str, limits: RenderLimits = UNHURRIED, **variables: Any) -> str:
    compiled = _compile({"template": template, "variables": {name: {} for name in variables}}, limits)
    [message] = compiled.render(variables)
    return message["content"]


# --- legitimate templates ------------------------------------------------------------------------------------


def test_loops_macros_and_set_blocks() -> None:
    template = """\
{% macro item(n, text) -%}
{{ n }}) {{ text|title }}
{%- endmacro %}
{% set heading %}Order {{ order.id }}{% endset %}
{{ heading|upper }}
{% for line in order.lines %}
{{ item(loop.index, line.name) }}{{ ';' if not loop.last }}
{% endfor %}
{% set total = order.lines|sum(attribute='qty') %}
Total: {{ total }} item{{ 's' if total != 1 }}"""
    order = {"id": 42, "lines": [{"name": "red mug", "qty": 2}, {"name": "tea", "qty": 1}]}
    assert _render(template, order=order) == "ORDER 42\n1) Red Mug;\n2) Tea\nTotal: 3 items"


def test_block_tags_on_their_own_line_leave_no_blank_lines() -> None:
    template = """\
Rules:
    {% for rule in rules %}
    {% if rule %}
  - {{ rule }}
    {% endif %}
    {% endfor %}
End.
"""
    # The indentation before a block tag and the line break after it go; the final newline of the template is
    # dropped, as Jinja does.
    assert _render(template, rules=["be kind", "", "be brief"]) == "Rules:\n  - be kind\n  - be brief\nEnd."


def test_an_include_on_its_own_line_keeps_its_line_break() -> None:
    spec = {
        "template": "Intro\n  {% include 'shared/tone' %}\nItems:\n{% for x in xs %}\n  {% include 'item' %}\n"
        "{% endfor %}\nEnd",
        "variables": {"xs": {}},
        "includes": {
            "shared/tone": {"version": 1, "template": "Be warm."},
            "item": {"version": 1, "template": "- {{ x }}"},
        },
    }
    assert _compile(spec).render({"xs": ["a", "b"]}) == [
        {"role": "user", "content": "Intro\nBe warm.\nItems:\n- a\n- b\nEnd"}
    ]


def test_whitespace_around_expressions_is_kept_and_a_comment_line_leaves_nothing() -> None:
    assert _render("  {{ a }}  \n{# note #}\n  {{ b }}", a=1, b=2) == "  1  \n  2"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ ['a', 'b', 'c']|join(', ') }}", "a, b, c"),
        ("{{ [{'n': 'x'}, {'n': 'y'}]|join('/', attribute='n') }}", "x/y"),
        ("{{ 'a-b-c'|replace('-', ' + ') }}", "a + b + c"),
        ("{{ 'a-b-c'|replace('-', '', 1) }}", "ab-c"),
        ("{{ 'one\ntwo\nthree'|indent(2) }}", "one\n  two\n  three"),
        ("{{ 'one\ntwo'|indent(2, first=True) }}", "  one\n  two"),
        ("{{ 'one\ntwo'|indent('> ', first=True) }}", "> one\n> two"),
        ("{{ 'title'|center(20) }}", "       title        "),
        ("{{ '%s has %d items (%.1f%%)'|format('cart', 3, 12.5) }}", "cart has 3 items (12.5%)"),
        ("{{ '%(a)s-%(b)s'|format(a=1, b=2) }}", "1-2"),
        ("{{ [1, 2, 3, 4, 5]|batch(2, 0)|list }}", "[[1, 2], [3, 4], [5, 0]]"),
        ("{{ [1, 2, 3]|sum }} {{ [[1], [2, 3]]|sum(start=[]) }}", "6 [1, 2, 3]"),
        ("{{ 'x'.center(5, '*') }}|{{ 'x'.ljust(3) }}|{{ 'x'.rjust(3) }}|{{ '7'.zfill(3) }}", "**x**|x  |  x|007"),
        ("{{ 'a\tb'.expandtabs(4) }}", "a   b"),
        ("{{ ', '.join(['a', 'b']) }} {{ 'a.b'.replace('.', '::') }}", "a, b a::b"),
        ("{{ '{} of {:>4}'.format(1, 'x') }} {{ '{n:03d}'.format(n=5) }}", "1 of    x 005"),
        ("{{ '%05d|%-4s|' % (42, 'ab') }}{{ '%(k)s' % {'k': 'v'} }}", "00042|ab  |v"),
        ("{{ 'ab' * 3 }} {{ [0] * 2 }} {{ 2 ** 10 }} {{ 'a' ~ 1 ~ 'b' }} {{ 'a' + 'b' }}", "ababab [0, 0] 1024 a1b ab"),
        ("{% set ns = namespace(s='') %}{% for c in 'abc' %}{% set ns.s = ns.s ~ c %}{% endfor %}{{ ns.s }}", "abc"),
        ("{{ dict(a=1)|tojson }} {{ {'b': [1, 'x']}|tojson }}", '{"a": 1} {"b": [1, "x"]}'),
        ("{% set c = cycler('odd', 'even') %}{% for i in range(3) %}{{ c.next() }} {% endfor %}", "odd even odd "),
        ("{% set j = joiner('|') %}{% for i in range(3) %}{{ j() }}{{ i }}{% endfor %}", "0|1|2"),
        ("{% for x in [[1, [2]], 3] recursive %}{{ loop(x) if x is iterable else x }}{% endfor %}", "123"),
    ],
)
def test_filters_methods_and_operators_with_normal_arguments(template: str, expected: str) -> None:
    assert _render(template) == expected


def test_filters_on_variables_follow_the_same_rules() -> None:
    # Unlike constants, these cannot be folded at compile time: the guards run during the render.
    assert _render("{{ text|center(9) }}|{{ text|indent(2, first=True) }}", text="ab") == "    ab   |  ab"
    assert _render("{{ items|join(sep) }}", items=["a", "b"], sep=" & ") == "a & b"
    assert _render("{{ text * n }}", text="ab", n=2) == "abab"
    assert _render("{{ fmt % (1, 2) }}", fmt="%d/%d") == "1/2"


def test_chat_messages_render_in_order_with_their_roles() -> None:
    spec = {
        "messages": [
            {"role": "system", "content": "You are {{ persona }}."},
            {"role": "user", "content": "{{ question }}"},
            {"role": "assistant", "content": "Noted."},
        ],
        "variables": {"persona": {"type": "string"}, "question": {"type": "string"}},
    }
    assert _compile(spec).render({"persona": "terse", "question": "Why?"}) == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Why?"},
        {"role": "assistant", "content": "Noted."},
    ]


def test_a_text_prompt_renders_to_one_user_message() -> None:
    spec = {"template": "Hi {{ who }}", "variables": {"who": {"type": "string", "default": "there"}}}
    assert _compile(spec).render({}) == [{"role": "user", "content": "Hi there"}]


def test_frozen_includes_render_inline() -> None:
    spec = {
        "template": "A{% include 'shared/tone' %}B {% from 'shared/macros' import shout %}{{ shout(x) }}",
        "variables": {"x": {"type": "string"}},
        "includes": {
            "shared/tone": {"version": 1, "template": "[{{ x }}]"},
            "shared/macros": {"version": 2, "template": "{% macro shout(s) %}{{ s|upper }}!{% endmacro %}"},
        },
    }
    assert _compile(spec).render({"x": "hey"}) == [{"role": "user", "content": "A[hey]B HEY!"}]


def test_compiled_prompts_are_cached_by_name_version_content_and_limits() -> None:
    spec = {"template": "x", "variables": {}}
    first = compile_prompt(name="c", version=1, content_hash="h", spec=spec, limits=RenderLimits())
    assert compile_prompt(name="c", version=1, content_hash="h", spec=spec, limits=RenderLimits()) is first
    assert compile_prompt(name="c", version=1, content_hash="h", spec=spec, limits=RenderLimits(timeout=1)) is not first
    assert compile_prompt(name="c", version=2, content_hash="h", spec=spec, limits=RenderLimits()) is not first


def test_include_of_another_prompt_through_the_registry(registry: Registry, write_prompt: WritePrompt) -> None:
    write_prompt("shared/tone", "template: 'Be warm, {{ customer }}.'\n")
    write_prompt(
        "support/reply",
        """\
        variables:
          customer: {type: string}
        messages:
          - role: system
            content: |
              You help {{ customer }}.
              {% include 'shared/tone' %}
          - {role: user, content: "{{ customer }} asks"}
        """,
    )
    registry.push()
    prompt = registry.get("support/reply", label="latest")
    assert prompt.spec["includes"] == {"shared/tone": {"version": 1, "template": "Be warm, {{ customer }}."}}
    assert prompt.render(customer="Ana").messages == [
        {"role": "system", "content": "You help Ana.\nBe warm, Ana."},
        {"role": "user", "content": "Ana asks"},
    ]


# --- where errors happened -----------------------------------------------------------------------------------


def test_syntax_error_at_push_names_the_file_and_its_line(registry: Registry, write_prompt: WritePrompt) -> None:
    path = write_prompt(
        "greet",
        """\
        description: Greets
        variables:
          name: {type: string}
        template: "Hello {{ name"
        """,
    )
    with pytest.raises(TemplateSyntaxError) as info:
        registry.push()
    error = info.value
    assert (Path(error.path).resolve(), error.line, error.prompt, error.template) == (path, 4, "greet", "template")
    assert str(error).startswith(f"{error.path}:4 (greet template): ")
    assert registry.list_prompts() == []


def test_syntax_error_in_a_block_scalar_is_on_the_key_line_plus_the_template_line(
    registry: Registry, write_prompt: WritePrompt
) -> None:
    path = write_prompt(
        "support/reply",
        """\
        variables:
          name: {type: string}
        messages:
          - role: system
            content: |
              Hello {{ name }},
              this is fine,
              and this is {% if name %}not closed
              more text
          - role: user
            content: ok
        """,
    )
    with pytest.raises(TemplateSyntaxError) as info:
        registry.push()
    error = info.value
    # `content: |` is on line 5; the unclosed `if` is on line 3 of the template.
    assert (Path(error.path).resolve(), error.line, error.template) == (path, 5 + 3, "messages[0]")
    assert "'if'" in error.reason


def test_syntax_error_in_a_later_message_names_that_message(registry: Registry, write_prompt: WritePrompt) -> None:
    path = write_prompt(
        "chat",
        """\
        messages:
          - {role: system, content: "fine"}
          - role: user
            content: "{% endfor %}"
        """,
    )
    with pytest.raises(TemplateSyntaxError) as info:
        registry.push()
    assert (Path(info.value.path).resolve(), info.value.line, info.value.template) == (path, 4, "messages[1]")


def test_syntax_error_in_a_quoted_multi_line_template_is_on_the_value_line(
    registry: Registry, write_prompt: WritePrompt
) -> None:
    # Escaped newlines are template lines but not file lines.
    path = write_prompt("q", 'template: "Hello\\n{{ x"\nvariables:\n  x: {type: string}\n')
    with pytest.raises(TemplateSyntaxError) as info:
        registry.push()
    assert (Path(info.value.path).resolve(), info.value.line) == (path, 1)


def test_syntax_error_in_a_folded_template_is_on_its_file_line(registry: Registry, write_prompt: WritePrompt) -> None:
    path = write_prompt(
        "f",
        """\
        description: folded
        template: >
          Hello
          there

          and {% endfor %}
          more
        """,
    )
    # Folded text is "Hello there\nand {% endfor %} more\n": template line 2 is file line 6.
    with pytest.raises(TemplateSyntaxError) as info:
        registry.push()
    assert (Path(info.value.path).resolve(), info.value.line) == (path, 6)


def test_syntax_error_without_a_file_is_located_inside_the_template() -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        _compile({"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": "a\nb {{ x"}]})
    error = info.value
    assert (error.prompt, error.version, error.template, error.line, error.path) == (
        "t/prompt",
        4,
        "messages[1]",
        2,
        None,
    )
    assert str(error) == "t/prompt@4 messages[1] line 2: unexpected end of template, expected 'end of print statement'."


def test_undefined_attribute_is_a_render_error_at_its_line() -> None:
    spec = {
        "messages": [
            {"role": "system", "content": "{{ order.id }}"},
            {"role": "user", "content": "Order {{ order.id }}:\n{{ order.missing }}"},
        ],
        "variables": {"order": {"type": "object"}},
    }
    with pytest.raises(TemplateRenderError) as info:
        _compile(spec).render({"order": {"id": 1}})
    error = info.value
    assert (error.prompt, error.version, error.template, error.line) == ("t/prompt", 4, "messages[1]", 2)
    assert error.reason == "'dict object' has no attribute 'missing'"


def test_python_exceptions_become_render_errors_at_their_line() -> None:
    compiled = _compile({"template": "a\n\n{{ 10 // n }}\n", "variables": {"n": {"type": "integer"}}})
    assert compiled.render({"n": 5}) == [{"role": "user", "content": "a\n\n2"}]
    with pytest.raises(TemplateRenderError) as info:
        compiled.render({"n": 0})
    assert (info.value.template, info.value.line) == ("template", 3)
    assert info.value.reason == "ZeroDivisionError: integer division or modulo by zero"
    assert info.value.__cause__ is None


def test_errors_in_an_included_prompt_name_the_included_prompt() -> None:
    spec = {
        "template": "intro\n{% include 'shared/footer' %}",
        "variables": {"n": {"type": "integer"}},
        "includes": {"shared/footer": {"version": 3, "template": "thanks\n\n{{ 1 / n }}"}},
    }
    with pytest.raises(TemplateRenderError) as info:
        _compile(spec).render({"n": 0})
    assert (info.value.prompt, info.value.template, info.value.line) == ("t/prompt", "shared/footer", 3)
    assert str(info.value) == "t/prompt@4 shared/footer line 3: ZeroDivisionError: division by zero"


def test_render_errors_from_an_included_prompt_through_the_registry(
    registry: Registry, write_prompt: WritePrompt
) -> None:
    write_prompt("shared/tone", "template: |\n  Be warm.\n  {{ user.nickname }}\n")
    write_prompt("greet", "template: \"Hi.\\n{% include 'shared/tone' %}\"\nvariables:\n  user: {type: object}\n")
    registry.push()
    prompt = registry.get("greet", label="latest")
    assert prompt.render(user={"nickname": "Bo"}).text == "Hi.\nBe warm.\nBo"
    with pytest.raises(TemplateRenderError) as info:
        prompt.render(user={})
    error = info.value
    assert (error.prompt, error.version, error.template, error.line) == ("greet", 1, "shared/tone", 2)


def test_security_errors_in_an_included_prompt_name_the_included_prompt() -> None:
    spec = {
        "template": "{% include 'shared/x' %}",
        "variables": {},
        "includes": {"shared/x": {"version": 1, "template": "ok\n{{ ''.__class__ }}"}},
    }
    with pytest.raises(TemplateSecurityError) as info:
        _compile(spec).render({})
    assert (info.value.template, info.value.line) == ("shared/x", 2)


# --- analysis ------------------------------------------------------------------------------------------------


def test_analyze_template_reports_variables_and_includes() -> None:
    source = """\
{% from 'shared/macros' import m %}
{% for item in items %}{{ m(item.name) }}{{ tone }}{% endfor %}
{% include 'shared/tone' %}{% include 'shared/tone' %}{% set local = 1 %}{{ local }}{{ range(2)|list }}"""
    assert analyze_template(source) == TemplateInfo(
        variables=frozenset({"items", "tone"}), includes=("shared/macros", "shared/tone"), dynamic_include_line=None
    )
    assert analyze_template("a\n{% include name %}").dynamic_include_line == 2


def test_analyze_template_raises_syntax_errors_with_the_template_line() -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        analyze_template("ok\nok\n{% for %}", prompt="p", template="messages[0]")
    assert (info.value.prompt, info.value.template, info.value.line) == ("p", "messages[0]", 3)


def test_first_use_line() -> None:
    source = "a\n{% set b = 1 %}{{ b }}\n{{ c }}\n{{ c }}"
    assert (first_use_line(source, "c"), first_use_line(source, "a"), first_use_line(source, "b")) == (3, None, 2)


# --- known bugs -----------------------------------------------------------------------------------------------


def test_wordwrap_filter_wraps() -> None:
    assert _render("{{ text|wordwrap(7) }}", text="aaa bbb ccc") == "aaa bbb\nccc"


def test_slice_filter_slices() -> None:
    assert _render("{{ items|slice(2)|list }}", items=[1, 2, 3, 4, 5]) == "[[1, 2, 3], [4, 5]]"


def test_raw_blocks_are_verbatim_as_in_jinja() -> None:
    """Text inside {% raw %} starts right after the tag, line break included (Jinja2's own rule); the end tag
    alone on its line leaves nothing, and `{% raw -%}` drops the first line break."""
    assert _render("Start\n{% raw %}\n{{ x }}\n{% endraw %}\nend") == "Start\n\n{{ x }}\nend"
    assert _render("Start\n{% raw -%}\n{{ x }}\n{% endraw %}\nend") == "Start\n{{ x }}\nend"


def test_str_join_accepts_a_generator() -> None:
    assert _render("{{ ', '.join(names|map('upper')) }}", names=["ana", "bo"]) == "ANA, BO"


# --- properties ----------------------------------------------------------------------------------------------

TEXT_PROMPT = _compile({"template": "{{ v }}", "variables": {"v": {"type": "string"}}})
LIST_PROMPT = _compile(
    {
        "template": "{% for x in xs %}{{ x }}\n{% endfor %}",
        "variables": {"xs": {"type": "array", "items": {"type": "string"}}},
    }
)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_a_string_variable_renders_exactly(value: str) -> None:
    assert TEXT_PROMPT.render({"v": value}) == [{"role": "user", "content": value}]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="{\r")))
def test_literal_text_renders_to_itself(text: str) -> None:
    # Jinja drops one trailing newline of a template (keep_trailing_newline is off) and nothing else.
    expected = text[:-1] if text.endswith("\n") else text
    assert _render(text) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text()))
def test_a_loop_renders_each_item_on_its_line(items: list[str]) -> None:
    assert LIST_PROMPT.render({"xs": items})[0]["content"] == "".join(f"{item}\n" for item in items)


REPEAT_PROMPT = _compile(
    {
        "template": "{{ unit * n }}|{{ unit|center(width) }}",
        "variables": {"unit": {"type": "string"}, "n": {"type": "integer"}, "width": {"type": "integer"}},
    },
    RenderLimits(max_chars=1000, timeout=600),
)


@settings(max_examples=200, deadline=None)
@given(unit=st.text(min_size=1, max_size=5), n=st.integers(-10, 10**12), width=st.integers(-10, 10**12))
def test_amplification_is_exact_under_the_cap_and_refused_over_it(unit: str, n: int, width: int) -> None:
    expected = f"{unit * max(n, 0)}|{unit.center(max(width, 0))}" if max(len(unit) * n, width) <= 1000 else None
    if expected is not None and len(expected) <= 1000:
        assert REPEAT_PROMPT.render({"unit": unit, "n": n, "width": width})[0]["content"] == expected
    else:
        with pytest.raises(TemplateSecurityError):
            REPEAT_PROMPT.render({"unit": unit, "n": n, "width": width})


JOIN_PROMPT = _compile(
    {"template": "{{ xs|join(sep) }}|{{ sep.join(xs) }}", "variables": {"xs": {}, "sep": {"type": "string"}}},
    RenderLimits(max_chars=1000, timeout=600),
)
JOIN_ANY_PROMPT = _compile(
    {"template": "{{ xs|join(sep) }}", "variables": {"xs": {}, "sep": {}}}, RenderLimits(max_chars=1000, timeout=600)
)


@settings(max_examples=200, deadline=None)
@given(
    unit=st.text(max_size=40),
    times=st.integers(0, 200),
    others=st.lists(st.text(max_size=10), max_size=5),
    sep=st.text(max_size=8),
)
def test_joining_strings_is_exact_under_the_cap_and_refused_over_it(
    unit: str, times: int, others: list[str], sep: str
) -> None:
    # One string many times over (shared references: the list is small, the joined text is not) among others.
    items = [unit] * times + others
    joined = sep.join(items)
    if 2 * len(joined) + 1 <= 1000:
        assert JOIN_PROMPT.render({"xs": items, "sep": sep})[0]["content"] == f"{joined}|{joined}"
    elif len(joined) > 1000:
        with pytest.raises(TemplateSecurityError, match="join would produce"):
            JOIN_PROMPT.render({"xs": items, "sep": sep})


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(
        st.one_of(st.text(max_size=10), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=3)),
        max_size=8,
    ),
    sep=st.one_of(st.text(max_size=3), st.integers(0, 99)),
)
def test_joining_anything_renders_what_jinja_renders(items: list[Any], sep: Any) -> None:
    """Items that are not all plain strings, or a separator that is not one, are each printed, as Jinja2's
    join prints them."""
    assert JOIN_ANY_PROMPT.render({"xs": items, "sep": sep})[0]["content"] == str(sep).join(map(str, items))


MIXED_PROMPT = _compile(
    {
        "messages": [
            {"role": "system", "content": "{{ name|title }} / {{ name|length }} / {{ tags|join(', ') }}"},
            {
                "role": "user",
                "content": "{{ '-' * count }}{{ 100 // count }}{% for t in tags %}{{ loop.index }}:{{ t }}"
                "{% endfor %}{{ meta|tojson }}{{ meta[name] if name in meta }}{{ flag and name }}",
            },
        ],
        "variables": {
            "name": {"type": "string"},
            "count": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "meta": {"type": "object"},
            "flag": {"type": "boolean"},
        },
    },
    RenderLimits(max_chars=5000, timeout=600),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)


def _outcome(compiled: CompiledPrompt, variables: dict[str, Any]) -> Any:
    try:
        return compiled.render(variables)
    except PromptlaneError as exc:
        return type(exc), str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(max_size=30),
    count=st.integers(),
    tags=st.lists(st.text(max_size=10), max_size=5),
    meta=st.dictionaries(st.text(max_size=10), JSON, max_size=4),
    flag=st.booleans(),
)
def test_rendering_is_deterministic_and_raises_only_promptlane_errors(
    name: str, count: int, tags: list[str], meta: dict[str, Any], flag: bool
) -> None:
    variables = {"name": name, "count": count, "tags": tags, "meta": meta, "flag": flag}
    first = _outcome(MIXED_PROMPT, variables)
    assert _outcome(MIXED_PROMPT, variables) == first
    if isinstance(first, tuple):
        kind, _ = first
        assert kind in (TemplateRenderError, TemplateSecurityError)
        if kind is TemplateRenderError:
            # 100 // 0, or a repeat count Python cannot use as an index: the only failures valid values can cause.
            assert count == 0 or count < -sys.maxsize
        else:
            assert count > 4000  # over the 5000-character cap (the rest of the output is far shorter than 1000)
    else:
        assert first[1]["content"].startswith("-" * max(count, 0))


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.integers(), st.booleans(), st.none(), st.lists(st.text()), st.floats(allow_nan=False)))
def test_values_of_another_type_are_refused_before_rendering(value: Any) -> None:
    with pytest.raises(VariableError) as info:
        TEXT_PROMPT.render({"v": value})
    assert info.value.variable == "v"
