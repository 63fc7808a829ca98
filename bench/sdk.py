"""SDK hot path: a cached ``get`` + ``render`` against a bare sandboxed Jinja2 render of the same templates.

Prints, from one run on this machine:
- p50 (and p90) of ``Registry.get(name, label=..., targeting_key=...)`` + ``Prompt.render(**vars)``, cache warm;
- p50 of rendering the same message templates with a bare ``ImmutableSandboxedEnvironment`` (the floor);
- their ratio (target <= 1.3);
- the import time of ``promptlane`` in a fresh interpreter (target <= 0.3 s), and whether pydantic_ai,
  sqlalchemy or httpx were imported by it (target: none);
- the time the sandbox takes to refuse templates that double a container in a loop (median of 5 each, with a
  render timeout too long to fire, so the figure is the size guard's own cost; target: milliseconds);
- the cost of checking a render's variables, per schema shape, with the hand-written checker promptlane used
  before (``handwritten_variables.py``) and the compiled jsonschema-rs validator it uses now, side by side
  (median of batches, both run in the same loop; target: the new one no slower).

The two loops are interleaved sample by sample so machine noise hits both alike.

    python bench/sdk.py [--samples 20000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import handwritten_variables
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from promptlane.config import Settings
from promptlane.errors import TemplateSecurityError
from promptlane.registry import Registry
from promptlane.templates import RenderLimits, compile_prompt
from promptlane.variables import compile_variables

MESSAGES = [
    {
        "role": "system",
        "content": (
            "You are the support assistant of Acme. You help {{ customer }} ({{ tier }} plan).\n"
            "{% if tier == 'pro' %}Offer priority handling.{% endif %} Be warm and concise."
        ),
    },
    {"role": "user", "content": "Ticket from {{ customer }}:\n{{ ticket }}"},
]
VARIABLES = {"customer": "Ana", "ticket": "Where is my order 123? It was due last week.", "tier": "pro"}
SCHEMA = {
    "customer": {"type": "string"},
    "ticket": {"type": "string"},
    "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
}


def percentile(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0  # microseconds


def measure_hot_path(samples: int) -> tuple[list[int], list[int]]:
    with tempfile.TemporaryDirectory() as folder:
        # No protected labels: this measures fetching and rendering, not the gate.
        settings = Settings(root=Path(folder), registry=f"sqlite:///{folder}/registry.db", protected_labels=())
        reg = Registry(settings=settings)
        reg.push_spec("support/reply", {"messages": MESSAGES, "variables": SCHEMA, "model": "openai:gpt-4o-mini"})
        reg.set_label("support/reply", "production", 1)
        bare_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        bare = [(m["role"], bare_env.from_string(m["content"])) for m in MESSAGES]

        def ours() -> object:
            return reg.get("support/reply", label="production", targeting_key="user-42").render(**VARIABLES)

        def floor() -> object:
            return [{"role": role, "content": t.render(VARIABLES)} for role, t in bare]

        assert ours().messages == floor(), "the two paths must render the same thing"
        for _ in range(2000):  # warm up both
            ours()
            floor()
        ours_ns: list[int] = []
        floor_ns: list[int] = []
        clock = time.perf_counter_ns
        for _ in range(samples):
            start = clock()
            ours()
            ours_ns.append(clock() - start)
            start = clock()
            floor()
            floor_ns.append(clock() - start)
        reg.close()
    return ours_ns, floor_ns


DOUBLING = {
    "list +": "{% set ns = namespace(s=[1]) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "list *": "{% set ns = namespace(s=[1]) %}{% for i in range(64) %}{% set ns.s = ns.s * 2 %}{% endfor %}",
    "tuple +": "{% set ns = namespace(s=(1,)) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
}


def measure_refusals(runs: int = 5) -> dict[str, float]:
    """Median seconds to refuse each doubling template; raises if one is not refused by the size guard."""
    medians = {}
    for name, template in DOUBLING.items():
        spec = {"template": template, "variables": {}}
        compiled = compile_prompt(
            name=f"bench/{name}", version=1, content_hash=name, spec=spec, limits=RenderLimits(timeout=600)
        )
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            try:
                compiled.render({})
            except TemplateSecurityError as exc:
                assert "would build a value of about" in exc.reason, exc.reason
            else:
                raise AssertionError(f"{name} doubling was not refused")
            times.append(time.perf_counter() - start)
        medians[name] = statistics.median(times)
    return medians


LINE = {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}}
SHAPES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "2 strings": (
        {"customer": {"type": "string"}, "ticket": {"type": "string"}},
        {"customer": "Ana", "ticket": VARIABLES["ticket"]},
    ),
    "enum": (SCHEMA, VARIABLES),
    "array of 20 objects": (
        {"lines": {"type": "array", "items": LINE}},
        {"lines": [{"sku": f"sku-{i}", "qty": i} for i in range(20)]},
    ),
    "nested object": (
        {
            "order": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "customer": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "plan": {"enum": ["free", "pro"]}},
                    },
                    "note": {"type": ["string", "null"]},
                },
            }
        },
        {"order": {"id": 7, "customer": {"name": "Ana", "plan": "pro"}, "note": None}},
    ),
    "full JSON Schema (new only)": (
        {
            "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$", "minLength": 8},
            "email": {"type": "string", "format": "email"},
            "amount": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+$"}]},
        },
        {"code": "ABC-1234", "email": "ana@example.com", "amount": 12},
    ),
}


def measure_validation(batch: int = 2000, repeats: int = 25) -> dict[str, tuple[float | None, float]]:
    """Median nanoseconds per render of checking each shape's variables: (hand-written or None, compiled)."""
    figures = {}
    clock = time.perf_counter_ns
    for shape, (schema, values) in SHAPES.items():
        new = compile_variables(schema, prompt="bench", version=1)
        old = None if "new only" in shape else handwritten_variables.compile_variables(schema, prompt="bench")
        assert old is None or old(values) == new(values), f"{shape}: the two must agree"
        old_ns: list[float] = []
        new_ns: list[float] = []
        for _ in range(repeats):
            if old is not None:
                start = clock()
                for _ in range(batch):
                    old(values)
                old_ns.append((clock() - start) / batch)
            start = clock()
            for _ in range(batch):
                new(values)
            new_ns.append((clock() - start) / batch)
        figures[shape] = (statistics.median(old_ns) if old_ns else None, statistics.median(new_ns))
    return figures


IMPORT_PROBE = """
import sys, time
start = time.perf_counter()
import promptlane
elapsed = time.perf_counter() - start
heavy = [m for m in ("pydantic_ai", "sqlalchemy", "httpx") if m in sys.modules]
print(elapsed, ",".join(heavy))
"""


def measure_import(runs: int = 7) -> tuple[float, list[str]]:
    times, heavy = [], set()
    for _ in range(runs):
        result = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True)
        elapsed, modules = result.stdout.split()[0], result.stdout.split()[1:]
        times.append(float(elapsed))
        heavy.update(m for m in (modules[0].split(",") if modules else []) if m)
    return statistics.median(times), sorted(heavy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20000)
    args = parser.parse_args()

    ours, floor = measure_hot_path(args.samples)
    p50_ours, p50_floor = percentile(ours, 0.5), percentile(floor, 0.5)
    ratio = p50_ours / p50_floor
    import_time, heavy = measure_import()
    refusals = measure_refusals()
    validation = measure_validation()

    print(f"cached get + render      p50 {p50_ours:7.2f} us   p90 {percentile(ours, 0.9):7.2f} us")
    print(f"bare sandboxed render    p50 {p50_floor:7.2f} us   p90 {percentile(floor, 0.9):7.2f} us")
    print(f"ratio (p50)              {ratio:.2f}x   target <= 1.30   {'ok' if ratio <= 1.3 else 'OVER'}")
    print(
        f"import promptlane        {import_time * 1000:.1f} ms (median of 7)   target <= 300 ms   "
        f"{'ok' if import_time <= 0.3 else 'OVER'}"
    )
    print(f"heavy modules imported   {', '.join(heavy) or 'none'}   target: none   {'ok' if not heavy else 'FAIL'}")
    slowest = max(refusals.values())
    print(
        "refuse doubling          "
        + "   ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in refusals.items())
        + f"   (median of 5)   target <= 50 ms   {'ok' if slowest <= 0.05 else 'OVER'}"
    )
    print(f"{'check variables (per render)':<30} {'hand-written':>12} {'compiled':>10}   new/old")
    for shape, (old_ns, new_ns) in validation.items():
        old_text = "-" if old_ns is None else f"{old_ns / 1000:6.2f} us"
        ratio = "" if old_ns is None else f"{new_ns / old_ns:5.2f}x   {'ok' if new_ns <= old_ns else 'SLOWER'}"
        print(f"  {shape:<28} {old_text:>12} {new_ns / 1000:7.2f} us   {ratio}")


if __name__ == "__main__":
    main()
