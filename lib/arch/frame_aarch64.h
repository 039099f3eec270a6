/* Offsets of the aarch64 saved frame; shared by switch_aarch64.S and switch.h. */
#define FRAME_X19 0
#define FRAME_X29 80
#define FRAME_X30 88
#define FRAME_D8 96
#define FRAME_FPCR 160
#define FRAME_SIZE 176
