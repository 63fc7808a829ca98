# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo ui test evals recordings lint bench clean

# The demo's project, kept so that `make ui` can serve it afterwards.
DEMO_DIR := $(CURDIR)/.promptlane/demo

# (Re)create the virtualenv and install the project with its dev extras whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The README's five-minute tour, run as written in a new folder (examples/tour.py reads it from README.md).
demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(PY) examples/tour.py $(DEMO_DIR)
	@printf '\nOpen the web UI on this registry (http://127.0.0.1:8750/): make ui\n'

# The web UI on the demo's registry, at http://127.0.0.1:8750/ (loopback only, no login).
ui: $(STAMP)
	test -d $(DEMO_DIR) || $(MAKE) demo
	cd $(DEMO_DIR) && $(abspath $(VENV))/bin/promptlane serve --no-auth

test: $(STAMP)
	$(PY) -m pytest -q
	$(MAKE) evals

# The repository's scenarios for the example prompts, as tests, with the model answers replayed from
# evals/recordings (offline, deterministic). After changing a prompt or a scenario: `make recordings`.
evals: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --prompt-evals --prompt-evals-cache replay evals

recordings: $(STAMP)
	rm -rf evals/recordings
	$(PY) -m pytest -q -p no:cacheprovider --prompt-evals --prompt-evals-cache on evals

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

bench: $(STAMP)
	$(PY) bench/sdk.py
	$(PY) bench/harness.py
	$(PY) bench/plugin.py
	$(PY) bench/server.py

clean:
	rm -rf $(VENV) .pytest_cache .promptlane
