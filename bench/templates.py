"""The SDK's cached ``get`` + ``render`` against a bare sandboxed Jinja2 render, per template shape.

For each shape (plain text, a chat prompt with an ``if``, a RAG loop over 3 and over 20 documents, an array
variable of 20 items, an include) it prints, from one run on this machine:

- the median time of a bare ``jinja2.sandbox.ImmutableSandboxedEnvironment`` render of the same sources
  (compiled once, same whitespace options; the floor);
- the median time of ``registry.get(name, label="production")`` + ``.render(**variables)`` on a warm cache;
- their ratio (target <= 1.2);
- how much of promptlane's time is checking the variables against the schema (the validator alone, same loop).

Each figure is the median of ``--repeats`` batches of ``--batch`` renders; the batches of every path and shape
are interleaved, so a burst of load elsewhere hits them alike.

    python bench/templates.py [--repeats 15] [--batch 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import DictLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from promptlane.config import Settings
from promptlane.registry import Registry

TARGET = 1.2

TICKET = "Where is my order 123? It was due last week and the tracking page has not changed since Monday."
DOCUMENT_TEXT = (
    "Orders ship within two business days. Tracking updates once the carrier scans the parcel; a label created "
    "but not scanned means the parcel is still at our warehouse. Late parcels can be refunded after ten days."
)


def _documents(count: int) -> list[dict[str, str]]:
    return [{"title": f"Shipping FAQ, part {i + 1}", "text": DOCUMENT_TEXT} for i in range(count)]


RAG = (
    "Answer the question using only the documents below, and cite them by title.\n"
    "\n"
    "{% for doc in documents %}\n"
    "## {{ doc.title }}\n"
    "{{ doc.text }}\n"
    "\n"
    "{% endfor %}\n"
    "Question: {{ question }}"
)
RAG_VARIABLES = {
    "documents": {
        "type": "array",
        "items": {"type": "object", "properties": {"title": {"type": "string"}, "text": {"type": "string"}}},
    },
    "question": {"type": "string"},
}


@dataclass(frozen=True)
class Shape:
    """One template shape: the spec pushed, the variables rendered, and the prompts it includes."""

    spec: dict[str, Any]
    variables: dict[str, Any]
    includes: dict[str, dict[str, Any]]


SHAPES: dict[str, Shape] = {
    "plain text": Shape(
        spec={
            "template": "Summarize the ticket from {{ customer }} in one sentence.\n\nTicket:\n{{ ticket }}",
            "variables": {"customer": {"type": "string"}, "ticket": {"type": "string"}},
        },
        variables={"customer": "Ana", "ticket": TICKET},
        includes={},
    ),
    "chat with an if": Shape(
        spec={
            "messages": [
                {
                    "role": "system",
                    "content": (
                        "You are the support assistant of Acme. You help {{ customer }} ({{ tier }} plan).\n"
                        "{% if tier == 'pro' %}Offer priority handling.{% endif %} Be warm and concise."
                    ),
                },
                {"role": "user", "content": "Ticket from {{ customer }}:\n{{ ticket }}"},
            ],
            "variables": {
                "customer": {"type": "string"},
                "ticket": {"type": "string"},
                "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
            },
        },
        variables={"customer": "Ana", "ticket": TICKET, "tier": "pro"},
        includes={},
    ),
    "loop over 3 documents": Shape(
        spec={"template": RAG, "variables": RAG_VARIABLES},
        variables={"documents": _documents(3), "question": "Where is my parcel?"},
        includes={},
    ),
    "loop over 20 documents": Shape(
        spec={"template": RAG, "variables": RAG_VARIABLES},
        variables={"documents": _documents(20), "question": "Where is my parcel?"},
        includes={},
    ),
    "array variable of 20 items": Shape(
        spec={
            "template": "Tag the ticket with one of: {{ tags|join(', ') }}.\n\nTicket:\n{{ ticket }}",
            "variables": {"tags": {"type": "array", "items": {"type": "string"}}, "ticket": {"type": "string"}},
        },
        variables={"tags": [f"tag-{i}" for i in range(20)], "ticket": TICKET},
        includes={},
    ),
    "include": Shape(
        spec={
            "template": "Ticket from {{ customer }}:\n{{ ticket }}\n\n{% include 'shared/tone' %}",
            "variables": {"customer": {"type": "string"}, "ticket": {"type": "string"}},
        },
        variables={"customer": "Ana", "ticket": TICKET},
        includes={
            "shared/tone": {
                "template": "Be warm and concise with {{ customer }}; never promise a date.",
                "variables": {"customer": {"type": "string"}},
            }
        },
    ),
}


def _bare(shape: Shape) -> Callable[[], list[dict[str, str]]]:
    """A render of the shape's sources by a bare sandboxed environment, compiled once."""
    sources = {name: spec["template"] for name, spec in shape.includes.items()}
    spec = shape.spec
    parts = (
        [("user", spec["template"])] if "template" in spec else [(m["role"], m["content"]) for m in spec["messages"]]
    )
    for index, (_, source) in enumerate(parts):
        sources[f"part {index}"] = source
    env = ImmutableSandboxedEnvironment(
        loader=DictLoader(sources), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    templates = [(role, env.get_template(f"part {index}")) for index, (role, _) in enumerate(parts)]
    variables = shape.variables

    def render() -> list[dict[str, str]]:
        return [{"role": role, "content": template.render(variables)} for role, template in templates]

    return render


def _time(func: Callable[[], object], batch: int) -> float:
    """CPU nanoseconds per call of ``func``, over one batch (CPU time, not wall time: on a busy machine the
    wall clock also counts the time other processes had the core)."""
    clock = time.thread_time_ns
    start = clock()
    for _ in range(batch):
        func()
    return (clock() - start) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        # No protected labels: this measures fetching and rendering, not the gate.
        settings = Settings(root=Path(folder), registry=f"sqlite:///{folder}/registry.db", protected_labels=())
        registry = Registry(settings=settings)
        paths: dict[str, tuple[Callable[[], object], Callable[[], object], Callable[[], object]]] = {}
        for index, (title, shape) in enumerate(SHAPES.items()):
            for included, spec in shape.includes.items():
                registry.push_spec(included, spec)
            name = f"bench/shape-{index}"
            registry.push_spec(name, shape.spec)
            registry.set_label(name, "production", 1)
            prompt = registry.get(name, label="production")
            variables = shape.variables
            bare = _bare(shape)

            def ours(name: str = name, variables: dict[str, Any] = variables) -> object:
                return registry.get(name, label="production").render(**variables)

            def check(prompt: Any = prompt, variables: dict[str, Any] = variables) -> object:
                return prompt._compiled._validate(variables)

            assert registry.get(name, label="production").render(**variables).messages == bare(), title
            paths[title] = (bare, ours, check)

        samples: dict[str, tuple[list[float], list[float], list[float]]] = {t: ([], [], []) for t in paths}
        for funcs in paths.values():  # warm up
            for func in funcs:
                _time(func, args.batch // 4)
        for _ in range(args.repeats):
            for title, funcs in paths.items():
                for func, figures in zip(funcs, samples[title], strict=True):
                    figures.append(_time(func, args.batch))
        registry.close()

    print(f"{'shape':<28} {'bare jinja2':>12} {'get + render':>13} {'ratio':>7}   {'of which variables':>18}")
    for title, (bare_ns, ours_ns, check_ns) in samples.items():
        bare_us, ours_us, check_us = (statistics.median(s) / 1000 for s in (bare_ns, ours_ns, check_ns))
        ratio = ours_us / bare_us
        verdict = "ok" if ratio <= TARGET else "OVER"
        print(
            f"{title:<28} {bare_us:9.2f} us {ours_us:10.2f} us {ratio:6.2f}x   {check_us:15.2f} us   "
            f"target <= {TARGET}  {verdict}"
        )
    print(f"(median of {args.repeats} interleaved batches of {args.batch})")


if __name__ == "__main__":
    main()
