#!/bin/sh
# Installs into a temporary prefix and builds the README example against it
# through pkg-config, shared and static, as a user would. Prints a closing
# "N passed, N failed" line.
set -u
build=${1:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
pass=0; fail=0
check() { # name, command...
    name=$1; shift
    if "$@" >"$prefix/out" 2>&1; then pass=$((pass + 1)); echo "ok: $name"
    else fail=$((fail + 1)); echo "FAIL: $name"; cat "$prefix/out"; fi
}
check "make install" make -C "$top" --no-print-directory BUILD="$build" install PREFIX="$prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
check "installed files" test -f "$prefix/include/green.h" -a -f "$prefix/lib/libgreen.a" \
    -a -L "$prefix/lib/libgreen.so" -a -f "$prefix/lib/pkgconfig/libgreen.pc"
check "shared build" sh -c "cc '$top/tests/install/example.c' \$(pkg-config --cflags --libs libgreen) -o '$prefix/ex-shared'"
check "shared output" sh -c "LD_LIBRARY_PATH='$prefix/lib' '$prefix/ex-shared' | diff - '$top/tests/install/expected.txt'"
check "shared soname" sh -c "LD_LIBRARY_PATH='$prefix/lib' ldd '$prefix/ex-shared' | grep -q 'libgreen.so.0 => $prefix/lib'"
check "static build" sh -c "cc -static '$top/tests/install/example.c' \$(pkg-config --static --cflags --libs libgreen) -o '$prefix/ex-static'"
check "static output" sh -c "'$prefix/ex-static' | diff - '$top/tests/install/expected.txt'"
check "only green_* exported" sh -c "! nm -D --defined-only '$prefix/lib/libgreen.so' | awk '{print \$3}' | grep -v '^green_' | grep -v '^_' | grep ."
echo "install: $pass passed, $fail failed"
[ "$fail" = 0 ]
