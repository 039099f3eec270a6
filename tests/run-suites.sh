#!/bin/sh
# Runs every Check suite in BUILD/tests, optionally under a runner (valgrind),
# then the shell checks in $EXTRA_CHECKS, and prints one closing line:
# "N passed, N failed".
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
# Extra checks (shell scripts) named in $EXTRA_CHECKS, each ending with a
# "...: N passed, N failed" line.
for x in ${EXTRA_CHECKS:-}; do
    out=$(mktemp)
    sh "$x" "$build" >"$out" 2>&1
    rc=$?
    cat "$out"
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    rm -f "$out"
    p=$(echo "$line" | sed -n 's/.*\b\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\1/p')
    f=$(echo "$line" | sed -n 's/.*\b\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\2/p')
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
    if [ "$rc" != 0 ] || [ -z "$line" ]; then
        [ "${f:-0}" = 0 ] && fail=$((fail + 1))
        failed="$failed $x(rc=$rc)"
    fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
