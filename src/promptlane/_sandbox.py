"""The sandboxed Jinja2 environment templates render in.

``ImmutableSandboxedEnvironment`` keeps templates away from Python internals. It does nothing about resource
abuse, so on top of it (the checks themselves are in ``_guards``, the budget in ``_budget``):

- every piece of output (literal text and ``{{ expressions }}``, inside macros and includes too) is charged to
  a character budget as it is produced, so a loop cannot build gigabytes before a final check;
- every ``for`` iteration and every call is charged to a step budget, and the clock is checked at each step,
  so nested loops and exponential macro recursion stop;
- operators, filters and ``str`` methods that amplify their input, and list and dict literals and call
  results (which can nest), are measured before or as they are built.
"""

from __future__ import annotations

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

    - every ``for`` iterable, and every recursive ``loop(...)`` argument, goes through the step budget;
    - every list, tuple or dict literal that is not a constant is measured as it is built (a literal can
      nest its own variables: ``[x, x]`` doubled in a loop grows without any operator).
    """

    def __init__(self, environment: Any) -> None:
        self.eval_ctx = nodes.EvalContext(environment)

    @staticmethod
    def _through(method: str, node: nodes.Expr) -> nodes.Expr:
        call = nodes.Call(nodes.EnvironmentAttribute(method), [node], [], None, None)
        call.set_lineno(node.lineno)
        return call

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._through("promptlane_iter", cast(nodes.Expr, node.iter))  # typed as a Node by Jinja2
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

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        """Jinja2's ``visit_Output``, emitting the whole node as one charged chunk.

        Jinja2 yields each piece of an output node (text, then ``{{ x }}``, then text...) separately; here the
        pieces are joined and charged to the budget once, which is both the guard and fewer generator steps
        than Jinja2's own code. Constants are folded exactly as Jinja2 does; each runtime piece starts its own
        line of generated code, so errors keep pointing at the right template line.
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
        sink = "yield " if frame.buffer is None else f"{frame.buffer}.append("
        self.writeline(f"{sink}environment.promptlane_emit(''.join((", node)
        self.indent()
        for item in body:
            if isinstance(item, list):
                self.writeline(f"{''.join(map(str, item))!r},")
            else:
                self.newline(item)
                self._output_child_pre(item, frame, finalize)
                self.visit(item, frame)
                self._output_child_post(item, frame, finalize)
                self.write(",")
        self.outdent()
        self.writeline(")))" if frame.buffer is None else "))))")
        if frame.require_output_check:
            self.outdent()

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.promptlane_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _emit(value: str) -> str:
    """Charge a chunk of output to the render's budget (the render hot path: keep it tiny)."""
    budget = BUDGET.get()
    if budget is not None:
        budget.chars -= len(value)
        if budget.chars < 0:
            budget.over_chars()
    return value


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
        # A plain function in the instance dict: compiled templates call it for every chunk of output, and
        # this spares them building a bound method each time.
        self.promptlane_emit = _emit

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

    def promptlane_iter(self, iterable: Iterable[Any]) -> Iterable[Any]:
        budget = BUDGET.get()
        return iterable if budget is None else _stepped(budget, iterable)

    def promptlane_measured(self, value: Any) -> Any:
        return value  # measured by `call`, which every call from a template goes through

    def promptlane_concat(self, parts: tuple[Any, ...]) -> str:
        texts = [str(part) for part in parts]
        total = sum(len(text) for text in texts)
        limit = current_limits().max_chars
        if total > limit:
            raise ResourceLimitError(f"concatenation (~) would produce {total} characters, over the limit of {limit}")
        return "".join(texts)


def _stepped(budget: RenderBudget, iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        budget.step()
        yield item
