"""``promptlane serve``: the registry server."""

from __future__ import annotations

import click

from ..errors import ConfigError
from ._app import app, err, registry, resume_collection

__all__: list[str] = []


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(min=1, max=65535), default=8750, show_default=True, help="Port to listen on."
)
@click.option("--no-auth", is_flag=True, help="Allow every call without a token (loopback addresses only).")
@click.option(
    "--cache-ttl",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds label resolutions are kept in memory (moves made through other server processes show within "
    "this time).",
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn's log level.")
@click.option("--registry", "registry_url", help="The database to serve (as `promptlane --registry URL`).")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    no_auth: bool,
    cache_ttl: float,
    log_level: str,
    registry_url: str | None,
) -> None:
    """Serve the registry over HTTP: JSON under /api/v1, OpenAPI at /api/v1/openapi.json."""
    from .._extras import require

    require("server", "promptlane serve")
    import signal

    if hasattr(signal, "SIGPIPE"):
        # Ignored, as main() leaves it, whoever calls this (an embedding program may have restored the default): a
        # server must outlive a client that hangs up while an answer is being written (the write fails, the
        # connection closes, the server goes on).
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
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
    err(f"promptlane: serving {mask_credentials(reg.url)} on {where}/api/v1 ({mode}); the web UI at {where}/")
    server = uvicorn.Server(serve_config(web, host=host, port=port, log_level=log_level))
    resume_collection()  # a server runs for as long as it is asked to
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
