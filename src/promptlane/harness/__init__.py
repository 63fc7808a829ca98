"""The eval harness: scenario files, datasets, mocked tools, model loop, evaluators, runs and their traces.

The runner imports pydantic-ai; applications that only fetch and render prompts never do. Names are imported
on first use, so commands that only read scenario files or stored runs (``check``, ``runs``) do not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._extras import needs
from .._lazy import lazy_names

if TYPE_CHECKING:
    from .recordings import CacheMode, Recordings, ReplayMissError
    from .runner import EvalOptions, EvalRun
    from .scenarios import ScenarioFile, ScenariosDocument, ScenarioSpec, discover_scenario_files, load_scenario_file

_LAZY = {
    "CacheMode": ".recordings",
    "EvalOptions": ".runner",
    "EvalRun": ".runner",
    "Recordings": ".recordings",
    "ReplayMissError": ".recordings",
    "ScenarioFile": ".scenarios",
    "ScenarioSpec": ".scenarios",
    "ScenariosDocument": ".scenarios",
    "discover_scenario_files": ".scenarios",
    "load_scenario_file": ".scenarios",
}

__all__ = [
    "CacheMode",
    "EvalOptions",
    "EvalRun",
    "Recordings",
    "ReplayMissError",
    "ScenarioFile",
    "ScenarioSpec",
    "ScenariosDocument",
    "discover_scenario_files",
    "load_scenario_file",
]


_getattr, __dir__ = lazy_names(__name__, _LAZY, __all__)


def __getattr__(name: str) -> object:
    with needs("the eval harness"):  # without pydantic-ai and the OTel SDK: the pip install line
        return _getattr(name)
