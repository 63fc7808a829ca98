"""Size checks for everything a template can use to amplify its input, made before the work is done.

Two measures keep a render bounded:

- a *string* a template builds may not exceed ``max_chars`` (it could never be output anyway);
- a *container* (list, tuple, dict, namespace) may not *weigh* more than ``max_work_chars``, its weight being
  roughly its printed size. Structure sharing makes huge printed sizes cheap to build (``[[x] * 1000] * 1000``
  holds a thousand references), and ``str()`` of such a value is where the process would stall, so containers
  are weighed when they are built: by ``*`` and ``+``, by list and dict literals, and by calls that return them.

Weighing walks a value, so a render remembers the weight of the last containers ``+``, ``*`` and the ``sum`` filter
built (see :func:`remember_weight`), and a walk that meets one of them takes its weight instead of walking it
again. Without that, doubling a list in a loop walks the whole list at every step (a million items, a second of
CPU) before the size check refuses it; with it, every step costs about the same, and the refusal milliseconds.
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from typing import Any, cast

from jinja2 import filters as jinja_filters
from jinja2 import pass_environment, pass_eval_context
from jinja2.utils import Namespace

from ._budget import BUDGET, ResourceLimitError, current_limits, take_steps

__all__ = [
    "GUARDED_FILTERS",
    "REMEMBERED_WEIGHTS",
    "SEQUENCE_TYPES",
    "check_brace_format",
    "check_percent_format",
    "check_weight",
    "combine_sequences",
    "guard_binop",
    "guard_str_method",
    "measure",
    "metered",
    "remember_weight",
    "safe_range",
    "weigh",
]

# Python refuses to print ints of more than 4300 digits anyway; refuse to compute much beyond that.
MAX_INT_BITS = 100_000
MAX_RANGE = 100_000
MAX_DEPTH = 100


def refuse_size(what: str, size: float) -> None:
    """Refuse a string result of ``size`` characters over the output limit."""
    limit = current_limits().max_chars
    if size > limit:
        raise ResourceLimitError(f"{what} would produce {int(size)} characters, over the limit of {limit}")


REMEMBERED_WEIGHTS = 8
"""How many of the containers it built last a render remembers the weight of: the operands of the next
operation are almost always among them (``ns.s + ns.s``), and each one remembered is kept alive until the end
of the render or until it is pushed out."""


def remember_weight(built: list[Any] | tuple[Any, ...], weight: int, depth: int) -> None:
    """Remember the (weight, depth) of a container just built, for the rest of the render (outside a render,
    while Jinja2 folds constants, there is nothing to remember it in).

    The entry holds the container itself, so its id cannot be reused while the entry exists; and its length,
    so a list that Python code given to the template changed (a template cannot) is walked again.
    """
    budget = BUDGET.get()
    if budget is None:
        return
    weights = budget.weights
    if weights is None:
        weights = budget.weights = {}
    weights[id(built)] = (built, len(built), weight, depth)
    if len(weights) > REMEMBERED_WEIGHTS:
        del weights[next(iter(weights))]


def measure(value: Any, limit: float) -> tuple[int, int]:
    """(weight, depth) of ``value``: roughly its printed size, and how deeply it nests.

    Shared references are weighed once (memo by id), so measuring ``[x] * 1000`` costs a thousand lookups, not
    a thousand walks, and containers the render built are not walked at all (:func:`remember_weight`). A shared
    reference still counts wherever it appears, as it prints, so the weight of ``a + b`` follows from those of
    ``a`` and ``b``. Stops early once the weight is over ``limit``: a weight not over ``limit`` is exact.
    """
    memo: dict[int, tuple[int, int]] = {}
    budget = BUDGET.get()
    remembered = budget.weights if budget is not None else None

    def walk(item: Any, level: int) -> tuple[int, int]:
        if isinstance(item, str):
            return len(item) + 2, 0
        if isinstance(item, (bytes, bytearray)):
            return len(item) + 3, 0
        if item is None or isinstance(item, (bool, float)):
            return 8, 0
        if isinstance(item, int):
            return item.bit_length() // 3 + 2, 0
        known = memo.get(id(item))
        if known is not None:
            return known
        if remembered:
            entry = remembered.get(id(item))
            if entry is not None and entry[0] is item and entry[1] == len(item):
                _, _, weight, depth = entry
                # Its deepest non-empty container is depth - 1 levels below it.
                if level + depth - 1 > MAX_DEPTH:
                    raise ResourceLimitError(f"a value nested more than {MAX_DEPTH} levels deep")
                return weight, depth
        if level > MAX_DEPTH:
            raise ResourceLimitError(f"a value nested more than {MAX_DEPTH} levels deep")
        total, depth = 2, 0
        if isinstance(item, Namespace):
            total, depth = walk(item._Namespace__attrs, level + 1)  # type: ignore[attr-defined]
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                key_weight, _ = walk(key, level + 1)
                sub_weight, sub_depth = walk(sub, level + 1)
                total, depth = total + key_weight + sub_weight + 4, max(depth, sub_depth + 1)
                if total > limit:
                    break
        elif isinstance(item, (list, tuple, set, frozenset)):
            for sub in item:
                sub_weight, sub_depth = walk(sub, level + 1)
                total, depth = total + sub_weight + 2, max(depth, sub_depth + 1)
                if total > limit:
                    break
        else:
            total = 32  # an object: its str() is its own business
        memo[id(item)] = (total, depth)
        return total, depth

    return walk(value, 0)


def weigh(value: Any, limit: float | None = None) -> int:
    """The weight (about the printed size) of ``value``; see :func:`measure`."""
    return measure(value, current_limits().max_work_chars if limit is None else limit)[0]


def check_weight(what: str, value: Any, times: int = 1) -> tuple[int, int]:
    """Refuse a container whose weight (times ``times``) is over the limit for containers.

    Returns:
        The (weight, depth) of ``value`` (once, not ``times`` times), exact since it is not over the limit.
    """
    limit = current_limits().max_work_chars
    times = max(times, 1)
    weight, depth = measure(value, limit / times + 1)
    if weight * times > limit:
        raise ResourceLimitError(
            f"{what} would build a value of about {weight * times} characters, over the limit of {limit}"
        )
    return weight, depth


TEXT_TYPES = (str, bytes, bytearray)
"""Values whose size is their length: bytes and bytearray are weighed and limited like strings."""

SEQUENCE_TYPES = (list, tuple)
"""Operands :func:`combine_sequences` builds from (exactly these types: subclasses keep their own operators)."""


def combine_sequences(operator: str, left: Any, right: Any) -> Any:
    """``left + right`` or ``left * right`` on lists or tuples, refused if too big, else built and its weight
    remembered; None for any other operands (and for a repetition less than twice, which cannot grow anything).

    The weights are the ones the size check computes anyway: ``[a, b]`` weighs ``a + b`` plus 6 characters (its
    brackets and two separators), so ``a + b`` weighs 8 less; ``[x] * n`` weighs 2 (its brackets) plus n times
    what ``x`` weighs without its own.
    """
    if operator == "+":
        if type(left) not in SEQUENCE_TYPES or type(right) is not type(left):
            return None
        weight, depth = check_weight("concatenation", (left, right))
        built = left + right
        remember_weight(built, weight - 8, depth - 1)
        return built
    if operator == "*":
        seq, times = (left, right) if type(right) is int else (right, left)
        if type(seq) not in SEQUENCE_TYPES or type(times) is not int or times < 2:
            return None
        weight, depth = check_weight("repetition", seq, times)
        built = seq * times
        remember_weight(built, 2 + times * (weight - 2), depth)
        return built
    return None


def _check_int_bits(what: str, bits: float) -> None:
    if bits > MAX_INT_BITS:
        raise ResourceLimitError(f"{what} would produce an integer of about {int(bits)} bits, over {MAX_INT_BITS}")


def _big_number(value: Any, limit: int) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) > limit
    return isinstance(value, str) and value.strip().isdigit() and int(value) > limit


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def check_percent_format(fmt: str, args: Any) -> None:
    """``fmt % args``: its result estimated from the widths and the arguments' weights, before it is built."""
    limit = current_limits().max_chars
    values = list(args.values()) if isinstance(args, Mapping) else list(args) if isinstance(args, tuple) else [args]
    conversions = widths = 0
    for match in _PERCENT_SPEC.finditer(fmt):
        width, precision, kind = match.groups()
        if kind == "%":
            continue
        conversions += 1
        for number in (width, precision):
            if number == "*" and any(_big_number(v, limit) for v in values):
                raise ResourceLimitError("a '*' width in a format string is over the output limit")
            if number and number != "*":
                widths += int(number)
    widest = max((weigh(v, limit) for v in values), default=0)
    refuse_size("string formatting", len(fmt) + conversions * widest + widths)


_NESTED_FIELD = re.compile(r"\{([^{}]*)\}")


def _nested_spec(spec: str, args: Iterable[Any], kwargs: Mapping[str, Any]) -> str:
    """A format spec with its nested fields (``{0:{1}}``) replaced by the arguments they name, so that its
    widths are the real ones: ``{1}00000`` with 9999 is a width of 999,900,000."""
    values = list(args)

    def value(match: re.Match[str]) -> str:
        field = match.group(1)
        if field.isdigit() and int(field) < len(values):
            found = values[int(field)]
        elif field in kwargs:
            found = kwargs[field]
        else:
            raise ResourceLimitError("a width or precision taken from an argument must name it: {0:{1}} or {0:{width}}")
        return str(found) if isinstance(found, (int, str)) and not isinstance(found, bool) else "0"

    return _NESTED_FIELD.sub(value, spec)


def check_brace_format(fmt: str, args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    """``fmt.format(*args, **kwargs)``: a field may repeat an argument (``{0}{0}``) and a width may come from
    an argument (``{0:{1}}``), so both widths and weights count."""
    limit = current_limits().max_chars
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error, with a better message
    values = [*args, *kwargs.values()]
    fields = sum(1 for _, name, _, _ in parsed if name is not None)
    widths = 0
    for _, _, spec, _ in parsed:
        if not spec:
            continue
        if "{" in spec:
            spec = _nested_spec(spec, args, kwargs)
        widths += sum(int(number) for number in re.findall(r"\d+", spec))
    widest = max((weigh(v, limit) for v in values), default=0)
    refuse_size("string formatting", len(fmt) + fields * widest + widths)


def guard_binop(operator: str, left: Any, right: Any) -> None:
    """Check ``left <operator> right`` (``*``, ``**``, ``+``, ``%``) before it runs."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(times, int) and not isinstance(times, bool) and times > 1:
                if isinstance(seq, TEXT_TYPES):
                    refuse_size("repetition", len(seq) * times)
                elif isinstance(seq, (list, tuple)):
                    check_weight("repetition", seq, times)
        if isinstance(left, int) and isinstance(right, int):
            _check_int_bits("multiplication", left.bit_length() + right.bit_length())
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _check_int_bits("power", right * math.log2(abs(left)))
    elif operator == "+":
        if isinstance(left, TEXT_TYPES) and isinstance(right, TEXT_TYPES):
            refuse_size("concatenation", len(left) + len(right))
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            check_weight("concatenation", [left, right])
    elif operator == "%" and isinstance(left, TEXT_TYPES):
        check_percent_format(left if isinstance(left, str) else left.decode("latin-1"), right)


def _replaced_size(text: Any, old: Any, new: Any, count: Any) -> int:
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


_STR = {str}


def _all_str(items: list[Any]) -> bool:
    """Whether every item is a plain ``str`` (one pass in C: a join of 20 such items is the common case, and
    measuring them one by one cost more than the join)."""
    return {*map(type, items)} <= _STR


def _joined_size(items: list[Any], separator: Any, all_str: bool = False) -> int:
    """The length of ``items`` joined by ``separator``; ``all_str`` says they are all plain strings."""
    separators = len(str(separator)) * max(len(items) - 1, 0)
    if all_str:
        return sum(map(len, items)) + separators
    return sum(len(item) if isinstance(item, str) else weigh(item) for item in items) + separators


def guard_str_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Check a call of a ``str`` method before it runs; returns the arguments to call it with (an iterable
    given to ``join`` is materialized once, to be measured and then joined)."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, TEXT_TYPES):
        return args
    name = method.__name__
    take_steps(1 + len(owner) // 1024)  # str methods run in C, a character at a time
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        refuse_size(f"str.{name}", args[0])
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tab, int):
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            refuse_size("str.expandtabs", len(owner) + tabs * tab)
    elif name == "join" and args:
        items = list(args[0])
        refuse_size("str.join", _joined_size(items, owner, _all_str(items)))
        take_steps(len(items))
        return (items, *args[1:])
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], TEXT_TYPES) and isinstance(args[1], TEXT_TYPES):
        refuse_size("str.replace", _replaced_size(owner, args[0], args[1], args[2] if len(args) > 2 else -1))
    elif name == "format" and isinstance(owner, str):
        check_brace_format(owner, args, kwargs)
    elif name == "format_map" and isinstance(owner, str) and args and isinstance(args[0], Mapping):
        check_brace_format(owner, (), args[0])
    elif name in ("translate", "maketrans", "encode", "decode"):
        raise ResourceLimitError(f"{type(owner).__name__}.{name} is not available in templates")
    return args


def safe_range(*args: int) -> range:
    """``range`` for templates: at most 100,000 items."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise ResourceLimitError(f"range() of {len(numbers)} items is over the limit of {MAX_RANGE}")
    return numbers


# --- filters that can amplify their input, with their checks ---------------------------------------------


def _center(value: Any, width: int = 80) -> str:
    refuse_size("center", width)
    return jinja_filters.do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    pad = width if isinstance(width, int) else len(str(width))
    refuse_size("indent", len(str(s)) + (str(s).count("\n") + 1) * pad)
    return jinja_filters.do_indent(s, width, first, blank)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    check_percent_format(str(value), kwargs or args)
    return jinja_filters.do_format(value, *args, **kwargs)


@pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    items = list(value)
    if attribute is not None:
        getter = jinja_filters.make_attrgetter(eval_ctx.environment, attribute)
        items = [getter(item) for item in items]
    plain = type(d) is str and not eval_ctx.autoescape and _all_str(items)
    refuse_size("join", _joined_size(items, d, plain))
    take_steps(len(items))
    # Plain strings joined as they are: what Jinja2's join gives them after mapping each through str().
    return d.join(items) if plain else jinja_filters.sync_do_join(eval_ctx, items, d)


@pass_eval_context
def _replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    refuse_size("replace", _replaced_size(str(s), str(old), str(new), count))
    return jinja_filters.do_replace(eval_ctx, s, old, new, count)


@pass_environment
def _wordwrap(
    environment: Any,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    separator = wrapstring if wrapstring is not None else environment.newline_sequence
    width = max(int(width), 1)
    refuse_size("wordwrap", len(s) + (len(s) // width + 1) * len(str(separator)))
    # textwrap breaks a word longer than the width by slicing off one line at a time: its length squared over
    # the width, in characters copied (a kilobyte of them a step).
    copied = sum(len(word) ** 2 // width for word in str(s).split() if len(word) > width)
    take_steps(copied >> 10)
    return jinja_filters.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Any:
    items = list(value)
    refuse_size("batch", linecount)
    if fill_with is not None:
        check_weight("batch fill", fill_with, linecount)
    take_steps(len(items) + 1)
    return jinja_filters.do_batch(items, linecount, fill_with)


def _slice(value: Iterable[Any], slices: int, fill_with: Any = None) -> Any:
    items = list(value)
    refuse_size("slice", slices)
    if fill_with is not None:
        check_weight("slice fill", fill_with, slices)
    take_steps(len(items) + max(int(slices), 0))
    return jinja_filters.sync_do_slice(items, slices, fill_with)


@pass_environment
def _sum(environment: Any, iterable: Iterable[Any], attribute: str | int | None = None, start: Any = 0) -> Any:
    values = list(iterable)
    take_steps(len(values))
    if attribute is not None:
        getter = jinja_filters.make_attrgetter(environment, attribute)
        values = [getter(value) for value in values]
    # Sequences are concatenated in linear time (the builtin sum is quadratic on lists) after a size check.
    for kind in (list, tuple):
        if isinstance(start, kind) and all(isinstance(value, kind) for value in values):
            parts = [start, *values]
            weight, depth = check_weight("sum", parts)
            total = kind(chain(*parts))
            # Each part loses its brackets, and its separator in ``parts``.
            remember_weight(total, weight - 4 * len(parts), depth - 1)
            return total
    if isinstance(start, str):
        raise TypeError("sum() can't sum strings [use |join instead]")
    return sum(values, start)


@pass_eval_context
def _tojson(eval_ctx: Any, value: Any, indent: int | str | None = None) -> Any:
    width = len(indent) if isinstance(indent, str) else max(int(indent or 0), 0)
    limit = current_limits().max_chars
    weight, depth = measure(value, limit + 1)
    # Every value may sit on its own line, indented once per level.
    refuse_size("tojson", weight * (1 + width * depth) if width else weight)
    # Jinja2 types the indent as an int, but passes it on to json.dumps, which takes a string too.
    return jinja_filters.do_tojson(eval_ctx, value, cast(Any, indent))


GUARDED_FILTERS: dict[str, Callable[..., Any]] = {
    "batch": _batch,
    "center": _center,
    "format": _format,
    "indent": _indent,
    "join": _join,
    "replace": _replace,
    "slice": _slice,
    "sum": _sum,
    "tojson": _tojson,
    "wordwrap": _wordwrap,
}


# --- every filter and test, metered ------------------------------------------------------------------------

_CONTAINERS = (list, tuple, dict, set, frozenset, Namespace)

_KEEP_CONTAINERS = frozenset(
    {
        "attr", "batch", "count", "d", "default", "dictsort", "first", "groupby", "items", "join", "last", "length",
        "list", "map", "max", "min", "random", "reject", "rejectattr", "reverse", "select", "selectattr", "slice",
        "sort", "sum", "tojson", "unique",
    }
)  # fmt: skip
"""Filters that look into a container or pass its items on; every other filter turns its value into text, and a
container given to one is weighed first: that text is its printed size."""


_AT_ONCE = frozenset(
    {"abs", "attr", "bool", "count", "d", "default", "first", "float", "int", "last", "length", "random"}
)
"""Filters that take a container's length or one of its items, whatever its size: one step each."""


def work_of(value: Any) -> int:
    """The steps a filter, test or method working through ``value`` costs: an item of a container each, a
    kilobyte of text each (C code goes through text about a thousand times faster than a template loop)."""
    if isinstance(value, TEXT_TYPES):
        return 1 + len(value) // 1024
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return 1 + len(value)
    return 1


_SHORT = 1024
"""Text a filter or test goes through for free (see :func:`metered`)."""


def _stepped(items: Iterator[Any]) -> Iterator[Any]:
    for item in items:
        take_steps(1)
        yield item


def metered(kind: str, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (a filter or a test) running under the render's budget.

    Jinja2 calls filters and tests directly, not through the sandbox's ``call``, so without this a filter is
    free: twenty ``|sort`` of a long list run for minutes under a two-second timeout. Here each call takes
    steps for the items it goes through (and so checks the clock), a container turned into text is weighed
    first, a list or dict returned by a filter that builds one (not one that only reorders or picks among the
    items it was given) is weighed, and a lazy result (``map``, ``select``...) takes a step per item it yields.
    """
    # The value comes after the context, eval context or environment Jinja2 passes first.
    position = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    what = f"the {name} {kind}"
    passes_items_on = kind == "test" or name in _KEEP_CONTAINERS
    if kind == "test":
        # A test looks at its value at once, except `in`, which goes through its argument.
        position, at_once = (position + 1, False) if name == "in" else (position, True)
    else:
        at_once = name in _AT_ONCE

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        value = args[position] if len(args) > position else None
        if type(value) is str and len(value) <= _SHORT:
            # The common case, free: C code through a short text (the filters that can amplify it check their
            # arguments themselves). A template has only so many filters, and loops pay for their iterations.
            return func(*args, **kwargs)
        budget = BUDGET.get()
        if budget is None:
            # Jinja2 folding a constant while compiling, where no budget or clock applies: it gives up folding
            # on any error and leaves the work to render time, under the render's budget.
            raise ResourceLimitError(f"{what}: not folded while compiling")
        if at_once:
            budget.step()
        elif type(value) is str:  # a kilobyte of text is a step
            budget.step(len(value) >> 10)
        else:
            budget.step(work_of(value))
            if not passes_items_on and isinstance(value, _CONTAINERS):
                refuse_size(what, weigh(value))
        result = func(*args, **kwargs)
        kind_of = type(result)
        if kind_of is str or kind_of is bool:
            return result
        if kind_of in (list, tuple, dict):
            if not passes_items_on:
                check_weight(what, result)
        elif isinstance(result, Iterator) and not isinstance(result, TEXT_TYPES):
            return _stepped(result)
        return result

    return run
