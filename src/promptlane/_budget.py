"""The limits of one render and the budget that enforces them.

The budget lives in a ContextVar for the duration of one render, so one sandbox environment serves every
thread and task. Guards that run outside a render (Jinja2 folds constant expressions at compile time) use
the default limits.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from time import monotonic
from typing import Any

__all__ = [
    "BUDGET",
    "CLOCK_EVERY",
    "RenderBudget",
    "RenderLimits",
    "ResourceLimitError",
    "current_limits",
    "take_steps",
]


class ResourceLimitError(Exception):
    """A render went over one of its limits (mapped to TemplateSecurityError by the caller)."""


@dataclass(frozen=True)
class RenderLimits:
    """The limits of one render."""

    max_chars: int = 1_000_000
    """Largest rendered output, in characters."""
    max_steps: int = 100_000
    """Loop iterations, calls and items processed by filters."""
    timeout: float = 2.0
    """Seconds."""
    max_prompt_bytes: int = 262_144
    """Largest version content (templates, messages, schemas, included prompts), in bytes of its JSON: what a
    push compiles and every reader of the version loads."""

    @cached_property  # read at every render: computed once
    def max_work_chars(self) -> int:
        """Characters a render may produce in all, counting text captured by macros, set-blocks and includes
        before it is re-emitted; also the largest printed size of any list or dict a template builds.
        Generous so legitimate nesting never trips it, bounded so nothing explodes."""
        return self.max_chars * 8


CLOCK_EVERY = 8
"""Loop iterations between two readings of the clock. Loops pay for their iterations when they start, and
an iteration takes no step of its own, so without this a loop of slow iterations would never look at it."""


class RenderBudget:
    """What is left of a render's limits; one per render."""

    __slots__ = ("chars", "deadline", "limits", "steps", "ticks", "weights")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.chars = limits.max_work_chars
        self.steps = limits.max_steps
        # The clock starts at the first step: every costly operation (a loop iteration, a call, a filter over
        # many items) takes one, and renders that take none, most of them, skip reading the clock.
        self.deadline = 0.0
        self.ticks = CLOCK_EVERY  # loop iterations until the clock is read (counted down by generated code)
        # id -> (container, its length, weight, depth) of the last containers the render built (see
        # _guards.remember_weight), made at the first: what spares the size checks walking them again.
        self.weights: dict[int, tuple[Any, int, int, int]] | None = None

    def step(self, count: int = 1) -> None:
        """Charge ``count`` steps (loop iterations, calls, items a filter processes) and check the clock."""
        self.steps -= count
        if self.steps < 0:
            raise ResourceLimitError(
                f"template took more than {self.limits.max_steps} loop iterations and calls (render_max_steps)"
            )
        self.check_clock()

    def tick(self) -> None:
        """Read the clock, and count CLOCK_EVERY loop iterations down to the next reading."""
        self.ticks = CLOCK_EVERY
        self.check_clock()

    def count_iteration(self) -> bool:
        """Count one loop iteration (a loop's filter saw an item); True, so it can stand in an ``and``."""
        self.ticks -= 1
        if not self.ticks:
            self.tick()
        return True

    def check_clock(self) -> None:
        """Raise if the render is past its deadline (the first reading of the clock sets it)."""
        now = monotonic()  # a module global: tests stand a fake clock in for it
        if not self.deadline:
            self.deadline = now + self.limits.timeout
        elif now > self.deadline:
            raise ResourceLimitError(f"template took longer than {self.limits.timeout:g}s to render (render_timeout)")

    def over_chars(self) -> None:
        """Raise: the output budget is spent (``chars`` went negative)."""
        raise ResourceLimitError(f"template produced more than {self.limits.max_chars} characters (render_max_chars)")


BUDGET: ContextVar[RenderBudget | None] = ContextVar("promptlane_render_budget", default=None)
_DEFAULT_LIMITS = RenderLimits()


def current_limits() -> RenderLimits:
    """The limits of the render in progress (the defaults outside one)."""
    budget = BUDGET.get()
    return budget.limits if budget is not None else _DEFAULT_LIMITS


def take_steps(count: int) -> None:
    """Charge ``count`` steps to the render in progress.

    Outside a render (Jinja2 evaluates constant expressions while compiling) there is no budget to charge,
    so a single piece of work over the whole default budget is refused; the expression is then left for
    render time, where the real budget applies.
    """
    budget = BUDGET.get()
    if budget is not None:
        budget.step(count)
    elif count > _DEFAULT_LIMITS.max_steps:
        raise ResourceLimitError(f"{count} steps in one expression, over the limit of {_DEFAULT_LIMITS.max_steps}")
