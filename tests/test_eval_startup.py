"""What ``promptlane eval`` does not do at start-up when a run does not need it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from pydantic_ai.messages import ModelResponse, TextPart

from promptlane.harness.recordings import Recordings

# Counts the TypeAdapters built for ModelResponse while the harness is imported.
SPY = textwrap.dedent(
    """\
    import pydantic
    from pydantic_ai.messages import ModelResponse

    built = []
    original = pydantic.TypeAdapter.__init__

    def spy(self, type_, *args, **kwargs):
        built.append(type_ is ModelResponse)
        original(self, type_, *args, **kwargs)

    pydantic.TypeAdapter.__init__ = spy
    import promptlane.harness.runner
    print(sum(built))
    """
)


def test_importing_the_harness_builds_no_response_adapter() -> None:
    result = subprocess.run([sys.executable, "-c", SPY], capture_output=True, text=True, timeout=120, check=True)

    assert result.stdout.strip() == "0", result.stderr


def test_recordings_build_the_adapter_when_used(tmp_path: Path) -> None:
    recordings = Recordings(tmp_path, "on")
    response = ModelResponse(parts=[TextPart("hi")], model_name="test")
    recordings.put("ab" + "0" * 62, response)

    assert recordings.get("ab" + "0" * 62) == response
