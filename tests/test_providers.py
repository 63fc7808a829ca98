"""OpenAI-compatible endpoints declared in the config (``[providers.NAME]``): parsing, model strings, and an eval
with tool calls against a fake OpenAI-compatible server on loopback, through the real OpenAI client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import promptlane.registry.sql  # noqa: F401  (see tests/test_pytest_plugin.py: pytester and SQLAlchemy)
from promptlane._model_strings import OpenAIEndpoint, check_model, declare_providers
from promptlane.cli import app
from promptlane.config import load_settings
from promptlane.errors import ConfigError
from promptlane.harness.models import resolve_model

runner = CliRunner(env={"COLUMNS": "200"})

LOCAL = '[providers.local]\nbase_url = "http://127.0.0.1:11434/v1"\n'


@pytest.fixture(autouse=True)
def _no_declared_providers() -> Iterator[None]:
    """Each test starts, and leaves, with no endpoint declared (loading a config declares its endpoints)."""
    declare_providers(())
    yield
    declare_providers(())


def write_config(project: Path, text: str) -> Path:
    path = project / "promptlane.toml"
    path.write_text('prompts = "prompts"\nevals = "evals"\n' + text)
    return path


# --- the providers table ----------------------------------------------------------------------------------------


def test_a_provider_table_becomes_an_endpoint(project: Path) -> None:
    write_config(
        project,
        '[providers.openrouter-eu]\nbase_url = "https://openrouter.ai/api/v1"\napi_key_env = "OPENROUTER_API_KEY"\n'
        '[providers.local]\nbase_url = "http://localhost:11434/v1"\nprotocol = "responses"\n',
    )

    assert load_settings(project).providers == {
        "openrouter-eu": OpenAIEndpoint(
            name="openrouter-eu", base_url="https://openrouter.ai/api/v1", api_key_env="OPENROUTER_API_KEY"
        ),
        "local": OpenAIEndpoint(name="local", base_url="http://localhost:11434/v1", protocol="responses"),
    }


def test_the_table_reads_from_pyproject_too(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.promptlane.providers.vllm-box]\nbase_url = "http://gpu-box:8000/v1"\n'
    )

    assert load_settings(tmp_path).providers["vllm-box"].base_url == "http://gpu-box:8000/v1"


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ('[providers.local]\nbase_url = "http://h/v1"\napi_key = "sk-1"\n', "providers.local.api_key",
         "unknown key; known keys: api_key_env, base_url, protocol"),
        ('[providers.local]\nbase_url = "ftp://h/v1"\n', "providers.local.base_url",
         "'ftp://h/v1' is not an http:// or https:// URL"),
        ('[providers.local]\napi_key_env = "KEY"\n', "providers.local.base_url",
         "expected a non-empty string, got None"),
        ('[providers.local]\nbase_url = "http://h/v1"\nprotocol = "completions"\n', "providers.local.protocol",
         "'completions' is not one of chat (Chat Completions), responses (OpenAI's Responses API)"),
        ('[providers.local]\nbase_url = "http://h/v1"\napi_key_env = "my key"\n', "providers.local.api_key_env",
         "expected the name of an environment variable (like OPENROUTER_API_KEY), got 'my key'"),
        ('[providers.openai]\nbase_url = "http://h/v1"\n', "providers.openai",
         "'openai' is a built-in provider: give the endpoint a name of its own (like 'local')"),
        ('[providers.openai-chat]\nbase_url = "http://h/v1"\n', "providers.openai-chat",
         "'openai-chat' is a built-in provider: give the endpoint a name of its own (like 'local')"),
        ('[providers.test]\nbase_url = "http://h/v1"\n', "providers.test",
         "'test' is a built-in provider: give the endpoint a name of its own (like 'local')"),
        ('[providers.python]\nbase_url = "http://h/v1"\n', "providers.python",
         "'python' is a built-in provider: give the endpoint a name of its own (like 'local')"),
        ('[providers."My Box"]\nbase_url = "http://h/v1"\n', "providers.My Box",
         "a provider name is lowercase letters, digits, '-', '_' and '.', starting with a letter"),
        ('providers = "local"\n', "providers", "a table of [providers.NAME] tables"),
    ],
)  # fmt: skip
def test_a_bad_provider_table_names_the_file_and_key(project: Path, table: str, key: str, message: str) -> None:
    path = write_config(project, table)

    with pytest.raises(ConfigError) as caught:
        load_settings(project)

    assert (caught.value.source, caught.value.key) == (str(path), key)
    assert str(caught.value) == f"{path}: {key}: {message}"


def test_providers_is_a_known_key(project: Path) -> None:
    write_config(project, 'provider = "x"\n')

    with pytest.raises(ConfigError, match=r"unknown key \(did you mean 'providers'\?\)"):
        load_settings(project)


# --- model strings ----------------------------------------------------------------------------------------------


def test_a_declared_endpoint_is_a_provider_of_model_strings(project: Path) -> None:
    with pytest.raises(ValueError, match="unknown provider 'local'"):
        check_model("local:llama3.2")

    write_config(project, 'judge_model = "local:qwen2.5"\n' + LOCAL)
    settings = load_settings(project)

    assert settings.judge_model == "local:qwen2.5"
    assert check_model("local:llama3.2") == "local:llama3.2"
    with pytest.raises(ValueError, match="unknown provider 'locl': did you mean 'local'"):
        check_model("locl:llama3.2")


def test_an_endpoint_model_speaks_the_protocol_it_declares() -> None:
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel

    chat = OpenAIEndpoint(name="local", base_url="http://127.0.0.1:9/v1")
    responses = OpenAIEndpoint(name="proxy", base_url="http://127.0.0.1:9/v1", protocol="responses")

    model = resolve_model("local:llama3.2", providers={"local": chat, "proxy": responses})
    assert isinstance(model, OpenAIChatModel)
    assert (model.model_name, model.base_url) == ("llama3.2", "http://127.0.0.1:9/v1/")
    assert isinstance(resolve_model("proxy:gpt-4o", providers={"proxy": responses}), OpenAIResponsesModel)


def test_an_unset_api_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACME_LLM_KEY", raising=False)
    endpoint = OpenAIEndpoint(name="acme", base_url="https://llm.acme.test/v1", api_key_env="ACME_LLM_KEY")

    with pytest.raises(ConfigError) as caught:
        resolve_model("acme:large", providers={"acme": endpoint})

    assert (
        str(caught.value) == "model acme:large: ACME_LLM_KEY is not set: the 'acme' provider's API key is read from it"
    )


def test_a_missing_provider_package_names_an_extra_that_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    # pydantic-ai's own message, for a provider it reaches through the OpenAI client.
    def infer_model(spec: str) -> Any:
        raise ImportError(
            "Please install the `openai` package to use the Ollama provider, "
            'you can use the `openai` optional group — `pip install "pydantic-ai-slim[openai]"`'
        )

    monkeypatch.setattr("pydantic_ai.models.infer_model", infer_model)

    with pytest.raises(ConfigError) as caught:
        resolve_model("ollama:llama3.2")
    assert (
        str(caught.value)
        == "model ollama:llama3.2: the 'ollama' provider needs its package: pip install 'promptlane[openai]'"
    )

    # A provider with an extra of promptlane's own, then one without (cerebras: pydantic-ai-slim's group).
    def infer_cohere(spec: str) -> Any:
        raise ImportError('you can use the `cohere` optional group — `pip install "pydantic-ai-slim[cohere]"`')

    monkeypatch.setattr("pydantic_ai.models.infer_model", infer_cohere)
    with pytest.raises(ConfigError, match=r"pip install 'promptlane\[cohere\]'$"):
        resolve_model("cohere:command-r")

    def infer_cerebras(spec: str) -> Any:
        raise ImportError('you can use the `cerebras` optional group — `pip install "pydantic-ai-slim[cerebras]"`')

    monkeypatch.setattr("pydantic_ai.models.infer_model", infer_cerebras)
    with pytest.raises(ConfigError, match=r"pip install 'pydantic-ai-slim\[cerebras\]'$"):
        resolve_model("cerebras:llama3.1-8b")


# --- an eval against an OpenAI-compatible server ----------------------------------------------------------------


def _completion(message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
    }


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    """A tool call for order 123 (when tools are offered), then an answer from what the tool returned."""
    results = [message for message in body["messages"] if message["role"] == "tool"]
    if not body.get("tools"):
        return _completion({"role": "assistant", "content": "Hello, I have started on it."}, "stop")
    if not results:
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"order_id": "123"}'},
        }
        return _completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")
    status = json.loads(results[0]["content"])["status"]
    return _completion({"role": "assistant", "content": f"Order 123 is {status}: I started your refund."}, "stop")


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """A fake OpenAI-compatible server on loopback: its base URL, and the requests it got (authorization, body)."""
    requests: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append((self.headers.get("Authorization", ""), body))
            status, answer = (200, _answer(body)) if self.path == "/v1/chat/completions" else (404, {"error": "no"})
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


SCENARIOS = """\
prompt: support/reply
scenarios:
  - name: refund
    variables: {customer: Ana, ticket: "I want a refund for order 123"}
    tools:
      lookup_order:
        - match: {order_id: "123"}
          returns: {status: delivered, total: 42.5}
    expect:
      - contains: refund
      - tool_called: {name: lookup_order, args: {order_id: "123"}, times: 1}
"""


@pytest.mark.parametrize("api_key_env", [None, "FAKE_LLM_KEY"])
def test_an_eval_with_tool_calls_runs_on_a_declared_endpoint(
    project: Path,
    support_prompts: None,
    server: tuple[str, list[tuple[str, dict[str, Any]]]],
    monkeypatch: pytest.MonkeyPatch,
    api_key_env: str | None,
) -> None:
    base_url, requests = server
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-fake")
    key_line = f'api_key_env = "{api_key_env}"\n' if api_key_env else ""
    write_config(project, f'[providers.fake]\nbase_url = "{base_url}"\n{key_line}')
    reply = project / "prompts" / "support" / "reply.yaml"
    reply.write_text(reply.read_text().replace("model: openai:gpt-4o-mini", "model: fake:fake-model"))
    (project / "evals").mkdir()
    (project / "evals" / "reply.yaml").write_text(SCENARIOS)

    result = runner.invoke(app, ["eval"])

    assert (result.exit_code, result.stderr) == (0, ""), (result.stdout, result.stderr, result.exception)
    assert "1/1 passed" in result.stdout
    assert [body["model"] for _, body in requests] == ["fake-model", "fake-model"]
    assert [tool["function"]["name"] for tool in requests[0][1]["tools"]] == ["lookup_order"]
    assert [message["role"] for message in requests[1][1]["messages"]] == ["system", "user", "assistant", "tool"]
    assert {authorization for authorization, _ in requests} == {
        "Bearer sk-fake" if api_key_env else "Bearer not-needed"
    }


def test_the_pytest_plugin_runs_a_declared_endpoint_model(
    pytester: pytest.Pytester, server: tuple[str, list[tuple[str, dict[str, Any]]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, requests = server
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    files = {
        "promptlane.toml": f'prompts = "prompts"\nevals = "evals"\n[providers.fake]\nbase_url = "{base_url}"\n',
        "pytest.ini": "[pytest]\n",
        "prompts/greet.yaml": "model: python:nowhere:unused\ntemplate: 'Say hello to {{ name }}'\n",
        "evals/greet.yaml": "prompt: greet\nscenarios:\n  - name: hi\n    variables: {name: Ana}\n"
        "    expect:\n      - contains: started\n",
    }
    for name, text in files.items():
        (pytester.path / name).parent.mkdir(parents=True, exist_ok=True)
        (pytester.path / name).write_text(text)

    result = pytester.runpytest_subprocess(
        "--prompt-evals", "-p", "no:cacheprovider", "--prompt-evals-model", "fake:fake-model", timeout=120
    )

    assert result.ret == pytest.ExitCode.OK, "\n".join(result.stdout.lines + result.stderr.lines)
    assert [body["model"] for _, body in requests] == ["fake-model"]


# --- init -------------------------------------------------------------------------------------------------------


def _uncomment_providers(text: str) -> str:
    """The config with the scaffold's `providers` lines uncommented."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("# [") and "providers.local]" in line)
    uncommented = [line.removeprefix("# ") for line in lines[start : start + 3]]
    return "\n".join([*lines[:start], *uncommented, *lines[start + 3 :]]) + "\n"


@pytest.mark.parametrize("config_file", ["promptlane.toml", "pyproject.toml"])
def test_init_scaffolds_a_providers_table_that_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config_file: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if config_file == "pyproject.toml":
        (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\n')
    assert runner.invoke(app, ["init"]).exit_code == 0
    path = tmp_path / config_file
    assert load_settings(tmp_path).providers == {}  # commented out: the example runs offline

    path.write_text(_uncomment_providers(path.read_text()))

    assert load_settings(tmp_path).providers == {
        "local": OpenAIEndpoint(name="local", base_url="http://localhost:11434/v1", api_key_env="LOCAL_API_KEY")
    }
    assert check_model("local:llama3.2") == "local:llama3.2"


def test_an_adapter_gives_an_endpoint_model_its_own_id() -> None:
    from promptlane.adapters import to_openai

    # The base URL is the application's client's (docs/evals.md, "Models and providers").
    assert to_openai([{"role": "user", "content": "hi"}], {"model": "local:llama3.2"})["model"] == "llama3.2"
