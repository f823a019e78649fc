# linuxnet.bridge — everything runs as root on a Linux machine; `make lab` and `make test` install
# what they need first (tests/tools/bootstrap.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
LAB_STATE := $(CURDIR)/.cache/lab/main
GUARD := $(CURDIR)/.cache/guard-before.txt
PYTEST := $(PY) -m pytest -p no:cacheprovider
# Ansible refuses a non-blocking stdin (as a background job may hand down): give it /dev/null.
STDIN := </dev/null

.PHONY: help deps lab lab-down test unit lab-tests integration molecule test-vm lint sanity build bench bench-quick clean docs test-matrix

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

deps: ## system packages (apt) and the .venv, when missing
	@tests/tools/bootstrap.sh $(MAKECMDGOALS)

lab: deps ## the main job: a reference topology in a lab, verified with traffic (LAB_KEEP=1 keeps it)
	@rc=0; ansible-playbook tests/lab/playbooks/lab.yml -e lab_state_dir=$(LAB_STATE) || rc=$$?; \
	if [ "$$LAB_KEEP" != 1 ]; then $(PY) -m tests.lab destroy --state-dir $(LAB_STATE) >/dev/null; fi; exit $$rc

lab-down: deps ## remove a lab kept with LAB_KEEP=1
	$(PY) -m tests.lab destroy --state-dir $(LAB_STATE)

test: deps ## every test: unit, lab tests, integration, Molecule, build, lint; then the host guard
	@mkdir -p .cache && $(PY) -m tests.guard save $(GUARD)
	@rc=0; \
	LINUXNET_STRICT_SKIPS=1 $(PYTEST) -q tests/unit tests/lab_tests tests/integration $(STDIN) || rc=1; \
	$(MAKE) --no-print-directory molecule || rc=1; \
	$(MAKE) --no-print-directory lint || rc=1; \
	$(PY) -m tests.guard check $(GUARD) || rc=1; \
	exit $$rc

unit: deps ## unit tests only (no root needed for these)
	$(PYTEST) -q tests/unit

lab-tests: deps ## tests of the lab itself (tests/lab: lab hosts, machines, VMs)
	$(PYTEST) -q tests/lab_tests $(STDIN)

integration: deps ## module and role tests inside lab hosts
	$(PYTEST) -q tests/integration $(STDIN)

# Every scenario but vm (a QEMU VM under TCG takes minutes: `make test-vm` runs it).
MOLECULE_SCENARIOS = $(filter-out vm,$(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))

molecule: deps ## Molecule scenarios (all but vm: default, fleet, machine, matrix)
	@rc=0; for s in $(MOLECULE_SCENARIOS); do molecule test -s $$s $(STDIN) || rc=1; done; exit $$rc

test-vm: deps ## the QEMU VM: its lab test and Molecule scenario vm (slow: minutes under TCG)
	LINUXNET_TEST_VM=1 $(PYTEST) -q tests/lab_tests/test_vm.py
	molecule test -s vm $(STDIN)

lint: deps ## ruff, ansible-lint (production profile), docs and changelog lint, ansible-test sanity
	@rc=0; ruff check plugins tests || rc=1; \
	ansible-lint --profile production || rc=1; \
	antsibull-docs lint-collection-docs --plugin-docs . || rc=1; \
	$(PY) tests/tools/doc_coverage.py || rc=1; \
	antsibull-changelog lint || rc=1; \
	tests/tools/sanity.sh || rc=1; \
	exit $$rc

sanity: deps ## ansible-test sanity only
	tests/tools/sanity.sh

build: deps ## build the collection tarball
	ansible-galaxy collection build --force --output-path .cache/dist .

docs: deps ## the docsite (antsibull-docs + Sphinx) in .cache/docs/build/html
	tests/tools/docs.sh

test-matrix: deps ## sanity + unit tests on ansible-core 2.16, 2.17, 2.18, 2.19, 2.20 (venvs in .cache/matrix)
	tests/tools/test_matrix.sh

bench: deps ## benchmarks N=10,100,1000 against netavark, a naive playbook and the kernel floor
	LINUXNET_BENCH=1 tests/tools/bootstrap.sh bench
	$(PY) -m tests.bench --sizes 10,100,1000

bench-quick: deps ## benchmarks N=10,100
	LINUXNET_BENCH=1 tests/tools/bootstrap.sh bench
	$(PY) -m tests.bench --sizes 10,100

clean: ## remove caches (not the venv)
	rm -rf .cache tests/output
