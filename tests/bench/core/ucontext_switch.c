/*
 * glibc ucontext: swapcontext between two contexts, the same ping-pong as
 * arch_switch.c. swapcontext saves and restores the signal mask with a
 * system call (rt_sigprocmask) and the floating-point environment, which is
 * what it costs.
 *
 *   ucontext_switch same  [N] [RUNS]
 *   ucontext_switch mxcsr [N] [RUNS]   different MXCSR sticky flags per context
 *
 * Result: nanoseconds per switch, median of RUNS runs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>
#include <xmmintrin.h>

#include "bench.h"

#define STACK_BYTES (64 * 1024)

static ucontext_t main_uc, co_uc;
static int set_sticky;
static volatile unsigned co_mxcsr;
static volatile int probe;

static void co_entry(void)
{
    if (set_sticky)
        _mm_setcsr(_mm_getcsr() | 0x20); /* PE, the inexact flag */
    else
        _mm_setcsr(_mm_getcsr() & ~0x3fu);
    for (;;) {
        swapcontext(&co_uc, &main_uc);
        if (probe) /* once, after the timed runs: what the coroutine ran with */
            co_mxcsr = _mm_getcsr();
    }
}

/* n round trips, main -> coroutine -> main. */
static void pingpong(long n)
{
    for (long i = 0; i < n; i++)
        swapcontext(&main_uc, &co_uc);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "same";
    /* static: swapcontext returns twice in main's eyes, as setjmp does */
    static long n;
    n = bench_arg(argc, argv, 2, 500000);
    int runs = (int)bench_arg(argc, argv, 3, 5);
    set_sticky = strcmp(mode, "mxcsr") == 0;

    static char stack[STACK_BYTES] __attribute__((aligned(16)));
    getcontext(&co_uc);
    co_uc.uc_stack.ss_sp = stack;
    co_uc.uc_stack.ss_size = sizeof stack;
    co_uc.uc_link = NULL;
    makecontext(&co_uc, co_entry, 0);
    swapcontext(&main_uc, &co_uc);

    double v[64], vc[64];
    if (runs > 64)
        runs = 64;
    unsigned main_mxcsr = bench_switch_runs(pingpong, n, runs, v, vc);
    probe = 1;
    swapcontext(&main_uc, &co_uc);
    printf("# mode %s: MXCSR in the timed loop: main 0x%04x, coroutine 0x%04x\n", mode,
           main_mxcsr, co_mxcsr);
    char key[64];
    snprintf(key, sizeof key, "ucontext_%s_ns", mode);
    bench_report2(key, v, vc, runs, "ns/switch");
    return 0;
}
