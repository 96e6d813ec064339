# municloud: the two commands of the quick start are `make demo` and `make test`.
# Everything else here is what they are made of, and can be run on its own.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)

INVENTORY ?= inventories/sample
# The inventories `make test` builds labs of: the sample and a hand-written second prefecture.
LAB_INVENTORIES ?= inventories/sample inventories/okayama
REPORTS := reports
# The acceptance tests wait on hosts (timers, lock-outs, rate caps) more than they compute; the
# updates tests hold one lock between them. worksteal hands a waiting worker's queue to an idle
# one, where the default (load) leaves it queued behind the updates tests: the sample lab's
# acceptance took 554 s with load and 342 s with worksteal (2026-12-01, 4 workers).
PYTEST_WORKERS ?= 4
# The vault password of the staff's enrolment (multi-factor login): yours if you set
# ANSIBLE_VAULT_PASSWORD_FILE, else the labs' own, which `municloud lab up` makes.
WITH_VAULT := ANSIBLE_VAULT_PASSWORD_FILE=$${ANSIBLE_VAULT_PASSWORD_FILE:-$(abspath .lab/vault-password)}

.PHONY: demo test install unit lint lab-up lab-down converge acceptance audit report diagrams docs test-lab bench bench-matrix clean

## demo: install, build the sample lab, deploy everything, run the acceptance tests, show the result
demo: install
	municloud validate $(INVENTORY)
	municloud lab up --inventory $(INVENTORY)
	$(WITH_VAULT) ansible-playbook -i $(INVENTORY) playbooks/site.yml
	-$(MAKE) --no-print-directory acceptance INVENTORY=$(INVENTORY)
	$(MAKE) --no-print-directory diagrams INVENTORY=$(INVENTORY)
	$(MAKE) --no-print-directory report INVENTORY=$(INVENTORY)

## test: the whole suite: lint, unit tests, then labs of every LAB_INVENTORIES and their acceptance
test: install lint unit test-lab

install:
	./scripts/install.sh

unit:
	$(BIN)/pytest tests/unit -q -m "not lab" -n 2

lint:
	$(BIN)/ruff check municloud tests pulumi benchmarks plugins modules
	$(BIN)/mypy
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint -q roles playbooks

## test-lab: for each inventory: lab up, converge, idempotent rerun, check mode, acceptance
## (each step timed, and the lab tests' slowest listed: where make test spends its time)
test-lab:
	time $(BIN)/pytest tests/lab -q -m lab --durations=12
	for inv in $(LAB_INVENTORIES); do \
	  for step in lab-up converge acceptance; do \
	    echo "==> $$step $$inv"; \
	    time $(MAKE) --no-print-directory $$step INVENTORY=$$inv; \
	  done; \
	done

lab-up:
	municloud lab up --inventory $(INVENTORY)

lab-down:
	municloud lab down --inventory $(INVENTORY)

## converge: site.yml, then again (must change nothing), then --check --diff (must run clean)
converge:
	mkdir -p $(REPORTS)
	time $(WITH_VAULT) ansible-playbook -i $(INVENTORY) playbooks/site.yml
	time $(WITH_VAULT) ansible-playbook -i $(INVENTORY) playbooks/site.yml >$(REPORTS)/rerun-$(notdir $(INVENTORY)).log 2>&1 || { tail -40 $(REPORTS)/rerun-$(notdir $(INVENTORY)).log; false; }
	python3 scripts/assert_no_changes.py $(REPORTS)/rerun-$(notdir $(INVENTORY)).log
	time $(WITH_VAULT) ansible-playbook -i $(INVENTORY) playbooks/site.yml --check --diff >/dev/null

acceptance:
	mkdir -p $(REPORTS)
	$(WITH_VAULT) $(BIN)/pytest tests/acceptance -q -n $(PYTEST_WORKERS) --dist worksteal \
	  --inventory $(INVENTORY) \
	  --junitxml=$(REPORTS)/acceptance-$(notdir $(INVENTORY)).xml

## audit: site.yml in check mode (--check --diff), which changes nothing: what a run would
## change per host and task, as drift findings in reports/audit-<inventory>.json; exits 1 when a
## host has drifted or could not be audited (docs/report.md)
audit:
	municloud audit --inventory $(INVENTORY) --out $(REPORTS)/audit-$(notdir $(INVENTORY)).json

## report: the summary per municipality and clause, and its pages (HTML for people, JSON) in
## reports/<inventory>/: index.html links each municipality's (docs/report.md); with the drift
## findings of `make audit` when reports/audit-<inventory>.json exists
report:
	municloud report --inventory $(INVENTORY) $(REPORTS)/acceptance-$(notdir $(INVENTORY)).xml \
	  --out $(REPORTS)/$(notdir $(INVENTORY)) \
	  $(if $(wildcard $(REPORTS)/audit-$(notdir $(INVENTORY)).json),--audit $(REPORTS)/audit-$(notdir $(INVENTORY)).json)

## diagrams: an SVG per municipality of its zones and allowed flows, for design documents
diagrams:
	@echo "diagrams of the allowed flows, one per municipality:"
	@municloud diagram $(INVENTORY) --output $(REPORTS)/diagrams/$(notdir $(INVENTORY)) | sed 's/^/  /'

## docs: write docs/flows.md and docs/cloud-invariants.md again from the model (a unit test says
## when either is stale)
docs:
	municloud flows > docs/flows.md
	municloud cloud invariants > docs/cloud-invariants.md

## bench: the lab and converge timings of the closing note (writes benchmarks/lab.figures.md)
bench: install
	$(BIN)/python benchmarks/lab.py

## bench-matrix: size and time of the reachability matrix on the sample and okayama labs
## (both up and converged first: make lab-up converge INVENTORY=...)
bench-matrix: install
	$(BIN)/python benchmarks/matrix.py

clean:
	for inv in $(LAB_INVENTORIES); do municloud lab down --inventory $$inv || true; done
	rm -rf $(REPORTS)
