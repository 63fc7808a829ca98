"""``promptlane token``: create, list and revoke the API tokens a registry server accepts."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated

import typer

from ..registry.tokens import SCOPES
from ._app import AsJson, app, err, out, print_json, registry

if TYPE_CHECKING:
    from ..registry.store import TokenRecord

__all__: list[str] = []

token_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="API tokens for a registry server: create, list, revoke."
)
app.add_typer(token_app, name="token")


def _when(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def _status(token: TokenRecord) -> str:
    if token.revoked_at is None:
        return "active"
    return f"revoked {_when(token.revoked_at)} by {token.revoked_by or '-'}"


@token_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="A unique name: lowercase letters, digits, '_', '.', '-'.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help=f"What it may do: {', '.join(SCOPES)}. Repeat, or separate with commas."),
    ],
) -> None:
    """Create a token and print its secret, once: alone on stdout, so TOKEN=$(promptlane token create ...) works."""
    from ..registry.registry import default_author
    from ..registry.tokens import create_token, format_scopes

    reg = registry(ctx)
    record, secret = create_token(reg.store, name, scope, created_by=reg.settings.author or default_author())
    out.print(secret, markup=False)
    err.print(
        f"token {record.name} ({format_scopes(record.scopes)}) created; it is not shown again: store it now",
        markup=False,
    )


@token_app.command("list")
def list_tokens(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every token, revoked ones too, oldest first (times in UTC). Secrets are never shown."""
    from rich.markup import escape
    from rich.table import Table

    from ..registry.tokens import format_scopes
    from ..registry.wire import token_to_json

    records = registry(ctx).store.list_tokens()
    if as_json:
        print_json([token_to_json(record) for record in records])
        return
    if not records:
        out.print("no tokens yet: promptlane token create --name NAME --scope SCOPE")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("name", "scopes", "created", "by", "status"):
        table.add_column(column)
    for record in records:
        table.add_row(
            escape(record.name),
            format_scopes(record.scopes),
            _when(record.created_at),
            escape(record.created_by or "-"),
            escape(_status(record)),
        )
    out.print(table)


@token_app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name.")],
) -> None:
    """Revoke a token: it stops working at once. Its name stays taken, so logs keep meaning one token."""
    from ..registry.registry import default_author

    reg = registry(ctx)
    record = reg.store.revoke_token(name, revoked_by=reg.settings.author or default_author())
    out.print(f"token {record.name} revoked", markup=False)
