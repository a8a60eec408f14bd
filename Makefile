# loginwatch — every command an operator or a developer needs, installing what is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: test lint typecheck unit bench demo chaos system-deps broker postgres clean

# Three test processes, one file each at a time: most tests wait on a real broker, SMTP
# server or sshd, so three fit on two cores (about 6 min against 10.5 min in one process).
test: system-deps broker postgres $(STAMP) lint typecheck
	$(PY) -m pytest -n 3 --dist loadfile

# Ruff, then the import rules: no circle, producer and consumer apart, no conftest imported.
lint: $(STAMP)
	$(VENV)/bin/ruff check schemas producer consumer tests
	$(VENV)/bin/ruff format --check schemas producer consumer tests
	$(PY) -m tests.support.imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# tests/unit needs nothing but the venv: no broker, SMTP, sshd, PostgreSQL, PAM files, network.
unit: $(STAMP)
	$(PY) -m pytest tests/unit

bench: system-deps broker $(STAMP)
	$(PY) -m tests.bench

# Faults under load, each scenario bounded and accounted for (lost, duplicates).
# `make chaos CHAOS_ARGS="--quick"`, or name scenarios: CHAOS_ARGS="workers smtp".
chaos: system-deps broker $(STAMP)
	$(PY) -m tests.chaos $(CHAOS_ARGS)

# Everything end to end on this machine: broker vhost, worker, SMTP server, three hosts' hooks.
demo: system-deps broker $(STAMP)
	$(PY) -m tests.demo

system-deps:
	@sh tests/tools/system-deps.sh

broker:
	@sh tests/tools/ensure-broker.sh

postgres:
	@sh tests/tools/ensure-postgres.sh

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[central,dev]'
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
