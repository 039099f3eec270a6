/*
 * Context switch for x86-64, System V psABI.
 *
 *   void green__switch_asm(void **from_sp, void *to_sp);
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
 * Keeping the FP control state cheap: stmxcsr and fnstcw are plain stores,
 * but ldmxcsr with a value that differs from the current one costs ~70 ns on
 * these CPUs, and the sticky exception flags (MXCSR bits 0-5) differ between
 * any two contexts as soon as one of them has done floating point. So the
 * switch compares only the control bits of the two contexts and loads them
 * only when they differ; the sticky flags stay the thread's, as they would
 * across a function call. The common case costs two stores, two loads and
 * a few ALU ops (~4 ns here; the loads are sized like the stores so that
 * store-to-load forwarding works: one 8-byte load over both stalls ~2 ns).
 *
 * The switch returns into the target with pop + indirect jmp rather than
 * ret: a ret here would mispredict the return-stack buffer on every switch
 * (~12 ns against ~2.5 ns measured on these machines).
 */
#include "frame_x86_64.h"

        .text
        .p2align 4
        .globl  green__switch_asm
        .hidden green__switch_asm
        .type   green__switch_asm, @function
green__switch_asm:
        .cfi_startproc
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
        stmxcsr FRAME_MXCSR(%rsp)
        fnstcw  FRAME_X87CW(%rsp)
        movl    FRAME_MXCSR(%rsp), %eax /* our control state, read back with */
        movzwl  FRAME_X87CW(%rsp), %edx /* loads of the stores' own sizes */
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        xorl    FRAME_MXCSR(%rsp), %eax /* differences from the target's */
        xorw    FRAME_X87CW(%rsp), %dx
        andl    $0xffc0, %eax           /* MXCSR control bits only */
        orl     %edx, %eax
        jnz     2f
        .cfi_remember_state
1:      addq    $8, %rsp
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
        popq    %rcx
        .cfi_adjust_cfa_offset -8
        .cfi_register rip, rcx
        jmpq    *%rcx
        .cfi_restore_state
2:      /* Control bits differ: keep the thread's sticky flags, take the
         * target's controls. eax holds (ours ^ target's) & 0xffc0 | cw diff. */
        stmxcsr -8(%rsp)                /* red zone: still our flags */
        movl    -8(%rsp), %eax
        andl    $0x3f, %eax
        movl    FRAME_MXCSR(%rsp), %ecx
        andl    $0xffc0, %ecx
        orl     %eax, %ecx
        movl    %ecx, FRAME_MXCSR(%rsp)
        ldmxcsr FRAME_MXCSR(%rsp)
        fldcw   FRAME_X87CW(%rsp)
        jmp     1b
        .cfi_endproc
        .size   green__switch_asm, .-green__switch_asm

/*
 * First frame of a new context: green__ctx_make stores entry in r12 and its
 * argument in rbx; the switch "returns" here with rsp 16-byte aligned.
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
        ud2
        .cfi_endproc
        .size   green__trampoline, .-green__trampoline

        .section .note.GNU-stack, "", @progbits
