"""The eval harness: scenario files, datasets, mocked tools, model loop, evaluators, runs and their traces.

Importing it imports pydantic-ai; applications that only fetch and render prompts never do.
"""

from .recordings import CacheMode, Recordings, ReplayMissError
from .runner import EvalOptions, EvalRun
from .scenarios import ScenarioFile, ScenariosDocument, ScenarioSpec, discover_scenario_files, load_scenario_file

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
