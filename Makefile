# shmfaas — the two commands: `make demo` and `make test` (README.md). Everything else is a step.
BUILD      ?= build
ASAN_BUILD ?= build-asan
PYTHON     ?= /usr/bin/python3
# Models the tests need; `make zoo-all` adds the big ones (resnet50, vgg16).
ZOO_MODELS ?= resnet18,mobilenet_v2,squeezenet1_1,known_answer
ZOO_ALL    := $(ZOO_MODELS),resnet50,vgg16

.PHONY: all bootstrap build zoo zoo-all test demo run clean format

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) >/dev/null
	@ninja -C $(BUILD) >/dev/null

zoo: bootstrap
	@$(PYTHON) tools/zoo --out zoo --models $(ZOO_MODELS)

zoo-all: bootstrap
	@$(PYTHON) tools/zoo --out zoo --models $(ZOO_ALL)

test: build zoo
	@BUILD=$(BUILD) ASAN_BUILD=$(ASAN_BUILD) scripts/run-tests

demo: build zoo
	@scripts/demo

# shmfaasd in the foreground, embedded defaults: state + models under var/shmfaasd (zoo models
# linked in by name), a quarter of the machine's memory as the store's budget. Ctrl-C stops it all.
RUN_LISTEN ?= 127.0.0.1:8080
RUN_BUDGET ?= $(shell awk '/MemTotal/ {printf "%dMi", $$2 / 1024 / 4}' /proc/meminfo)
run: build
	@mkdir -p var/shmfaasd/models
	@for m in zoo/*/model.onnx; do [ -f "$$m" ] || continue; n=$$(basename $$(dirname $$m)); \
	  ln -f "$$m" var/shmfaasd/models/$$n.onnx 2>/dev/null || cp "$$m" var/shmfaasd/models/$$n.onnx; done
	@echo "shmfaasd on http://$(RUN_LISTEN): try 'shmfaas deploy --name r18 --image resnet18' or faas-cli"
	@exec $(BUILD)/src/gateway/shmfaasd --state var/shmfaasd --models var/shmfaasd/models \
	  --budget $(RUN_BUDGET) --listen $(RUN_LISTEN)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
