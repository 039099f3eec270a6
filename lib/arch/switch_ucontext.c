/*
 * The portable fallback: glibc's makecontext/swapcontext (make
 * SWITCH=ucontext). About a hundred times slower than the assembly switches
 * (swapcontext makes an rt_sigprocmask system call), but it runs anywhere
 * glibc does and is what the assembly is checked against.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>

#include "switch.h"

static uint64_t join32(unsigned hi, unsigned lo)
{
    return ((uint64_t)hi << 32) | (uint64_t)lo;
}

static void ucontext_entry(unsigned hi_fn, unsigned lo_fn, unsigned hi_leave, unsigned lo_leave,
                           unsigned hi_arg, unsigned lo_arg)
{
    void (*entry)(void *) = (void (*)(void *))(uintptr_t)join32(hi_fn, lo_fn);
    void (*leave)(void *) = (void (*)(void *))(uintptr_t)join32(hi_leave, lo_leave);
    void *arg = (void *)(uintptr_t)join32(hi_arg, lo_arg);
    entry(arg);
    if (leave)
        leave(arg);
    abort(); /* leave never returns */
}

/* swapcontext restores the whole FP environment: there is no mode to pick. */
void green__ctx_init(void)
{
}

void green__ctx_make(green__ctx_t *ctx, void *lo, void *top, void (*entry)(void *),
                     void (*leave)(void *), void *arg)
{
    uint64_t f = (uint64_t)(uintptr_t)entry, l = (uint64_t)(uintptr_t)leave;
    uint64_t a = (uint64_t)(uintptr_t)arg;
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = lo;
    ctx->uc.uc_stack.ss_size = (size_t)((char *)top - (char *)lo);
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))ucontext_entry, 6, (unsigned)(f >> 32), (unsigned)f,
                (unsigned)(l >> 32), (unsigned)l, (unsigned)(a >> 32), (unsigned)a);
}

void green__ctx_switch(green__ctx_t *from, green__ctx_t *to)
{
    /* swapcontext restores the signal mask saved with the target, but the
     * mask belongs to the thread, not to a greenlet: carry the current one
     * over, so that blocking or unblocking a signal is not undone by the
     * next switch. */
    pthread_sigmask(SIG_SETMASK, NULL, &to->uc.uc_sigmask);
    swapcontext(&from->uc, &to->uc);
}
