# modeldeploy: two commands on a fresh machine, `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Generated from the pydantic models: crds/modeldeploy.dev_<plural>.yaml for each.
GENERATED_CRDS := modeldeployments analysisproviders
export KUBECONFIG := $(CURDIR)/.cluster/kubeconfig
CHART := helm/modeldeploy
# kubectl and helm, built with the local control plane (`make cluster` or `localcluster.py build`).
KUBECTL := .cluster/bin/kubectl
HELM := .cluster/bin/helm

.PHONY: demo test shell image bench bench-peers chaos mutation unit e2e cluster cluster-down crds crds-check lint venv clean \
	helm-crds helm-check manifests-check

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "error: needs Python >= 3.11 with its venv module; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)," \
	    "or lacks ensurepip (on Debian: apt-get install python3-venv)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

cluster:
	@$(PYTHON) tests/cluster/localcluster.py up

# A shell with the cluster's kubectl and helm, `modeldeploy` and `kubectl modeldeploy` on PATH and KUBECONFIG
# set (what `source .cluster/env` gives any shell).
shell: venv cluster
	@echo "kubectl, helm, modeldeploy and kubectl modeldeploy now talk to the local control plane; exit to leave"
	@bash --rcfile <(printf '[ -f ~/.bashrc ] && . ~/.bashrc\n. .cluster/env\nPS1="(modeldeploy) $$PS1"\n') -i

# The operator's image, built from the Dockerfile with buildah and imported into the real node under the chart's
# default name and tag: `helm install modeldeploy helm/modeldeploy` then runs the operator as a pod there.
# (Needs the running cluster: `make cluster` first.)
image:
	@$(PYTHON) tests/cluster/localcluster.py image

cluster-down:
	@$(PYTHON) tests/cluster/localcluster.py down

crds: venv
	@for plural in $(GENERATED_CRDS); do $(PY) -m modeldeploy.api.crd $$plural > crds/modeldeploy.dev_$$plural.yaml; done
	@$(MAKE) --no-print-directory helm-crds

# Also: the chart's copies equal crds/, and crds/Kustomization (what manifests/ installs) lists every CRD.
crds-check: venv
	@for plural in $(GENERATED_CRDS); do crd=crds/modeldeploy.dev_$$plural.yaml; \
	  $(PY) -m modeldeploy.api.crd $$plural | diff -u $$crd - \
	    || { echo "error: $$crd is stale; run 'make crds' and commit it" >&2; exit 1; }; done
	@diff -r --exclude=Kustomization crds $(CHART)/crds \
	  || { echo "error: $(CHART)/crds differs from crds/; run 'make helm-crds' and commit it" >&2; exit 1; }
	@diff <(cd crds && ls *.yaml | sort) <(sed -n 's/^  - //p' crds/Kustomization | sort) \
	  || { echo "error: crds/Kustomization must list exactly the crds/*.yaml files" >&2; exit 1; }

# Helm reads only files inside the chart, so the chart carries copies of crds/*.yaml.
helm-crds:
	@mkdir -p $(CHART)/crds
	@rm -f $(CHART)/crds/*.yaml
	cp crds/*.yaml $(CHART)/crds/

$(KUBECTL) $(HELM):
	@$(PYTHON) tests/cluster/localcluster.py build >/dev/null

# The chart lints with its defaults and with every optional part on.
# (tests/e2e/test_install.py installs it and checks what it renders against the API server.)
helm-check: $(HELM)
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --set 'watchedNamespaces={team-a,team-b}' --set replicas=2 \
	  --set serviceMonitor.enabled=true --set logLevel=debug \
	  --set prometheusRule.enabled=true --set grafanaDashboard.enabled=true

# Both kustomizations build (tests/e2e/test_install.py applies them).
manifests-check: $(KUBECTL)
	$(KUBECTL) kustomize manifests >/dev/null
	$(KUBECTL) kustomize manifests/overlays/namespaced >/dev/null

lint: venv
	$(VENV)/bin/ruff check operator tests examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: venv
	$(PY) -m pytest tests/unit -q

e2e: venv cluster
	$(PY) -m pytest tests/e2e -q

# Everything CI runs: checks, unit tests, end-to-end tests on the local control plane.
test: venv crds-check helm-check manifests-check lint cluster
	$(PY) -m pytest -q

demo: venv cluster
	$(PY) examples/demo.py

# Mutation testing of the rollout engine (tests/mutation.py): prints the score per module and the survivors.
# Slow (tens of minutes), so not part of `make test`. MUTATE="operator/modeldeploy/desired/weights.py" for one.
mutation: venv
	@$(VENV)/bin/pip install --quiet "mutmut==3.8.1"
	$(PY) tests/mutation.py

# The fault harness in full (tests/chaos.py): the operator killed after each of its writes, every API fault
# schedule alone, and the generated bad specs; prints their tables (docs/reliability.md keeps the latest).
# `make test` runs a subset of the first two.
chaos: venv cluster
	MODELDEPLOY_CHAOS=all $(PY) -m pytest tests/e2e/test_chaos.py tests/e2e/test_bad_specs.py -q -s

# Speed and memory, printed (not asserted): BENCH_MODELS=200 make bench for a bigger run.
bench: venv cluster
	$(PY) tests/bench/bench.py

# The same canary workload under the Argo Rollouts controller (built from its pinned Go module on first use,
# see tests/bench/peers/) and under modeldeploy, printed side by side. BENCH_PEERS_N=1000 for a bigger race.
bench-peers: venv cluster
	$(PY) tests/bench/peers.py

clean: cluster-down
	rm -rf $(VENV) .cluster
