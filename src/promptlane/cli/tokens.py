"""``promptlane token``: create, list and revoke the API tokens a registry server accepts."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import click

from ..registry.tokens import SCOPES
from ._app import app, argument, as_json, err, out, print_json, registry
from ._table import format_table

if TYPE_CHECKING:
    from ..registry.store import TokenRecord

__all__: list[str] = []


@app.group("token", no_args_is_help=True)
def token_group() -> None:
    """API tokens for a registry server: create, list, revoke."""


def _when(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def _status(token: TokenRecord) -> str:
    if token.revoked_at is None:
        return "active"
    return f"revoked {_when(token.revoked_at)} by {token.revoked_by or '-'}"


@token_group.command("create")
@click.option("--name", required=True, help="A unique name: lowercase letters, digits, '_', '.', '-'.")
@click.option(
    "--scope",
    multiple=True,
    required=True,
    help=f"What it may do: {', '.join(SCOPES)}. Repeat, or separate with commas.",
)
@click.pass_context
def create(ctx: click.Context, name: str, scope: tuple[str, ...]) -> None:
    """Create a token and print its secret, once: alone on stdout, so TOKEN=$(promptlane token create ...) works."""
    from ..registry.registry import default_author
    from ..registry.tokens import create_token, format_scopes

    reg = registry(ctx)
    record, secret = create_token(reg.store, name, list(scope), created_by=reg.settings.author or default_author())
    out(secret)
    err(f"token {record.name} ({format_scopes(record.scopes)}) created; it is not shown again: store it now")


@token_group.command("list")
@as_json
@click.pass_context
def list_tokens(ctx: click.Context, as_json: bool) -> None:
    """Every token, revoked ones too, oldest first (times in UTC). Secrets are never shown."""
    from ..registry.tokens import format_scopes
    from ..registry.wire import token_to_json

    records = registry(ctx).store.list_tokens()
    if as_json:
        print_json([token_to_json(record) for record in records])
        return
    if not records:
        out("no tokens yet: promptlane token create --name NAME --scope SCOPE")
        return
    rows = [
        (record.name, format_scopes(record.scopes), _when(record.created_at), record.created_by or "-", _status(record))
        for record in records
    ]
    out(format_table(("name", "scopes", "created", "by", "status"), rows), end="")


@token_group.command("revoke")
@argument("name", help="The token's name.")
@click.pass_context
def revoke(ctx: click.Context, name: str) -> None:
    """Revoke a token: it stops working at once. Its name stays taken, so logs keep meaning one token."""
    from ..registry.registry import default_author

    reg = registry(ctx)
    record = reg.store.revoke_token(name, revoked_by=reg.settings.author or default_author())
    out(f"token {record.name} revoked")
