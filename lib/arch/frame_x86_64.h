/* Offsets of the x86-64 saved frame; shared by switch_x86_64.S and switch.h. */
#define FRAME_MXCSR 0
#define FRAME_X87CW 4
#define FRAME_R15 8
#define FRAME_R14 16
#define FRAME_R13 24
#define FRAME_R12 32
#define FRAME_RBX 40
#define FRAME_RBP 48
#define FRAME_RIP 56
#define FRAME_SIZE 64
