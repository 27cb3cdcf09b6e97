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
# Collections we depend on come out of the `ansible` PyPI wheel (Galaxy is unreachable):
# amazon.aws for buckets and IAM, community.docker + ansible.posix for molecule.
ANSIBLE_PKG := ansible==12.3.0
DEP_COLLECTIONS := amazon/aws community/docker ansible/posix
WHEELS      := $(ROOT)/.tmp/wheels
DEP_STAMP   := $(COLL_ROOT)/.deps-$(subst ==,-,$(ANSIBLE_PKG)).stamp

# Debian packages the project needs on the machine running tests / the demo.
DEB_PACKAGES := postgresql-15 postgresql-contrib gnupg zstd python3-venv gzip shellcheck
# ... and for the molecule role tests: podman serves the Docker API (there is no Docker
# engine), runc because crun fails on these hosts, debootstrap builds the base image (no registry).
DEB_PACKAGES += podman runc debootstrap

# Molecule: the image every scenario boots (tests/molecule/Containerfile) and the socket on
# which podman serves the Docker API. `make molecule MOLECULE_ROLES="gpg_keys"` runs some roles only.
MOLECULE_IMAGE      := localhost/dbdr-debian-systemd:bookworm
PODMAN_SOCKET       := /run/podman/podman.sock
CONTAINERS_CONF     := /etc/containers/containers.conf
MOLECULE_ROLES      ?=

# pytest exits 5 when it collects no test; that is a failure unless ALLOW_NO_TESTS=1
# (then it is reported loudly, never silently).
ALLOW_NO_TESTS ?= 0
PYTEST_ARGS ?=

export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export PATH := $(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: test deps venv collections unit integration molecule podman molecule-image sanity demo bench clean help

help:
	@echo "targets: test (deps venv collections unit integration molecule sanity), deps, venv,"
	@echo "         collections, unit, integration, molecule, podman, molecule-image, sanity, demo, bench, clean"

test: deps venv collections unit integration molecule sanity
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

collections: $(DEP_STAMP)
	@mkdir -p $(dir $(COLL_LINK))
	@if [ "$$(readlink $(COLL_LINK) 2>/dev/null)" != "$(ROOT)" ]; then \
	  rm -rf $(COLL_LINK); ln -s $(ROOT) $(COLL_LINK); \
	fi
	@echo "collections: $(COLL_LINK) -> $(ROOT)"

$(DEP_STAMP): | venv
	@mkdir -p $(WHEELS) $(COLL_ROOT)/ansible_collections
	$(PY) -m pip download --disable-pip-version-check -q --no-deps "$(ANSIBLE_PKG)" -d $(WHEELS)
	$(PY) $(ROOT)/scripts/extract_collections.py $(WHEELS) $(COLL_ROOT) $(DEP_COLLECTIONS)
	@rm -f $(COLL_ROOT)/.deps-*.stamp; touch $@

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

# Role tests: `molecule test` of every roles/*/molecule/*/ scenario, with the docker driver
# talking to podman's Docker-compatible API.
molecule podman molecule-image: export DOCKER_HOST := unix://$(PODMAN_SOCKET)

molecule: deps venv collections molecule-image
	$(ROOT)/tests/molecule/run_scenarios.sh $(MOLECULE_ROLES)

# containers.conf settings podman needs here, and the API service (started once, left running).
podman: deps venv
	@if [ "$$(id -u)" -ne 0 ]; then echo "podman: the molecule set-up needs root" >&2; exit 1; fi
	$(SYS_PYTHON) $(ROOT)/tests/molecule/containers_conf.py $(CONTAINERS_CONF)
	$(ROOT)/tests/molecule/podman_api.sh $(PODMAN_SOCKET) $(PY)

molecule-image: podman
	$(ROOT)/tests/molecule/build_image.sh $(MOLECULE_IMAGE)

sanity: venv
	$(ROOT)/tests/sanity.sh

demo: deps venv collections
	$(ROOT)/scripts/demo.sh start

bench: venv collections
	$(ROOT)/benchmarks/backup_bench.sh

clean:
	-@[ -x $(ROOT)/scripts/demo.sh ] && $(ROOT)/scripts/demo.sh stop || true
	rm -rf $(ROOT)/.tmp $(ROOT)/.demo
