"""A registry URL's password is printed nowhere: errors, log lines, reprs (the CLI's output is in test_cli.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from _live import LiveServer, served_registry, wait_for  # tests/ is on sys.path (rootdir conftest)
from promptlane._redact import mask_credentials
from promptlane.config import Settings
from promptlane.errors import ConfigError, RegistryUnavailableError, SpecError
from promptlane.registry import Registry


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:hunter2@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("postgresql+psycopg://u:hunter2@db/x", "postgresql+psycopg://u:***@db/x"),
        ("https://u:hunter2@host/prefix", "https://u:***@host/prefix"),
        ("http://:hunter2@host", "http://:***@host"),
        ("postgresql://u:hun/ter:2@db/x", "postgresql://u:***@db/x"),  # '/' and ':' in the password
        ("postgresql://u:hun@ter2@db/x", "postgresql://u:***@db/x"),  # an unencoded '@': masked to the last
        (
            "error: 'postgresql://u:hunter2@db/x' and https://v:hunter3@h",
            "error: 'postgresql://u:***@db/x' and https://v:***@h",
        ),
        ("postgresql://u@db/x", "postgresql://u@db/x"),  # a user name alone is not a secret
        ("http://host:8750/api", "http://host:8750/api"),
        ("no URL here: user:pass@host", "no URL here: user:pass@host"),
    ],
)
def test_mask_credentials(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked


def test_every_promptlane_error_masks_its_message() -> None:
    errors = [
        RegistryUnavailableError("registry server http://u:hunter2@127.0.0.1:1 cannot be reached"),
        ConfigError("cannot parse 'postgresql://u:hunter2@h/x'", source="--registry", key="registry"),
        SpecError("bad postgresql://u:hunter2@h/x", path="p.yaml", line=3),
    ]
    for error in errors:
        assert "hunter2" not in str(error) and "hunter2" not in repr(error) and "***@" in str(error)


def test_reprs_show_the_url_without_its_password(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, registry="postgresql://u:hunter2@127.0.0.1:1/x", token="plt_hunter2")
    assert "hunter2" not in repr(settings)
    assert "registry='postgresql://u:***@127.0.0.1:1/x'" in repr(settings) and "token='***'" in repr(settings)
    for url in ("postgresql://u:hunter2@127.0.0.1:1/x", "http://u:hunter2@127.0.0.1:1"):
        registry = Registry(url, settings=Settings(root=tmp_path))
        assert repr(registry) == f"Registry({url.replace('hunter2', '***')!r})"
        with pytest.raises(RegistryUnavailableError) as unreachable:
            registry.list_prompts()  # opens the store: an error, but the store's repr too
        assert "hunter2" not in str(unreachable.value), unreachable.value
        registry.close()


def test_the_sdk_logs_an_outage_without_the_password(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An app on ``http://u:hunter2@...``: the outage and recovery lines, and the snapshot file it writes."""
    served, _ = served_registry(tmp_path / "server", f"sqlite:///{tmp_path / 'registry.db'}")
    served.push_spec("greet", {"template": "Hi {{ name }}"}, author="tests")
    served.set_label("greet", "staging", 1)
    server = LiveServer(served, auth=False).start()
    url = server.url.replace("http://", "http://u:hunter2@")
    app = Registry(url, settings=Settings(root=tmp_path / "app", cache_ttl=0.1, fetch_timeout=5.0))
    try:
        with caplog.at_level(logging.INFO, logger="promptlane"):
            assert app.get("greet", label="staging").source == "registry"
            server.stop()
            wait_for(lambda: app.get("greet", label="staging").source == "stale", "the cached prompt turning stale")
            server.start()
            wait_for(lambda: app.get("greet", label="staging").source == "cache", "the app revalidating again")
            wait_for(lambda: "answers again" in caplog.text, "the end of the outage logged")
    finally:
        app.close()
        server.stop()
        served.close()
    assert "serving cached prompts until it answers again" in caplog.text
    assert "hunter2" not in caplog.text and "u:***@127.0.0.1" in caplog.text, caplog.text
    snapshots = list((tmp_path / "app").rglob("*.json"))
    assert snapshots and all("hunter2" not in path.read_text() for path in snapshots)
