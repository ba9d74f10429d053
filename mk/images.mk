# Container images: one Dockerfile (docker/Dockerfile) for every service and variant, built with buildah
# (no Docker engine needed) from a locally made Python base and per-image wheelhouses; started for real
# by `make test-images`. docker/image.sh holds the image table.
# Included by the Makefile (-include mk/*.mk) before its own rules: keep its default goal.
_images_default_goal := $(.DEFAULT_GOAL)

# Images are $(REGISTRY)/talker-<service>:$(TAG)[-<variant>] (no registry: localhost/talker-...).
REGISTRY ?=
TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' helm/talker/Chart.yaml)
# buildah, or docker (which loads each image from buildah's store, then pushes it).
PUSH_WITH ?= buildah
PYTHON_IMAGE ?= localhost/talker-python:3.11
IMAGES := $(shell bash docker/image.sh list)
HEAVY_IMAGES := $(shell bash docker/image.sh list-heavy)
_svc = $(firstword $(subst -, ,$1))
image_ref = $(if $(REGISTRY),$(REGISTRY),localhost)/talker-$(call _svc,$1):$(TAG)$(patsubst $(call _svc,$1)%,%,$1)

TEST_EXTRA += test-images
BENCH_EXTRA += bench-images

.PHONY: image-tools images-base images images-heavy heavy-disk push push-heavy test-images test-images-heavy bench-images

image-tools:
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null && command -v podman >/dev/null || \
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap podman >/dev/null; }

# The Python base, made once (debootstrap) and kept in buildah's store.
images-base: image-tools
	@buildah inspect --type image $(PYTHON_IMAGE) >/dev/null 2>&1 || bash docker/python-base.sh $(PYTHON_IMAGE)

# image-<name> builds one image; a failure names it. Unchanged images come from buildah's layer cache
# (seconds); wheel files already downloaded are kept. Each build's time and size are shown.
image-%: images-base
	@t0=$$(date +%s); PYTHON_IMAGE=$(PYTHON_IMAGE) bash docker/image.sh build $* $(call image_ref,$*) || \
		{ echo "image $*: build failed"; exit 1; }; \
		echo "image $*: $(call image_ref,$*) in $$(( $$(date +%s) - t0 )) s, $$(buildah images --format '{{.Size}}' $(call image_ref,$*))"

images: $(addprefix image-,$(IMAGES))
# vLLM (CPU and CUDA) and Coqui: several GB each, kept out of `make test`. A build holds the wheelhouse,
# the build stage's environment, the runtime copy and, while committing, two temporary copies of a layer
# (the Coqui environment is ~7.6 GB): refused below HEAVY_FREE_GB free in the image store, before it starts.
HEAVY_FREE_GB ?= 45
images-heavy: heavy-disk $(addprefix image-,$(HEAVY_IMAGES))
heavy-disk:
	@free=$$(df -BG --output=avail /var/lib/containers 2>/dev/null | tail -1 | tr -dc 0-9); \
	[ "$${free:-0}" -ge $(HEAVY_FREE_GB) ] || { echo "images-heavy: $${free:-?} GB free in /var/lib/containers," \
		"$(HEAVY_FREE_GB) GB needed (HEAVY_FREE_GB=...)"; exit 1; }

# push-<name> pushes one image to $(REGISTRY) (buildah, or docker with PUSH_WITH=docker).
push-%: image-%
	@[ -n "$(REGISTRY)" ] || { echo "make push: set REGISTRY (e.g. REGISTRY=ghcr.io/acme)"; exit 1; }
	@ref=$(call image_ref,$*); if [ "$(PUSH_WITH)" = docker ]; then \
		buildah push $$ref docker-daemon:$$ref && docker push $$ref; else buildah push $$ref docker://$$ref; fi; \
		echo "pushed $$ref"

push: $(addprefix push-,$(IMAGES))
push-heavy: $(addprefix push-,$(HEAVY_IMAGES))

# Each image started for real: SERVING with its model, /metrics, and a spoken turn through all five.
test-images: images $(VENV)/dev/.installed
	TALKER_TEST_IMAGES="$(foreach i,$(IMAGES),$(i)=$(call image_ref,$(i)))" \
		$(VENV)/dev/bin/python -m pytest -q -p no:cacheprovider tests/images

# The heavy variants started for real: SERVING, /metrics and their own request (vLLM CPU on the embedded
# SmolLM2, Coqui on a tiny random VITS). The CUDA image cannot serve without a GPU: it is built, and its
# environment imports vllm. Not in `make test` (~12 GB of images; see docs/benchmarks.md for times).
test-images-heavy: images-heavy $(VENV)/dev/.installed
	TALKER_TEST_IMAGES="$(foreach i,$(filter-out %-cuda,$(HEAVY_IMAGES)),$(i)=$(call image_ref,$(i)))" \
	TALKER_TEST_CUDA_IMAGES="$(foreach i,$(filter %-cuda,$(HEAVY_IMAGES)),$(i)=$(call image_ref,$(i)))" \
		$(VENV)/dev/bin/python -m pytest -q -p no:cacheprovider tests/images

# The size of each built image (heavy ones too, if built) -> out/bench/images.md (docs/benchmarks.md).
bench-images: images
	@mkdir -p out/bench; { echo "## Images"; echo; \
		echo "Uncompressed sizes in buildah's store (\`make images\`; base \`$(PYTHON_IMAGE)\`:" \
			"$$(buildah images --format '{{.Size}}' $(PYTHON_IMAGE)))."; echo; \
		echo "| image | size |"; echo "|---|---|"; \
		for ref in $(foreach i,$(IMAGES) $(HEAVY_IMAGES),$(call image_ref,$(i))); do \
			size=$$(buildah images --format '{{.Size}}' $$ref 2>/dev/null) && [ -n "$$size" ] && \
			echo "| \`$$ref\` | $$size |"; done; true; } > out/bench/images.md; cat out/bench/images.md

.DEFAULT_GOAL := $(_images_default_goal)
