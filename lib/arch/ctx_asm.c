/* Builds the first frame of a context for the assembly switches, and picks
 * the x86-64 switch's FP mode. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "switch.h"

void green__trampoline(void);

#if defined(__x86_64__)
unsigned char green__fp_compare;

/* Nanoseconds per ldmxcsr that changes the register's value: the best of a
 * few short rounds, so that a preemption cannot make a fast CPU look slow. */
static double value_changing_ldmxcsr_ns(void)
{
    unsigned orig;
    __asm__ volatile("stmxcsr %0" : "=m"(orig));
    unsigned vals[2] = {orig & ~0x3fu, (orig & ~0x3fu) | 0x20u}; /* PE clear / set */
    double best = 1e9;
    for (int round = 0; round < 5; round++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < 256; i++)
            __asm__ volatile("ldmxcsr %0" ::"m"(vals[i & 1]));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 256;
        if (ns < best)
            best = ns;
    }
    __asm__ volatile("ldmxcsr %0" ::"m"(orig));
    return best;
}

/* See the FP paragraph of switch_x86_64.S. GREEN_SWITCH_FP=load|compare
 * overrides the measurement (the tests run both modes). */
void green__ctx_init(void)
{
    const char *force = getenv("GREEN_SWITCH_FP");
    if (force && strcmp(force, "compare") == 0)
        green__fp_compare = 1;
    else if (force && strcmp(force, "load") == 0)
        green__fp_compare = 0;
    else
        green__fp_compare = value_changing_ldmxcsr_ns() > 15.0;
}
#else
void green__ctx_init(void)
{
}
#endif

void green__ctx_make(green__ctx_t *ctx, void *lo, void *top, void (*entry)(void *),
                     void (*leave)(void *), void *arg)
{
    (void)lo;
    struct green__frame *f;
#if defined(__x86_64__)
    /* After the switch pops the frame, rsp = frame + FRAME_SIZE must be
     * 16-byte aligned so that the trampoline's call leaves the callee with
     * the alignment the psABI promises. */
    f = (struct green__frame *)((char *)top - FRAME_SIZE - 16);
    memset(f, 0, sizeof *f);
    /* The creator's FP environment, as a new thread inherits it: MXCSR as it
     * is, sticky flags included (masking them would read the stored value
     * back, which stalls: see switch_x86_64.S). Only the control bits count
     * in compare mode, which keeps the thread's flags. */
    __asm__ volatile("stmxcsr %0" : "=m"(f->mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(f->x87cw));
    f->rbx = (uint64_t)(uintptr_t)arg;
    f->r12 = (uint64_t)(uintptr_t)entry;
    f->r13 = (uint64_t)(uintptr_t)leave;
    f->rip = (uint64_t)(uintptr_t)green__trampoline;
#elif defined(__aarch64__)
    f = (struct green__frame *)((char *)top - FRAME_SIZE);
    memset(f, 0, sizeof *f);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    f->fpcr = fpcr;
    f->x19 = (uint64_t)(uintptr_t)arg;
    f->x20 = (uint64_t)(uintptr_t)entry;
    f->x21 = (uint64_t)(uintptr_t)leave;
    f->x30 = (uint64_t)(uintptr_t)green__trampoline;
#endif
    ctx->sp = f;
}
