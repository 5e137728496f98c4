#!/bin/sh
# tools/zoo: the known-answer model's files and meta, a second run skips it, another --opset
# re-exports it, NAME-op17 goes to its own directory, and no temporary file is left behind.
#   test_zoo.sh   (SHMFAAS_SOURCE points at the source tree)
set -u

zoo_tool=${SHMFAAS_SOURCE:-.}/tools/zoo
TEST_NAME=zoo-test
. "$(dirname "$0")/lib.sh"

/usr/bin/python3 "$zoo_tool" --out "$tmp" --models known_answer >"$tmp/first.log" 2>&1 ||
    { cat "$tmp/first.log"; exit 1; }
for f in model.onnx input.json output.json labels.txt meta.json; do
    [ -s "$tmp/known_answer/$f" ] || fail "known_answer/$f missing or empty"
done
[ "$(wc -l <"$tmp/known_answer/labels.txt")" = 10 ] || fail "labels.txt has not 10 lines"
grep -q '"opset": 13' "$tmp/known_answer/meta.json" || fail "meta.json lacks opset 13"
grep -q "known_answer .*exported" "$tmp/first.log" || fail "no progress line: $(cat "$tmp/first.log")"

/usr/bin/python3 "$zoo_tool" --out "$tmp" --models known_answer >"$tmp/second.log" 2>&1
grep -q "known_answer .*up to date" "$tmp/second.log" || fail "second run re-exported: $(cat "$tmp/second.log")"

/usr/bin/python3 "$zoo_tool" --out "$tmp" --models known_answer --opset 14 >"$tmp/third.log" 2>&1
grep -q '"opset": 14' "$tmp/known_answer/meta.json" || fail "--opset 14 did not re-export"

/usr/bin/python3 "$zoo_tool" --out "$tmp" --models known_answer-op17 --opset 14 >"$tmp/fourth.log" 2>&1
grep -q '"opset": 17' "$tmp/known_answer-op17/meta.json" || fail "-op17 not exported at opset 17"
grep -q '"opset": 14' "$tmp/known_answer/meta.json" || fail "-op17 overwrote the bare export"
cmp -s "$tmp/known_answer/input.json" "$tmp/known_answer-op17/input.json" ||
    fail "-op17 has another reference input"

leftover=$(find "$tmp" -name '.tmp-*')
[ -z "$leftover" ] || fail "temporary files left: $leftover"

/usr/bin/python3 "$zoo_tool" --out "$tmp" --models nosuchnet >/dev/null 2>&1 && fail "unknown model accepted"
[ "$failed" = 0 ] && echo "zoo: ok"
exit $failed
