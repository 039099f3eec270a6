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

struct ev_loop *green__monkey_loop(void)
{
    struct green_hub *h = green__tls_hub;
    return h ? h->loop : NULL;
}

void green__monkey_interrupt(green_t *g, int err)
{
    /* Only a parked greenlet has a waiter; one already woken keeps its
     * cause (the first trigger wins). */
    if (g && g->hub == green__tls_hub && g->waiter)
        green__trigger(g->waiter, err);
}

/*
 * The polls in progress on this thread, so that close() can wake a poll
 * that waits on the fd being closed (it then polls again and sees POLLNVAL,
 * as a poll started after the close would). Polls only ever wait on their
 * own thread's hub, so the list is per thread and needs no lock.
 */
struct poll_wait {
    struct poll_wait     *next, *prev;
    ev_io                *ios;
    nfds_t                n;
    struct green__waiter *w;
};

static __thread struct poll_wait *polls;

void green__monkey_fd_closed(int fd)
{
    green__fd_forget(fd);
    struct green_hub *h = green__tls_hub;
    for (struct poll_wait *p = polls; p && h; p = p->next) {
        bool hit = false;
        for (nfds_t i = 0; i < p->n; i++) {
            if (p->ios[i].fd == fd && ev_is_active(&p->ios[i])) {
                /* Stopped while the fd is still open (libev must not be
                 * left watching a closed number); counted off by the poll. */
                ev_io_stop(h->loop, &p->ios[i]);
                hit = true;
            }
        }
        if (hit)
            green__trigger(p->w, 0);
    }
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
    green__active_add(h, started);
    struct poll_wait pw = {.next = polls, .ios = ios, .n = n, .w = &w};
    if (polls)
        polls->prev = &pw;
    polls = &pw;
    err = green__park(&w, timeout);
    if (pw.prev)
        pw.prev->next = pw.next;
    else
        polls = pw.next;
    if (pw.next)
        pw.next->prev = pw.prev;
    /* A watcher libev (or a close) stopped already is inactive; the count
     * covers every one that was started. */
    for (nfds_t i = 0; i < n; i++)
        ev_io_stop(h->loop, &ios[i]);
    h->nactive -= started;
    if (ios != stack_ios)
        free(ios);
    return err;
}
