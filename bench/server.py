"""Registry server throughput: resolve through the promptlane app beside a bare Starlette app serving the same
bytes, on the same uvicorn, under the same load, in one run.

Prints requests/s for ``GET /api/v1/prompts/{name}/-/resolve?label=production`` on the 200 path (the body) and
on the 304 path (If-None-Match with the current ETag), for
- the promptlane app (``create_app``: token check, answer cache, ETag), and
- a bare Starlette app with one route answering the same JSON bytes and ETag, with the same If-None-Match
  check and no token check: the floor any app on this stack pays;
and their ratio (target >= 0.6x on both paths). Then the latency of one client: the median of ``--fetches``
requests sent one after another on one kept-alive connection (stdlib http.client, as the SDK), per path and
app, with the same target on the ratio (bare's time over ours). An answer held back in the server's socket
(Nagle's algorithm waiting for the client's delayed ACK of the head) shows there as ~40 ms on the 200 path
against well under a millisecond on the 304 path.

Each server is its own process (uvicorn, h11, one worker, no access log). The load comes from this process:
keep-alive connections with one request in flight each, from a minimal HTTP/1.1 client on asyncio protocols,
much cheaper per request than the servers, so the servers set the pace (its CPU use is printed to check).
The two apps take turns, a few rounds of a few seconds each, and the medians of the rounds are compared, so
the noise of a shared machine hits both alike. Exits 1 when a ratio is under its target or a request failed.

    python bench/server.py [--connections 64] [--seconds 2] [--rounds 5] [--fetches 200]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

PROMPT = "support/reply"
RESOLVE = f"/api/v1/prompts/{PROMPT}/-/resolve?label=production"
SPEC = {
    "description": "Reply to a customer ticket",
    "model": "openai:gpt-4o-mini",
    "model_settings": {"temperature": 0.2, "max_tokens": 400},
    "variables": {
        "customer": {"type": "string"},
        "ticket": {"type": "string"},
        "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
    },
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
}
TARGET = 0.6


# --- the servers (each in its own process) ------------------------------------------------------------------


def _bare_app(body: bytes, etag: str) -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}

    async def resolve(request: Request) -> Response:
        given = request.headers.get("if-none-match")
        if given and (given.strip() == "*" or etag in {tag.strip().removeprefix("W/") for tag in given.split(",")}):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    return Starlette(routes=[Route("/api/v1/prompts/{name:path}/-/resolve", resolve, methods=["GET"])])


def _promptlane_app(folder: Path) -> object:
    from promptlane.config import Settings
    from promptlane.registry import Registry
    from promptlane.server import create_app

    settings = Settings(root=folder, registry=f"sqlite:///{folder / 'registry.db'}")
    return create_app(Registry(settings=settings))


def serve(kind: str, folder: Path, port: int) -> None:
    import uvicorn

    if kind == "bare":
        app = _bare_app((folder / "body.json").read_bytes(), (folder / "etag.txt").read_text())
    else:
        app = _promptlane_app(folder)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, server_header=False)


# --- the load -----------------------------------------------------------------------------------------------


class _Client(asyncio.Protocol):
    """One keep-alive connection sending ``request`` again as soon as each answer is complete."""

    def __init__(self, request: bytes, deadline: float, statuses: Counter[int], done: asyncio.Future[None]) -> None:
        self.request = request
        self.deadline = deadline
        self.statuses = statuses
        self.done = done
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length, at = 0, head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(self.buffer) < end + 4 + length:
                return
            self.statuses[int(head[9:12])] += 1
            self.buffer = self.buffer[end + 4 + length :]
            if time.monotonic() >= self.deadline:
                self.transport.close()
                return
            self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None or time.monotonic() < self.deadline:
            self.statuses[0] += 1  # an error: the connection dropped before the end
        if not self.done.done():
            self.done.set_result(None)


async def _load(port: int, request: bytes, connections: int, seconds: float) -> Counter[int]:
    loop = asyncio.get_running_loop()
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    finished: list[asyncio.Future[None]] = []
    for _ in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(lambda done=done: _Client(request, deadline, statuses, done), "127.0.0.1", port)
        finished.append(done)
    await asyncio.wait_for(asyncio.gather(*finished), seconds + 30)
    return statuses


def measure(port: int, request: bytes, connections: int, seconds: float) -> tuple[float, Counter[int]]:
    """Requests/s answered on ``port`` and the statuses seen."""
    start = time.monotonic()
    statuses = asyncio.run(_load(port, request, connections, seconds))
    return sum(n for status, n in statuses.items() if status) / (time.monotonic() - start), statuses


def latency(port: int, headers: dict[str, str], fetches: int) -> float:
    """Median seconds of ``fetches`` GETs of the resolve path one after another on one kept-alive connection
    (after one unmeasured request that opens it)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    try:
        for _ in range(fetches + 1):
            start = time.perf_counter()
            connection.request("GET", RESOLVE, headers=headers)
            answer = connection.getresponse()
            answer.read()
            times.append(time.perf_counter() - start)
            if answer.status not in (200, 304):
                raise SystemExit(f"latency: {answer.status} from port {port}")
    finally:
        connection.close()
    return statistics.median(times[1:])


# --- the run ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[bytes, str]:
    """The body and ETag of a 200 answer to GET ``url`` (urllib.error.URLError for anything else)."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as answer:
        return answer.read(), answer.headers.get("ETag", "")


def _start(kind: str, folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--folder", str(folder), "--port", str(port)]
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return process, port
        except urllib.error.HTTPError:  # it answers (the bare app has no page at /)
            return process, port
        except OSError:  # not listening yet (URLError is an OSError)
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {kind} server did not start") from None
            time.sleep(0.1)


def _prepare(folder: Path) -> str:
    """A registry with PROMPT at production and a read token; the token's secret."""
    from promptlane.config import Settings
    from promptlane.registry import Registry
    from promptlane.registry.tokens import create_token

    registry = Registry(settings=Settings(root=folder, registry=f"sqlite:///{folder / 'registry.db'}"))
    registry.push_spec(PROMPT, SPEC, author="bench")
    registry.set_label(PROMPT, "production", 1, force=True, reason="bench", actor="bench")
    _, secret = create_token(registry.store, "bench", ["read"], created_by="bench")
    registry.close()
    return secret


def _request(headers: dict[str, str]) -> bytes:
    lines = [f"GET {RESOLVE} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fetches", type=int, default=200, help="one after another, for the latency")
    parser.add_argument("--serve", choices=["promptlane", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.folder, args.port)
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        secret = _prepare(folder)
        auth = {"Authorization": f"Bearer {secret}"}
        servers = {"promptlane": _start("promptlane", folder)}
        body, etag = _get(f"http://127.0.0.1:{servers['promptlane'][1]}{RESOLVE}", auth)
        (folder / "body.json").write_bytes(body)
        (folder / "etag.txt").write_text(etag)
        servers["bare"] = _start("bare", folder)
        try:
            assert _get(f"http://127.0.0.1:{servers['bare'][1]}{RESOLVE}") == (body, etag), "same bytes"

            paths = {
                200: _request(auth),
                304: _request({**auth, "If-None-Match": etag}),
            }
            rates: dict[tuple[int, str], list[float]] = {(path, app): [] for path in paths for app in servers}
            errors: Counter[str] = Counter()
            cpu_start, wall_start = time.process_time(), time.monotonic()
            for round_ in range(-1, args.rounds):  # round -1 warms both up and is not counted
                apps = list(servers) if round_ % 2 == 0 else list(reversed(servers))
                for path, request in paths.items():
                    for app in apps:
                        seconds = 0.5 if round_ < 0 else args.seconds
                        rate, statuses = measure(servers[app][1], request, args.connections, seconds)
                        errors.update({f"{app} {path}: {s or 'dropped'}": n for s, n in statuses.items() if s != path})
                        if round_ >= 0:
                            rates[(path, app)].append(rate)
            cpu = (time.process_time() - cpu_start) / (time.monotonic() - wall_start)
            headers = {200: auth, 304: {**auth, "If-None-Match": etag}}
            latencies = {
                (path, app): latency(servers[app][1], headers[path], args.fetches) for path in paths for app in servers
            }
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=10)

    print(
        f"resolve, {args.connections} connections, {args.rounds} rounds x {args.seconds:g} s per app and path, "
        f"apps alternating (medians of the rounds)"
    )
    ok = not errors
    for path in paths:
        ours, floor = statistics.median(rates[(path, "promptlane")]), statistics.median(rates[(path, "bare")])
        ratio = ours / floor
        ok &= ratio >= TARGET
        rounds = " ".join(
            f"{a / b:.2f}" for a, b in zip(rates[(path, "promptlane")], rates[(path, "bare")], strict=True)
        )
        print(
            f"  {path} path   promptlane {ours:7.0f} req/s   bare starlette {floor:7.0f} req/s   "
            f"ratio {ratio:.2f}x   target >= {TARGET:.2f}x   {'ok' if ratio >= TARGET else 'UNDER'}   "
            f"(rounds: {rounds})"
        )
    print(f"  load generator  {cpu:.0%} of one core (well under 100%: the servers, not the client, set the pace)")
    print(f"  errors          {', '.join(f'{k} x{n}' for k, n in errors.items()) or 'none'}")
    print(f"latency of one client: median of {args.fetches} requests one after another on one connection")
    for path in paths:
        ours, floor = latencies[(path, "promptlane")], latencies[(path, "bare")]
        ratio = floor / ours
        ok &= ratio >= TARGET
        print(
            f"  {path} path   promptlane {ours * 1000:7.3f} ms      bare starlette {floor * 1000:7.3f} ms      "
            f"ratio {ratio:.2f}x   target >= {TARGET:.2f}x   {'ok' if ratio >= TARGET else 'UNDER'}"
        )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
