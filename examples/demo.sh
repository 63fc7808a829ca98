#!/bin/sh
# The tour, end to end and offline: prompt files become versions, a label moves, and an application
# fetches the labelled version and renders it. Run it with `make demo`.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
demo="${PROMPTLANE_DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/promptlane-demo.XXXXXX")}"
# The example scenarios use a model function from this repository (examples/support/model.py).
export PYTHONPATH="$(dirname "$here")${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$demo"
cd "$demo"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
say() { printf '\n\033[36m# %s\033[0m\n' "$*"; }

say "A new project in $demo"
step promptlane init
# The example's scenarios run offline with a model function, so that is the model whose runs open production.
printf '%s\n' 'gate_model = "python:examples.support.model:respond"' >>promptlane.toml

say "The example prompts: support/reply (chat, with a tool) includes shared/tone (text)"
step cp -R "$here/support/prompts/." prompts/
step cp -R "$here/support/evals/." evals/
step promptlane push -m "first version"
step promptlane list

say "production is protected: without a passing eval run, the label does not move"
step promptlane label support/reply production 1 || true

say "Evaluate v1 against its scenarios: tool calls rehearsed with mocks, a dataset, a judge (offline)"
step promptlane eval
step promptlane promote support/reply --to production

say "An application fetches support/reply by label and renders it with its own variables"
step python "$here/support/app.py"

say "Change the shared tone: support/reply gets a new version too, because includes are frozen"
sed 's/Be warm and concise./Be warm, concise and specific./' prompts/shared/tone.yaml >tone.tmp
mv tone.tmp prompts/shared/tone.yaml
step promptlane push -m "more specific tone"
step promptlane diff support/reply 1 2
step promptlane eval
step promptlane runs compare support/reply@1 support/reply@2

say "Roll version 2 out to 10% of users (sticky per user); the app picks it up without a redeploy"
step promptlane rollout support/reply production 1=90 2=10 --reason "canary"
step python "$here/support/app.py"

say "Something looks off: roll back, and read the audit log"
step promptlane rollback support/reply production --reason "canary replies too long"
step promptlane history support/reply

say "Done. The demo project is in $demo"
printf '\nOpen the web UI on this registry (http://127.0.0.1:8750/): \033[1mmake ui\033[0m\n'

