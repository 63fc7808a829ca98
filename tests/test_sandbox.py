"""The render sandbox: no Python internals, no mutation, and every kind of resource abuse refused by its guard.

No test here depends on the machine's speed. Hostile templates render with a timeout no test reaches
(``UNHURRIED``), so a refusal has to come from the guard meant for it, and its reason says which; an alarm far
beyond any limit under test turns a regression that hangs into a failure instead of a stalled suite. What the
refusals cost is printed by ``bench/sdk.py``, not asserted here.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import math
import signal
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _live import finishes
from promptlane import _budget
from promptlane._budget import BUDGET, RenderBudget, RenderLimits
from promptlane._guards import GUARDED_FILTERS, REMEMBERED_WEIGHTS, combine_sequences, measure
from promptlane._sandbox import SandboxEnvironment
from promptlane.errors import TemplateRenderError, TemplateSecurityError, TemplateSyntaxError
from promptlane.templates import CompiledPrompt, compile_prompt

UNHURRIED = RenderLimits(timeout=600)
"""The default limits with a render timeout no test reaches: a refusal must come from the guard under test."""
HANG = 60.0
"""Seconds after which a render is taken to hang: far beyond what any limit here allows (the default render
timeout is 2 s), so only a template that nothing stops gets there."""


def _compile(spec: Mapping[str, Any], limits: RenderLimits = UNHURRIED) -> CompiledPrompt:
    digest = hashlib.sha256(repr(sorted(spec.items())).encode()).hexdigest()
    return compile_prompt(name="t/sandbox", version=7, content_hash=digest, spec=spec, limits=limits)


def _text_prompt(template: str, limits: RenderLimits, variables: Mapping[str, Any]) -> CompiledPrompt:
    # Variables are declared without a schema, so any Python value gets through to the template.
    return _compile({"template": template, "variables": {name: {} for name in variables}}, limits)


def _render(template: str, limits: RenderLimits = UNHURRIED, **variables: Any) -> str:
    [message] = _text_prompt(template, limits, variables).render(variables)
    return message["content"]


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Fail the test if the block is still running after ``seconds`` (so a hang fails instead of stalling)."""
    if not hasattr(signal, "setitimer"):  # no SIGALRM on Windows: a hang stalls there
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        # pytest.fail raises a BaseException, which the renderer's `except Exception` lets through.
        pytest.fail(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _refused(template: str, limits: RenderLimits = UNHURRIED, **variables: Any) -> TemplateSecurityError:
    """The TemplateSecurityError rendering ``template`` raises (a render still going after HANG seconds fails)."""
    compiled = _text_prompt(template, limits, variables)
    with _alarm(HANG), pytest.raises(TemplateSecurityError) as info:
        compiled.render(variables)
    return info.value


def _refused_by_a_guard(template: str, limits: RenderLimits = UNHURRIED, **variables: Any) -> TemplateSecurityError:
    """As :func:`_refused`, and the refusal is not the clock's: the guard that refused it is cheap, whatever the
    machine, since the render had all the time it wanted and did not need it."""
    error = _refused(template, limits, **variables)
    assert "render_timeout" not in error.reason, f"{template!r} was stopped by the clock, not by a guard"
    return error


# --- Python internals and mutation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__['os'] }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ self.__dict__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ range.__globals__ }}",
        "{{ (1).__class__.__base__.__subclasses__() }}",
        "{{ ''|attr('__class__') }}",
        "{{ dict.__base__ }}",
    ],
)
def test_python_internals_are_unreachable(template: str) -> None:
    error = _refused(template)
    assert error.reason.startswith("unsafe: access to attribute")
    assert (error.prompt, error.version, error.template, error.line) == ("t/sandbox", 7, "template", 1)


class _Account:
    def __init__(self) -> None:
        self.owner = "ana"
        self._token = "s3cret"


@pytest.mark.parametrize("template", ["{{ account._token }}", "{{ account|attr('_token') }}", "{{ account.__dict__ }}"])
def test_underscore_attributes_of_objects_are_unreachable(template: str) -> None:
    error = _refused(template, account=_Account())
    assert error.reason.startswith("unsafe: access to attribute") and "s3cret" not in str(error)
    assert _render("{{ account.owner }}", account=_Account()) == "ana"


@pytest.mark.parametrize(
    ("template", "method"),
    [
        ("{% set items = [1] %}{{ items.append(2) }}", "append"),
        ("{% set items = [1] %}{% set _ = items.extend([2]) %}{{ items }}", "extend"),
        ("{% set items = [1, 2] %}{{ items.pop() }}", "pop"),
        ("{% set items = [2, 1] %}{{ items.sort() }}", "sort"),
        ("{% set d = {'a': 1} %}{{ d.update(b=2) }}", "update"),
        ("{% set d = {'a': 1} %}{{ d.setdefault('b', 2) }}", "setdefault"),
        ("{% set d = {'a': 1} %}{{ d.clear() }}", "clear"),
    ],
)
def test_lists_and_dicts_cannot_be_mutated(template: str, method: str) -> None:
    assert f"attribute {method!r}" in _refused(template).reason


def test_lists_built_by_operators_cannot_be_mutated_either() -> None:
    assert "attribute 'append' of 'list' object" in _refused("{% set items = [1] + [2] %}{{ items.append(3) }}").reason


def test_mutating_a_variable_is_refused_and_leaves_it_untouched() -> None:
    tags = ["a"]
    _refused("{{ tags.append('b') }}", tags=tags)
    assert tags == ["a"]


# --- resource abuse ------------------------------------------------------------------------------------------

HOSTILE = {
    # sizes
    "str repetition": ("{{ 'a' * 100000000 }}", "repetition would produce 100000000 characters"),
    "repetition on the right": ("{{ 100000000 * 'a' }}", "repetition would produce"),
    "list repetition": ("{{ [1, 2] * 100000000 }}", "repetition would build a value of about 600000000"),
    "huge power": ("{{ 2 ** 10000000 }}", "power would produce an integer"),
    "huge power of a big base": ("{{ 99 ** 100000 }}", "power would produce an integer"),
    "power of a power": ("{{ 10 ** (10 ** 10) }}", "power would produce an integer"),
    "huge product": (
        "{% set n = 2 ** 60000 %}{{ n * n }}",
        "multiplication would produce an integer",
    ),
    # loops and calls
    "nested range loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "loop iterations and calls",
    ),
    "exponential macro recursion": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        "loop iterations and calls",
    ),
    "infinite macro recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion too deep"),
    "infinite recursive loop": (
        "{% for x in range(2) recursive %}{{ loop(range(2)) }}{% endfor %}",
        "recursion too deep",
    ),
    "exponential recursive loop": (
        "{% for n in [60] recursive %}{% if n %}{{ loop([n - 1, n - 1]) }}{% endif %}{% endfor %}",
        "loop iterations and calls",
    ),
    # filters with huge arguments
    "center filter": ("{{ 'x'|center(100000000) }}", "center would produce 100000000 characters"),
    "indent filter": ("{{ 'a\nb\nc'|indent(500000) }}", "indent would produce"),
    "indent filter with a string": ("{{ 'a\nb\nc'|indent('.' * 500000) }}", "indent would produce"),
    "format filter width": ("{{ '%999999999s'|format(1) }}", "string formatting would produce 10000000"),
    "format filter precision": ("{{ '%.999999999f'|format(1.5) }}", "string formatting would produce 10000000"),
    "format filter star width": ("{{ '%*d'|format(999999999, 1) }}", "'*' width"),
    "join filter": ("{{ (['ab'] * 90000)|join(',' * 20) }}", "join would produce 1979980 characters"),
    "join filter separator": ("{{ ['a', 'b', 'c']|join('-' * 900000) }}", "join would produce"),
    "replace filter": ("{{ ('a' * 1000)|replace('a', 'b' * 10000) }}", "replace would produce 10000000"),
    "replace filter on empty": ("{{ ('a' * 1000)|replace('', 'b' * 10000) }}", "replace would produce"),
    "wordwrap filter": ("{{ ('a ' * 1000)|wordwrap(1, wrapstring='-' * 10000) }}", "wordwrap would produce"),
    "batch filter": ("{{ [1, 2]|batch(100000000)|list }}", "batch would produce"),
    "slice filter": ("{{ [1, 2]|slice(100000000)|list }}", "slice would produce"),
    # str methods
    "str.center": ("{{ 'x'.center(100000000) }}", "str.center would produce"),
    "str.ljust": ("{{ 'x'.ljust(100000000) }}", "str.ljust would produce"),
    "str.rjust": ("{{ 'x'.rjust(100000000) }}", "str.rjust would produce"),
    "str.zfill": ("{{ '1'.zfill(100000000) }}", "str.zfill would produce"),
    "str.expandtabs": ("{{ 'a\tb'.expandtabs(100000000) }}", "str.expandtabs would produce"),
    "str.expandtabs keyword": ("{{ '\t\t'.expandtabs(tabsize=600000) }}", "str.expandtabs would produce"),
    "str.join": ("{{ ('-' * 1000).join(['a'] * 2000) }}", "str.join would produce"),
    "str.replace": ("{{ ('a' * 1000).replace('a', 'b' * 10000) }}", "str.replace would produce"),
    "str.format width": ("{{ '{:999999999}'.format(1) }}", "string formatting would produce 10000000"),
    "str.format precision": ("{{ '{:.999999999f}'.format(1.5) }}", "string formatting would produce"),
    "str.format nested width": ("{{ '{:{}}'.format(1, 999999999) }}", "a width or precision taken from an argument"),
    "str.format nested width and digits": ("{{ '{0:{1}00000}'.format('a', 9999) }}", "would produce 999900018"),
    "str.format nested width and fill": ("{{ '{0:x>{1}00000}'.format('a', 9999) }}", "would produce 999900020"),
    "str.format_map nested width": (
        "{{ '{a:{w}}'.format_map({'a': 1, 'w': 999999999}) }}",
        "string formatting would produce 1000000018 characters",
    ),
    "percent width": ("{{ '%999999999d' % 1 }}", "string formatting would produce 10000000"),
    "percent width by name": ("{{ '%(n)999999999d' % {'n': 1} }}", "string formatting would produce 10000000"),
    "percent star width": ("{{ '%*d' % (999999999, 1) }}", "'*' width"),
    # doubling in a loop
    "~ doubling": (
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "concatenation (~) would produce 1048576",
    ),
    "+ doubling a string": (
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "concatenation would produce 1048576",
    ),
    "+ doubling a list": (
        "{% set ns = namespace(s=[1]) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "concatenation would build a value of about",
    ),
    "+ doubling a tuple": (
        "{% set ns = namespace(s=(1,)) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "concatenation would build a value of about",
    ),
    "* doubling a list": (
        "{% set ns = namespace(s=[1]) %}{% for i in range(64) %}{% set ns.s = ns.s * 2 %}{% endfor %}",
        "repetition would build a value of about",
    ),
    "sum doubling a list": (
        "{% set ns = namespace(s=[1]) %}{% for i in range(64) %}{% set ns.s = [ns.s]|sum(start=ns.s) %}{% endfor %}",
        "sum would build a value of about",
    ),
    # nesting
    "nesting in list literals": (
        "{% set ns = namespace(s=[]) %}{% for i in range(200) %}{% set ns.s = [ns.s] %}{% endfor %}",
        "a value nested more than 100 levels deep",
    ),
    "nesting through concatenation": (
        "{% set ns = namespace(s=[1]) %}{% for i in range(200) %}{% set ns.s = [ns.s] + [] %}{% endfor %}",
        "a value nested more than 100 levels deep",
    ),
    # output
    "literal text in a big loop": (
        "{% for i in range(99000) %}" + "x" * 100 + "{% endfor %}",
        "template produced more than 1000000 characters",
    ),
    "expression output in a big loop": (
        "{% for i in range(99000) %}{{ 'y' * 100 }}{% endfor %}",
        "template produced more than 1000000 characters",
    ),
    "text captured by macros": (
        "{% macro m() %}{{ 'z' * 900000 }}{% endmacro %}{% for i in range(20) %}{% set _ = m() %}{% endfor %}",
        "template produced more than 1000000 characters",
    ),
}


@pytest.mark.parametrize(("template", "reason"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_resource_abuse_is_refused_by_its_guard(template: str, reason: str) -> None:
    error = _refused_by_a_guard(template)
    assert reason in error.reason
    assert (error.prompt, error.version, error.template) == ("t/sandbox", 7, "template")


def test_recursion_error_is_mapped_with_its_location() -> None:
    error = _refused("line one\n{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\n{{ f(0) }}")
    assert error.reason == "recursion too deep (a macro or recursive loop that never ends?)"
    assert (error.template, error.line) == ("template", 2)
    assert str(error) == "t/sandbox@7 template line 2: recursion too deep (a macro or recursive loop that never ends?)"


def test_lipsum_is_not_available() -> None:
    assert "lipsum" not in SandboxEnvironment().globals
    with pytest.raises(TemplateRenderError, match="'lipsum' is undefined"):
        _render("{{ lipsum(10000) }}")


def test_step_limit_is_configurable_and_fresh_for_every_render() -> None:
    limits = RenderLimits(max_steps=50, timeout=600)
    # range() is a call and every loop is guarded: 40 iterations fit in 50 steps, twice in a row.
    template = "{% for i in range(40) %}.{% endfor %}"
    assert _render(template, limits) == "." * 40
    assert _render(template, limits) == "." * 40
    error = _refused("{% for i in range(60) %}.{% endfor %}", limits)
    assert error.reason == "template took more than 50 loop iterations and calls (render_max_steps)"


class _FakeClock:
    """Stands in for the budget's clock: every reading is 1/64 s after the previous one (exact in binary)."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return self.readings / 64


def test_timeout_stops_a_slow_but_bounded_template(monkeypatch: pytest.MonkeyPatch) -> None:
    # A hundred thousand iterations, well within the step budget: the template ends if given the time...
    template = "{% for i in range(100) %}{% for j in range(1000) %}{% endfor %}{% endfor %}done"
    limits = RenderLimits(max_steps=10**6, timeout=600)
    assert _render(template, limits) == "done"
    # ...and the clock stops it: the first reading (1/64 s) sets the deadline 0.25 s later (17/64 s), and the
    # budget reads the clock at every step, so the render ends at the 18th reading, the first past the deadline.
    clock = _FakeClock()
    monkeypatch.setattr(_budget, "monotonic", clock)
    error = _refused(template, RenderLimits(max_steps=10**6, timeout=0.25))
    assert error.reason == "template took longer than 0.25s to render (render_timeout)"
    assert clock.readings == 18


def test_output_cap_allows_exactly_max_chars() -> None:
    limits = RenderLimits(max_chars=100)
    assert _render("{{ text }}", limits, text="x" * 100) == "x" * 100
    assert _render("x" * 100, limits) == "x" * 100


@pytest.mark.parametrize(
    ("template", "variables"),
    [("{{ text }}", {"text": "x" * 101}), ("{{ text }}!", {"text": "x" * 100}), ("x" * 101, {})],
    ids=["variable", "variable and literal", "literal"],
)
def test_output_cap_refuses_one_character_more(template: str, variables: dict[str, str]) -> None:
    error = _refused(template, RenderLimits(max_chars=100), **variables)
    assert error.reason == "rendered output is 101 characters, over the limit of 100 (render_max_chars)"
    assert (error.prompt, error.version) == ("t/sandbox", 7)


def test_output_cap_counts_every_message() -> None:
    spec = {
        "messages": [{"role": "system", "content": "s" * 60}, {"role": "user", "content": "u" * 40}],
        "variables": {},
    }
    assert [m["content"] for m in _compile(spec, RenderLimits(max_chars=100)).render({})] == ["s" * 60, "u" * 40]
    with pytest.raises(TemplateSecurityError, match="rendered output is 100 characters, over the limit of 99"):
        _compile(spec, RenderLimits(max_chars=99)).render({})


def test_amplifying_guards_follow_the_configured_cap() -> None:
    limits = RenderLimits(max_chars=100)
    assert _render("{{ 'ab' * 50 }}", limits) == "ab" * 50
    assert (
        "repetition would produce 102 characters, over the limit of 100" in _refused("{{ 'ab' * 51 }}", limits).reason
    )
    # A variable, so Jinja cannot fold the filter call into a constant at compile time (under default limits).
    assert _render("{{ text|center(100)|length }}", limits, text="x") == "100"
    assert "center would produce 101" in _refused("{{ text|center(101)|length }}", limits, text="x").reason


def test_default_output_cap_is_a_million_characters() -> None:
    assert RenderLimits().max_chars == 1_000_000
    assert len(_render("{{ text }}", text="x" * 1_000_000)) == 1_000_000
    assert _render("{{ ('x' * 1000000)|length }}") == "1000000"
    error = _refused("{{ text }}", text="x" * 1_000_001)
    assert "over the limit of 1000000" in error.reason


def test_budget_is_only_active_during_a_render() -> None:
    seen = []
    _render("{{ probe() }}", probe=lambda: seen.append(BUDGET.get()) or "")
    assert seen[0] is not None and seen[0].limits == UNHURRIED
    assert BUDGET.get() is None
    _refused("{{ 'a' * 100000000 }}")
    assert BUDGET.get() is None


# --- doubling, nesting and summing by other routes --------------------------------------------------------

DOUBLING = {
    "% operator": "{% set ns.s = '%s%s' % (ns.s, ns.s) %}",
    "format filter": "{% set ns.s = '%s%s'|format(ns.s, ns.s) %}",
    "str.format": "{% set ns.s = '{0}{0}'.format(ns.s) %}",
}


@pytest.mark.parametrize("assignment", list(DOUBLING.values()), ids=list(DOUBLING))
def test_doubling_through_string_formatting_is_refused(assignment: str) -> None:
    # 24 doublings build a 16.7M-character string (16x the output cap); 40 would need a terabyte.
    template = "{% set ns = namespace(s='x') %}{% for i in range(24) %}" + assignment + "{% endfor %}{{ ns.s|length }}"
    assert "string formatting would produce" in _refused_by_a_guard(template).reason


def test_nested_format_width_given_as_a_string_is_refused() -> None:
    error = _refused_by_a_guard("{{ '{0:{1}}'.format('x', '9999999')|length }}")
    assert error.reason == "string formatting would produce 10000015 characters, over the limit of 1000000"


def test_tojson_with_a_huge_indent_is_refused() -> None:
    assert "tojson would produce" in _refused_by_a_guard("{{ [[[1]]]|tojson(indent=3000000)|length }}").reason


def test_nested_repetition_is_refused() -> None:
    template = "{% set a = [0] * 150 %}{% set b = [a] * 150 %}{% set c = [b] * 150 %}{{ c|string|length }}"
    assert "repetition would build a value of about" in _refused_by_a_guard(template).reason


def test_sum_cannot_amplify_with_or_without_an_attribute() -> None:
    """A list's weight counts each shared reference, so [row] * 60 already weighs as much as the sum of its
    rows: the sum is allowed exactly when its input was, and runs in linear time."""
    rows = "{% set rows = [{'x': ['y'] * 20000}] * 60 %}"
    assert _render(rows + "{{ rows|sum(attribute='x', start=[])|length }}") == "1200000"
    error = _refused_by_a_guard(
        "{% set rows = [{'x': ['y'] * 20000}] * 600 %}{{ rows|sum(attribute='x', start=[])|length }}"
    )
    assert "repetition would build a value of about" in error.reason


def test_sum_of_many_lists_takes_a_step_per_list() -> None:
    # 6001 lists, one of 100k items: summed in one pass (the builtin sum would copy the big one 6000 times),
    # and charged one step each, so the step budget bounds what a sum can cost.
    template = "{% set big = ['y'] * 100000 %}{% set rows = [big] + [[]] * 6000 %}{{ rows|sum(start=[])|length }}"
    assert _render(template) == "100000"
    error = _refused_by_a_guard(template, RenderLimits(max_steps=6000, timeout=600))
    assert error.reason == "template took more than 6000 loop iterations and calls (render_max_steps)"


def test_timeout_applies_to_a_short_loop_with_slow_iterations() -> None:
    # Ten iterations, each sleeping twice the 50 ms timeout: the first step after a sleep is past the deadline,
    # so at most one sleep runs (none if the machine stalled 50 ms before the first).
    pauses = []

    def pause() -> str:
        pauses.append(time.monotonic())
        time.sleep(0.1)
        return ""

    error = _refused("{% for i in range(10) %}{{ pause() }}{% endfor %}", RenderLimits(timeout=0.05), pause=pause)
    assert error.reason == "template took longer than 0.05s to render (render_timeout)"
    assert len(pauses) <= 1


def test_a_range_over_the_sandbox_limit_is_a_security_error() -> None:
    error = _refused_by_a_guard("{% for i in range(10000000) %}x{% endfor %}")
    assert error.reason == "range() of 10000000 items is over the limit of 100000"


# --- containers built by operators: their weight is remembered, not walked again --------------------------


def test_containers_built_by_operators_are_plain_lists_and_tuples() -> None:
    template = "{{ [1, 2] + [3] }} {{ (1,) + (2,) }} {{ [0] * 3 }} {{ 2 * (0,) }} {{ [[1], [2]]|sum(start=[]) }} "
    template += "{{ kind(xs + xs) }} {{ kind(ts * 2) }} {{ (xs + [3])|tojson }}"
    assert _render(template, kind=lambda value: type(value).__name__, xs=[1, 2], ts=(1,)) == (
        "[1, 2, 3] (1, 2) [0, 0, 0] (0, 0) [1, 2] list tuple [1, 2, 3]"
    )


def test_a_built_list_that_python_code_grew_is_weighed_again() -> None:
    # The template cannot change a list, but Python code it is given can: the remembered weight no longer holds.
    def grow(items: list[str]) -> str:
        items.extend(["y"] * 1000)
        return ""

    template = "{% set xs = ['a'] + ['b'] %}{{ grow(xs) }}{{ (xs + xs)|length }}"
    assert _render(template, grow=grow) == "2004"
    # 1002 one-letter strings weigh 5012: twice that is over 8000, the limit for containers under a 1000 cap.
    error = _refused_by_a_guard(template, RenderLimits(max_chars=1000, timeout=600), grow=grow)
    assert error.reason == "concatenation would build a value of about 10030 characters, over the limit of 8000"


def test_a_render_remembers_the_weight_of_its_last_few_containers_only() -> None:
    remembered = []
    probe = lambda: remembered.append(len(BUDGET.get().weights)) or ""  # noqa: E731
    _render("{% for i in range(50) %}{% set x = [i] + [i] %}{% endfor %}{{ probe() }}", probe=probe)
    assert remembered == [REMEMBERED_WEIGHTS]


_ENVIRONMENT = SandboxEnvironment()
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(
    left=st.lists(_VALUES, max_size=4),
    right=st.lists(_VALUES, max_size=4),
    times=st.integers(2, 4),
    as_tuples=st.booleans(),
)
def test_remembered_weights_are_the_weights_a_walk_finds(
    left: list[Any], right: list[Any], times: int, as_tuples: bool
) -> None:
    if as_tuples:
        left, right = tuple(left), tuple(right)
    token = BUDGET.set(RenderBudget(RenderLimits()))
    try:
        joined = combine_sequences("+", left, right)
        repeated = combine_sequences("*", joined, times)  # built from a remembered one
        doubled = combine_sequences("+", repeated, repeated)  # shared: the same list twice
        summed = GUARDED_FILTERS["sum"](_ENVIRONMENT, [left, joined, doubled], start=right[:0])
        for built in (joined, repeated, doubled, summed):
            # A deep copy is walked, the built value is not: both must weigh the same.
            assert measure(built, math.inf) == measure(copy.deepcopy(built), math.inf)
    finally:
        BUDGET.reset(token)


# --- filters, tests and methods run under the budget too ---------------------------------------------------

TWENTY_SORTS = "{{ (xs" + "|sort(reverse=true)" * 20 + ")|length }}"


def test_filters_take_steps_for_the_items_they_go_through() -> None:
    # Jinja2 calls filters directly, not through the sandbox: twenty sorts of a long list ran for a minute and
    # a half of server CPU under a two-second timeout.
    xs = list(range(20_000))
    assert _render(TWENTY_SORTS, RenderLimits(max_steps=10**6, timeout=600), xs=xs) == "20000"
    error = _refused_by_a_guard(TWENTY_SORTS, xs=xs)
    assert error.reason == "template took more than 100000 loop iterations and calls (render_max_steps)"


def test_the_clock_stops_a_chain_of_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    # With steps to spare, every filter call reads the clock: the render ends at the first reading past the
    # deadline (the 18th, as for loops), not after all twenty sorts.
    clock = _FakeClock()
    monkeypatch.setattr(_budget, "monotonic", clock)
    error = _refused(TWENTY_SORTS, RenderLimits(max_steps=10**9, timeout=0.25), xs=list(range(1000)))
    assert error.reason == "template took longer than 0.25s to render (render_timeout)"
    assert clock.readings == 18


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ xs|map('string')|map('upper')|map('lower')|list|length }}", "render_max_steps"),
        ("{{ xs|select('odd')|select('odd')|list|length }}", "render_max_steps"),
        ("{% for i in range(20) %}{{ 3 is in xs }}{% endfor %}", "render_max_steps"),
        ("{% for i in range(20) %}{{ xs.count(3) }}{% endfor %}", "render_max_steps"),
        ("{% for i in range(20) %}{{ xs|unique|list|length }}{% endfor %}", "render_max_steps"),
        ("{{ (big * 8)|string|length }}", "the string filter would produce"),
        ("{{ (big * 8)|pprint|length }}", "the pprint filter would produce"),
    ],
    ids=["lazy map", "lazy select", "in test", "list method", "unique", "string of a container", "pprint"],
)
def test_every_filter_test_and_method_is_charged(template: str, reason: str) -> None:
    variables = {"xs": list(range(40_000)), "big": [["x" * 1000] * 100] * 5}
    assert reason in _refused_by_a_guard(template, **variables).reason


def test_filters_that_look_at_once_cost_one_step_whatever_the_size() -> None:
    # An application may hand a template a long list: taking its length or an item is not working through it.
    template = "{% for i in range(1000) %}{{ xs|length }}{{ xs|first }}{{ xs|last }}{{ xs is defined }}{% endfor %}"
    assert _render(template, RenderLimits(max_steps=6000, timeout=600), xs=list(range(1_000_000))).startswith(
        "10000000999999True"
    )


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ (data * 1000000000)|length }}", "repetition would produce 4000000000 characters"),
        ("{{ (data * 200000 + data * 200000)|length }}", "concatenation would produce 1600000 characters"),
        ("{{ data.center(999999999)|length }}", "str.center would produce 999999999 characters"),
        ("{{ data.replace(data[:1], data * 100000)|length }}", "str.replace would produce"),
        ("{{ ([data * 200000] * 100)|length }}", "repetition would build a value of about 80000"),
        ("{{ 'abc'.encode()|length }}", "str.encode is not available in templates"),
        ("{{ data.decode()|length }}", "bytes.decode is not available in templates"),
        ("{{ buffer.center(999999999)|length }}", "str.center would produce 999999999 characters"),
    ],
    ids=["repeat", "concatenate", "center", "replace", "nested", "encode", "decode", "bytearray"],
)
def test_bytes_are_weighed_like_text(template: str, reason: str) -> None:
    # A template built 3 GB of bytes and rendered: every size guard looked at str only.
    assert reason in _refused_by_a_guard(template, data=b"abaa", buffer=bytearray(b"ab")).reason


def test_constant_filters_are_not_folded_while_compiling() -> None:
    # Jinja2 folds constant expressions while compiling, where no budget or clock applies: a constant quadratic
    # wordwrap compiled for half a minute, even inside `{% if false %}`. Outside a render, a filter given more
    # than a short text refuses, and Jinja2 leaves the expression to render time, under the render's budget.
    wordwrap = SandboxEnvironment().filters["wordwrap"]
    with pytest.raises(Exception, match="the wordwrap filter: not folded while compiling"):
        wordwrap(SandboxEnvironment(), "a" * 1_000_000, 2, wrapstring="")
    template = '{% if false %}{{ ("a"|center(1000000))|wordwrap(2, wrapstring="") }}{% endif %}done'
    finishes(lambda: SandboxEnvironment().compile(template), "compiling a constant filter chain")
    assert _render(template) == "done"


def test_wordwrap_pays_for_breaking_long_words() -> None:
    # textwrap breaks a long word a line at a time: a million characters at width 1 ran 21 s past a 2 s timeout.
    error = _refused_by_a_guard('{{ ("a" * 1000000)|wordwrap(1, wrapstring="")|length }}')
    assert error.reason == "template took more than 100000 loop iterations and calls (render_max_steps)"
    assert _render("{{ ('word ' * 1000)|wordwrap(20)|length }}") == "4999"  # words shorter than the width: free


@pytest.mark.parametrize(
    "template",
    ["{% if a %}" * 3000 + "x" + "{% endif %}" * 3000, "{{ " + "(" * 20000 + "1" + ")" * 20000 + " }}"],
    ids=["blocks", "parentheses"],
)
def test_a_template_nested_too_deeply_is_a_syntax_error(template: str) -> None:
    with pytest.raises(TemplateSyntaxError, match="the template nests too deeply"):
        _render(template, a=True)


# --- loops pay for their iterations when they start ---------------------------------------------------------


def test_a_loop_over_a_container_pays_for_all_its_iterations_when_it_starts() -> None:
    limits = RenderLimits(max_steps=50, timeout=600)
    calls: list[int] = []
    probe = lambda: calls.append(1) or ""  # noqa: E731
    # Exactly the budget: 50 iterations fit in 50 steps (the loop itself is not a call).
    assert _render("{% for x in xs %}.{% endfor %}", limits, xs=list(range(50))) == "." * 50
    # One more and the loop is refused before its first iteration: nothing in its body ran.
    error = _refused_by_a_guard("{% for x in xs %}{{ probe() }}{% endfor %}", limits, xs=list(range(51)), probe=probe)
    assert error.reason == "template took more than 50 loop iterations and calls (render_max_steps)"
    assert calls == []


def test_a_short_loop_over_a_container_reads_the_clock_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # No step and no clock reading per iteration: a loop over a few documents runs at Jinja2's own speed.
    clock = _FakeClock()
    monkeypatch.setattr(_budget, "monotonic", clock)
    assert _render("{% for x in xs %}{{ x }}{% endfor %}", xs=["a", "b", "c", "d", "e"]) == "abcde"
    assert clock.readings == 1


@pytest.mark.parametrize(
    ("template", "items"),
    [
        ("{% for x in xs %}{% for y in xs %}.{% endfor %}{% endfor %}", list(range(1000))),
        ("{% for x in xs %}{% for y in xs %}{% for z in xs %}.{% endfor %}{% endfor %}{% endfor %}", list(range(50))),
        ("{% for x in xs|list %}{% for y in xs|sort %}{{ y }}{% endfor %}{% endfor %}", list(range(400))),
        ("{% for k in xs %}{% for v in xs.values() %}.{% endfor %}{% endfor %}", {str(i): i for i in range(1000)}),
        ("{% for c in xs %}{% for d in xs %}.{% endfor %}{% endfor %}", "ab" * 500),
    ],
    ids=["two lists", "three lists", "filtered lists", "dict and its values", "strings"],
)
def test_nested_loops_over_the_budget_are_refused(template: str, items: Any) -> None:
    error = _refused_by_a_guard(template, xs=items)
    assert error.reason == "template took more than 100000 loop iterations and calls (render_max_steps)"


@pytest.mark.parametrize(
    "make_items",
    [lambda: itertools.count(), lambda: (i for i in range(200_000)), lambda: iter(list(range(200_000)))],
    ids=["endless generator", "long generator", "iterator"],
)
def test_a_loop_over_an_iterable_without_a_length_pays_an_item_at_a_time(make_items: Any) -> None:
    error = _refused_by_a_guard("{% for x in xs %}{% endfor %}", xs=make_items())
    assert error.reason == "template took more than 100000 loop iterations and calls (render_max_steps)"
    assert _render("{% for x in xs %}{{ x }}{% endfor %}", xs=(i for i in range(5))) == "01234"


@pytest.mark.parametrize("items", [range(10**9), range(10**20)], ids=["long range", "range beyond sys.maxsize"])
def test_a_huge_range_given_by_the_application_is_refused_before_it_starts(items: range) -> None:
    error = _refused_by_a_guard("{% for x in xs %}{% endfor %}", xs=items)
    assert error.reason == "template took more than 100000 loop iterations and calls (render_max_steps)"


def test_a_loop_over_a_container_is_stopped_by_its_output() -> None:
    error = _refused_by_a_guard("{% for x in xs %}{{ big }}{% endfor %}", xs=list(range(100)), big="b" * 100_000)
    assert error.reason == "template produced more than 1000000 characters (render_max_chars)"
    # Under the work limit (8x the cap) but over the cap: refused once rendered.
    error = _refused_by_a_guard("{% for x in xs %}{{ big }}{% endfor %}", xs=list(range(20)), big="b" * 100_000)
    assert error.reason == "rendered output is 2000000 characters, over the limit of 1000000 (render_max_chars)"


STEPS = "template took more than 100000 loop iterations and calls (render_max_steps)"
RECURSION = "recursion too deep (a macro or recursive loop that never ends?)"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (
            "{% macro f(n) %}{% for x in xs %}{% if n %}{{ f(n - 1) }}{% endif %}{% endfor %}{% endmacro %}{{ f(9) }}",
            STEPS,
        ),
        ("{% for n in [9] recursive %}{% if n %}{{ loop([n - 1] * xs|length) }}{% endif %}{% endfor %}", STEPS),
        ("{% for x in xs recursive %}{{ loop(xs) }}{% endfor %}", RECURSION),
        ("{% for x in xs recursive %}{{ loop(xs|list) }}{% endfor %}", RECURSION),
    ],
    ids=["macro looping over a list", "wide recursive loop", "endless recursive loop", "endless, over a filter"],
)
def test_recursion_through_loops_over_containers_is_refused(template: str, reason: str) -> None:
    # Ten items a level: nine levels are a billion iterations, refused by the step budget; a recursion that
    # never ends goes down before it goes wide, and is refused by Python's recursion limit.
    error = _refused_by_a_guard(template, xs=list(range(10)))
    assert error.reason == reason


@pytest.mark.parametrize(
    "template",
    ["{% for x in xs %}{% endfor %}", "{% for x in xs if x < 0 %}{% endfor %}", "{% for x in xs %}{{ x }}{% endfor %}"],
    ids=["empty body", "filter refusing every item", "output"],
)
def test_a_long_loop_over_a_container_still_reads_the_clock(template: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its iterations are paid for at the start, yet the clock is read every CLOCK_EVERY of them (and every
    # CLOCK_EVERY items a loop's filter sees): the first reading, at the start, sets the deadline 0.25 s
    # (16 readings) later, so the 18th reading ends the render, CLOCK_EVERY * 17 iterations in.
    clock = _FakeClock()
    monkeypatch.setattr(_budget, "monotonic", clock)
    error = _refused(template, RenderLimits(max_steps=10**6, timeout=0.25), xs=list(range(10_000)))
    assert error.reason == "template took longer than 0.25s to render (render_timeout)"
    assert clock.readings == 18


def test_an_imported_macro_charges_the_render_that_calls_it() -> None:
    # Jinja2 keeps an imported template's module, macros included, from one render to the next: each call of
    # the macro must charge the budget of the render it runs in. Each render captures 3000 characters, under
    # the 8000 a render may produce in all (8x a cap of 1000); five renders would be over one budget.
    spec = {
        "template": "{% from 'lib' import m %}{% set _ = m() %}{{ n }}",
        "includes": {"lib": {"template": "{% macro m() %}" + "{{ 'z' * 1000 }}" * 3 + "{% endmacro %}"}},
        "variables": {"n": {}},
    }
    compiled = _compile(spec, RenderLimits(max_chars=1000, timeout=600))
    assert [compiled.render({"n": i})[0]["content"] for i in range(5)] == ["0", "1", "2", "3", "4"]
    spec["template"] = "{% from 'lib' import m %}{% for i in range(3) %}{% set _ = m() %}{% endfor %}"
    spec["variables"] = {}
    compiled = _compile(spec, RenderLimits(max_chars=1000, timeout=600))
    for _ in range(2):
        with pytest.raises(TemplateSecurityError, match="template produced more than 1000 characters"):
            compiled.render({})


def test_templates_render_outside_a_render_budget_too() -> None:
    template = SandboxEnvironment().from_string(
        "{% macro m(x) %}<{{ x }}>{% endmacro %}{% for x in xs if x %}{{ m(x) }}{% endfor %}"
    )
    assert template.render(xs=[1, 0, 2]) == "<1><2>"
    assert BUDGET.get() is None
