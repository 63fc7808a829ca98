"""Commands about prompts and versions: push, list, show, history, diff, render."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import AsJson, app, out, print_json, registry

if TYPE_CHECKING:
    from ..registry import LabelEvent, PromptVersion

__all__: list[str] = []


def _when(version: PromptVersion) -> str:
    return version.created_at.strftime("%Y-%m-%d %H:%M") if version.created_at else "-"


@app.command()
def push(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Prompt files or folders (default: the prompts folder).")
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Why: recorded on each new version.")] = None,
) -> None:
    """Push prompt files; each changed prompt becomes a new immutable version."""
    from rich.markup import escape

    for result in registry(ctx).push(paths or None, message=message):
        if result.created:
            state = "[green](new)[/green]"
        elif result.latest == result.version.number:
            state = "[dim](unchanged)[/dim]"
        else:
            # Content-addressed: going back to old content finds the old version; releasing it is a label move.
            state = f"[yellow](unchanged: same as v{result.version.number}; the newest is v{result.latest})[/yellow]"
        out.print(f"{escape(result.name)}: v{result.version.number} {state}")


@app.command("list")
def list_prompts(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List prompts with their newest version and labels."""
    from rich.markup import escape
    from rich.table import Table

    from ..registry import format_target
    from ..registry.wire import summary_to_json

    prompts = registry(ctx).list_prompts()
    if as_json:
        print_json([summary_to_json(prompt) for prompt in prompts])
        return
    if not prompts:
        out.print("no prompts yet: write prompts/*.yaml and run `promptlane push`")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("prompt", "latest", "labels", "updated", "description"):
        table.add_column(column)
    for prompt in prompts:
        labels = ", ".join(f"{label}={format_target(target)}" for label, target in prompt.labels.items())
        table.add_row(
            prompt.name,
            f"v{prompt.latest}",
            labels or "-",
            prompt.updated_at.strftime("%Y-%m-%d %H:%M"),
            escape(prompt.description or ""),
        )
    out.print(table)


@app.command()
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME (latest), NAME@VERSION or NAME:LABEL.")],
    as_json: AsJson = False,
) -> None:
    """Show a version: who pushed it, which labels point at it, and its whole frozen spec."""
    from rich.markup import escape

    from ..registry.wire import version_to_json
    from ..spec_diff import spec_yaml

    reg = registry(ctx)
    version = reg.resolve(ref)
    labels = [state.label for state in reg.labels(version.name) if version.number in state.target]
    if as_json:
        print_json({**version_to_json(version), "labels": labels})
        return
    out.print(f"[bold]{escape(version.name)}[/bold] v{version.number}  [dim]{version.content_hash[:12]}[/dim]")
    who = escape(version.author or "-")
    out.print(f"pushed {_when(version)} by {who}: {escape(version.message or '(no message)')}")
    out.print(f"labels: {', '.join(labels) or '-'}")
    out.print()
    out.print(escape(spec_yaml(version.spec)), end="")


@app.command()
def history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt.")],
    label: Annotated[str | None, typer.Option("--label", "-l", help="Only this label's moves.")] = None,
    as_json: AsJson = False,
) -> None:
    """Show a prompt's versions and every label move (the audit log)."""
    from rich.markup import escape
    from rich.table import Table

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
    table = Table(title="versions", title_justify="left", box=None, pad_edge=False)
    for column in ("version", "hash", "pushed", "author", "labels", "message"):
        table.add_column(column)
    for version in reversed(versions):
        pointing = ", ".join(s.label for s in states if version.number in s.target)
        table.add_row(
            f"v{version.number}",
            version.content_hash[:12],
            _when(version),
            escape(version.author or "-"),
            pointing or "-",
            escape(version.message or ""),
        )
    out.print(table)
    events = reg.history(name, label)
    out.print()
    if not events:
        out.print("no label moves yet")
        return
    moves = Table(title="label moves", title_justify="left", box=None, pad_edge=False)
    for column in ("when", "label", "kind", "from", "to", "by", "gate", "reason"):
        moves.add_column(column)
    for event in reversed(events):
        moves.add_row(
            event.at.strftime("%Y-%m-%d %H:%M:%S"),
            event.label,
            event.kind,
            format_target(event.from_target),
            format_target(event.to_target),
            escape(_by(event)),
            f"{event.gate} {event.evidence[:12]}" if event.evidence else event.gate or "-",
            escape(event.reason or ""),
        )
    out.print(moves)


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
def diff(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt.")],
    a: Annotated[str, typer.Argument(help="A version number or a label.")],
    b: Annotated[str, typer.Argument(help="Another version number or label.")],
    as_json: AsJson = False,
) -> None:
    """Compare two versions: template or messages, and every config field."""
    from rich.markup import escape

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
        out.print(f"v{old.number} and v{new.number} are identical")
        return
    for change in changes:
        out.print(f"[bold]{escape(change.field)}[/bold]")
        for line in change.unified(f"v{old.number}", f"v{new.number}"):
            style = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1])
            out.print(f"[{style}]{escape(line)}[/{style}]" if style else escape(line))
        out.print()


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
def render(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME (latest), NAME@VERSION or NAME:LABEL.")],
    var: Annotated[list[str] | None, typer.Option("--var", help="NAME=VALUE (repeatable).")] = None,
    vars_file: Annotated[Path | None, typer.Option("--vars-file", help="YAML or JSON file of variables.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the messages as JSON.")] = False,
    targeting_key: Annotated[str | None, typer.Option("--targeting-key", help="Key for a label's rollout.")] = None,
) -> None:
    """Render a version with variables, exactly as an application would."""
    from rich.markup import escape

    from ..registry import parse_ref

    reg = registry(ctx)
    name, number, label = parse_ref(ref)
    prompt = (
        reg.get(name, version=number, targeting_key=targeting_key)
        if number
        else reg.get(name, label=label or "latest", targeting_key=targeting_key)
    )
    values = _vars_file(vars_file) if vars_file else {}
    values.update(_parse_var(item, prompt.variables) for item in var or ())
    rendered = prompt.render(values)
    if as_json:
        print_json(
            {"name": prompt.name, "version": prompt.version, "label": prompt.label, "messages": rendered.messages}
        )
        return
    if prompt.spec.get("template") is not None:
        out.print(escape(rendered.text))
        return
    for index, message in enumerate(rendered.messages):
        if index:
            out.print()
        out.print(f"[bold]\\[{message['role']}][/bold]")
        out.print(escape(message["content"]))
