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

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
