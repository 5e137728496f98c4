# Shared by the engine's shell tests: a private temporary directory ($tmp, removed on exit), a
# failure flag and the shmfaas-run expectation check. Source it after setting $run (the
# shmfaas-run binary), as  . "$(dirname "$0")/lib.sh"  with TEST_NAME set to name $tmp.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmfaas-${TEST_NAME:-test}.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
failed=0

fail() {
    echo "FAIL: $*"
    failed=1
}

# expect STATUS PATTERN -- ARGS...: runs shmfaas-run, checks its exit status and that its stdout
# or stderr contains PATTERN (grep -E; "" matches anything).
expect() {
    want=$1 pattern=$2
    shift 3
    "$run" "$@" >"$tmp/out" 2>&1
    got=$?
    if [ "$got" != "$want" ]; then
        fail "shmfaas-run $*: exit $got, want $want: $(head -c 400 "$tmp/out")"
    elif [ -n "$pattern" ] && ! grep -Eq -- "$pattern" "$tmp/out"; then
        fail "shmfaas-run $*: output lacks /$pattern/: $(head -c 400 "$tmp/out")"
    else
        echo "ok: shmfaas-run $* -> $got"
    fi
}
