/*
 * Context switch for aarch64, AAPCS64.
 *
 *   void green__switch_asm(void **from_sp, void *to_sp);
 *
 * Callee-saved: x19-x28, x29 (fp), x30 (lr), sp, the low 64 bits of v8-v15
 * (d8-d15), and the control register FPCR (rounding, flush-to-zero, trap
 * enables). The switch stores them in a frame on the running stack, saves sp
 * in *from_sp, loads to_sp and restores the target's frame. Layout from the
 * saved sp upwards (offsets in frame_aarch64.h, mirrored by struct
 * green__frame in switch.h):
 *
 *   +0    x19 x20 x21 x22 x23 x24 x25 x26 x27 x28
 *   +80   x29 (fp)
 *   +88   x30 (lr: where the context resumes)
 *   +96   d8 .. d15
 *   +160  fpcr, pad
 *   +176                                   <- sp after the switch
 *
 * Keeping FPCR cheap: the sticky exception flags live in FPSR, which is not
 * callee-saved and never touched here; FPCR holds only control bits, and
 * writing it can serialise the pipeline, so it is written only when the two
 * contexts' values differ (reading it is cheap).
 */
#include "frame_aarch64.h"

        .text
        .p2align 4
        .globl  green__switch_asm
        .hidden green__switch_asm
        .type   green__switch_asm, %function
green__switch_asm:
        .cfi_startproc
        sub     sp, sp, #FRAME_SIZE
        .cfi_def_cfa_offset FRAME_SIZE
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #FRAME_X29]
        .cfi_rel_offset x19, 0
        .cfi_rel_offset x20, 8
        .cfi_rel_offset x21, 16
        .cfi_rel_offset x22, 24
        .cfi_rel_offset x23, 32
        .cfi_rel_offset x24, 40
        .cfi_rel_offset x25, 48
        .cfi_rel_offset x26, 56
        .cfi_rel_offset x27, 64
        .cfi_rel_offset x28, 72
        .cfi_rel_offset x29, FRAME_X29
        .cfi_rel_offset x30, FRAME_X30
        stp     d8, d9, [sp, #FRAME_D8]
        stp     d10, d11, [sp, #FRAME_D8 + 16]
        stp     d12, d13, [sp, #FRAME_D8 + 32]
        stp     d14, d15, [sp, #FRAME_D8 + 48]
        .cfi_rel_offset d8, FRAME_D8
        .cfi_rel_offset d9, FRAME_D8 + 8
        .cfi_rel_offset d10, FRAME_D8 + 16
        .cfi_rel_offset d11, FRAME_D8 + 24
        .cfi_rel_offset d12, FRAME_D8 + 32
        .cfi_rel_offset d13, FRAME_D8 + 40
        .cfi_rel_offset d14, FRAME_D8 + 48
        .cfi_rel_offset d15, FRAME_D8 + 56
        /* From the load of sp on, the same rules describe the target's
         * frame, which has the same layout. */
        mrs     x9, fpcr
        str     x9, [sp, #FRAME_FPCR]
        mov     x10, sp
        str     x10, [x0]
        mov     sp, x1
        ldr     x10, [sp, #FRAME_FPCR]
        cmp     x9, x10
        b.ne    2f
1:      ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #FRAME_X29]
        ldp     d8, d9, [sp, #FRAME_D8]
        ldp     d10, d11, [sp, #FRAME_D8 + 16]
        ldp     d12, d13, [sp, #FRAME_D8 + 32]
        ldp     d14, d15, [sp, #FRAME_D8 + 48]
        .cfi_remember_state
        add     sp, sp, #FRAME_SIZE
        .cfi_def_cfa_offset 0
        .cfi_restore x19
        .cfi_restore x20
        .cfi_restore x21
        .cfi_restore x22
        .cfi_restore x23
        .cfi_restore x24
        .cfi_restore x25
        .cfi_restore x26
        .cfi_restore x27
        .cfi_restore x28
        .cfi_restore x29
        .cfi_restore x30
        .cfi_restore d8
        .cfi_restore d9
        .cfi_restore d10
        .cfi_restore d11
        .cfi_restore d12
        .cfi_restore d13
        .cfi_restore d14
        .cfi_restore d15
        ret
        .cfi_restore_state
2:      msr     fpcr, x10
        b       1b
        .cfi_endproc
        .size   green__switch_asm, .-green__switch_asm

/* First frame of a new context: entry in x20, its argument in x19. */
        .p2align 4
        .globl  green__trampoline
        .hidden green__trampoline
        .type   green__trampoline, %function
green__trampoline:
        .cfi_startproc
        .cfi_undefined x30
        mov     x0, x19
        blr     x20
        mov     x0, x19
        br      x21
        .cfi_endproc
        .size   green__trampoline, .-green__trampoline

        .section .note.GNU-stack, "", %progbits
