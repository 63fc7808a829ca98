"""``promptlane serve``: the registry server."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from ..errors import ConfigError
from ._app import app, err, registry

__all__: list[str] = []


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)] = 8750,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Allow every call without a token (loopback addresses only).")
    ] = False,
    cache_ttl: Annotated[
        float,
        typer.Option(
            "--cache-ttl",
            help="Seconds label resolutions are kept in memory (moves made through other "
            "server processes show within this time).",
            min=0,
        ),
    ] = 1.0,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
    registry_url: Annotated[
        str | None, typer.Option("--registry", help="The database to serve (as `promptlane --registry URL`).")
    ] = None,
) -> None:
    """Serve the registry over HTTP: JSON under /api/v1, OpenAPI at /api/v1/openapi.json."""
    if no_auth and not _loopback(host):
        raise ConfigError(f"--no-auth serves anyone who can reach {host}: only on a loopback address (127.0.0.1)")
    if registry_url is not None:
        ctx.find_root().obj["registry"] = registry_url
    reg = registry(ctx)
    if reg.remote is not None:
        raise ConfigError(f"serve a database (sqlite:///... or postgresql://...), not a server: {reg.url}")
    if not no_auth and not any(token.active for token in reg.store.list_tokens()):
        raise ConfigError(
            "no API tokens yet, so nobody could call this server: create one against the same registry first "
            "(promptlane token create --name admin --scope admin), or use --no-auth on 127.0.0.1"
        )
    import uvicorn

    from .._redact import mask_credentials
    from ..server import create_app
    from ..server.limits import serve_config

    web = create_app(reg, auth=not no_auth, cache_ttl=cache_ttl)
    mode = "no auth" if no_auth else "tokens"
    where = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    err.print(f"promptlane: serving {mask_credentials(reg.url)} on {where}/api/v1 ({mode}); the web UI at {where}/")
    server = uvicorn.Server(serve_config(web, host=host, port=port, log_level=log_level))
    try:
        server.run()
    except SystemExit as exc:
        if exc.code != 3:
            raise
        server.started = False
    if not server.started:
        # uvicorn could not start (the address in use, or not this machine's): a configuration error here, not
        # an unreachable registry; its own log line above says why.
        raise ConfigError(f"could not listen on {where} (see the line above)")
