/*
 * What the shim's own files (monkey.c, threads.c) share. Not installed; the
 * shim is built with -fvisibility=hidden, so only EXPORT'ed names leave it.
 */
#ifndef GREEN_SHIM_H
#define GREEN_SHIM_H

#include <link.h>
#include <stdbool.h>
#include <stdint.h>

/* An interposed libc function: visible to the dynamic linker. */
#define EXPORT __attribute__((visibility("default")))

/*
 * The address range [*lo, *hi) spanned by a loaded object's PT_LOAD
 * segments (only the executable ones if exec_only), from dl_iterate_phdr.
 */
void shim_object_extent(const struct dl_phdr_info *info, bool exec_only, uintptr_t *lo,
                        uintptr_t *hi);

#endif
