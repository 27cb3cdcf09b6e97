# dbdr.backup developer entry points.  `make test` is what CI (.ci/run) runs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.NOTPARALLEL:
.DEFAULT_GOAL := test

ROOT        := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
SYS_PYTHON  := /usr/bin/python3
VENV        := $(ROOT)/.venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.requirements.stamp
COLL_ROOT   := $(ROOT)/.tmp/collections
COLL_LINK   := $(COLL_ROOT)/ansible_collections/dbdr/backup

# Debian packages the project needs on the machine running tests / the demo.
DEB_PACKAGES := postgresql-15 postgresql-contrib gnupg zstd python3-venv gzip shellcheck

# pytest exits 5 when it collects no test; that is a failure unless ALLOW_NO_TESTS=1
# (then it is reported loudly, never silently).
ALLOW_NO_TESTS ?= 0
PYTEST_ARGS ?=

export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export PATH := $(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: test deps venv collections unit integration sanity demo bench clean help

help:
	@echo "targets: test (deps venv collections unit integration sanity), deps, venv,"
	@echo "         collections, unit, integration, sanity, demo, bench, clean"

test: deps venv collections unit integration sanity
	@$(PY) $(ROOT)/tests/summary.py $(ROOT)/.tmp/junit-unit.xml $(ROOT)/.tmp/junit-integration.xml

deps:
	@missing=(); \
	for p in $(DEB_PACKAGES); do \
	  dpkg -s "$$p" >/dev/null 2>&1 || missing+=("$$p"); \
	done; \
	if (( $${#missing[@]} )); then \
	  echo "deps: installing missing Debian packages: $${missing[*]}"; \
	  if [ "$$(id -u)" -ne 0 ]; then echo "deps: need root to install $${missing[*]}" >&2; exit 1; fi; \
	  apt-get update; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$${missing[@]}"; \
	else \
	  echo "deps: all Debian packages present"; \
	fi

venv: $(STAMP)

$(STAMP): $(ROOT)/requirements.txt $(ROOT)/requirements-test.txt
	@[ -x $(PY) ] || $(SYS_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r $(ROOT)/requirements.txt -r $(ROOT)/requirements-test.txt
	@touch $@

collections:
	@mkdir -p $(dir $(COLL_LINK))
	@if [ "$$(readlink $(COLL_LINK) 2>/dev/null)" != "$(ROOT)" ]; then \
	  rm -rf $(COLL_LINK); ln -s $(ROOT) $(COLL_LINK); \
	fi
	@echo "collections: $(COLL_LINK) -> $(ROOT)"

# Run pytest on a directory; exit status 5 (nothing collected) fails unless ALLOW_NO_TESTS=1.
define run_pytest
	@mkdir -p $(ROOT)/.tmp
	@rc=0; cd $(ROOT) && $(PY) -m pytest $(1) --junitxml=$(ROOT)/.tmp/junit-$(2).xml $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then \
	  if [ "$(ALLOW_NO_TESTS)" = 1 ]; then \
	    echo "WARNING: pytest collected NO tests in $(1) (allowed by ALLOW_NO_TESTS=1)" >&2; rc=0; \
	  else \
	    echo "ERROR: pytest collected no tests in $(1) (set ALLOW_NO_TESTS=1 to allow)" >&2; \
	  fi; \
	fi; \
	exit $$rc
endef

unit: venv collections
	$(call run_pytest,tests/unit,unit)

integration: venv collections
	$(call run_pytest,tests/integration,integration)

sanity: venv
	$(ROOT)/tests/sanity.sh

demo: deps venv collections
	$(ROOT)/scripts/demo.sh start

bench: venv collections
	$(ROOT)/benchmarks/backup_bench.sh

clean:
	-@[ -x $(ROOT)/scripts/demo.sh ] && $(ROOT)/scripts/demo.sh stop || true
	rm -rf $(ROOT)/.tmp $(ROOT)/.demo
