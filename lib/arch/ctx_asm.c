/* Builds the first frame of a context for the assembly switches. */
#include <string.h>

#include "switch.h"

void green__trampoline(void);

void green__ctx_make(green__ctx_t *ctx, void *lo, void *top, void (*entry)(void *), void *arg)
{
    (void)lo;
    struct green__frame *f;
#if defined(__x86_64__)
    /* After the switch pops the frame, rsp = frame + FRAME_SIZE must be
     * 16-byte aligned so that the trampoline's call leaves the callee with
     * the alignment the psABI promises. */
    f = (struct green__frame *)((char *)top - FRAME_SIZE - 16);
    memset(f, 0, sizeof *f);
    __asm__ volatile("stmxcsr %0" : "=m"(f->mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(f->x87cw));
    f->mxcsr &= 0xffc0; /* control bits only; sticky flags are the thread's */
    f->rbx = (uint64_t)(uintptr_t)arg;
    f->r12 = (uint64_t)(uintptr_t)entry;
    f->rip = (uint64_t)(uintptr_t)green__trampoline;
#elif defined(__aarch64__)
    f = (struct green__frame *)((char *)top - FRAME_SIZE);
    memset(f, 0, sizeof *f);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    f->fpcr = fpcr;
    f->x19 = (uint64_t)(uintptr_t)arg;
    f->x20 = (uint64_t)(uintptr_t)entry;
    f->x30 = (uint64_t)(uintptr_t)green__trampoline;
#endif
    ctx->sp = f;
}
