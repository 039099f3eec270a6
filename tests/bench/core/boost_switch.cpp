/*
 * Boost.Context's raw switch: jump_fcontext between two contexts, the same
 * ping-pong as arch_switch.c.
 *
 *   boost_switch same  [N] [RUNS]
 *   boost_switch mxcsr [N] [RUNS]   the coroutine sets the inexact sticky flag
 *                                   once, main clears it; jump_fcontext saves
 *                                   and reloads the whole MXCSR, so every
 *                                   switch now loads a different value
 *
 * Result: nanoseconds per switch (N round trips of two switches), median of
 * RUNS runs.
 */
#include <boost/context/detail/fcontext.hpp>
#include <sys/mman.h>
#include <xmmintrin.h>

#include "bench.h"

using boost::context::detail::fcontext_t;
using boost::context::detail::jump_fcontext;
using boost::context::detail::make_fcontext;
using boost::context::detail::transfer_t;

static const size_t STACK_BYTES = 64 * 1024;
static bool set_sticky;
static volatile unsigned co_mxcsr;
static volatile int probe;

static void co_entry(transfer_t t)
{
    if (set_sticky)
        _mm_setcsr(_mm_getcsr() | 0x20); /* PE, the inexact flag */
    else
        _mm_setcsr(_mm_getcsr() & ~0x3fu);
    for (;;) {
        t = jump_fcontext(t.fctx, nullptr);
        if (probe) /* once, after the timed runs: what the coroutine ran with */
            co_mxcsr = _mm_getcsr();
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "same";
    long n = bench_arg(argc, argv, 2, 10000000);
    int runs = (int)bench_arg(argc, argv, 3, 5);
    set_sticky = strcmp(mode, "mxcsr") == 0;

    void *mem = mmap(nullptr, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    char *top = static_cast<char *>(mem) + STACK_BYTES;
    transfer_t t = {make_fcontext(top, STACK_BYTES, co_entry), nullptr};
    t = jump_fcontext(t.fctx, nullptr); /* first entry: sets the flag */

    double v[64], vc[64];
    long long dt[64], dc[64];
    if (runs > 64)
        runs = 64;
    unsigned main_mxcsr = 0;
    for (int r = 0; r < runs; r++) {
        /* No floating point from here to the end of the loop: it would set
         * main's sticky flags and change what is being measured. */
        _mm_setcsr(_mm_getcsr() & ~0x3fu);
        long long c0 = bench_cpu_int();
        long long t0 = bench_now_int();
        for (long i = 0; i < n; i++)
            t = jump_fcontext(t.fctx, nullptr);
        long long t1 = bench_now_int();
        long long c1 = bench_cpu_int();
        main_mxcsr = _mm_getcsr();
        dt[r] = t1 - t0;
        dc[r] = c1 - c0;
    }
    probe = 1;
    t = jump_fcontext(t.fctx, nullptr);
    for (int r = 0; r < runs; r++) {
        v[r] = (double)dt[r] / (2.0 * (double)n);
        vc[r] = (double)dc[r] / (2.0 * (double)n);
    }
    /* Boost restores each context's own MXCSR: in the "mxcsr" case the two
     * values printed differ, which is what makes every switch load. */
    printf("# mode %s: MXCSR in the timed loop: main 0x%04x, coroutine 0x%04x\n", mode,
           main_mxcsr, co_mxcsr);
    char key[64];
    snprintf(key, sizeof key, "boost_%s_ns", mode);
    bench_report2(key, v, vc, runs, "ns/switch");
    munmap(mem, STACK_BYTES);
    return 0;
}
