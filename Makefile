# shmfaas — the two commands: `make demo` and `make test` (README.md). Everything else is a step.
BUILD      ?= build
ASAN_BUILD ?= build-asan
PYTHON     ?= /usr/bin/python3
# Models: the CI trio, the tiny known-answer model and every model people deploy at opset 13 and 17
# (NAME-op17), docs/models.md. `make test` exports them all (about a minute and 1.6 GB on a quiet
# 2-core machine) and checks each against PyTorch; `make test-models` prints the table. Exported so
# that tests/engine/test_models.sh fails (not skips) when one of ZOO_MODELS is missing.
ZOO_DEPLOYED := mobilenet_v3_small shufflenet_v2_x1_0 densenet121 efficientnet_b0 googlenet resnet50 vgg16 transformer
ZOO_ALL_LIST := resnet18 mobilenet_v2 squeezenet1_1 $(foreach m,$(ZOO_DEPLOYED),$(m) $(m)-op17)
empty      :=
comma      := ,
ZOO_MODELS ?= known_answer,$(subst $(empty) $(empty),$(comma),$(ZOO_ALL_LIST))
export ZOO_MODELS

.PHONY: all bootstrap build zoo zoo-all test unit test-models demo run clean format images

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@[ -f $(BUILD)/build.ninja ] || out=$$(meson setup $(BUILD) 2>&1) || { echo "$$out"; exit 1; }
	@cd $(BUILD) && ninja --quiet

zoo: bootstrap
	@$(PYTHON) tools/zoo --out zoo --models $(ZOO_MODELS)

zoo-all: zoo

test: build zoo
	@BUILD=$(BUILD) ASAN_BUILD=$(ASAN_BUILD) scripts/run-tests

# Only the unit tests (suite 'unit'), in the normal build and under ASan+UBSan: seconds, no zoo.
unit: build
	@BUILD=$(BUILD) ASAN_BUILD=$(ASAN_BUILD) scripts/run-tests --unit

# Every zoo model (issue 6 acceptance 1) through shmfaas-run against PyTorch: one table.
test-models: build zoo
	@SHMFAAS_ZOO=zoo tests/engine/test_models.sh $(BUILD)/src/engine/shmfaas-run $(ZOO_ALL_LIST)

demo: build
	@scripts/demo

# The container image localhost/shmfaas:<version> (and :latest) with podman and no registry: FROM
# scratch, the programs plus their ldd closure, non-root user 12000 (deploy/images, docs/kubernetes.md).
images: build
	@CONTAINERS_CONF=$${CONTAINERS_CONF:-$(CURDIR)/tests/kubernetes/containers.conf} deploy/images --build $(BUILD)

# shmfaasd in the foreground, embedded defaults: state + models under var/shmfaasd (zoo models
# linked in by name), a quarter of the machine's memory as the store's budget. Ctrl-C stops it all.
RUN_LISTEN ?= 127.0.0.1:8080
RUN_BUDGET ?= $(shell awk '/MemTotal/ {printf "%dMi", $$2 / 1024 / 4}' /proc/meminfo)
run: build
	@mkdir -p var/shmfaasd/models
	@for m in zoo/*/model.onnx; do [ -f "$$m" ] || continue; n=$$(basename $$(dirname $$m)); \
	  ln -f "$$m" var/shmfaasd/models/$$n.onnx 2>/dev/null || cp "$$m" var/shmfaasd/models/$$n.onnx; done
	@echo "shmfaasd on http://$(RUN_LISTEN): try 'shmfaas deploy --name r18 --image resnet18' or faas-cli"
	@echo "basic auth is on: log in with the generated admin password, e.g."
	@echo "  shmfaas login --password-stdin < var/shmfaasd/secrets/basic-auth-password"
	@echo "  faas-cli login -g http://$(RUN_LISTEN) --password-stdin < var/shmfaasd/secrets/basic-auth-password"
	@exec $(BUILD)/src/gateway/shmfaasd --state var/shmfaasd --models var/shmfaasd/models \
	  --budget $(RUN_BUDGET) --listen $(RUN_LISTEN)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
