#!/bin/sh
# The context-switch test (tests/arch/switch_test.c) against the assembly
# switches, outside the library: first built natively for the host (x86_64
# with switch_x86_64.S, aarch64 with switch_aarch64.S), then, on any other
# host, cross-built for aarch64 and run under qemu-user. Each build runs at
# -O2 and at -O0, so the test sees two quite different callers of the switch.
#
#   sh tests/arch/run-aarch64.sh        (make check-aarch64; run from anywhere)
#
# Products go to $BUILD/arch (build/arch by default). ARCH_DIR=dir tests a
# copy of lib/arch (a candidate fix) instead of the real one. Without the
# cross tools (Debian: gcc-aarch64-linux-gnu, qemu-user) the aarch64 half is
# skipped and says so. Exits non-zero when any build or run fails.
set -u
cd "$(dirname "$0")/../.." || exit 2
out="${BUILD:-build}/arch"
mkdir -p "$out" || exit 2

src=tests/arch/switch_test.c
arch=${ARCH_DIR:-lib/arch}
cflags="-std=gnu11 -g -Wall -Wextra -Wshadow -Wstrict-prototypes -frounding-math -I$arch"
# Bounds a run even if the test's own alarm() cannot fire (a wedged qemu).
limit=""
command -v timeout >/dev/null 2>&1 && limit="timeout 300"
status=0

# run LABEL BINARY [RUNNER...]: runs one build, passes its output through.
run() {
    label=$1; bin=$2; shift 2
    echo "--- $label"
    # shellcheck disable=SC2086
    if $limit "$@" "$bin"; then
        return 0
    fi
    echo "--- $label: FAILED"
    status=1
    return 1
}

# build LABEL OUTPUT COMPILER FLAGS SWITCH_SOURCE: compiles one variant.
build() {
    label=$1; bin=$2; compiler=$3; flags=$4; switch_src=$5
    # shellcheck disable=SC2086
    if ! $compiler $cflags $flags -o "$bin" "$src" "$switch_src" "$arch/ctx_asm.c"; then
        echo "--- $label: build FAILED"
        status=1
        return 1
    fi
}

host=$(uname -m)
case "$host" in
    x86_64) native_switch=$arch/switch_x86_64.S ;;
    aarch64) native_switch=$arch/switch_aarch64.S ;;
    *) native_switch="" ;;
esac

cc=${CC:-cc}
# On x86-64 the library enters the switch with an inline push + jmp
# (-mno-red-zone -DGREEN__NO_RED_ZONE, lib/arch/switch.h); the plain call is
# what any other caller gets. Both are tested.
variants="-O2 -O0"
[ "$host" = x86_64 ] && variants="$variants -O2_jmp -O0_jmp"
if [ -n "$native_switch" ]; then
    for v in $variants; do
        opt=${v%_jmp}
        [ "$v" != "$opt" ] && opt="$opt -mno-red-zone -DGREEN__NO_RED_ZONE"
        bin="$out/switch_test-$host$v"
        build "native $host $opt" "$bin" "$cc" "$opt" "$native_switch" &&
            run "native $host $opt ($native_switch)" "$bin"
    done
else
    echo "--- native: no assembly switch for $host (make SWITCH=ucontext covers it)"
fi

if [ "$host" = aarch64 ]; then
    echo "aarch64 switch test: ran natively"
elif ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1; then
    echo "aarch64 switch test: skipped (gcc-aarch64-linux-gnu/qemu-user not installed)"
else
    for opt in -O2 -O0; do
        bin="$out/switch_test-aarch64$opt"
        # A static binary runs under qemu-user without a sysroot; if the
        # cross libc has no static archives, fall back to the dynamic build
        # and point qemu at the cross sysroot.
        # shellcheck disable=SC2086
        if aarch64-linux-gnu-gcc $cflags -static $opt -o "$bin" "$src" \
            "$arch/switch_aarch64.S" "$arch/ctx_asm.c" 2>"$out/static.log"; then
            cat "$out/static.log" >&2 # warnings
            run "aarch64 $opt static under qemu-aarch64" "$bin" qemu-aarch64
        else
            echo "--- aarch64 $opt: static link failed, using the dynamic build:"
            sed 's/^/    /' "$out/static.log"
            build "aarch64 $opt dynamic" "$bin" aarch64-linux-gnu-gcc "$opt" \
                "$arch/switch_aarch64.S" &&
                run "aarch64 $opt dynamic under qemu-aarch64" "$bin" \
                    qemu-aarch64 -L /usr/aarch64-linux-gnu
        fi
    done
    rm -f "$out/static.log"
fi

if [ "$status" = 0 ]; then
    echo "switch tests: all passed"
else
    echo "switch tests: FAILED"
fi
exit "$status"
