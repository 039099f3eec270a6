/*
 * libgreen's assembly switch alone: two contexts ping-pong through
 * green__ctx_switch (lib/arch/switch.h), with no scheduler in between. This
 * is the figure to hold against Boost.Context's raw jump_fcontext, which is
 * also just a switch.
 *
 *   arch_switch same  [N] [RUNS]   both contexts hold the same MXCSR
 *   arch_switch mxcsr [N] [RUNS]   the coroutine sets the inexact sticky flag
 *                                  once, the main context clears it: a switch
 *                                  that loaded the saved MXCSR would now load
 *                                  a different value on every switch
 *
 * N is the number of round trips per run (two switches each); the result is
 * nanoseconds per switch, the median of RUNS runs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <xmmintrin.h>

#include "arch/switch.h"
#include "bench.h"

#define STACK_BYTES (64 * 1024)

static green__ctx_t main_ctx, co_ctx;
static int set_sticky;
static volatile unsigned co_mxcsr;
static volatile int probe;

static void co_entry(void *arg)
{
    (void)arg;
    if (set_sticky)
        _mm_setcsr(_mm_getcsr() | 0x20); /* PE, the inexact flag */
    else
        _mm_setcsr(_mm_getcsr() & ~0x3fu);
    for (;;) {
        green__ctx_switch(&co_ctx, &main_ctx);
        if (probe) /* once, after the timed runs: what the coroutine ran with */
            co_mxcsr = _mm_getcsr();
    }
}

/* n round trips, main -> coroutine -> main. */
static void pingpong(long n)
{
    for (long i = 0; i < n; i++)
        green__ctx_switch(&main_ctx, &co_ctx);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "same";
    long n = bench_arg(argc, argv, 2, 10000000);
    int runs = (int)bench_arg(argc, argv, 3, 5);
    set_sticky = strcmp(mode, "mxcsr") == 0;

    green__ctx_init(); /* the MXCSR mode the library would pick here */
    char *stack = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    green__ctx_make(&co_ctx, stack, stack + STACK_BYTES, co_entry, NULL, NULL);
    green__ctx_switch(&main_ctx, &co_ctx); /* first entry: sets the flag */

    double v[64], vc[64];
    if (runs > 64)
        runs = 64;
    unsigned main_mxcsr = bench_switch_runs(pingpong, n, runs, v, vc);
    probe = 1;
    green__ctx_switch(&main_ctx, &co_ctx);
    /* What each side ran with, so that the "mxcsr" case can be checked to be
     * what it claims. In load mode each context keeps its own sticky flags;
     * in compare mode they are the thread's (switch_x86_64.S). */
    printf("# mode %s: MXCSR in the timed loop: main 0x%04x, coroutine 0x%04x; switch in %s mode\n",
           mode, main_mxcsr, co_mxcsr, green__fp_compare ? "compare" : "load");
    char key[64];
    snprintf(key, sizeof key, "arch_%s_ns", mode);
    bench_report2(key, v, vc, runs, "ns/switch");
    munmap(stack, STACK_BYTES);
    return 0;
}
