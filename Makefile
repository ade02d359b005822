# The two commands a new user needs: `make run` and `make test`. Everything else is a step
# they call. Nothing here needs anything installed by hand beyond Python 3.11, Go and openssl.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: help venv runners-venv crds crds-check lint test test-unit test-integration \
        cluster cluster-down cluster-status test-cluster run bench clean chart-crds chart-check tools kind \
        fuzz images chart-readme

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@echo "==> creating the virtualenv in $(VENV) (pinned by requirements.lock)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip==25.3
	@$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create the virtualenv with pinned dependencies

# The runners' own environment (boto3, anthropic, moto for a local S3): what the runner
# images install, kept apart because botocore and the Kubernetes client pin
# python-dateutil to disjoint ranges.
RUNNERS_VENV := .venv-runners
RUNNERS_STAMP := $(RUNNERS_VENV)/.installed-stamp
$(RUNNERS_STAMP): pyproject.toml requirements-runners.lock
	@echo "==> creating the runner virtualenv in $(RUNNERS_VENV)"
	@test -x $(RUNNERS_VENV)/bin/python || $(PYTHON) -m venv $(RUNNERS_VENV)
	@$(RUNNERS_VENV)/bin/python -m pip install --quiet --upgrade pip==25.3
	@$(RUNNERS_VENV)/bin/python -m pip install --quiet -r requirements-runners.lock
	@$(RUNNERS_VENV)/bin/python -m pip install --quiet --no-deps -e .
	@touch $(RUNNERS_STAMP)

# One venv per framework runner (.venv-langgraph, .venv-crewai, .venv-agno), each from its
# own lock, as each has its own image: their trees pin shared packages (pydantic, openai,
# httpx...) to different versions, so one venv cannot hold them all.
FRAMEWORKS := langgraph crewai agno
FRAMEWORK_STAMPS := $(foreach fw,$(FRAMEWORKS),.venv-$(fw)/.installed-stamp)
runners-venv: $(RUNNERS_STAMP) $(FRAMEWORK_STAMPS) ## Create the runner virtualenvs (boto3, anthropic, claude-agent-sdk with its Claude Code CLI, local S3; one per framework)

.venv-%/.installed-stamp: pyproject.toml requirements-runners-%.lock
	@echo "==> creating the $* runner virtualenv in .venv-$* (requirements-runners-$*.lock)"
	@test -x .venv-$*/bin/python || $(PYTHON) -m venv .venv-$*
	@.venv-$*/bin/python -m pip install --quiet --upgrade pip==25.3
	@.venv-$*/bin/python -m pip install --quiet -r requirements-runners-$*.lock
	@.venv-$*/bin/python -m pip install --quiet --no-deps -e .
	@touch $@

images: ## Build every runner image with Docker (not run in CI): ambient/runner-<name>:<tag>
	@for r in script claude-code $(FRAMEWORKS) n8n; do \
	  echo "==> ambient/runner-$$r:$(RUNNER_IMAGE_TAG)"; \
	  docker build -f runners/images/Dockerfile --build-arg RUNNER=$$r \
	    -t ambient/runner-$$r:$(RUNNER_IMAGE_TAG) . || exit 1; \
	done
RUNNER_IMAGE_TAG ?= 0.2.0

crds: $(STAMP) ## Regenerate the CRD YAML from crds/models.py
	$(PY) -m ambient.crds.generate
	cp crds/ambient.ai_*.yaml charts/ambient/files/crds/

crds-check: $(STAMP) ## Fail when the committed CRD YAML drifts from the models
	$(PY) -m ambient.crds.generate --check

lint: $(STAMP) ## ruff, mypy --strict and the import layering contracts (lint-imports)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy -p ambient
	$(VENV)/bin/lint-imports --no-cache
	MYPYPATH=hack $(VENV)/bin/mypy hack/cluster.py hack/run.py hack/controlplane

test-unit: $(STAMP) ## Unit tests only (no cluster)
	$(VENV)/bin/pytest tests/unit

# The tests' control plane is the `test` profile's (its own state and ports, beside `make
# run`'s), started empty so nothing a demo, a benchmark or an earlier run left is in it.
# Target-specific exports reach the prerequisites too (chart-check's dry run uses it).
test-cluster: export AMBIENT_CLUSTER_PROFILE = test
test-cluster: $(STAMP) ## Start the tests' local control plane afresh (empties its state)
	$(PY) hack/cluster.py down --purge
	$(PY) hack/cluster.py up

test-integration: export AMBIENT_CLUSTER_PROFILE = test
test-integration: test-cluster $(RUNNERS_STAMP) $(FRAMEWORK_STAMPS) ## Integration tests on a fresh local control plane
	$(VENV)/bin/pytest tests/integration tests/e2e; status=$$?; $(PY) hack/cluster.py down; exit $$status

FUZZ_EXAMPLES ?= 2000
fuzz: $(STAMP) ## Property tests and schemathesis with random examples (FUZZ_EXAMPLES each; make test runs a fixed, smaller set)
	AMBIENT_HYPOTHESIS_PROFILE=fuzz AMBIENT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	  $(VENV)/bin/pytest -p no:cacheprovider -q \
	  $(filter-out tests/unit/conftest.py,$(shell grep -rlE "from hypothesis|import schemathesis" tests/unit))

test: export AMBIENT_CLUSTER_PROFILE = test
test: lint crds-check test-cluster chart-check $(RUNNERS_STAMP) $(FRAMEWORK_STAMPS) ## Lint, then unit and integration tests on a fresh local control plane
	$(VENV)/bin/pytest tests/unit tests/integration tests/e2e; status=$$?; $(PY) hack/cluster.py down; exit $$status

chart-crds: $(STAMP) ## Copy the generated CRD YAML into the Helm chart (a unit test fails on drift)
	cp crds/ambient.ai_*.yaml charts/ambient/files/crds/
	$(PY) hack/chart_fastpath.py

tools: ## Build (cached, pinned) helm and kube-score for the chart checks
	hack/build-tools.sh

chart-readme: $(STAMP) ## Regenerate charts/ambient/README.md's values table from values.yaml's comments
	$(PY) hack/chart_readme.py

chart-check: $(STAMP) ## helm lint, helm template + server-side dry run, kube-score, hadolint
	hack/chart-check.sh

kind: $(STAMP) ## With Docker: kind cluster, images built and loaded, chart installed, smoke Session
	hack/kind.sh

cluster: $(STAMP) ## Build (cached) and start the local control plane; prints the kubeconfig
	$(PY) hack/cluster.py up

cluster-down: $(STAMP) ## Stop the local control planes (`make run`'s, the tests' and the benchmarks')
	for profile in run test bench; do AMBIENT_CLUSTER_PROFILE=$$profile $(PY) hack/cluster.py down; done

cluster-status: $(STAMP) ## Is the local control plane up?
	$(PY) hack/cluster.py status

run: $(STAMP) ## Start everything, run the example Session to Completed, keep the operator running
	$(PY) hack/run.py $(if $(USE_CURRENT_CONTEXT),--use-current-context,)

bench: $(STAMP) ## Benchmarks: Sessions vs direct Jobs; the ingress; the queue; the admission webhook; the CRD rules; the artifact store
	$(PY) tests/bench/bench_sessions.py
	$(PY) tests/bench/bench_ingress.py
	$(PY) tests/bench/bench_ingress_routes.py
	$(PY) tests/bench/bench_queue.py
	$(PY) tests/bench/bench_admission.py
	$(PY) tests/bench/bench_admission_cel.py
	$(PY) tests/bench/bench_crd_rules.py
	$(PY) tests/bench/bench_store.py
	$(PY) tests/bench/bench_scale.py
	$(PY) tests/bench/bench_failover.py
	$(PY) tests/bench/bench_peer.py

clean: ## Remove the virtualenv and caches (the control plane cache stays in ~/.cache/ambient)
	rm -rf $(VENV) $(RUNNERS_VENV) $(foreach fw,$(FRAMEWORKS),.venv-$(fw)) .mypy_cache .ruff_cache .pytest_cache
