"""``promptlane init``: scaffold prompts/, evals/ and the config in an existing or new project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app, out

__all__: list[str] = []

EXAMPLE_PROMPT = """\
# A prompt file: every `promptlane push` of a changed file freezes a new version.
description: Greet a user by name
model: openai:gpt-4o-mini
model_settings: {temperature: 0.3}
variables:
  name: {type: string, description: Who to greet}
  tone: {type: string, enum: [friendly, formal], default: friendly}
messages:
  - role: system
    content: You write one-sentence greetings in a {{ tone }} tone.
  - role: user
    content: Greet {{ name }}.
"""

CONFIG = """\
prompts = "prompts"
evals = "evals"
# registry = "sqlite:///.promptlane/registry.db"   # or postgresql://... ; PROMPTLANE_REGISTRY overrides
# default_label = "production"                     # what Registry.get resolves; PROMPTLANE_LABEL overrides
# protected_labels = ["production"]
"""


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="The project folder.", file_okay=False)] = Path("."),
) -> None:
    """Scaffold prompts/, evals/ and the promptlane config (in pyproject.toml, else promptlane.toml)."""
    folder.mkdir(parents=True, exist_ok=True)
    created: list[str] = []

    def say(line: str) -> None:
        out.print(line, markup=False)

    def write(path: Path, text: str) -> None:
        if path.exists():
            say(f"exists   {path}")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        created.append(str(path))
        say(f"created  {path}")

    pyproject = folder / "pyproject.toml"
    if pyproject.exists():
        text = pyproject.read_text(encoding="utf-8")
        if "[tool.promptlane]" in text:
            say(f"exists   {pyproject} [tool.promptlane]")
        else:
            pyproject.write_text(text.rstrip("\n") + "\n\n[tool.promptlane]\n" + CONFIG, encoding="utf-8")
            say(f"updated  {pyproject} [tool.promptlane]")
    else:
        write(folder / "promptlane.toml", CONFIG)
    write(folder / "prompts" / "example" / "greeting.yaml", EXAMPLE_PROMPT)
    (folder / "evals").mkdir(exist_ok=True)
    out.print("\nnext: edit prompts/, then `promptlane push -m 'first version'`")
