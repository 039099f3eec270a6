/*
 * The few internals the monkey shim (monkey/, a separate shared object) needs
 * beyond the public API. They are exported under the green__monkey_ prefix
 * for the shim alone; see monkey/monkey.h. Nothing else may use them.
 */
#include <poll.h>
#include <stdlib.h>

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

/* poll(2) for the shim: one watcher per polled fd, all triggering one waiter. */
static void poll_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    green__trigger(io->data, 0);
}

int green__monkey_poll(struct pollfd *fds, nfds_t n, double timeout)
{
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return err;
    if (timeout == 0)
        return ETIMEDOUT;
    ev_io stack_ios[8];
    ev_io *ios = n <= 8 ? stack_ios : calloc(n, sizeof *ios);
    if (!ios)
        return ENOMEM;
    struct green__waiter w;
    green__waiter_init(&w, "poll", fds);
    unsigned started = 0;
    for (nfds_t i = 0; i < n; i++) {
        int ev = (fds[i].events & (POLLIN | POLLPRI | POLLRDHUP) ? EV_READ : 0) |
                 (fds[i].events & POLLOUT ? EV_WRITE : 0);
        ev_io_init(&ios[i], poll_cb, fds[i].fd, ev);
        ios[i].data = &w;
        if (fds[i].fd >= 0 && ev) {
            ev_io_start(h->loop, &ios[i]);
            started++;
        }
    }
    h->nactive += started;
    err = green__park(&w, timeout);
    /* A watcher libev stopped itself (an fd it cannot poll) is inactive
     * already; the count covers every one that was started. */
    for (nfds_t i = 0; i < n; i++)
        ev_io_stop(h->loop, &ios[i]);
    h->nactive -= started;
    if (ios != stack_ios)
        free(ios);
    return err;
}
