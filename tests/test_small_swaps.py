"""Standard-library pieces in place of hand-written ones: ``module:attr`` loading through pkgutil, an LRU compile
cache, and ``__version__`` from the package metadata."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict
from importlib.metadata import version

import pytest

import promptlane
from promptlane import templates
from promptlane.errors import ConfigError
from promptlane.harness._imports import load_callable
from promptlane.templates import CompiledPrompt, RenderLimits, compile_prompt


def test_load_callable_resolves_a_dotted_attribute() -> None:
    assert load_callable("collections:OrderedDict.fromkeys", what="a test") == OrderedDict.fromkeys


@pytest.mark.parametrize("reference", ["no colon", "os.path:", ":join", "os path:join", "os:path.2join", "os:a-b"])
def test_load_callable_refuses_what_is_not_module_colon_function(reference: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_callable(reference, what="a test")
    assert str(caught.value) == f"a test: {reference!r} is not module:function"


def test_an_attribute_error_while_importing_is_an_import_failure(tmp_path) -> None:
    (tmp_path / "broken_on_import_xyz.py").write_text("import os\nos.no_such_thing\n")
    with pytest.raises(ConfigError) as caught:
        load_callable("broken_on_import_xyz:run", what="a test", root=tmp_path)
    assert str(caught.value) == (
        "a test: cannot import 'broken_on_import_xyz': AttributeError: module 'os' has no attribute 'no_such_thing'"
    )


def _compile(name: str) -> CompiledPrompt:
    spec = {"template": f"Hello from {name}"}
    return compile_prompt(name=name, version=1, content_hash=name, spec=spec, limits=RenderLimits())


def test_the_compile_cache_evicts_the_least_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "_CACHE", OrderedDict())
    monkeypatch.setattr(templates, "_CACHE_SIZE", 3)
    hot = _compile("t/hot")
    first_cold = _compile("t/cold-0")
    for number in range(1, 6):
        assert _compile("t/hot") is hot  # used between every new prompt: never the least recently used
        _compile(f"t/cold-{number}")

    assert [key[0] for key in templates._CACHE] == ["t/cold-4", "t/hot", "t/cold-5"]
    assert _compile("t/hot") is hot
    assert _compile("t/cold-0") is not first_cold  # evicted, compiled again


def test_version_is_the_installed_distributions() -> None:
    assert promptlane.__version__ == version("promptlane")


def test_import_does_not_read_package_metadata() -> None:
    script = "import sys, promptlane; print('importlib.metadata' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_version_without_package_metadata() -> None:
    script = """
import importlib.metadata

def not_installed(name):
    raise importlib.metadata.PackageNotFoundError(name)

importlib.metadata.version = not_installed
import promptlane
print(promptlane.__version__)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0+unknown"
