/*
 * The few internals the monkey shim (monkey/, a separate shared object) needs
 * beyond the public API. They are exported under the green__monkey_ prefix
 * for the shim alone; see monkey/monkey.h. Nothing else may use them.
 */
#include "internal.h"
#include "../monkey/monkey.h"

int green__monkey_active(void)
{
    struct green_hub *h = green__tls_hub;
    return h && h->current != &h->hubg;
}

void green__monkey_fd_closed(int fd)
{
    green__fd_forget(fd);
}
