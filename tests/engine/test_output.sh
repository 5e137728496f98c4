#!/bin/sh
# shmfaas-run --output and -o never replace what they name (issue 12): a character device and a
# FIFO are written in place and are still there afterwards, "-" is stdout, a regular file is
# replaced atomically, and a symlink another uid planted is refused with its target untouched.
#   test_output.sh SHMFAAS_RUN
set -u

run=$1
zoo=${SHMFAAS_ZOO:-zoo}
source_root=${SHMFAAS_SOURCE:-.}
TEST_NAME=output-test
. "$(dirname "$0")/lib.sh"

ka=$zoo/known_answer
if [ ! -f "$ka/model.onnx" ]; then
    /usr/bin/python3 "$source_root/tools/zoo" --out "$tmp/zoo" --models known_answer || exit 1
    ka=$tmp/zoo/known_answer
fi
model=$ka/model.onnx
input=$ka/input.json
out=$tmp/outputs
mkdir "$out"

# Names in $out besides the ones the test made: a temp file left behind shows up here.
only_entries() {
    got=$(ls -A "$out" | sort | tr '\n' ' ')
    [ "$got" = "$*" ] || fail "$out holds '$got', want '$*'"
}

# ---- a character device (the /dev/null of a temporary directory): written in place
if mknod "$out/null" c 1 3 2>/dev/null; then
    before=$(stat -c '%i %t:%T %a' "$out/null")
    expect 0 "" -- "$model" --input "$input" --output "$out/null"
    expect 0 "" -- "$model" --compile-only -o "$out/null"
    [ -c "$out/null" ] || fail "$out/null is no longer a character device: $(ls -l "$out/null")"
    after=$(stat -c '%i %t:%T %a' "$out/null")
    [ "$before" = "$after" ] || fail "$out/null changed: $before -> $after"
else
    echo "skip: mknod needs root (CAP_MKNOD)"
    touch "$out/null"
fi

# ---- a FIFO with a reader: gets the JSON, is still a FIFO
mkfifo "$out/fifo"
timeout 60 cat "$out/fifo" >"$tmp/from-fifo" &
reader=$!
expect 0 "" -- "$model" --input "$input" --output "$out/fifo"
wait $reader || fail "the FIFO's reader: exit $?"
grep -q '"outputs": {"output": {"shape": \[1,10\]' "$tmp/from-fifo" ||
    fail "from the FIFO: $(head -c 200 "$tmp/from-fifo")"
[ -p "$out/fifo" ] || fail "$out/fifo is no longer a FIFO: $(ls -l "$out/fifo")"

# ---- "-" is stdout, for outputs and for a plan
"$run" "$model" --input "$input" --output - >"$tmp/stdout" 2>"$tmp/stderr" ||
    fail "--output -: $(cat "$tmp/stderr")"
grep -q '"outputs": {"output"' "$tmp/stdout" || fail "--output -: $(head -c 200 "$tmp/stdout")"
"$run" "$model" --compile-only -o - >"$tmp/stdout.plan" 2>"$tmp/stderr" ||
    fail "-o -: $(cat "$tmp/stderr")"
expect 0 "max\|diff\| " -- "$tmp/stdout.plan" --input "$input" --compare "$ka/output.json"
[ -e "$out/-" ] && fail "--output - wrote a file named -"

# ---- a regular file: replaced by a new file (a hard link to the old one keeps the old bytes)
echo old >"$out/out.json"
ln "$out/out.json" "$tmp/old-link"
expect 0 "" -- "$model" --input "$input" --output "$out/out.json"
grep -q '"outputs"' "$out/out.json" || fail "out.json: $(head -c 200 "$out/out.json")"
[ "$(cat "$tmp/old-link")" = old ] || fail "the old out.json was written in place"

# ---- a symlink planted by another uid in a directory it can write: refused, target untouched
echo "root's file" >"$tmp/victim"
chmod 0711 "$tmp"
chmod 1777 "$out"
nobody=$(id -u nobody)
if setpriv --reuid="$nobody" --regid="$nobody" --clear-groups ln -s "$tmp/victim" "$out/planted"; then
    expect 1 "a symlink \(to $tmp/victim\)" -- "$model" --input "$input" --output "$out/planted"
    expect 1 "a symlink" -- "$model" --compile-only -o "$out/planted"
    [ "$(cat "$tmp/victim")" = "root's file" ] || fail "the symlink's target was written"
    [ -L "$out/planted" ] || fail "the planted symlink was replaced"
else
    fail "setpriv: cannot plant a symlink as nobody"
fi
ln -s "$tmp/nowhere" "$out/dangling"
expect 1 "a symlink" -- "$model" --input "$input" --output "$out/dangling"
[ -e "$tmp/nowhere" ] && fail "a dangling symlink's target was created"

# ---- a missing directory, a directory: a clear error, nothing created
expect 1 "$out/no/such: No such file" -- "$model" --input "$input" --output "$out/no/such/out.json"
expect 1 "a directory" -- "$model" --input "$input" --output "$out"

only_entries "dangling fifo null out.json planted "
exit $failed
