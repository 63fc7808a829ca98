"""The sandboxed Jinja2 environment templates render in.

``ImmutableSandboxedEnvironment`` keeps templates away from Python internals. It does nothing about resource
abuse, so on top of it (the checks themselves are in ``_guards``, the budget in ``_budget``):

- every piece of output (literal text and ``{{ expressions }}``, inside macros and includes too) is charged to
  a character budget as it is produced, so a loop cannot build gigabytes before a final check;
- every ``for`` loop is charged its iterations (when it starts, for a container; an item at a time, for a
  generator) and every call a step, and the clock is read at each step and every few loop iterations, so
  nested loops and exponential macro recursion stop;
- operators, filters and ``str`` methods that amplify their input, and list and dict literals and call
  results (which can nest), are measured before or as they are built.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterable, Iterator
from typing import Any, cast

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.loaders import BaseLoader
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from ._budget import BUDGET, RenderBudget, ResourceLimitError, current_limits
from ._guards import (
    GUARDED_FILTERS,
    SEQUENCE_TYPES,
    check_weight,
    combine_sequences,
    guard_binop,
    guard_str_method,
    metered,
    safe_range,
    work_of,
)

__all__ = ["SandboxEnvironment"]


class _Guard(NodeTransformer):
    """Rewrites a template's tree before code generation.

    - every ``for`` iterable, and every recursive ``loop(...)`` argument, goes through the step budget, and
      every iteration counts down to the next reading of the clock (``promptlane_count_iteration``);
    - every list, tuple or dict literal that is not a constant is measured as it is built (a literal can
      nest its own variables: ``[x, x]`` doubled in a loop grows without any operator).
    """

    def __init__(self, environment: Any) -> None:
        self.eval_ctx = nodes.EvalContext(environment)

    @staticmethod
    def _through(method: str, node: nodes.Expr | None) -> nodes.Call:
        call = nodes.Call(nodes.EnvironmentAttribute(method), [] if node is None else [node], [], None, None)
        if node is not None:
            call.set_lineno(node.lineno)
        return call

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._through("promptlane_iter", cast(nodes.Expr, node.iter))  # typed as a Node by Jinja2
        # Jinja2 allows no node types of our own: this call stands for the inline count (see visit_ExprStmt).
        count = nodes.ExprStmt(self._through(_COUNT_ITERATION, None))
        count.set_lineno(node.lineno)
        node.body.insert(0, count)
        if node.test is not None:
            # `for x in xs if test`: the items the test refuses never reach the body, and count here.
            node.test = nodes.And(self._through(_COUNT_ITERATION, None), node.test)
            node.test.set_lineno(node.lineno)
        return node

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        self.generic_visit(node)
        if isinstance(node.node, nodes.Name) and node.node.name == "loop" and node.args:
            node.args[0] = self._through("promptlane_iter", node.args[0])
        return node

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node  # an assignment target: {% for a, b in ... %}
        try:
            node.as_const(self.eval_ctx)
        except nodes.Impossible:
            return self._through("promptlane_measured", node)
        return node

    visit_List = visit_Tuple = visit_Dict = _literal


class _GuardedCodeGenerator(CodeGenerator):
    """Jinja2's code generator with every output, loop, literal and concatenation going through the guards."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        _Guard(self.environment).visit(node)
        super().visit_Template(node, frame)

    def write_commons(self) -> None:
        """Jinja2's preamble of the root and block functions, and the render's budget in a local."""
        super().write_commons()
        self.writeline(f"{_BUDGET} = environment.promptlane_budget()")

    def buffer(self, frame: Frame) -> None:
        """Jinja2's start of a buffer (a macro, a recursive loop, a ``set`` or ``filter`` block), and the render's
        budget in a local: a macro is a function of its own, which may run in a later render than the template
        that defined it (an imported template's module is kept), so it fetches the budget of its own call."""
        super().buffer(frame)
        self.writeline(f"{_BUDGET} = environment.promptlane_budget()")

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        """Jinja2's ``visit_Output``, emitting the whole node as one charged chunk.

        Jinja2 yields each piece of an output node (text, then ``{{ x }}``, then text...) separately; here the
        pieces are joined and charged to the budget once, inline (no call: this runs at every loop iteration),
        which is both the guard and fewer generator steps than Jinja2's own code. Constants are folded exactly
        as Jinja2 does; each runtime piece starts its own line of generated code, so errors keep pointing at the
        right template line.
        """
        if frame.require_output_check:
            if self.has_known_extends:
                return
            self.writeline("if parent_template is None:")
            self.indent()
        finalize = self._make_finalize()
        body: list[list[Any] | nodes.Expr] = []
        for child in node.nodes:
            try:
                if not (finalize.const or isinstance(child, nodes.TemplateData)):
                    raise nodes.Impossible()
                const = self._output_child_to_const(child, frame, finalize)
            except (nodes.Impossible, Exception):
                body.append(child)
                continue
            if body and isinstance(body[-1], list):
                body[-1].append(const)
            else:
                body.append([const])
        joined = len(body) > 1
        self.writeline(f"{_CHUNK} = ''.join((" if joined else f"{_CHUNK} = (", node)
        self.indent()
        for item in body:
            if isinstance(item, list):
                self.writeline(repr("".join(map(str, item))))
            else:
                self.newline(item)
                self._output_child_pre(item, frame, finalize)
                self.visit(item, frame)
                self._output_child_post(item, frame, finalize)
            if joined:
                self.write(",")
        self.outdent()
        self.writeline("))" if joined else ")")
        self.writeline(f"{_BUDGET}.chars -= len({_CHUNK})")
        self.writeline(f"if {_BUDGET}.chars < 0: {_BUDGET}.over_chars()")
        self.writeline(f"yield {_CHUNK}" if frame.buffer is None else f"{frame.buffer}.append({_CHUNK})")
        if frame.require_output_check:
            self.outdent()

    def visit_ExprStmt(self, node: nodes.ExprStmt, frame: Frame) -> None:
        if _calls(node.node, _COUNT_ITERATION):
            # First in every loop body: one iteration less until the clock is read. Loops pay for their
            # iterations when they start, so an iteration takes no step, but one can be slow, and the clock
            # must still be read every few: two lines of generated code, no call, is the cheapest way.
            self.writeline(f"{_BUDGET}.ticks -= 1", node)
            self.writeline(f"if not {_BUDGET}.ticks: {_BUDGET}.tick()")
            return
        super().visit_ExprStmt(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        for method in ("promptlane_iter", _COUNT_ITERATION):
            if _calls(node, method):
                # Straight to the environment's method: the sandbox's `call` would charge a step of its own
                # (and weigh the container promptlane_iter returns) at every loop entry.
                self.write(f"environment.{method}(")
                for arg in node.args:
                    self.visit(arg, frame)
                self.write(")")
                return
        super().visit_Call(node, frame, forward_caller=forward_caller)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.promptlane_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _calls(node: nodes.Node, method: str) -> bool:
    """Whether ``node`` is a call of the environment's ``method`` (built by _Guard only: a template cannot name
    the environment)."""
    return (
        isinstance(node, nodes.Call) and isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name == method
    )


_COUNT_ITERATION = "promptlane_count_iteration"
_BUDGET = "promptlane_budget"
_CHUNK = "promptlane_chunk"
"""Locals of the generated code (Jinja2's own names are ``l_*``, ``t_*`` and a few words, none of these)."""


class _Unbounded:
    """The budget of a template rendered outside a render of promptlane's (there is none to charge)."""

    __slots__ = ("chars", "ticks")

    def __init__(self) -> None:
        # Infinite whatever they are charged: one instance serves every thread.
        self.chars = self.ticks = math.inf

    def over_chars(self) -> None:  # pragma: no cover - infinity never runs out
        raise AssertionError("unreachable")

    def tick(self) -> None:  # pragma: no cover - infinity never runs out
        raise AssertionError("unreachable")


_UNBOUNDED = _Unbounded()


class _KeepIncludeLineBreaks(Extension):
    """``trim_blocks`` drops the line break after a block tag, which is right for ``{% for %}`` or ``{% if %}``
    alone on a line; but an ``{% include %}`` alone on a line stands for the included text, and the line break
    after it belongs to the prompt. Put it back (unless the author wrote ``-%}``)."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        tag: str | None = None
        in_block = False
        for token in stream:
            if token.type == "block_begin":
                in_block, tag = True, None
            elif token.type == "name" and in_block and tag is None:
                tag = token.value
            yield token
            if token.type == "block_end":
                in_block = False
                if tag == "include" and token.value.endswith("\n") and not token.value.startswith("-"):
                    yield Token(token.lineno, "data", "\n")


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    """The environment every prompt template is compiled in.

    Whitespace: a block tag alone on its line (``{% for %}``, ``{% if %}``, ``{% endfor %}``...) leaves no
    blank line and no indentation behind; an ``{% include %}`` keeps the line break after it.
    """

    code_generator_class = _GuardedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, loader: BaseLoader | None = None) -> None:
        super().__init__(
            loader=loader,
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[_KeepIncludeLineBreaks],
            auto_reload=False,
        )
        # lipsum(n) builds text of any size; prompts have no use for it.
        self.globals.pop("lipsum", None)
        self.globals["range"] = safe_range
        self.filters.update(GUARDED_FILTERS)
        self.filters = {name: metered("filter", name, func) for name, func in self.filters.items()}
        self.tests = {name: metered("test", name, func) for name, func in self.tests.items()}

    def make_globals(self, d: Any) -> Any:
        # A plain dict, not Jinja2's ChainMap: every render copies the globals into its context, and copying a
        # ChainMap runs in Python. This environment's globals never change after it is built, which is all the
        # ChainMap was there for.
        return {**self.globals, **(d or {})}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if type(left) in SEQUENCE_TYPES or type(right) in SEQUENCE_TYPES:
            # Lists and tuples are built by the guards, which remember their weight: the next check that meets
            # them does not walk them again.
            built = combine_sequences(operator, left, right)
            if built is not None:
                return built
        guard_binop(operator, left, right)
        return self.binop_table[operator](left, right)  # all that Jinja2's call_binop does

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = BUDGET.get()
        if budget is not None:
            budget.step()
        target = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        if isinstance(target, types.BuiltinMethodType):
            owner = getattr(target, "__self__", None)
            if budget is not None and isinstance(owner, (list, tuple, dict)):
                budget.step(work_of(owner))  # `items()`, `index()`, `count()`... go through the container
            args = guard_str_method(target, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if type(result) in (list, tuple, dict):
            check_weight("a call", result)
        return result

    def promptlane_budget(self) -> RenderBudget | _Unbounded:
        """The budget generated code charges its output to (in a local, fetched once per function call)."""
        budget = BUDGET.get()
        return _UNBOUNDED if budget is None else budget

    def promptlane_iter(self, iterable: Iterable[Any]) -> Iterable[Any]:
        """What a ``for`` loop (or a recursive ``loop(...)``) iterates over, charged to the step budget.

        A container whose length is exact pays for all its iterations when the loop starts: a loop longer
        than what is left of the budget is refused before its first iteration, and any other runs over the
        container itself, at Jinja2's own speed (its iterations only count down to the next reading of the clock).
        Anything else (a generator, a filter's lazy result, an object of the application's) is charged an item
        at a time.
        """
        budget = BUDGET.get()
        if budget is None:
            return iterable
        if type(iterable) not in _SIZED:
            return _stepped(budget, iterable)
        try:
            count = len(iterable)  # type: ignore[arg-type]  # every type in _SIZED has one
        except OverflowError:  # a range longer than sys.maxsize, given by the application
            count = budget.steps + 1
        budget.step(count)
        return iterable

    def promptlane_count_iteration(self) -> bool:
        """Count an item a loop's filter saw as an iteration (see :meth:`RenderBudget.count_iteration`)."""
        budget = BUDGET.get()
        return True if budget is None else budget.count_iteration()

    def promptlane_measured(self, value: Any) -> Any:
        return value  # measured by `call`, which every call from a template goes through

    def promptlane_concat(self, parts: tuple[Any, ...]) -> str:
        texts = [str(part) for part in parts]
        total = sum(len(text) for text in texts)
        limit = current_limits().max_chars
        if total > limit:
            raise ResourceLimitError(f"concatenation (~) would produce {total} characters, over the limit of {limit}")
        return "".join(texts)


_SIZED = frozenset(
    {list, tuple, dict, str, range, set, frozenset, type({}.keys()), type({}.values()), type({}.items())}
)
"""Exactly these types (not subclasses, whose ``len`` could be anything): their length is the number of
iterations, and taking it costs nothing."""


def _stepped(budget: RenderBudget, iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        budget.step()
        yield item
