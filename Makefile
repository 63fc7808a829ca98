# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo ui traces test test-oldest evals recordings lint bench clean

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

# Arize Phoenix, an OpenTelemetry backend, in a virtualenv of its own (never the project's: `make test` does not
# install it; tests/test_phoenix.py runs when it is there).
PHOENIX_VENV := .phoenix/venv
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed
PHOENIX_PORT ?= 6006
$(PHOENIX_STAMP):
	test -x $(PHOENIX_VENV)/bin/python || $(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install --quiet 'arize-phoenix>=20.26,<21'
	touch $(PHOENIX_STAMP)

# The demo's runs in Phoenix at http://127.0.0.1:6006/ (loopback only): starts it, sends the runs, prints the
# URL and serves until Ctrl-C (examples/phoenix.py).
traces: $(STAMP) $(PHOENIX_STAMP)
	test -d $(DEMO_DIR) || $(MAKE) demo
	$(PY) examples/phoenix.py $(DEMO_DIR) --port $(PHOENIX_PORT)

# The unit tests in parallel (pytest-xdist, PYTEST_WORKERS=0 for one process), then the tests marked `serial`
# on their own, then the repository's evals. All three always run; `make test` fails if any of them failed.
PYTEST_WORKERS ?= auto
# Bytecode is cached even where the environment says not to (PYTHONDONTWRITEBYTECODE=1, as on some CI images):
# without the cache every pytest process (each xdist worker, each pytester or CLI subprocess) compiles and
# assertion-rewrites some 500 plugin and project modules again, a second or more each.
test evals: export PYTHONDONTWRITEBYTECODE :=
test: $(STAMP)
	@failed=""; \
	$(PY) -c "from importlib.metadata import version as v; print('--- pydantic-ai-slim', v('pydantic-ai-slim'))"; \
	echo "--- unit tests, in parallel: pytest -n $(PYTEST_WORKERS) -m 'not serial'"; \
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "not serial" --durations=10 || failed="$$failed unit-tests"; \
	echo "--- the serial tests, one at a time: pytest -m serial"; \
	$(PY) -m pytest -q -m serial || { [ $$? -eq 5 ] || failed="$$failed serial-tests"; }; \
	echo "--- the repository's evals: make evals"; \
	$(EVALS) || failed="$$failed evals"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make test: unit tests, serial tests and evals passed"

# The harness tests again, on the oldest pydantic-ai promptlane supports (constraints/oldest.txt) and with the
# pydantic-evals bridge (pydantic-evals holds pydantic-ai at its own release, so the main virtualenv, which
# has the newest pydantic-ai, leaves it out), in a virtualenv of their own.
OLDEST_VENV := .venv-oldest
OLDEST_STAMP := $(OLDEST_VENV)/.installed
HARNESS_TESTS := $(addprefix tests/,test_adapters.py test_adapter_examples.py test_datasets.py test_eval_cli.py \
	test_eval_tracing.py test_evaluators.py test_mocks.py test_otel_export.py test_otel_review.py \
	test_plugin_gate.py test_providers.py test_pydantic_evals.py test_pytest_plugin.py test_recordings.py \
	test_runner.py test_scenarios.py test_spec.py test_case_writer.py test_shared_messages.py test_model_usage.py \
	test_eval_transaction.py test_eval_startup.py)
$(OLDEST_STAMP): pyproject.toml constraints/oldest.txt
	test -x $(OLDEST_VENV)/bin/python || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST_VENV)/bin/python -m pip install --quiet -e '.[dev,pydantic-evals]' -c constraints/oldest.txt
	touch $(OLDEST_STAMP)

test-oldest: export PYTHONDONTWRITEBYTECODE :=
test-oldest: $(OLDEST_STAMP)
	@$(OLDEST_VENV)/bin/python -c "from importlib.metadata import version as v; \
		print('--- the harness tests on pydantic-ai-slim', v('pydantic-ai-slim'), 'and pydantic-evals', v('pydantic-evals'))"
	$(OLDEST_VENV)/bin/python -m pytest -q -n $(PYTEST_WORKERS) -p no:cacheprovider $(HARNESS_TESTS)

# The repository's scenarios for the example prompts, as tests, with the model answers replayed from
# evals/recordings (offline, deterministic). After changing a prompt or a scenario: `make recordings`.
EVALS = $(PY) -m pytest -q -p no:cacheprovider --prompt-evals --prompt-evals-cache replay evals
evals: $(STAMP)
	$(EVALS)

recordings: $(STAMP)
	rm -rf evals/recordings
	$(PY) -m pytest -q -p no:cacheprovider --prompt-evals --prompt-evals-cache on evals

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/pyright

bench: $(STAMP)
	$(PY) bench/sdk.py
	$(PY) bench/templates.py
	$(PY) bench/startup.py
	$(PY) bench/harness.py
	$(PY) bench/plugin.py
	$(PY) bench/server.py
	$(PY) bench/cli.py

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .pytest_cache .promptlane
