# modeldeploy: two commands on a fresh machine, `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CRD := crds/modeldeploy.dev_modeldeployments.yaml
export KUBECONFIG := $(CURDIR)/.cluster/kubeconfig

.PHONY: demo test unit e2e cluster cluster-down crds crds-check lint venv clean test-deps

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# The canary tests judge rollouts with a real Prometheus: Debian's package.
test-deps:
	@command -v prometheus >/dev/null || { \
	  echo "installing Debian's prometheus package (for the analysis tests)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
	    || { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; }

cluster:
	@$(PYTHON) tests/cluster/localcluster.py up

cluster-down:
	@$(PYTHON) tests/cluster/localcluster.py down

crds: venv
	$(PY) -m modeldeploy.api.crd > $(CRD)

crds-check: venv
	@$(PY) -m modeldeploy.api.crd | diff -u $(CRD) - \
	  || { echo "error: $(CRD) is stale; run 'make crds' and commit it" >&2; exit 1; }

lint: venv
	$(VENV)/bin/ruff check operator tests examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: venv
	$(PY) -m pytest tests/unit -q

e2e: venv test-deps cluster
	$(PY) -m pytest tests/e2e -q

# Everything CI runs: checks, unit tests, end-to-end tests on the local control plane.
test: venv test-deps crds-check lint cluster
	$(PY) -m pytest -q

demo: venv cluster
	$(PY) examples/demo.py

clean: cluster-down
	rm -rf $(VENV) .cluster
