"""The remote client's HTTP on the standard library (registry/_transport.py under registry/http.py), against real
loopback servers that answer badly on purpose: a drip, an endless or cut-off body, garbage, redirects, dropped
kept-alive connections, proxies, TLS. Nothing here measures time: a drip that would take a minute must end
within a guard of half that, and "the client gave up" is what the server saw.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from _live import (
    PATIENCE,
    LiveServer,
    SilentServer,
    finishes,
    in_forked_child,
    listening_socket,
    served_registry,
    wait_for,
)
from promptlane import ConfigError, RegistryUnavailableError
from promptlane.registry.http import HttpStore

NAME = "support/reply"
TOKEN = "s3cret-token"
DRIP = 0.2
"""Seconds between two bytes of a dripping answer."""
T = TypeVar("T")


# --- a scripted loopback server ----------------------------------------------------------------------------


class Peer:
    """One connection to a :class:`RawServer`, from the server's side."""

    def __init__(self, server: RawServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self._buffer = b""

    def request(self) -> str | None:
        """The next request's head (its body read and dropped); None when the client closed the connection."""
        while b"\r\n\r\n" not in self._buffer:
            data = self.sock.recv(65536)
            if not data:
                self.server.closed_by_client += 1
                return None
            self._buffer += data
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        text = head.decode("latin-1")
        length = next(
            (int(line.split(":")[1]) for line in text.split("\r\n") if line.lower().startswith("content-length:")), 0
        )
        while len(self._buffer) < length:
            self._buffer += self.sock.recv(65536)
        self._buffer = self._buffer[length:]
        with self.server.lock:
            self.server.requests.append(text)
        return text

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.server.hung_up.set()
            raise
        self.server.sent += len(data)


Handler = Callable[[Peer], None]


class RawServer:
    """A TCP server on 127.0.0.1 (TLS with ``tls``) handing each connection to ``handle`` in a thread of its own;
    it records the request heads, counts connections and bytes sent, and notices a client hanging up."""

    def __init__(self, handle: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handle = handle
        self.tls = tls
        self.sock = listening_socket()
        self.sock.settimeout(0.05)  # the accept loop notices close()
        self.port = int(self.sock.getsockname()[1])
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.connections = 0
        self.closed_by_client = 0
        self.sent = 0
        self.hung_up = threading.Event()
        self._open: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="raw-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(PATIENCE)
            with self.lock:
                self.connections += 1
                self._open.append(connection)
            threading.Thread(target=self._serve, args=(connection,), name="raw-connection", daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            sock = self.tls.wrap_socket(connection, server_side=True) if self.tls else connection
            self.handle(Peer(self, sock))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            connection.close()

    def close(self) -> None:
        self._closed = True
        self._thread.join(PATIENCE)
        self.sock.close()
        with self.lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(handle: Handler, **options: object) -> RawServer:
        servers.append(RawServer(handle, **options))  # type: ignore[arg-type]
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def store() -> Iterator[Callable[..., HttpStore]]:
    stores: list[HttpStore] = []

    def make(url: str, **options: object) -> HttpStore:
        stores.append(HttpStore(url, **{"token": TOKEN, "timeout": PATIENCE, **options}))  # type: ignore[arg-type]
        return stores[-1]

    yield make
    for made in stores:
        made.close()


def response(status: int, body: bytes = b"[]", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def answering(status: int = 200, body: bytes = b"[]", headers: dict[str, str] | None = None) -> Handler:
    """Answers every request on a connection, keeping it alive."""

    def handle(peer: Peer) -> None:
        while peer.request() is not None:
            peer.send(response(status, body, headers))

    return handle


def header(head: str, name: str) -> str | None:
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


# --- the deadline --------------------------------------------------------------------------------------------


def dripping(*, head: bool, size: int = 300) -> Handler:
    """An answer of about ``size`` bytes, one byte every DRIP seconds: its head too, or only its body."""

    def handle(peer: Peer) -> None:
        peer.request()
        whole = response(200, b"[" + b" " * size + b"]")
        start = 0 if head else whole.index(b"\r\n\r\n") + 4
        peer.send(whole[:start])
        for byte in whole[start:]:
            peer.send(bytes([byte]))
            time.sleep(DRIP)

    return handle


@pytest.mark.parametrize("head", [True, False], ids=["head-drips", "body-drips"])
def test_a_drip_cannot_hold_a_read_past_its_total_deadline(serve, store, head: bool) -> None:
    # Each byte comes well within the 0.5 s timeout; the whole answer would take over a minute. Only a total
    # deadline ends the call within the guard, and the server sees the client hang up before its last byte.
    server = serve(dripping(head=head))
    client = store(server.url, timeout=0.5)
    with pytest.raises(RegistryUnavailableError, match=f"registry server {server.url} did not answer in time"):
        finishes(lambda: client.get_version(NAME, 1), "a get of a dripping answer", timeout=30)
    wait_for(server.hung_up.is_set, "the server seeing the client hang up")
    assert server.sent < 300


def test_a_write_waits_for_each_read_not_for_a_total(serve, store) -> None:
    # A write (here a heartbeat) is bounded per read by write_timeout, not by the application path's deadline:
    # an answer dripping for longer than ``timeout`` in all still arrives.
    server = serve(dripping(head=False, size=5))
    client = store(server.url, timeout=DRIP / 2, write_timeout=PATIENCE)
    finishes(lambda: client.heartbeat_run("r1"), "a heartbeat answered by a drip")
    assert server.requests[0].startswith("POST /api/v1/runs/r1/heartbeat ")


def test_a_write_without_an_answer_gives_up_after_the_write_timeout(store) -> None:
    with SilentServer() as silent:
        client = store(f"http://127.0.0.1:{silent.port}", write_timeout=0.5)
        with pytest.raises(RegistryUnavailableError, match="did not answer in time"):
            finishes(lambda: client.heartbeat_run("r1"), "a heartbeat to a silent server")


def test_a_tls_handshake_that_never_ends_is_held_to_the_deadline(store) -> None:
    with SilentServer() as silent:  # accepts and never answers: the client's hello goes unanswered
        client = store(f"https://127.0.0.1:{silent.port}", timeout=0.5)
        with pytest.raises(RegistryUnavailableError, match="did not answer in time"):
            finishes(lambda: client.get_version(NAME, 1), "a get from a server that never shakes hands")


# --- bounded, whole and well-formed answers ------------------------------------------------------------------


def endless_chunks(peer: Peer) -> None:
    peer.request()
    peer.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"[" * 65536
    while True:
        peer.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")


def test_an_endless_chunked_answer_is_cut_at_the_size_bound(serve, store) -> None:
    server = serve(endless_chunks)
    client = store(server.url, max_answer=1_000_000)
    with pytest.raises(RegistryUnavailableError, match=f"{server.url} answered more than 1000000 bytes"):
        finishes(client.list_prompts, "a list of prompts that never ends")
    wait_for(server.hung_up.is_set, "the server seeing the client hang up")


def test_an_answer_declaring_more_than_the_bound_is_refused_unread(serve, store) -> None:
    server = serve(answering(200, b"[" + b" " * 5000 + b"]"))
    with pytest.raises(RegistryUnavailableError, match="answered more than 1000 bytes, the most a client reads"):
        store(server.url, max_answer=1000).list_prompts()


def cut_off(*, chunked: bool) -> Handler:
    def handle(peer: Peer) -> None:
        peer.request()
        if chunked:
            peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n[1, 2, 3")
        else:
            peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[1, 2, 3, ")

    return handle


@pytest.mark.parametrize(
    ("chunked", "reason"),
    [(False, "the connection closed 10 bytes into an answer of 100"), (True, "the connection closed")],
    ids=["content-length", "chunked"],
)
def test_a_connection_closed_mid_body_is_an_outage_naming_the_server(serve, store, chunked: bool, reason: str) -> None:
    server = serve(cut_off(chunked=chunked))
    with pytest.raises(RegistryUnavailableError, match=f"registry server {server.url} cannot be reached: {reason}"):
        store(server.url).list_prompts()


def test_an_answer_that_is_not_http_names_the_server(serve, store) -> None:
    def banner(peer: Peer) -> None:
        peer.request()
        peer.send(b"SSH-2.0-OpenSSH_9.6\r\n")

    server = serve(banner)
    with pytest.raises(
        RegistryUnavailableError, match=f"registry server {server.url} cannot be reached: the answer is not HTTP/1.1"
    ):
        store(server.url).list_prompts()


@pytest.mark.parametrize("body", [b"<html>Welcome to nginx</html>", b'{"prompts": 3}', b"\xff\xfe"])
def test_an_answer_that_is_not_the_api_names_the_server(serve, store, body: bytes) -> None:
    server = serve(answering(200, body))
    with pytest.raises(
        RegistryUnavailableError, match=f"registry server {server.url} answered something that is not promptlane's API"
    ):
        store(server.url).list_prompts()


# --- redirects, credentials, the URL -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_the_token_stays_with_its_server(serve, store, status: int) -> None:
    elsewhere = serve(answering())
    location = f"http://localhost:{elsewhere.port}/api/v1/prompts"
    server = serve(answering(status, b"", {"Location": location}))
    with pytest.raises(RegistryUnavailableError, match=f"answered {status} Whatever, a redirect to '{location}'"):
        store(server.url).list_prompts()
    assert header(server.requests[0], "Authorization") == f"Bearer {TOKEN}"
    assert elsewhere.requests == [] and elsewhere.connections == 0


def test_the_url_path_prefixes_every_request_and_its_user_info_is_basic_auth_without_a_token(serve, store) -> None:
    server = serve(answering())
    store(f"http://ana:p%40ss@127.0.0.1:{server.port}/registry/", token=None).list_prompts()
    store(f"http://ana:p%40ss@127.0.0.1:{server.port}/registry/").list_prompts()
    without, with_token = server.requests
    assert without.startswith("GET /registry/api/v1/prompts HTTP/1.1\r\n")
    assert header(without, "Authorization") == "Basic " + base64.b64encode(b"ana:p@ss").decode()
    assert header(with_token, "Authorization") == f"Bearer {TOKEN}"
    assert header(without, "Accept-Encoding") == "identity"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1", "Invalid port: ':1'"),
        ("http://host:port", "Invalid port: 'port'"),
        ("http://host:99999", "Invalid port: '99999'"),
        ("http:///api", "Invalid host: ''"),
        ("http://a host/", "Invalid host: 'a host'"),
        ("https://host/x?label=1", "a server URL has no query or fragment"),
    ],
)
def test_a_malformed_url_is_refused_saying_why(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        HttpStore(url)


def test_a_token_a_header_cannot_carry_is_refused() -> None:
    with pytest.raises(ConfigError, match="the API token holds characters an HTTP header cannot carry"):
        HttpStore("http://127.0.0.1:1", token="abc\r\nX-Injected: 1")


# --- connections: shared by threads, kept alive, never a write twice -----------------------------------------


def test_eight_threads_share_one_store_against_a_real_server(tmp_path: Path) -> None:
    registry, secrets = served_registry(tmp_path, f"sqlite:///{tmp_path / 'server.db'}")
    registry.push_spec(NAME, {"template": "Hello {{ name }}"})
    registry.set_label(NAME, "production", 1, force=True, reason="test")
    with LiveServer(registry) as server:
        client = HttpStore(server.url, token=secrets["read"], timeout=PATIENCE)
        start = threading.Barrier(8)

        def work() -> list[tuple[int, int]]:
            start.wait(PATIENCE)
            seen: list[tuple[int, int]] = []
            for _ in range(15):
                resolved = client.resolve(NAME, "production")
                assert resolved is not None
                seen.append((resolved.version.number, client.get_version(NAME, 1).number))
            return seen

        threads = [finishes_later(work) for _ in range(8)]
        answers = [outcome() for outcome in threads]
        client.close()
    registry.close()
    assert answers == [[(1, 1)] * 15] * 8


def finishes_later(call: Callable[[], T]) -> Callable[[], T]:
    """Start ``call`` in a thread now; the returned function waits for its result (a guard against a hang)."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def outcome() -> T:
        thread.join(PATIENCE)
        if errors:
            raise errors[0]
        assert result, "a thread still waiting"
        return result[0]

    return outcome


def test_threads_reuse_kept_alive_connections_and_close_returns_them(serve, store) -> None:
    server = serve(answering())
    client = store(server.url)
    start = threading.Barrier(8)

    def work() -> list[int]:
        start.wait(PATIENCE)
        return [len(client.list_prompts()) for _ in range(20)]

    for outcome in [finishes_later(work) for _ in range(8)]:
        assert outcome() == [0] * 20
    assert len(server.requests) == 160
    assert server.connections <= 8  # one per thread asking at once, at most: each kept and reused
    client.close()
    wait_for(lambda: server.closed_by_client == server.connections, "the client closing its idle connections")


def test_a_write_opens_a_connection_of_its_own(serve, store) -> None:
    server = serve(answering())
    client = store(server.url)
    client.list_prompts()
    client.heartbeat_run("r1")  # not on the GET's kept-alive connection: the server may be closing it
    client.list_prompts()
    assert len(server.requests) == 3
    assert server.connections == 2


def test_a_get_on_a_kept_alive_connection_the_server_dropped_asks_once_more(serve, store) -> None:
    def once_per_connection(peer: Peer) -> None:
        if peer.request() is not None:
            peer.send(response(200))  # kept alive...
            peer.request()  # ...until the next request arrives, then closed without an answer

    server = serve(once_per_connection)
    client = store(server.url)
    assert client.list_prompts() == []
    assert client.list_prompts() == []
    assert len(server.requests) == 3 and server.connections == 2


def hanging_up(peer: Peer) -> None:
    peer.request()  # and closed, without an answer


@pytest.mark.parametrize("write", [True, False], ids=["write", "get-on-a-new-connection"])
def test_a_request_the_server_hangs_up_on_is_not_sent_again(serve, store, write: bool) -> None:
    server = serve(hanging_up)
    client = store(server.url)
    with pytest.raises(
        RegistryUnavailableError, match="cannot be reached: the server closed the connection without answering"
    ):
        client.heartbeat_run("r1") if write else client.list_prompts()
    assert len(server.requests) == 1


# --- proxies --------------------------------------------------------------------------------------------------


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_plain_http_goes_through_the_proxy_the_environment_names(serve, store, proxy_env) -> None:
    proxy = serve(answering())
    proxy_env.setenv("HTTP_PROXY", f"http://pu:pp@127.0.0.1:{proxy.port}")
    assert store("http://registry.invalid:8750/team").list_prompts() == []
    [head] = proxy.requests
    assert head.startswith("GET http://registry.invalid:8750/team/api/v1/prompts HTTP/1.1\r\n")
    assert header(head, "Host") == "registry.invalid:8750"
    assert header(head, "Authorization") == f"Bearer {TOKEN}"
    assert header(head, "Proxy-Authorization") == "Basic " + base64.b64encode(b"pu:pp").decode()


def test_https_goes_through_a_connect_tunnel_without_showing_the_proxy_the_token(serve, store, proxy_env) -> None:
    def refusing(peer: Peer) -> None:
        peer.request()
        peer.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    proxy = serve(refusing)
    proxy_env.setenv("https_proxy", f"http://pu:pp@127.0.0.1:{proxy.port}")
    with pytest.raises(RegistryUnavailableError, match="cannot be reached: Tunnel connection failed: 403"):
        store("https://registry.invalid").list_prompts()
    [head] = proxy.requests
    assert head.startswith("CONNECT registry.invalid:443 HTTP/1.")
    assert header(head, "Proxy-Authorization") == "Basic " + base64.b64encode(b"pu:pp").decode()
    assert header(head, "Authorization") is None


def test_no_proxy_connects_directly(serve, store, proxy_env) -> None:
    proxy, server = serve(answering()), serve(answering())
    proxy_env.setenv("ALL_PROXY", f"http://127.0.0.1:{proxy.port}")
    proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert store(server.url).list_prompts() == []
    assert proxy.requests == [] and len(server.requests) == 1


def test_a_proxy_reached_over_tls_is_refused_saying_so(proxy_env) -> None:
    proxy_env.setenv("HTTPS_PROXY", "https://proxy.example:3128")
    with pytest.raises(ValueError, match=r"names a https:// proxy for https:// URLs; .* over http:// only"):
        HttpStore("https://registry.invalid")


# --- TLS ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a certificate it signed for 127.0.0.1, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate with")
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=promptlane test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"
    )
    (folder / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext")  # fmt: skip
    return folder


@pytest.fixture
def tls_server(serve, certificates: Path) -> RawServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    return serve(answering(), tls=context)


def test_tls_is_verified_against_the_systems_certificates(tls_server: RawServer, store, monkeypatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(RegistryUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        store(tls_server.url).list_prompts()
    assert tls_server.requests == []


def test_ssl_cert_file_names_the_certificates_to_trust(tls_server: RawServer, store, certificates, monkeypatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates / "ca.pem"))
    assert store(tls_server.url).list_prompts() == []
    [head] = tls_server.requests
    assert header(head, "Host") == f"127.0.0.1:{tls_server.port}"
    assert header(head, "Authorization") == f"Bearer {TOKEN}"


# --- what the remote SDK imports -----------------------------------------------------------------------------


def test_the_remote_sdk_path_imports_no_http_client_library(tmp_path: Path) -> None:
    registry, secrets = served_registry(tmp_path / "server", f"sqlite:///{tmp_path / 'server.db'}")
    registry.push_spec(NAME, {"template": "Hello {{ name }}"})
    registry.set_label(NAME, "production", 1, force=True, reason="test")
    with LiveServer(registry) as server:
        app = f"""
import sys
import promptlane
registry = promptlane.Registry({server.url!r}, token={secrets["read"]!r})
print(registry.get({NAME!r}, label="production").render(name="Ana").text)
registry.close()
print(sorted(m for m in ("httpx", "httpcore", "anyio", "h11", "certifi", "sniffio", "idna") if m in sys.modules))
"""
        done = subprocess.run(
            [sys.executable, "-c", app], capture_output=True, text=True, cwd=tmp_path, timeout=PATIENCE
        )
    registry.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Hello Ana", "[]"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_does_not_share_its_parents_kept_alive_connections(serve, store) -> None:
    # An app that fetched before forking its workers (gunicorn --preload): on a shared socket, parent and child
    # would read each other's answers.
    server = serve(answering())
    client = store(server.url)
    client.list_prompts()
    assert server.connections == 1

    assert in_forked_child(client.list_prompts) == 0
    client.list_prompts()
    assert server.connections == 2  # the child's own; the parent went on with its kept-alive one
    assert len(server.requests) == 3
