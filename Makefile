# loginwatch — every command an operator or a developer needs, installing what is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: test lint typecheck unit bench demo chaos system-deps broker postgres clean lock lock-check

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

# Installs are locked: requirements/*.txt pin every distribution with its hashes, and make
# (so CI), deploy/install-host.sh and deploy/install-central.sh install from them with pip
# --require-hashes, then loginwatch itself with --no-deps: two clean clones a week apart
# test the same code. Only pip is needed; uv only for `make lock`. The locked pip goes in first
# and installs the rest (the venv's own, older pip took 1-2 s longer for the lot).
#   build.txt    pip and the build backend ([build-system] requires), every Python >= 3.9
#   host.txt     pika, msgspec: all a host runs; Python >= 3.9, a pin per Python where the
#                newest release dropped an old one (markers)
#   central.txt  host.txt's pins + [central]; Python >= 3.11
#   dev.txt      central.txt's pins + [dev]: what make installs
$(STAMP): pyproject.toml requirements/build.txt requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements/build.txt
	$(PY) -m pip install -q --require-hashes -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# `make lock` writes requirements/*.txt again from pyproject.toml with a pinned uv (it locks
# for several Pythons at once, pip-tools cannot), keeping every pin that pyproject still
# allows; `make lock LOCK_ARGS=--upgrade` takes the newest releases, LOCK_ARGS="-P msgspec"
# one package's. Each file is constrained by the one before, so a pin is the same in all.
# `make lock-check` (needs the index, so not part of `make test`; tests/integration/test_lock.py checks
# offline that every requirement in pyproject is pinned) fails if `make lock` would change them.
UV_VERSION := 0.13.9
LOCK_VENV  := .venv-lock
LOCK_PY    := $(LOCK_VENV)/uv-$(UV_VERSION)/bin/python
UV         := $(LOCK_VENV)/uv-$(UV_VERSION)/bin/uv
LOCK_DIR   ?= .
UV_COMPILE  = cd $(LOCK_DIR) && UV_PYTHON_DOWNLOADS=never $(CURDIR)/$(UV) pip compile -q \
	--no-config --universal --generate-hashes --custom-compile-command 'make lock' $(LOCK_ARGS)

lock: $(UV)
	mkdir -p $(LOCK_DIR)/requirements
	$(LOCK_PY) -c 'import tomllib; \
	print(*tomllib.load(open("$(LOCK_DIR)/pyproject.toml", "rb"))["build-system"]["requires"], "pip", sep="\n")' \
	    | ($(UV_COMPILE) --python-version 3.9 - -o requirements/build.txt)
	$(UV_COMPILE) --python-version 3.9 pyproject.toml -o requirements/host.txt
	$(UV_COMPILE) --python-version 3.11 pyproject.toml --extra central \
	    -c requirements/host.txt -o requirements/central.txt
	$(UV_COMPILE) --python-version 3.11 pyproject.toml --extra central --extra dev \
	    -c requirements/central.txt -o requirements/dev.txt

lock-check: $(UV)
	rm -rf $(LOCK_VENV)/check && mkdir -p $(LOCK_VENV)/check
	cp -R pyproject.toml requirements $(LOCK_VENV)/check/
	$(MAKE) --no-print-directory lock LOCK_DIR=$(LOCK_VENV)/check LOCK_ARGS=
	diff -ru requirements $(LOCK_VENV)/check/requirements

$(UV):
	rm -rf $(LOCK_VENV)/uv-*
	$(PYTHON) -m venv $(LOCK_VENV)/uv-$(UV_VERSION)
	$(LOCK_PY) -m pip install -q uv==$(UV_VERSION)

clean:
	rm -rf $(VENV) $(LOCK_VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
