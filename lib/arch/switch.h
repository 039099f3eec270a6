/*
 * The context switch: one small function per architecture, behind one
 * interface. The Makefile picks the implementation:
 *
 *   switch_x86_64.S    System V x86-64 (default on x86_64)
 *   switch_aarch64.S   AAPCS64        (default on aarch64)
 *   switch_ucontext.c  glibc ucontext (make SWITCH=ucontext; any platform)
 *
 * A context is whatever the implementation needs to resume a stack. For the
 * assembly switches it is just the saved stack pointer: everything else the
 * psABI makes callee-saved is pushed on the suspended stack itself, in the
 * frame drawn in the .S file and mirrored by the struct below, so that the C
 * code that builds a greenlet's first frame and the assembly agree.
 *
 * Floating-point control state (x86-64: MXCSR control bits and the x87
 * control word; aarch64: FPCR) is callee-saved too. On CPUs where loading
 * a different MXCSR is slow (~70 ns) the x86-64 switch compares the control
 * bits and loads only when they differ; where it is cheap it loads always,
 * which is cheaper than reading the stored value back (switch_x86_64.S).
 * FPCR and the x87 control word are compared and loaded only on change.
 */
#ifndef GREEN_ARCH_SWITCH_H
#define GREEN_ARCH_SWITCH_H

#include <stddef.h>
#include <stdint.h>

#if defined(GREEN_SWITCH_UCONTEXT)
#include <ucontext.h>
typedef struct green__ctx {
    ucontext_t uc;
} green__ctx_t;
#else
typedef struct green__ctx {
    void *sp; /* top of the saved frame of a suspended context */
} green__ctx_t;
#endif

/*
 * Prepares ctx so that the first switch to it calls entry(arg) on the stack
 * whose highest usable address is `top` (16-byte aligned) and whose lowest is
 * `lo`. When entry returns, leave(arg) is entered with a jump, not a call,
 * and must never return: a context that ends by returning through its calls
 * and leaving by a jump keeps the CPU's return-stack buffer balanced, so the
 * context switched to next does not mispredict its returns. leave may be
 * NULL when entry never returns.
 */
void green__ctx_make(green__ctx_t *ctx, void *lo, void *top, void (*entry)(void *),
                     void (*leave)(void *), void *arg);

/*
 * Once per process, before the first switch: picks how the x86-64 switch
 * restores MXCSR (see switch_x86_64.S; GREEN_SWITCH_FP=load|compare forces
 * a mode). Nothing to do elsewhere.
 */
void green__ctx_init(void);
#if defined(__x86_64__) && !defined(GREEN_SWITCH_UCONTEXT)
extern unsigned char green__fp_compare; /* 1: compare mode, 0: load mode */
#endif

/* Starts bringing in the top of a suspended context's saved frame. */
static inline void green__ctx_prefetch(const green__ctx_t *ctx)
{
#if defined(GREEN_SWITCH_UCONTEXT)
    (void)ctx;
#else
    __builtin_prefetch(ctx->sp);
#endif
}

/* Saves the running context into *from and resumes *to. */
#if defined(GREEN_SWITCH_UCONTEXT)
void green__ctx_switch(green__ctx_t *from, green__ctx_t *to);
#else
void green__switch_asm(void **from_sp, void *to_sp);
#if defined(__x86_64__) && defined(GREEN__NO_RED_ZONE)
/*
 * Entered with a jmp, not a call. A call would push the return-stack buffer,
 * and the switch, which returns with pop + jmp (a ret would mispredict
 * whenever the two sides suspended at different places), would leave that
 * entry behind: every later ret of the resumed greenlet would then be
 * predicted one entry off. Pushing the resume address by hand keeps the
 * buffer balanced, which saves a mispredicted ret per switch (~4 ns here).
 * The push writes below rsp, so this needs code built with -mno-red-zone
 * (the Makefile defines GREEN__NO_RED_ZONE with it); the switch clobbers
 * what a call clobbers.
 */
static inline __attribute__((always_inline)) void green__ctx_switch(green__ctx_t *from,
                                                                    green__ctx_t *to)
{
    void **from_sp = &from->sp;
    void *to_sp = to->sp;
    __asm__ volatile("leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "jmp green__switch_asm\n"
                     "1:"
                     : "+D"(from_sp), "+S"(to_sp)
                     :
                     : "rax", "rcx", "rdx", "r8", "r9", "r10", "r11", "memory", "cc", "xmm0",
                       "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                       "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st", "st(1)",
                       "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)");
}
#else
static inline void green__ctx_switch(green__ctx_t *from, green__ctx_t *to)
{
    green__switch_asm(&from->sp, to->sp);
}
#endif
#endif

/*
 * green__ctx_switch as the last statement of a function (green_yield's).
 * In tail position the compiler makes the call a jmp (a sibling call), so
 * the frame the switch saves returns straight to that function's caller,
 * and the switch resumes the other context with a ret, which pops the
 * return-stack buffer entry the caller's call pushed: the buffer stays
 * balanced, and the ret is predicted right whenever both contexts
 * suspended at the same place (two greenlets yielding in a loop). It saves
 * the jmp and the ret a resume through green__ctx_switch takes (6.43 ->
 * 6.22 ns per green_yield, core_green yield, A/B on one CPU). Without the
 * sibling call (-O0, -O1) it is an ordinary call, which is as correct and
 * as balanced.
 */
#if defined(__x86_64__) && !defined(GREEN_SWITCH_UCONTEXT)
#define GREEN__CTX_SWITCH_TAIL 1
void green__switch_tail_asm(void **from_sp, void *to_sp);
static inline __attribute__((always_inline)) void green__ctx_switch_tail(green__ctx_t *from,
                                                                        green__ctx_t *to)
{
    green__switch_tail_asm(&from->sp, to->sp);
}
#else
static inline void green__ctx_switch_tail(green__ctx_t *from, green__ctx_t *to)
{
    green__ctx_switch(from, to);
}
#endif

/*
 * Resumes *to for good: the running context has ended and is never resumed.
 * scratch is where an implementation without a one-way jump saves it.
 */
#if defined(__x86_64__) && !defined(GREEN_SWITCH_UCONTEXT)
void green__jump_asm(void *to_sp);
static inline __attribute__((always_inline, noreturn)) void green__ctx_jump(green__ctx_t *scratch,
                                                                           green__ctx_t *to)
{
    (void)scratch;
    /* A jmp, not a call: nothing comes back, so nothing goes on the
     * return-stack buffer. */
    __asm__ volatile("jmp green__jump_asm" : : "D"(to->sp) : "memory");
    __builtin_unreachable();
}
#else
static inline __attribute__((noreturn)) void green__ctx_jump(green__ctx_t *scratch, green__ctx_t *to)
{
    green__ctx_switch(scratch, to);
    __builtin_trap(); /* an ended context is never resumed */
}
#endif

#if defined(__x86_64__) && !defined(GREEN_SWITCH_UCONTEXT)
#include "frame_x86_64.h"
/* The saved frame, lowest address first (see switch_x86_64.S). */
struct green__frame {
    uint32_t mxcsr;
    uint16_t x87cw;
    uint16_t pad;
    uint64_t r15, r14, r13, r12, rbx, rbp;
    uint64_t rip;
};
_Static_assert(offsetof(struct green__frame, mxcsr) == FRAME_MXCSR, "frame layout");
_Static_assert(offsetof(struct green__frame, x87cw) == FRAME_X87CW, "frame layout");
_Static_assert(offsetof(struct green__frame, r15) == FRAME_R15, "frame layout");
_Static_assert(offsetof(struct green__frame, r12) == FRAME_R12, "frame layout");
_Static_assert(offsetof(struct green__frame, rbx) == FRAME_RBX, "frame layout");
_Static_assert(offsetof(struct green__frame, rbp) == FRAME_RBP, "frame layout");
_Static_assert(offsetof(struct green__frame, rip) == FRAME_RIP, "frame layout");
_Static_assert(sizeof(struct green__frame) == FRAME_SIZE, "frame layout");
#elif defined(__aarch64__) && !defined(GREEN_SWITCH_UCONTEXT)
#include "frame_aarch64.h"
/* The saved frame, lowest address first (see switch_aarch64.S). */
struct green__frame {
    uint64_t x19, x20, x21, x22, x23, x24, x25, x26, x27, x28;
    uint64_t x29, x30;
    uint64_t d8, d9, d10, d11, d12, d13, d14, d15;
    uint64_t fpcr, pad;
};
_Static_assert(offsetof(struct green__frame, x19) == FRAME_X19, "frame layout");
_Static_assert(offsetof(struct green__frame, x29) == FRAME_X29, "frame layout");
_Static_assert(offsetof(struct green__frame, x30) == FRAME_X30, "frame layout");
_Static_assert(offsetof(struct green__frame, d8) == FRAME_D8, "frame layout");
_Static_assert(offsetof(struct green__frame, fpcr) == FRAME_FPCR, "frame layout");
_Static_assert(sizeof(struct green__frame) == FRAME_SIZE, "frame layout");
#elif !defined(GREEN_SWITCH_UCONTEXT)
#error "no assembly switch for this architecture: build with make SWITCH=ucontext"
#endif

#endif
