"""Commands about prompts and versions: push, list, show, history, diff, render."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._app import app, argument, as_json, literal, out, print_json, registry
from ._table import format_table, printable

if TYPE_CHECKING:
    from ..registry import LabelEvent, PromptVersion

__all__: list[str] = []


def _when(version: PromptVersion) -> str:
    return version.created_at.strftime("%Y-%m-%d %H:%M") if version.created_at else "-"


@app.command()
@argument(
    "paths", nargs=-1, type=click.Path(path_type=Path), help="Prompt files or folders (default: the prompts folder)."
)
@click.option("--message", "-m", help="Why: recorded on each new version.")
@click.pass_context
def push(ctx: click.Context, paths: tuple[Path, ...], message: str | None) -> None:
    """Push prompt files; each changed prompt becomes a new immutable version."""
    for result in registry(ctx).push(list(paths) or None, message=message):
        if result.created:
            state = "(new)"
        elif result.latest == result.version.number:
            state = "(unchanged)"
        else:
            # Content-addressed: going back to old content finds the old version; releasing it is a label move.
            state = f"(unchanged: same as v{result.version.number}; the newest is v{result.latest})"
        out(f"{printable(result.name)}: v{result.version.number} {state}")


@app.command("list")
@as_json
@click.pass_context
def list_prompts(ctx: click.Context, as_json: bool) -> None:
    """List prompts with their newest version and labels."""
    from ..registry import format_target
    from ..registry.wire import summary_to_json

    prompts = registry(ctx).list_prompts()
    if as_json:
        print_json([summary_to_json(prompt) for prompt in prompts])
        return
    if not prompts:
        out("no prompts yet: write prompts/*.yaml and run `promptlane push`")
        return
    rows = [
        (
            prompt.name,
            f"v{prompt.latest}",
            ", ".join(f"{label}={format_target(target)}" for label, target in prompt.labels.items()) or "-",
            prompt.updated_at.strftime("%Y-%m-%d %H:%M"),
            prompt.description or "",
        )
        for prompt in prompts
    ]
    out(format_table(("prompt", "latest", "labels", "updated", "description"), rows), end="")


@app.command()
@argument("ref", help="NAME (latest), NAME@VERSION or NAME:LABEL.")
@as_json
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show a version: who pushed it, which labels point at it, and its whole frozen spec."""
    from ..registry.wire import version_to_json
    from ..spec_diff import spec_yaml

    reg = registry(ctx)
    version = reg.resolve(ref)
    labels = [state.label for state in reg.labels(version.name) if version.number in state.target]
    if as_json:
        print_json({**version_to_json(version), "labels": labels})
        return
    out(f"{printable(version.name)} v{version.number}  {version.content_hash[:12]}")
    out(printable(f"pushed {_when(version)} by {version.author or '-'}: {version.message or '(no message)'}"))
    out(printable(f"labels: {', '.join(labels) or '-'}"))
    out()
    out(spec_yaml(version.spec), end="")  # escapes what is not printable, bidi controls included


@app.command()
@argument("name", help="The prompt.")
@click.option("--label", "-l", help="Only this label's moves.")
@as_json
@click.pass_context
def history(ctx: click.Context, name: str, label: str | None, as_json: bool) -> None:
    """Show a prompt's versions and every label move (the audit log)."""
    from ..registry import format_target
    from ..registry.wire import event_to_json, label_to_json, version_to_json

    reg = registry(ctx)
    versions = reg.versions(name)
    states = reg.labels(name)
    if as_json:
        print_json(
            {
                "name": name,
                "versions": [version_to_json(version) for version in versions],
                "labels": [label_to_json(state) for state in states],
                "moves": [event_to_json(event) for event in reg.history(name, label)],
            }
        )
        return
    rows = [
        (
            f"v{version.number}",
            version.content_hash[:12],
            _when(version),
            version.author or "-",
            ", ".join(s.label for s in states if version.number in s.target) or "-",
            version.message or "",
        )
        for version in reversed(versions)
    ]
    header = ("version", "hash", "pushed", "author", "labels", "message")
    out(format_table(header, rows, title="versions"))
    events = reg.history(name, label)
    if not events:
        out("no label moves yet")
        return
    moves = [
        (
            event.at.strftime("%Y-%m-%d %H:%M:%S"),
            event.label,
            event.kind,
            format_target(event.from_target),
            format_target(event.to_target),
            _by(event),
            f"{event.gate} {event.evidence[:12]}" if event.evidence else event.gate or "-",
            event.reason or "",
        )
        for event in reversed(events)
    ]
    header = ("when", "label", "kind", "from", "to", "by", "gate", "reason")
    out(format_table(header, moves, title="label moves"), end="")


def _by(event: LabelEvent) -> str:
    """Who moved it; for an approved move, who asked and when, then who approved."""
    if event.requested_by is None:
        return event.actor or "-"
    asked = event.requested_at.strftime("%Y-%m-%d %H:%M:%S") if event.requested_at else "?"
    return f"{event.requested_by} (asked {asked}), approved by {event.actor or '-'}"


def _ref_for(name: str, text: str) -> str:
    """``3``/``v3``/``@3`` -> ``name@3``; anything else is a label."""
    bare = text.lstrip("@v")
    return f"{name}@{bare}" if bare.isdigit() else f"{name}:{text}"


@app.command()
@argument("name", help="The prompt.")
@argument("a", help="A version number or a label.")
@argument("b", help="Another version number or label.")
@as_json
@click.pass_context
def diff(ctx: click.Context, name: str, a: str, b: str, as_json: bool) -> None:
    """Compare two versions: template or messages, and every config field."""
    from ..spec_diff import diff_specs

    reg = registry(ctx)
    old, new = reg.resolve(_ref_for(name, a)), reg.resolve(_ref_for(name, b))
    changes = diff_specs(old.spec, new.spec)
    if as_json:
        print_json(
            {
                "name": name,
                "from": old.number,
                "to": new.number,
                "identical": old.content_hash == new.content_hash,
                "changes": [
                    {
                        "field": change.field,
                        "before": change.before,
                        "after": change.after,
                        "diff": change.unified(f"v{old.number}", f"v{new.number}"),
                    }
                    for change in changes
                ],
            }
        )
        return
    if old.content_hash == new.content_hash:
        out(f"v{old.number} and v{new.number} are identical")
        return
    for change in changes:
        out(printable(change.field))
        for line in change.unified(f"v{old.number}", f"v{new.number}"):
            out(printable(line))
        out()


def _parse_var(item: str, schema: dict[str, Any]) -> tuple[str, Any]:
    from ..errors import RegistryError
    from ..variables import parse_typed

    name, sep, raw = item.partition("=")
    if not sep or not name:
        raise RegistryError(f"invalid --var {item!r}: write NAME=VALUE")
    return name, parse_typed(raw, schema.get(name, {}).get("type"))


def _vars_file(path: Path) -> dict[str, Any]:
    from .._yaml import load_data
    from ..errors import SpecError

    try:
        data = load_data(path.read_text(encoding="utf-8"), path)  # YAML, or JSON (which is YAML)
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", path=path) from None
    except UnicodeDecodeError:
        raise SpecError("not UTF-8 text", path=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError("a variables file must be a mapping of NAME: VALUE", path=path)
    return data


@app.command()
@argument("ref", help="NAME (latest), NAME@VERSION or NAME:LABEL.")
@click.option("--var", multiple=True, help="NAME=VALUE (repeatable).")
@click.option("--vars-file", type=click.Path(path_type=Path), help="YAML or JSON file of variables.")
@click.option("--json", "as_json", is_flag=True, help="Print the messages as JSON.")
@click.option("--targeting-key", help="Key for a label's rollout.")
@click.pass_context
def render(
    ctx: click.Context,
    ref: str,
    var: tuple[str, ...],
    vars_file: Path | None,
    as_json: bool,
    targeting_key: str | None,
) -> None:
    """Render a version with variables, exactly as an application would."""
    from ..registry import parse_ref

    reg = registry(ctx)
    name, number, label = parse_ref(ref)
    prompt = (
        reg.get(name, version=number, targeting_key=targeting_key)
        if number
        else reg.get(name, label=label or "latest", targeting_key=targeting_key)
    )
    values = _vars_file(vars_file) if vars_file else {}
    values.update(_parse_var(item, prompt.variables) for item in var)
    rendered = prompt.render(values)
    if as_json:
        print_json(
            {"name": prompt.name, "version": prompt.version, "label": prompt.label, "messages": rendered.messages}
        )
        return
    # The text as the application gets it, to read or to pipe into a model.
    if prompt.spec.get("template") is not None:
        out(literal(rendered.text))
        return
    for index, message in enumerate(rendered.messages):
        if index:
            out()
        out(f"[{message['role']}]")
        out(literal(message["content"]))
