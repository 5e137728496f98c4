#!/bin/sh
# The int8 zoo families (issue 17): tools/quantize --families writes zoo resnet18 and
# mobilenet_v2 quantized QDQ-style and dynamically, with ONNX Runtime's answers, then
# test_families.py holds the engine to families-int8-status.txt (AVX2 and the host's ISA).
# Skipped (77) without the zoo (make zoo) or node.
#   test_families_int8.sh BUILD_DIR   (SHMFAAS_SOURCE, SHMFAAS_ZOO as tests/meson.build sets)
set -u
src=${SHMFAAS_SOURCE:-.}
TEST_NAME=families-int8
. "$(dirname "$0")/lib.sh"
/usr/bin/python3 "$src/tools/quantize" --families "$tmp" --zoo "${SHMFAAS_ZOO:-$src/zoo}" \
    >"$tmp/quantize.log" 2>&1
rc=$?
[ "$rc" = 77 ] && { cat "$tmp/quantize.log"; exit 77; }
[ "$rc" = 0 ] || { cat "$tmp/quantize.log"; exit 1; }
/usr/bin/python3 "$src/tests/engine/test_families.py" "$1" "$tmp" \
    "$src/tests/engine/families-int8-status.txt"
