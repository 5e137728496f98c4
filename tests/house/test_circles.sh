#!/bin/sh
# scripts/check-circles on a scratch project: a.c <-> b.c and c.c -> d.c -> e.c -> c.c are found
# and printed, f.c (used by all, using none) is not in any, the allow-list lets exactly its
# circles through, and a circle only partly on the list still fails.
# Usage: test_circles.sh SOURCE_ROOT
set -eu
src=$1
check="$src/scripts/check-circles"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src"
cd "$tmp"
cat > src/f.c <<'C'
int f(int x);
int f(int x) { return x + 1; }
C
cat > src/a.c <<'C'
int f(int x); int b(int x); int a(int x);
int a(int x) { return x > 0 ? b(x - 1) : f(x); }
C
cat > src/b.c <<'C'
int a(int x); int b(int x);
int b(int x) { return a(x); }
C
cat > src/c.c <<'C'
int d(int x); int c(int x);
int c(int x) { return x ? d(x - 1) : 0; }
C
cat > src/d.c <<'C'
int e(int x); int d(int x);
int d(int x) { return e(x); }
C
cat > src/e.c <<'C'
int c(int x); int f(int x); int e(int x);
int e(int x) { return f(c(x)); }
C
cat > src/main.c <<'C'
int a(int x); int c(int x);
int main(void) { return a(3) + c(2); }
C
cat > meson.build <<'M'
project('circles', 'c')
lib = static_library('lib', 'src/c.c', 'src/d.c', 'src/e.c', 'src/f.c')
executable('prog', 'src/main.c', 'src/a.c', 'src/b.c', link_with : lib)
M
meson setup build >/dev/null && ninja -C build >/dev/null
fail() { echo "FAIL: $*"; exit 1; }

: > none.allow
if "$check" build --root src --allow none.allow > out.txt; then fail "circles not found"; fi
cat out.txt
grep -q "CIRCLE of 2 files: src/a.c src/b.c" out.txt || fail "a.c <-> b.c not printed"
grep -q "CIRCLE of 3 files: src/c.c src/d.c src/e.c" out.txt || fail "c -> d -> e -> c not printed"
grep -q "src/a.c -> src/b.c  (b)" out.txt || fail "the symbol closing a -> b not printed"
grep -q "src/f.c" out.txt && fail "f.c is in no circle"
grep -q "2 circle(s)" out.txt || fail "count"

printf '# both\nsrc/a.c src/b.c\nsrc/c.c src/d.c src/e.c src/x.c # a superset is fine\n' > all.allow
"$check" build --root src --allow all.allow > out.txt || { cat out.txt; fail "allowed circles failed"; }

printf 'src/a.c src/b.c\nsrc/c.c src/d.c\nsrc/old.c src/gone.c\n' > part.allow
if "$check" build --root src --allow part.allow > out.txt; then fail "a circle partly allowed passed"; fi
grep -q "CIRCLE of 3 files" out.txt || fail "c/d/e not reported"
grep -q "note: allow-list entry no longer needed: src/gone.c src/old.c" out.txt || fail "stale entry"
echo "check-circles: scratch circles found, allow-list honoured"
