/*
 * The context switch on its own: lib/arch/switch_<arch>.S + lib/arch/ctx_asm.c,
 * without libev, Check or the rest of the library, so that it can be
 * cross-built for aarch64 and run under qemu-user (tests/arch/run-aarch64.sh)
 * as well as natively on x86-64.
 *
 * Each test runs a few contexts on mmap'd stacks (a PROT_NONE guard page
 * below each, so an overflow faults instead of corrupting) and checks what
 * the psABI promises across a call, because to the code on either side a
 * switch is just a call to green__switch_asm:
 *
 *   - control passes main -> a -> b -> c -> main with each entry's argument
 *     and the values handed over intact;
 *   - every callee-saved register comes back (x19-x28, x29, d8-d15 on
 *     aarch64; rbx, rbp, r12-r15 on x86-64) while the other side clobbers
 *     them all;
 *   - the FP control state (FPCR; MXCSR control bits and the x87 control
 *     word) is each context's own, while the sticky exception flags stay the
 *     thread's, as they would across a call;
 *   - a context's entry function starts with the stack alignment the psABI
 *     promises, and both the frame-pointer chain and the DWARF unwinder stop
 *     at the trampoline (stacks start full of garbage, as when reused);
 *   - deep recursion on a context stack, suspended at depth, survives;
 *   - a million round trips.
 *
 * A fault is caught on an alternate signal stack and reported as a failure
 * of the running test. The last line is "N passed, N failed"; the exit
 * status is non-zero when anything failed.
 */
#define _GNU_SOURCE
#include <float.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

#include "switch.h"

#if defined(GREEN_SWITCH_UCONTEXT)
#error "this test checks the assembly switches; the ucontext one is covered by make check-ucontext"
#endif

/* ------------------------------------------------------------------ */
/* The harness: named tests, failures counted per test.               */

static int tests_passed, tests_failed;
static const char *current_test = "(startup)";
static int current_failures;

static void check_failed(int line, const char *expr, const char *fmt, ...)
{
    /* A broken switch tends to fail the same check a million times: the
     * first few say everything. */
    if (current_failures++ < 8) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stdout, "    %s:%d: %s: ", __FILE__, line, expr);
        vfprintf(stdout, fmt, ap);
        fputc('\n', stdout);
        va_end(ap);
    }
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            check_failed(__LINE__, #cond, __VA_ARGS__);                                            \
    } while (0)

static void run_test(const char *name, void (*fn)(void))
{
    current_test = name;
    current_failures = 0;
    fflush(stdout);
    fn();
    if (current_failures == 0) {
        tests_passed++;
        printf("ok   - %s\n", name);
    } else {
        tests_failed++;
        printf("FAIL - %s (%d failed checks)\n", name, current_failures);
    }
    fflush(stdout);
}

/* A fault or a hang inside a test still ends with the closing line, so the
 * runner sees a count and not just a dead process. Only async-signal-safe
 * calls here. */
static void put_str(const char *s)
{
    ssize_t r = write(STDOUT_FILENO, s, strlen(s));
    (void)r;
}

static void put_num(int n)
{
    char buf[16], *p = buf + sizeof buf;
    *--p = '\0';
    do {
        *--p = (char)('0' + n % 10);
        n /= 10;
    } while (n && p > buf);
    put_str(p);
}

static void fatal_signal(int sig)
{
    put_str("FAIL - ");
    put_str(current_test);
    put_str(sig == SIGALRM ? ": timed out\n" : ": fatal signal ");
    if (sig != SIGALRM) {
        put_num(sig);
        put_str("\n");
    }
    put_num(tests_passed);
    put_str(" passed, ");
    put_num(tests_failed + 1);
    put_str(" failed\n");
    _exit(1);
}

static void install_fatal_handlers(void)
{
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fatal_signal;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

/* ------------------------------------------------------------------ */
/* Stacks: mmap'd, with a guard page below and a canary above the top, */
/* so that a frame built or pushed outside [lo, top) is noticed.       */

#define CANARY_BYTES 64
#define CANARY 0xa5
#define GARBAGE 0x5a

struct stack {
    void *map;
    size_t map_size;
    char *lo, *top;
};

static void stack_init(struct stack *s, size_t size, size_t top_offset)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size = (size + page - 1) / page * page;
    s->map_size = page + size;
    s->map = mmap(NULL, s->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    if (mprotect(s->map, page, PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    s->lo = (char *)s->map + page;
    /* top_offset (a multiple of 16) moves the top down from the page end so
     * that the tests see tops at every alignment the contract allows. */
    s->top = s->lo + size - CANARY_BYTES - top_offset;
    /* Garbage, not mmap's zeros, as on a stack reused from a cache: nothing
     * may depend on a zero the first frame did not write itself. */
    memset(s->lo, GARBAGE, (size_t)(s->top - s->lo));
    memset(s->top, CANARY, CANARY_BYTES);
}

static int stack_canary_intact(const struct stack *s)
{
    for (size_t i = 0; i < CANARY_BYTES; i++)
        if ((unsigned char)s->top[i] != CANARY)
            return 0;
    return 1;
}

static void stack_free(struct stack *s)
{
    munmap(s->map, s->map_size);
}

/* The saved sp of a first frame: aarch64 requires sp 16-byte aligned at all
 * times; x86-64 only needs word alignment here, the psABI's 16 bytes at the
 * entry function are checked by test_entry_alignment. */
#if defined(__aarch64__)
#define SAVED_SP_ALIGN 16
#else
#define SAVED_SP_ALIGN 8
#endif

/* Makes a context and checks the first frame landed inside its stack. */
static void make_ctx(green__ctx_t *ctx, struct stack *s, void (*entry)(void *), void *arg)
{
    green__ctx_make(ctx, s->lo, s->top, entry, NULL, arg);
    char *sp = ctx->sp;
    CHECK(sp >= s->lo && sp < s->top, "first frame sp %p outside [%p, %p)", (void *)sp,
          (void *)s->lo, (void *)s->top);
    CHECK((uintptr_t)sp % SAVED_SP_ALIGN == 0, "first frame sp %p not %d-byte aligned",
          (void *)sp, SAVED_SP_ALIGN);
    CHECK(stack_canary_intact(s), "green__ctx_make wrote above top");
}

static uint64_t mix(uint64_t x)
{
    /* splitmix64's finaliser: distinct, bit-dense values from small inputs. */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static green__ctx_t main_ctx;

/* ------------------------------------------------------------------ */
/* Architecture helpers: callee-saved registers, FP control and flags. */

/*
 * regs_switch(from_sp, to_sp, in, out, sw) loads in[] into every
 * callee-saved register, calls sw(from_sp, to_sp) (green__switch_asm or, on
 * x86-64, green__switch_tail_asm), and when the switch returns stores those
 * registers into out[] before restoring the caller's. Both sides of a
 * switch use it with different patterns, so each switch leaves the
 * registers full of the other side's values and the switch back must
 * restore them.
 */
typedef void switch_fn(void **from_sp, void *to_sp);
void regs_switch(void **from_sp, void *to_sp, const uint64_t *in, uint64_t *out, switch_fn *sw);

/* The switch's entry points: the x86-64 one has a second, which resumes
 * the other side with a ret (green__ctx_switch_tail in switch.h). The tests
 * alternate them, so that each resumes contexts the other suspended. */
#if defined(__x86_64__)
static switch_fn *const switch_entries[2] = {green__switch_asm, green__switch_tail_asm};
#else
static switch_fn *const switch_entries[2] = {green__switch_asm, green__switch_asm};
#endif

/* align_probe_entry records sp on entry to a context's entry function, then
 * tail-jumps to align_entry (C), which is the function really called. */
void align_probe_entry(void *arg);
void align_entry(void *arg);
uintptr_t align_entry_sp;

#if defined(__x86_64__)

#define NREGS 6
static const char *const reg_names[NREGS] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};
/* At a function's entry rsp + 8 (the slot above the return address) is
 * 16-byte aligned. */
#define ENTRY_SP_MOD16 8

__asm__(".text\n"
        ".p2align 4\n"
        ".globl regs_switch\n"
        ".hidden regs_switch\n"
        ".type regs_switch, @function\n"
        "regs_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    pushq %rcx\n" /* out */
        "    movq 0(%rdx), %rbx\n"
        "    movq 8(%rdx), %rbp\n"
        "    movq 16(%rdx), %r12\n"
        "    movq 24(%rdx), %r13\n"
        "    movq 32(%rdx), %r14\n"
        "    movq 40(%rdx), %r15\n"
        "    call *%r8\n"
        "    popq %rcx\n"
        "    movq %rbx, 0(%rcx)\n"
        "    movq %rbp, 8(%rcx)\n"
        "    movq %r12, 16(%rcx)\n"
        "    movq %r13, 24(%rcx)\n"
        "    movq %r14, 32(%rcx)\n"
        "    movq %r15, 40(%rcx)\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size regs_switch, .-regs_switch\n"
        "\n"
        ".p2align 4\n"
        ".globl align_probe_entry\n"
        ".hidden align_probe_entry\n"
        ".type align_probe_entry, @function\n"
        "align_probe_entry:\n"
        "    movq %rsp, align_entry_sp(%rip)\n"
        "    jmp align_entry\n"
        ".size align_probe_entry, .-align_probe_entry\n");

/* The FP control state as one number: MXCSR control bits | x87 CW << 32. */
static uint64_t fp_control_get(void)
{
    uint32_t mxcsr;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr)::"memory");
    __asm__ volatile("fnstcw %0" : "=m"(cw)::"memory");
    return (mxcsr & 0xffc0u) | ((uint64_t)cw << 32);
}

/* Sets the control bits and keeps the current sticky flags. */
static void fp_control_set(uint64_t ctl)
{
    uint32_t mxcsr;
    uint16_t cw = (uint16_t)(ctl >> 32);
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr)::"memory");
    mxcsr = (mxcsr & 0x3fu) | ((uint32_t)ctl & 0xffc0u);
    __asm__ volatile("ldmxcsr %0" ::"m"(mxcsr) : "memory");
    __asm__ volatile("fldcw %0" ::"m"(cw) : "memory");
}

static unsigned fp_flags_get(void)
{
    uint32_t mxcsr;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr)::"memory");
    return mxcsr & 0x3fu;
}

static void fp_flags_clear(void)
{
    uint32_t mxcsr;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr)::"memory");
    mxcsr &= ~0x3fu;
    __asm__ volatile("ldmxcsr %0" ::"m"(mxcsr) : "memory");
}

#define FP_FLAG_DIVZERO 0x04u

/* Main's controls: SSE round toward zero; x87 round down. */
static uint64_t fp_control_a(uint64_t dflt)
{
    uint64_t mx = (dflt & 0xffffu & ~0x6000u) | 0x6000u;
    uint64_t cw = ((dflt >> 32) & ~0x0c00u) | 0x0400u;
    return mx | (cw << 32);
}

/* The other context's: SSE round up, flush-to-zero, denormals-are-zero;
 * x87 round up at 53-bit precision. */
static uint64_t fp_control_b(uint64_t dflt)
{
    uint64_t mx = (dflt & 0xffffu & ~0x6000u) | 0x4000u | 0x8000u | 0x0040u;
    uint64_t cw = ((dflt >> 32) & ~0x0f00u) | 0x0800u | 0x0200u;
    return mx | (cw << 32);
}

#define HAVE_X87 1

#elif defined(__aarch64__)

#define NREGS 19
static const char *const reg_names[NREGS] = {"x19", "x20", "x21", "x22", "x23", "x24", "x25",
                                             "x26", "x27", "x28", "x29", "d8",  "d9",  "d10",
                                             "d11", "d12", "d13", "d14", "d15"};
/* sp is 16-byte aligned at all times. */
#define ENTRY_SP_MOD16 0

__asm__(".text\n"
        ".p2align 4\n"
        ".globl regs_switch\n"
        ".hidden regs_switch\n"
        ".type regs_switch, %function\n"
        "regs_switch:\n"
        "    stp x29, x30, [sp, #-176]!\n"
        "    stp x19, x20, [sp, #16]\n"
        "    stp x21, x22, [sp, #32]\n"
        "    stp x23, x24, [sp, #48]\n"
        "    stp x25, x26, [sp, #64]\n"
        "    stp x27, x28, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    str x3, [sp, #160]\n" /* out */
        "    ldp x19, x20, [x2, #0]\n"
        "    ldp x21, x22, [x2, #16]\n"
        "    ldp x23, x24, [x2, #32]\n"
        "    ldp x25, x26, [x2, #48]\n"
        "    ldp x27, x28, [x2, #64]\n"
        "    ldr x29, [x2, #80]\n"
        "    ldp d8, d9, [x2, #88]\n"
        "    ldp d10, d11, [x2, #104]\n"
        "    ldp d12, d13, [x2, #120]\n"
        "    ldp d14, d15, [x2, #136]\n"
        "    blr x4\n"
        "    ldr x3, [sp, #160]\n"
        "    stp x19, x20, [x3, #0]\n"
        "    stp x21, x22, [x3, #16]\n"
        "    stp x23, x24, [x3, #32]\n"
        "    stp x25, x26, [x3, #48]\n"
        "    stp x27, x28, [x3, #64]\n"
        "    str x29, [x3, #80]\n"
        "    stp d8, d9, [x3, #88]\n"
        "    stp d10, d11, [x3, #104]\n"
        "    stp d12, d13, [x3, #120]\n"
        "    stp d14, d15, [x3, #136]\n"
        "    ldp x19, x20, [sp, #16]\n"
        "    ldp x21, x22, [sp, #32]\n"
        "    ldp x23, x24, [sp, #48]\n"
        "    ldp x25, x26, [sp, #64]\n"
        "    ldp x27, x28, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    ldp x29, x30, [sp], #176\n"
        "    ret\n"
        ".size regs_switch, .-regs_switch\n"
        "\n"
        ".p2align 4\n"
        ".globl align_probe_entry\n"
        ".hidden align_probe_entry\n"
        ".type align_probe_entry, %function\n"
        "align_probe_entry:\n"
        "    mov x9, sp\n"
        "    adrp x10, align_entry_sp\n"
        "    str x9, [x10, #:lo12:align_entry_sp]\n"
        "    b align_entry\n"
        ".size align_probe_entry, .-align_probe_entry\n");

static uint64_t fp_control_get(void)
{
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr)::"memory");
    return fpcr;
}

static void fp_control_set(uint64_t ctl)
{
    __asm__ volatile("msr fpcr, %0" ::"r"(ctl) : "memory");
}

/* FPSR cumulative flags: IOC DZC OFC UFC IXC (bits 0-4) and IDC (bit 7). */
static unsigned fp_flags_get(void)
{
    uint64_t fpsr;
    __asm__ volatile("mrs %0, fpsr" : "=r"(fpsr)::"memory");
    return (unsigned)(fpsr & 0x9fu);
}

static void fp_flags_clear(void)
{
    uint64_t fpsr;
    __asm__ volatile("mrs %0, fpsr" : "=r"(fpsr)::"memory");
    fpsr &= ~(uint64_t)0x9fu;
    __asm__ volatile("msr fpsr, %0" ::"r"(fpsr) : "memory");
}

#define FP_FLAG_DIVZERO 0x02u

#define FPCR_RMODE (3ull << 22)
#define FPCR_RZ (3ull << 22)
#define FPCR_RP (1ull << 22)
#define FPCR_FZ (1ull << 24)
#define FPCR_DN (1ull << 25)

/* Main's controls: round toward zero. */
static uint64_t fp_control_a(uint64_t dflt)
{
    return (dflt & ~FPCR_RMODE) | FPCR_RZ;
}

/* The other context's: round up, flush-to-zero, default NaN. */
static uint64_t fp_control_b(uint64_t dflt)
{
    return (dflt & ~FPCR_RMODE) | FPCR_RP | FPCR_FZ | FPCR_DN;
}

#define HAVE_X87 0

#else
#error "no assembly switch test for this architecture"
#endif

/* ------------------------------------------------------------------ */
/* 1. Ping-pong: main -> a -> b -> c -> main, arguments and values.    */

#define RING_N 3
#define RING_ROUNDS 20000

struct ring_arg {
    int index;
    uint64_t magic;
    void *raw; /* an argument with all 64 bits significant */
};

static green__ctx_t ring_ctx[RING_N];
static volatile uint64_t ring_token;
static volatile int ring_entered[RING_N];
static volatile int ring_hops[RING_N];

static void ring_entry(void *p)
{
    struct ring_arg *a = p;
    int i = a->index;
    ring_entered[i]++;
    CHECK(a->magic == 0x6772656e00000000ull + (uint64_t)i, "context %d got a wrong argument", i);
    CHECK(a->raw == (void *)(uintptr_t)(0x8000000000000001ull ^ ((uint64_t)i << 40)),
          "context %d: raw pointer argument %p", i, a->raw);
    for (;;) {
        ring_token = ring_token * 31 + (uint64_t)i + 1;
        ring_hops[i]++;
        green__ctx_t *next = i + 1 == RING_N ? &main_ctx : &ring_ctx[i + 1];
        green__ctx_switch(&ring_ctx[i], next);
    }
}

static void test_ring(void)
{
    struct stack stacks[RING_N];
    struct ring_arg args[RING_N];
    for (int i = 0; i < RING_N; i++) {
        stack_init(&stacks[i], 64 * 1024, 0);
        args[i].index = i;
        args[i].magic = 0x6772656e00000000ull + (uint64_t)i;
        args[i].raw = (void *)(uintptr_t)(0x8000000000000001ull ^ ((uint64_t)i << 40));
        make_ctx(&ring_ctx[i], &stacks[i], ring_entry, &args[i]);
        ring_entered[i] = 0;
        ring_hops[i] = 0;
    }
    int bad_tokens = 0;
    for (uint64_t round = 0; round < RING_ROUNDS; round++) {
        ring_token = round;
        green__ctx_switch(&main_ctx, &ring_ctx[0]);
        uint64_t expect = round;
        for (int i = 0; i < RING_N; i++)
            expect = expect * 31 + (uint64_t)i + 1;
        if (ring_token != expect && bad_tokens++ == 0)
            CHECK(ring_token == expect, "round %llu: token %llx, expected %llx",
                  (unsigned long long)round, (unsigned long long)ring_token,
                  (unsigned long long)expect);
    }
    CHECK(bad_tokens == 0, "%d rounds with a wrong token", bad_tokens);
    for (int i = 0; i < RING_N; i++) {
        CHECK(ring_entered[i] == 1, "context %d entered %d times", i, ring_entered[i]);
        CHECK(ring_hops[i] == RING_ROUNDS, "context %d ran %d hops, expected %d", i, ring_hops[i],
              RING_ROUNDS);
        char *sp = ring_ctx[i].sp;
        CHECK(sp >= stacks[i].lo && sp < stacks[i].top, "context %d saved sp %p outside its stack",
              i, (void *)sp);
        CHECK(stack_canary_intact(&stacks[i]), "context %d wrote above its top", i);
        stack_free(&stacks[i]);
    }
}

/* ------------------------------------------------------------------ */
/* 2. Callee-saved registers, each side clobbering all of them.        */

#define REGS_ROUNDS 2000

static green__ctx_t regs_ctx;
static uint64_t regs_in_main[NREGS], regs_out_main[NREGS];
static uint64_t regs_in_ctx[NREGS], regs_out_ctx[NREGS];
static volatile int regs_ctx_bad;

static void regs_fill(uint64_t *in, uint64_t side, uint64_t round)
{
    for (int r = 0; r < NREGS; r++)
        in[r] = mix((round << 16) | (side << 8) | (uint64_t)r);
}

static int regs_compare(const uint64_t *in, const uint64_t *out, const char *who, uint64_t round)
{
    int bad = 0;
    for (int r = 0; r < NREGS; r++)
        if (in[r] != out[r]) {
            bad++;
            CHECK(in[r] == out[r], "%s, round %llu: %s = %016llx, expected %016llx", who,
                  (unsigned long long)round, reg_names[r], (unsigned long long)out[r],
                  (unsigned long long)in[r]);
        }
    return bad;
}

static void regs_entry(void *arg)
{
    (void)arg;
    for (uint64_t round = 0;; round++) {
        regs_fill(regs_in_ctx, 2, round);
        memset(regs_out_ctx, 0, sizeof regs_out_ctx);
        regs_switch(&regs_ctx.sp, main_ctx.sp, regs_in_ctx, regs_out_ctx,
                    switch_entries[(round >> 1) & 1]);
        regs_ctx_bad += regs_compare(regs_in_ctx, regs_out_ctx, "context", round);
    }
}

static void test_callee_saved(void)
{
    struct stack s;
    stack_init(&s, 64 * 1024, 0);
    make_ctx(&regs_ctx, &s, regs_entry, NULL);
    regs_ctx_bad = 0;
    int main_bad = 0;
    for (uint64_t round = 0; round < REGS_ROUNDS; round++) {
        regs_fill(regs_in_main, 1, round);
        memset(regs_out_main, 0, sizeof regs_out_main);
        regs_switch(&main_ctx.sp, regs_ctx.sp, regs_in_main, regs_out_main, switch_entries[round & 1]);
        main_bad += regs_compare(regs_in_main, regs_out_main, "main", round);
    }
    CHECK(main_bad == 0, "%d registers lost on main's side", main_bad);
    CHECK(regs_ctx_bad == 0, "%d registers lost on the context's side", regs_ctx_bad);
    CHECK(stack_canary_intact(&s), "context wrote above its top");
    stack_free(&s);
}

/* ------------------------------------------------------------------ */
/* 3. FP control per context; sticky flags the thread's.               */

#define FP_ROUNDS 1000

static volatile double fp_one = 1.0, fp_three = 3.0, fp_zero = 0.0, fp_tiny = DBL_MIN;
static volatile double fp_sink;

/* 1/3 in double is 0x1.5555555555555p-2 when rounded down or to nearest and
 * one ulp more when rounded up. */
static const double third_down = 0x1.5555555555555p-2;
static const double third_up = 0x1.5555555555556p-2;

static double fp_third(void)
{
    double q = fp_one / fp_three;
    fp_sink = q;
    return fp_sink;
}

/* DBL_MIN / 4 is subnormal, or zero under flush-to-zero. */
static double fp_quarter_min(void)
{
    double q = fp_tiny / 4.0;
    fp_sink = q;
    return fp_sink;
}

#if HAVE_X87
static volatile long double fp_one_l = 1.0L, fp_three_l = 3.0L;
static volatile long double fp_sink_l;

static long double fp_third_x87(void)
{
    long double q = fp_one_l / fp_three_l;
    fp_sink_l = q;
    return fp_sink_l;
}
#endif

/* What that arithmetic must give under a control value. */
#if defined(__x86_64__)
static int ctl_rounds_up(uint64_t ctl)
{
    return ((ctl >> 13) & 3) == 2; /* MXCSR RC */
}

static int ctl_flushes(uint64_t ctl)
{
    return (ctl >> 15) & 1; /* MXCSR FZ */
}

/* Only the 53- and 64-bit precisions are used here. */
static long double ctl_third_x87(uint64_t ctl)
{
    unsigned cw = (unsigned)(ctl >> 32), rc = (cw >> 10) & 3, pc = (cw >> 8) & 3;
    if (pc == 2)
        return rc == 2 ? (long double)third_up : (long double)third_down;
    return rc == 0 || rc == 2 ? 0x1.5555555555555556p-2L : 0x1.5555555555555554p-2L;
}

/* Control values mixing the MXCSR part of one and the x87 part of another. */
static uint64_t ctl_mix(uint64_t mxcsr_from, uint64_t x87_from)
{
    return (mxcsr_from & 0xffffffffu) | (x87_from & ~(uint64_t)0xffffffffu);
}

struct fp_pair {
    const char *what;
    uint64_t main_ctl, ctx_ctl;
};

/* Each part of the control state must be switched on its own. */
static int fp_pairs(uint64_t dflt, struct fp_pair *pairs)
{
    uint64_t a = fp_control_a(dflt), b = fp_control_b(dflt);
    pairs[0] = (struct fp_pair){"MXCSR and x87 control differ", a, b};
    pairs[1] = (struct fp_pair){"only MXCSR differs", ctl_mix(a, dflt), ctl_mix(b, dflt)};
    pairs[2] = (struct fp_pair){"only the x87 control word differs", ctl_mix(dflt, a),
                                ctl_mix(dflt, b)};
    return 3;
}
#else
static int ctl_rounds_up(uint64_t ctl)
{
    return (ctl & FPCR_RMODE) == FPCR_RP;
}

static int ctl_flushes(uint64_t ctl)
{
    return (ctl & FPCR_FZ) != 0;
}

struct fp_pair {
    const char *what;
    uint64_t main_ctl, ctx_ctl;
};

static int fp_pairs(uint64_t dflt, struct fp_pair *pairs)
{
    pairs[0] = (struct fp_pair){"rounding, flush-to-zero and default-NaN differ",
                                fp_control_a(dflt), fp_control_b(dflt)};
    pairs[1] = (struct fp_pair){"only flush-to-zero differs", dflt & ~FPCR_FZ, dflt | FPCR_FZ};
    pairs[2] = (struct fp_pair){"only rounding differs", (dflt & ~FPCR_RMODE) | FPCR_RZ,
                                (dflt & ~FPCR_RMODE) | FPCR_RP};
    return 3;
}
#endif

static green__ctx_t fp_ctx;
static const struct fp_pair *fp_pair;
static volatile int fp_ctx_bad, fp_ctx_rounds;
static volatile uint64_t fp_ctx_seen_at_entry;

/* Checks the running context has control value `want`, by reading it back
 * and by what the arithmetic does. Returns the number of mismatches. */
static int fp_check(uint64_t want, const char *who, uint64_t round)
{
    int bad = 0;
    uint64_t ctl = fp_control_get();
    if (ctl != want) {
        bad++;
        CHECK(ctl == want, "%s: %s, round %llu: control %llx, expected %llx", fp_pair->what, who,
              (unsigned long long)round, (unsigned long long)ctl, (unsigned long long)want);
    }
    double t = fp_third(), z = fp_quarter_min();
    double want_t = ctl_rounds_up(want) ? third_up : third_down;
    int want_flush = ctl_flushes(want);
    if (t != want_t || (z == 0.0) != want_flush) {
        bad++;
        CHECK(t == want_t && (z == 0.0) == want_flush,
              "%s: %s, round %llu: 1/3 = %a, DBL_MIN/4 = %a", fp_pair->what, who,
              (unsigned long long)round, t, z);
    }
#if HAVE_X87
    long double tl = fp_third_x87(), want_tl = ctl_third_x87(want);
    if (tl != want_tl) {
        bad++;
        CHECK(tl == want_tl, "%s: %s, round %llu: x87 1/3 = %La, expected %La", fp_pair->what,
              who, (unsigned long long)round, tl, want_tl);
    }
#endif
    return bad;
}

static void fp_entry(void *arg)
{
    (void)arg;
    /* A new context starts with the controls its creator had. */
    fp_ctx_seen_at_entry = fp_control_get();
    fp_control_set(fp_pair->ctx_ctl);
    for (uint64_t round = 0;; round++) {
        fp_ctx_bad += fp_check(fp_pair->ctx_ctl, "context", round);
        fp_ctx_rounds++;
        if ((round >> 1) & 1)
            green__ctx_switch_tail(&fp_ctx, &main_ctx);
        else
            green__ctx_switch(&fp_ctx, &main_ctx);
    }
}

static void test_fp_control(void)
{
    uint64_t saved = fp_control_get();
    struct fp_pair pairs[3];
    int npairs = fp_pairs(saved, pairs);
    for (int i = 0; i < npairs; i++) {
        fp_pair = &pairs[i];
        fp_control_set(fp_pair->ctx_ctl);
        CHECK(fp_control_get() == fp_pair->ctx_ctl, "%s: cannot set the context's controls",
              fp_pair->what);
        fp_control_set(fp_pair->main_ctl);
        CHECK(fp_control_get() == fp_pair->main_ctl, "%s: cannot set main's controls",
              fp_pair->what);

        struct stack s;
        stack_init(&s, 64 * 1024, 0);
        make_ctx(&fp_ctx, &s, fp_entry, NULL);
        fp_ctx_bad = 0;
        fp_ctx_rounds = 0;
        int main_bad = 0;
        /* Main sets its controls once and the context once: both must
         * still hold after every switch. */
        for (uint64_t round = 0; round < FP_ROUNDS; round++) {
            if (round & 1)
                green__ctx_switch_tail(&main_ctx, &fp_ctx);
            else
                green__ctx_switch(&main_ctx, &fp_ctx);
            main_bad += fp_check(fp_pair->main_ctl, "main", round);
        }
        fp_control_set(saved);
        CHECK(fp_ctx_seen_at_entry == fp_pair->main_ctl,
              "%s: new context started with controls %llx, creator had %llx", fp_pair->what,
              (unsigned long long)fp_ctx_seen_at_entry, (unsigned long long)fp_pair->main_ctl);
        CHECK(fp_ctx_rounds == FP_ROUNDS, "%s: context ran %d rounds", fp_pair->what,
              fp_ctx_rounds);
        CHECK(main_bad == 0, "%s: main's FP control lost %d times", fp_pair->what, main_bad);
        CHECK(fp_ctx_bad == 0, "%s: the context's FP control lost %d times", fp_pair->what,
              fp_ctx_bad);
        stack_free(&s);
    }
}

/*
 * The one-way jump that ends a context (green__ctx_jump): the context sets
 * controls of its own and jumps back to main, which must find its own
 * controls and its locals as they were, every time.
 */
static green__ctx_t jump_ctx, jump_scratch;
static volatile int jump_entered;

static void jump_entry(void *arg)
{
    (void)arg;
    jump_entered++;
    fp_control_set(fp_pair->ctx_ctl);
    green__ctx_jump(&jump_scratch, &main_ctx);
}

static void test_fp_jump(void)
{
    uint64_t saved = fp_control_get();
    struct fp_pair pairs[3];
    int npairs = fp_pairs(saved, pairs);
    for (int i = 0; i < npairs; i++) {
        fp_pair = &pairs[i];
        for (int round = 0; round < 100; round++) {
            struct stack s;
            stack_init(&s, 64 * 1024, 0);
            make_ctx(&jump_ctx, &s, jump_entry, NULL);
            uint64_t before = mix((uint64_t)round);
            fp_control_set(fp_pair->main_ctl);
            int entered = jump_entered;
            green__ctx_switch(&main_ctx, &jump_ctx);
            uint64_t now = fp_control_get();
            fp_control_set(saved);
            CHECK(jump_entered == entered + 1, "%s: the context did not run", fp_pair->what);
            CHECK(now == fp_pair->main_ctl, "%s, round %d: main resumed with controls %llx, had %llx",
                  fp_pair->what, round, (unsigned long long)now,
                  (unsigned long long)fp_pair->main_ctl);
            CHECK(before == mix((uint64_t)round), "%s: a local changed across the jump",
                  fp_pair->what);
            CHECK(stack_canary_intact(&s), "%s: the context wrote above its stack", fp_pair->what);
            stack_free(&s);
        }
    }
}

/*
 * Where the sticky flags go. In the x86-64 switch's load mode they travel
 * with each context, as with threads: a context resumed gets back the flags
 * it had, and the flag it raised leaves with it. Otherwise (compare mode,
 * aarch64) they belong to the thread, as across a call: a flag raised in
 * one context is still raised after switching to another, and a context
 * resumed after the thread cleared its flags does not get its old flags
 * back. Either is allowed (the psABI makes the status bits caller-saved);
 * each mode must keep its own promise. Checked with equal controls and with
 * different ones (the paths that do and do not load the control register in
 * compare mode).
 */
static int flags_per_context(void)
{
#if defined(__x86_64__)
    return !green__fp_compare;
#else
    return 0;
#endif
}

static green__ctx_t flags_ctx;
static uint64_t flags_ctl_ctx;
static volatile unsigned flags_seen_on_resume, flags_after_raise;
static volatile uint64_t flags_ctl_seen;

static void flags_entry(void *arg)
{
    (void)arg;
    fp_control_set(flags_ctl_ctx);
    for (;;) {
        flags_seen_on_resume = fp_flags_get();
        flags_ctl_seen = fp_control_get();
        fp_sink = fp_one / fp_zero; /* raises divide-by-zero (masked) */
        flags_after_raise = fp_flags_get();
        green__ctx_switch(&flags_ctx, &main_ctx);
    }
}

static void flags_run(int differ)
{
    uint64_t saved = fp_control_get();
    uint64_t ctl_main = differ ? fp_control_a(saved) : saved;
    flags_ctl_ctx = differ ? fp_control_b(saved) : saved;
    fp_control_set(ctl_main);
    const char *path = differ ? "controls differ" : "controls equal";

    struct stack s;
    stack_init(&s, 64 * 1024, 0);
    make_ctx(&flags_ctx, &s, flags_entry, NULL);
    for (int round = 0; round < 100; round++) {
        fp_flags_clear();
        flags_seen_on_resume = 0xdead;
        green__ctx_switch(&main_ctx, &flags_ctx);
        unsigned now = fp_flags_get();
        if (!(flags_after_raise & FP_FLAG_DIVZERO)) {
            CHECK(flags_after_raise & FP_FLAG_DIVZERO, "%s: 1/0 did not raise divide-by-zero",
                  path);
            break;
        }
        if (flags_per_context()) {
            if (round > 0 && !(flags_seen_on_resume & FP_FLAG_DIVZERO)) {
                CHECK(flags_seen_on_resume & FP_FLAG_DIVZERO,
                      "%s, round %d: the context lost its own divide-by-zero flag (flags %x)",
                      path, round, flags_seen_on_resume);
                break;
            }
            if (now & FP_FLAG_DIVZERO) {
                CHECK(!(now & FP_FLAG_DIVZERO),
                      "%s, round %d: the context's flag leaked into main (flags %x)", path,
                      round, now);
                break;
            }
        } else {
            if (flags_seen_on_resume & FP_FLAG_DIVZERO) {
                CHECK(!(flags_seen_on_resume & FP_FLAG_DIVZERO),
                      "%s, round %d: the context got its own old divide-by-zero flag back "
                      "(flags %x) after the thread cleared it",
                      path, round, flags_seen_on_resume);
                break;
            }
            if (!(now & FP_FLAG_DIVZERO)) {
                CHECK(now & FP_FLAG_DIVZERO,
                      "%s, round %d: the flag the context raised was dropped by the switch "
                      "(flags %x)",
                      path, round, now);
                break;
            }
        }
        if (flags_ctl_seen != flags_ctl_ctx || fp_control_get() != ctl_main) {
            CHECK(flags_ctl_seen == flags_ctl_ctx && fp_control_get() == ctl_main,
                  "%s, round %d: controls %llx / %llx", path, round,
                  (unsigned long long)flags_ctl_seen, (unsigned long long)fp_control_get());
            break;
        }
    }
    fp_flags_clear();
    fp_control_set(saved);
    stack_free(&s);
}

static void test_fp_flags_equal_controls(void)
{
    flags_run(0);
}

static void test_fp_flags_different_controls(void)
{
    flags_run(1);
}

/* ------------------------------------------------------------------ */
/* 4. Stack alignment and the end of the frame chain at entry.         */

static green__ctx_t align_ctx;
static volatile uintptr_t align_local_addr, align_frame_addr;
static void *volatile align_caller_fp;
static volatile int align_unwind_depth;
static volatile uintptr_t align_unwind_last_ip;

/* The first frame's return address (lib/arch/switch_<arch>.S). */
void green__trampoline(void);

/* Stores an SSE/NEON register to a local the compiler aligned to 16 bytes
 * on the assumption that the stack was aligned at entry: on x86-64 movaps
 * faults if it was not. */
static __attribute__((noinline)) uintptr_t aligned_vector_store(void)
{
    _Alignas(16) unsigned char buf[32];
    unsigned char *p = buf;
    __asm__ volatile("" : "+r"(p)); /* hide the alignment from the folder */
#if defined(__x86_64__)
    __asm__ volatile("xorps %%xmm0, %%xmm0\n\tmovaps %%xmm0, (%0)" ::"r"(p) : "xmm0", "memory");
#else
    __asm__ volatile("movi v16.16b, #0\n\tstr q16, [%0]" ::"r"(p) : "v16", "memory");
#endif
    return (uintptr_t)p;
}

/*
 * Walks the stack with the DWARF unwinder (what C++ exceptions, glibc's
 * backtrace() and debuggers use) from inside a context. The walk must end
 * at the trampoline, whose CFI marks the return address undefined; without
 * that the unwinder would step into whatever lies above the first frame.
 * No loop detection here, unlike backtrace(): a walk that does not end is
 * cut at UNWIND_MAX frames and fails.
 */
#define UNWIND_MAX 64

struct unwind_walk {
    int depth;
    uintptr_t last_ip;
};

/* libgcc reports the frame past an undefined return address with IP 0;
 * last_ip is the outermost real one. */
static _Unwind_Reason_Code unwind_step(struct _Unwind_Context *uc, void *p)
{
    struct unwind_walk *w = p;
    uintptr_t ip = (uintptr_t)_Unwind_GetIP(uc);
    if (ip != 0)
        w->last_ip = ip;
    return ++w->depth >= UNWIND_MAX ? _URC_END_OF_STACK : _URC_NO_REASON;
}

static __attribute__((noinline)) struct unwind_walk unwind_from_here(void)
{
    struct unwind_walk w = {0, 0};
    _Unwind_Backtrace(unwind_step, &w);
    __asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
    return w;
}

void align_entry(void *arg)
{
    (void)arg;
    /* With a misaligned entry the aligned store below would fault: report
     * the probe's finding instead of a bare signal. */
    if (align_entry_sp % 16 != ENTRY_SP_MOD16) {
        green__ctx_switch(&align_ctx, &main_ctx);
        for (;;) /* never resumed */
            green__ctx_switch(&align_ctx, &main_ctx);
    }
    align_frame_addr = (uintptr_t)__builtin_frame_address(0);
    /* The caller's saved frame pointer: the trampoline's, which must be 0 so
     * that frame-pointer unwinders (perf, ASan's fast unwinder) stop here. */
    align_caller_fp = *(void **)__builtin_frame_address(0);
    align_local_addr = aligned_vector_store();
    struct unwind_walk w = unwind_from_here();
    align_unwind_depth = w.depth;
    align_unwind_last_ip = w.last_ip;
    green__ctx_switch(&align_ctx, &main_ctx);
    for (;;) /* never resumed */
        green__ctx_switch(&align_ctx, &main_ctx);
}

static void test_entry_alignment(void)
{
    /* Tops at every 16-byte offset modulo 64. */
    for (size_t off = 0; off < 64; off += 16) {
        struct stack s;
        stack_init(&s, 64 * 1024, off);
        make_ctx(&align_ctx, &s, align_probe_entry, NULL);
        align_entry_sp = 1;
        align_local_addr = 1;
        align_frame_addr = 1;
        align_caller_fp = (void *)1;
        align_unwind_depth = -1;
        align_unwind_last_ip = 0;
        green__ctx_switch(&main_ctx, &align_ctx);
        CHECK(align_entry_sp % 16 == ENTRY_SP_MOD16,
              "top %p: sp at entry %p, expected %d mod 16", (void *)s.top, (void *)align_entry_sp,
              ENTRY_SP_MOD16);
        CHECK(align_entry_sp > (uintptr_t)s.lo && align_entry_sp <= (uintptr_t)s.top,
              "sp at entry %p outside [%p, %p]", (void *)align_entry_sp, (void *)s.lo,
              (void *)s.top);
        if (align_entry_sp % 16 != ENTRY_SP_MOD16) {
            /* align_entry stopped short; the checks below would be noise. */
            stack_free(&s);
            continue;
        }
        CHECK(align_frame_addr % 16 == 0, "top %p: frame address %p not 16-byte aligned",
              (void *)s.top, (void *)align_frame_addr);
        CHECK(align_local_addr % 16 == 0, "top %p: aligned local at %p", (void *)s.top,
              (void *)align_local_addr);
        CHECK(align_caller_fp == NULL, "frame chain does not end at the entry (caller fp %p)",
              align_caller_fp);
        /* unwind_from_here, align_entry, the trampoline, and the end mark;
         * a little slack for unwinders that report their own frame. */
        CHECK(align_unwind_depth >= 3 && align_unwind_depth <= 6,
              "the unwinder walked %d frames from a context (it must stop at the trampoline)",
              align_unwind_depth);
        uintptr_t tramp = (uintptr_t)green__trampoline;
        CHECK(align_unwind_last_ip > tramp && align_unwind_last_ip <= tramp + 16,
              "the unwinder's outermost frame is at %p, not in the trampoline (%p)",
              (void *)align_unwind_last_ip, (void *)tramp);
        CHECK(stack_canary_intact(&s), "context wrote above its top");
        stack_free(&s);
    }
}

/* ------------------------------------------------------------------ */
/* 5. Deep recursion on a context stack, suspended at depth.           */

#define DEEP_DEPTH 4000
#define DEEP_SWITCH_EVERY 250

static green__ctx_t deep_ctx;
static volatile int deep_suspensions, deep_corrupt;
static volatile uintptr_t deep_lowest_frame;
static volatile uint64_t deep_result;
static volatile int deep_done;

static __attribute__((noinline)) uint64_t deep_recurse(unsigned depth, uint64_t seed)
{
    volatile uint64_t buf[32];
    for (int i = 0; i < 32; i++)
        buf[i] = mix(seed + (uint64_t)i);
    if (depth % DEEP_SWITCH_EVERY == 0) {
        deep_suspensions++;
        green__ctx_switch(&deep_ctx, &main_ctx);
    }
    uint64_t acc = 0;
    if (depth > 0)
        acc = deep_recurse(depth - 1, mix(seed));
    else
        deep_lowest_frame = (uintptr_t)__builtin_frame_address(0);
    for (int i = 0; i < 32; i++) {
        if (buf[i] != mix(seed + (uint64_t)i))
            deep_corrupt++;
        acc = acc * 3 + buf[i];
    }
    return acc;
}

static void deep_entry(void *arg)
{
    deep_result = deep_recurse(DEEP_DEPTH, (uint64_t)(uintptr_t)arg);
    deep_done = 1;
    for (;;)
        green__ctx_switch(&deep_ctx, &main_ctx);
}

static void test_deep_recursion(void)
{
    struct stack s;
    stack_init(&s, 4 * 1024 * 1024, 0);
    uint64_t seed = 12345;
    make_ctx(&deep_ctx, &s, deep_entry, (void *)(uintptr_t)seed);
    deep_suspensions = 0;
    deep_corrupt = 0;
    deep_done = 0;
    int switches = 0;
    /* Main switches with its callee-saved registers full of patterns, which
     * the recursion (compiled code, not regs_switch) clobbers at will. */
    int main_bad = 0;
    while (!deep_done && switches < 2 * DEEP_DEPTH) {
        uint64_t in[NREGS], out[NREGS];
        regs_fill(in, 3, (uint64_t)switches);
        regs_switch(&main_ctx.sp, deep_ctx.sp, in, out, green__switch_asm);
        main_bad += regs_compare(in, out, "main", (uint64_t)switches);
        switches++;
    }
    CHECK(main_bad == 0, "%d registers lost on main's side", main_bad);
    /* The reference, folded from the bottom of the recursion up. */
    static uint64_t seeds[DEEP_DEPTH + 1];
    seeds[DEEP_DEPTH] = seed;
    for (int d = DEEP_DEPTH; d > 0; d--)
        seeds[d - 1] = mix(seeds[d]);
    uint64_t expect = 0;
    for (int d = 0; d <= DEEP_DEPTH; d++)
        for (int i = 0; i < 32; i++)
            expect = expect * 3 + mix(seeds[d] + (uint64_t)i);

    CHECK(deep_done, "recursion did not finish after %d switches", switches);
    CHECK(deep_corrupt == 0, "%d stack slots corrupted", deep_corrupt);
    CHECK(deep_result == expect, "result %llx, expected %llx", (unsigned long long)deep_result,
          (unsigned long long)expect);
    CHECK(deep_suspensions == DEEP_DEPTH / DEEP_SWITCH_EVERY + 1, "suspended %d times",
          deep_suspensions);
    size_t used = (size_t)((uintptr_t)s.top - deep_lowest_frame);
    CHECK(used > DEEP_DEPTH * 256u && deep_lowest_frame > (uintptr_t)s.lo,
          "deepest frame at %p (%zu bytes used) in [%p, %p)", (void *)deep_lowest_frame, used,
          (void *)s.lo, (void *)s.top);
    CHECK(stack_canary_intact(&s), "context wrote above its top");
    stack_free(&s);
}

/* ------------------------------------------------------------------ */
/* 6. A million round trips.                                           */

#define MILLION 1000000

static green__ctx_t million_ctx;
static volatile long million_count;

static void million_entry(void *arg)
{
    long limit = (long)(intptr_t)arg;
    for (long i = 0; i < limit; i++) {
        million_count = i + 1;
        green__ctx_switch(&million_ctx, &main_ctx);
    }
    million_count = -1; /* done */
    for (;;)
        green__ctx_switch(&million_ctx, &main_ctx);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void test_million(void)
{
    struct stack s;
    stack_init(&s, 64 * 1024, 0);
    make_ctx(&million_ctx, &s, million_entry, (void *)(intptr_t)MILLION);
    million_count = 0;
    long wrong = 0;
    double t0 = now_ns();
    for (long i = 0; i < MILLION; i++) {
        green__ctx_switch(&main_ctx, &million_ctx);
        if (million_count != i + 1 && wrong++ == 0)
            CHECK(million_count == i + 1, "trip %ld: count %ld", i, million_count);
    }
    double t1 = now_ns();
    green__ctx_switch(&main_ctx, &million_ctx);
    CHECK(wrong == 0, "%ld trips out of order", wrong);
    CHECK(million_count == -1, "the context did not finish its loop (count %ld)", million_count);
    CHECK(stack_canary_intact(&s), "context wrote above its top");
    printf("     (%d switches, %.1f ns per switch)\n", 2 * MILLION, (t1 - t0) / (2.0 * MILLION));
    stack_free(&s);
}

/* ------------------------------------------------------------------ */

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_fatal_handlers();
    /* Bounded: under qemu the whole run takes a few seconds. */
    alarm(120);
#if defined(__x86_64__)
    printf("switch test: x86_64 (switch_x86_64.S)\n");
#else
    printf("switch test: aarch64 (switch_aarch64.S)\n");
#endif
    run_test("ping-pong main -> a -> b -> c, arguments and values", test_ring);
    run_test("callee-saved registers across switches", test_callee_saved);
#if defined(__x86_64__)
    /* Both MXCSR modes of the switch (switch_x86_64.S), whatever this CPU
     * would pick. */
    for (int mode = 0; mode < 2; mode++) {
        green__fp_compare = (unsigned char)mode;
        printf("  (MXCSR %s mode)\n", mode ? "compare" : "load");
#else
    {
#endif
        run_test("FP control per context", test_fp_control);
        run_test("FP control after an ended context's jump", test_fp_jump);
        run_test("FP sticky flags (equal controls)", test_fp_flags_equal_controls);
        run_test("FP sticky flags (different controls)", test_fp_flags_different_controls);
    }
#if defined(__x86_64__)
    green__ctx_init();
    printf("  (this CPU picks %s mode)\n", green__fp_compare ? "compare" : "load");
#endif
    run_test("stack alignment and frame chain at context entry", test_entry_alignment);
    run_test("deep recursion on a context stack", test_deep_recursion);
    run_test("a million round trips", test_million);
    printf("%d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed ? 1 : 0;
}
