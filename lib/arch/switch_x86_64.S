/*
 * Context switch for x86-64, System V psABI.
 *
 *   void green__switch_asm(void **from_sp, void *to_sp);
 *   void green__switch_tail_asm(void **from_sp, void *to_sp);
 *
 * The psABI makes rbx, rbp, r12-r15 and rsp callee-saved, plus the control
 * bits of MXCSR (6-15: DAZ, exception masks, rounding, FZ) and the x87
 * control word. The switch pushes them on the running stack, stores rsp in
 * *from_sp, loads to_sp and pops the target's frame. The saved frame, from
 * the saved rsp upwards (offsets in frame_x86_64.h, mirrored by
 * struct green__frame in switch.h):
 *
 *        +--------+--------+--------+
 *   +0   | mxcsr (4) | x87 cw (2) | pad |
 *   +8   | r15                      |
 *   +16  | r14                      |
 *   +24  | r13                      |
 *   +32  | r12                      |
 *   +40  | rbx                      |
 *   +48  | rbp                      |
 *   +56  | return address (rip)     |
 *        +--------------------------+   <- rsp after the switch
 *
 * Keeping the FP control state cheap. The switch stores MXCSR and the x87
 * control word on the way out (stmxcsr, fnstcw) and must make the target's
 * control bits current on the way in. Two costs decide how:
 *
 *   - On some CPUs (the Xeons of ../shared/PEERS.md) an ldmxcsr that
 *     changes the register's value costs ~70 ns, and the sticky exception
 *     flags (bits 0-5) differ between two contexts as soon as either has done
 *     floating point, so loading the saved MXCSR on every switch is slow.
 *   - On others (the AMD Zen machines here) that ldmxcsr costs ~1 ns, but
 *     reading back the value stmxcsr just stored stalls ~2 ns: the store
 *     is not forwarded to the load.
 *
 * So there are two modes, chosen once per process by green__ctx_init
 * (ctx_asm.c), which times a value-changing ldmxcsr:
 *
 *   load mode (green__fp_compare == 0): ldmxcsr the target's saved MXCSR
 *     unconditionally. Sticky flags travel with each context, as they do
 *     with threads.
 *   compare mode (green__fp_compare == 1): compare the control bits (6-15)
 *     with the target's and ldmxcsr only when they differ, keeping the
 *     thread's sticky flags. The common case is a store, a load and a few
 *     ALU ops.
 *
 * The psABI makes the status bits caller-saved, so both are correct; they
 * differ only in what fetestexcept sees right after a switch. The x87
 * control word is compared in both modes (fnstcw forwards to the load
 * cheaply, and fldcw is never free) and loaded only when it differs.
 *
 * The switch returns into the target with pop + indirect jmp rather than
 * ret: a ret here would mispredict the return-stack buffer on every switch
 * (~12 ns against ~2.5 ns measured on these machines), since its callers
 * enter it with a jmp and push nothing on that buffer (switch.h).
 * green__switch_tail_asm is the same switch ending in a ret, for a caller
 * that enters it by a sibling call, its own caller's call having pushed the
 * entry that ret pops (green__ctx_switch_tail in switch.h).
 */
#include "frame_x86_64.h"

/* The switch, as a macro for its two entry points; tail = 1 resumes with ret. */
        .macro  SWITCH name, tail
        .p2align 4
        .globl  \name
        .hidden \name
        .type   \name, @function
\name:
        .cfi_startproc
        /* MXCSR first, into the slot the frame below will give it (in the
         * red zone until the pushes reach it): stmxcsr is microcoded, and
         * issued first it overlaps the pushes (measured A/B, core_green
         * yield: 7.42 -> 6.93 ns with the host busy, unchanged when quiet). */
        stmxcsr -FRAME_RIP+FRAME_MXCSR(%rsp)
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbp, 0
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbx, 0
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r12, 0
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r13, 0
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r14, 0
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r15, 0
        subq    $8, %rsp
        .cfi_adjust_cfa_offset 8
        /* From the load of rsp on, the same rules describe the target's
         * frame, which has the same layout. */
        fnstcw  FRAME_X87CW(%rsp)
        movzwl  FRAME_X87CW(%rsp), %edx /* our x87 control word, read back */
        movq    %rsp, (%rdi)
        movq    %rsp, %r8               /* our frame, for compare mode */
        movq    %rsi, %rsp
        testb   $1, green__fp_compare(%rip)
        jnz     3f
        ldmxcsr FRAME_MXCSR(%rsp)       /* load mode */
1:      xorw    FRAME_X87CW(%rsp), %dx
        jnz     4f
2:      .cfi_remember_state
        addq    $8, %rsp
        .cfi_adjust_cfa_offset -8
        popq    %r15
        .cfi_adjust_cfa_offset -8
        .cfi_restore r15
        popq    %r14
        .cfi_adjust_cfa_offset -8
        .cfi_restore r14
        popq    %r13
        .cfi_adjust_cfa_offset -8
        .cfi_restore r13
        popq    %r12
        .cfi_adjust_cfa_offset -8
        .cfi_restore r12
        popq    %rbx
        .cfi_adjust_cfa_offset -8
        .cfi_restore rbx
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        .cfi_restore rbp
        .if \tail
        ret
        .else
        popq    %rcx
        .cfi_adjust_cfa_offset -8
        .cfi_register rip, rcx
        jmpq    *%rcx
        .endif
        .cfi_restore_state
3:      /* Compare mode: load MXCSR only when the control bits differ, and
         * then keep the thread's sticky flags. */
        movl    FRAME_MXCSR(%r8), %eax
        movl    FRAME_MXCSR(%rsp), %ecx
        xorl    %ecx, %eax
        testl   $0xffc0, %eax
        jz      1b
        xorl    %ecx, %eax              /* ours again */
        andl    $0x3f, %eax
        andl    $0xffc0, %ecx
        orl     %eax, %ecx
        movl    %ecx, FRAME_MXCSR(%rsp)
        ldmxcsr FRAME_MXCSR(%rsp)
        jmp     1b
4:      fldcw   FRAME_X87CW(%rsp)
        jmp     2b
        .cfi_endproc
        .size   \name, .-\name
        .endm

        .text
        SWITCH  green__switch_tail_asm, 1
        /* Last: green__jump_asm below jumps into this one's labels. */
        SWITCH  green__switch_asm, 0

/*
 *   void green__jump_asm(void *to_sp);   (never returns)
 *
 * Resumes a context without saving the running one: the last switch of a
 * context that has ended. It skips the pushes and, in load mode, the
 * stmxcsr, which here costs more than the rest of a switch (~4 ns). The
 * target's FP controls are restored as by green__switch_asm; the running
 * x87 control word and (compare mode) MXCSR are stored below the target's
 * frame, in stack it does not use, to compare them.
 */
        .p2align 4
        .globl  green__jump_asm
        .hidden green__jump_asm
        .type   green__jump_asm, @function
green__jump_asm:
        .cfi_startproc
        movq    %rdi, %rsp
        fnstcw  -8(%rsp)
        movzwl  -8(%rsp), %edx
        testb   $1, green__fp_compare(%rip)
        jnz     5f
        ldmxcsr FRAME_MXCSR(%rsp)       /* load mode */
        jmp     1b
5:      stmxcsr -16(%rsp)               /* compare mode: the running MXCSR */
        leaq    -16(%rsp), %r8
        jmp     3b
        .cfi_endproc
        .size   green__jump_asm, .-green__jump_asm

/*
 * First frame of a new context: green__ctx_make stores entry in r12, leave
 * in r13 and their argument in rbx; the switch "returns" here with rsp
 * 16-byte aligned. When entry returns, leave is entered with a jmp (and a
 * dummy return address, so that it sees the stack a call would give it).
 */
        .p2align 4
        .globl  green__trampoline
        .hidden green__trampoline
        .type   green__trampoline, @function
green__trampoline:
        .cfi_startproc
        .cfi_undefined rip
        movq    %rbx, %rdi
        callq   *%r12
        movq    %rbx, %rdi
        pushq   $0
        jmpq    *%r13
        .cfi_endproc
        .size   green__trampoline, .-green__trampoline

        .section .note.GNU-stack, "", @progbits
