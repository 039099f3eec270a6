#!/bin/sh
# Runs every Check suite in BUILD/tests, optionally under a runner (valgrind),
# and prints one closing line: "N passed, N failed".
set -u
build=$1; shift
runner="$*"
pass=0; fail=0; failed=""
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    out=$(mktemp)
    # shellcheck disable=SC2086
    CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60} $runner "$t" >"$out" 2>&1
    rc=$?
    cat "$out"
    # Check prints "100%: Checks: 12, Failures: 0, Errors: 0".
    line=$(grep -E '^[0-9]+%: Checks: ' "$out" | tail -1)
    rm -f "$out"
    checks=$(echo "$line" | sed -n 's/.*Checks: \([0-9]*\).*/\1/p')
    fails=$(echo "$line" | sed -n 's/.*Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2/p')
    f=$(echo "$fails" | awk '{print $1+$2}')
    if [ -z "$checks" ]; then
        fail=$((fail + 1)); failed="$failed $(basename "$t")(rc=$rc)"
        continue
    fi
    pass=$((pass + checks - f)); fail=$((fail + f))
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        fail=$((fail + 1)); failed="$failed $(basename "$t")(rc=$rc)"
    elif [ "$f" != 0 ]; then
        failed="$failed $(basename "$t")"
    fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
