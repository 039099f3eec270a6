/*
 * StreamServer (gevent.server.StreamServer): an acceptor greenlet and one
 * greenlet per connection.
 *
 * The acceptor owns the listening socket's reads. It calls accept4(2)
 * itself rather than green_accept, so that it can look at `stopped` between
 * the wake-up and the system call: the server closes the listening socket
 * the moment it stops, and an acceptor that had already been woken must
 * never call accept4 on that fd number, which the program may have reused
 * by then. It accepts at most ACCEPT_BATCH connections in a row before it
 * lets the handlers run (gevent's max_accept), parks on `full` while
 * max_conns connections are open, and backs off from errors such as EMFILE
 * with a sleep that doubles from 10 ms to 1 s (gevent's min_delay and
 * max_delay), so a process out of descriptors does not spin.
 *
 * Each connection is a struct conn, linked to its greenlet. The link runs
 * in the finishing greenlet when the handler returns, is killed, or was
 * killed before it ever ran: it closes the connection with green_close,
 * hands a slot to the acceptor if it waits for one and wakes the stop
 * callers once nothing is left. The server never polls its handlers.
 *
 * Ownership and lifetime. The server is reference counted: one reference
 * for the program (dropped by green_server_free), one for the acceptor
 * until its link fires, one per open connection until its link fires, and
 * one per green_server_stop parked on it. So the program may free the
 * server while handlers still run (they are killed and finish on their
 * own), and no link or stop caller ever touches freed memory.
 */
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* Connections accepted in a row before the handlers get to run. */
#define ACCEPT_BATCH 100
/* The back-off from accept errors (EMFILE...): doubles between these. */
#define ACCEPT_DELAY_MIN 0.01
#define ACCEPT_DELAY_MAX 1.0

struct conn {
    struct green__link   link; /* first: the link callback finds the conn from it */
    struct conn         *next, *prev;
    struct green_server *s;
    green_t             *g; /* the server's reference */
    int                  fd;
};

struct green_server {
    struct green_hub      *hub;
    int                    listen_fd;  /* -1 once closed */
    void                 (*handler)(int fd, void *ud);
    void                  *ud;
    size_t                 max_conns;  /* 0: unbounded */
    size_t                 nconns;     /* open connections (handlers not finished) */
    struct conn           *conns;      /* the open connections */
    green_t               *acceptor;   /* the server's reference; NULL once finished */
    struct green__link     acceptor_link;
    struct green__waitlist full;       /* the acceptor, while max_conns are open */
    struct green__waitlist idle;       /* stop callers; aux: connections not waited for */
    unsigned               refs;
    bool                   stopped;
};

static void server_unref(struct green_server *s)
{
    if (--s->refs == 0)
        free(s);
}

/* Nothing left for a stop caller that does not wait for `mine` connections. */
static bool is_idle(const struct green_server *s, size_t mine)
{
    return s->nconns <= mine && !s->acceptor;
}

static void wake_idle(struct green_server *s)
{
    struct green__waiter *w = green__waitlist_first(&s->idle), *next;
    for (; w; w = next) {
        next = w->next;
        if (is_idle(s, (size_t)w->aux))
            green__trigger(w, 0);
    }
}

/* Kills g without waiting, keeping the caller's errno. */
static void kill_nowait(green_t *g)
{
    int saved = errno;
    green_kill(g, 0);
    errno = saved;
}

/* Kills every handler but the caller's own (a handler may stop its server). */
static void kill_handlers(struct green_server *s, green_t *self)
{
    for (struct conn *c = s->conns; c; c = c->next)
        if (c->g != self)
            kill_nowait(c->g);
}

/* 1 if the calling greenlet is one of the server's handlers, else 0. */
static size_t own_handler(const struct green_server *s, green_t *self)
{
    for (const struct conn *c = s->conns; c; c = c->next)
        if (c->g == self)
            return 1;
    return 0;
}

/* Stops accepting: the acceptor is killed and the listening socket closed. */
static void stop_accepting(struct green_server *s)
{
    s->stopped = true;
    if (s->acceptor)
        kill_nowait(s->acceptor);
    int saved = errno;
    green_close(s->listen_fd); /* wakes nobody: the kill took the acceptor off it */
    errno = saved;
    s->listen_fd = -1;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                                */
/* ------------------------------------------------------------------------ */

/* The link: runs in the finishing handler greenlet, never blocks. */
static void conn_done(struct green__link *l, green_t *g)
{
    (void)g;
    struct conn *c = (struct conn *)l;
    struct green_server *s = c->s;
    int saved = errno;
    green_close(c->fd);
    errno = saved;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    struct green__waiter *w = green__waitlist_first(&s->full);
    if (w)
        green__trigger(w, 0);
    wake_idle(s);
    green_release(c->g);
    free(c);
    server_unref(s);
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    c->s->handler(c->fd, c->s->ud);
    return NULL;
}

/* Starts a handler greenlet for the accepted fd; -1 with errno if it cannot. */
static int conn_start(struct green_server *s, int fd)
{
    struct conn *c = malloc(sizeof *c);
    if (!c)
        return green__fail(ENOMEM);
    green_t *g = green_spawn(conn_main, c);
    if (!g) {
        int err = errno;
        free(c);
        return green__fail(err);
    }
    c->s = s;
    c->g = g;
    c->fd = fd;
    /* Ours until conn_done's green_close: its watcher may stay registered
     * between the handler's waits (io.c, "Kept fds"). Without memory for
     * that it simply is not kept. */
    green__fd_keep(g->hub, fd);
    c->link.fn = conn_done;
    green__link_add(g, &c->link);
    c->prev = NULL;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->refs++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The acceptor                                                               */
/* ------------------------------------------------------------------------ */

/* Sleeps the back-off delay and doubles it; false once the acceptor must end. */
static bool back_off(struct green_server *s, double *delay)
{
    int r = green_sleep(*delay);
    *delay = fmin(*delay * 2, ACCEPT_DELAY_MAX);
    return r == 0 && !s->stopped;
}

static void *acceptor_main(void *arg)
{
    struct green_server *s = arg;
    struct green_hub *h = s->hub;
    double delay = ACCEPT_DELAY_MIN;
    unsigned batch = 0;
    while (!s->stopped) {
        if (s->max_conns && s->nconns >= s->max_conns) {
            /* Full: leave the connections in the kernel's backlog. */
            struct green__waiter w;
            green__waiter_init(&w, "server full", s);
            green__waitlist_push(&s->full, &w);
            if (green__park(&w, -1) != 0)
                break;
            continue;
        }
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            delay = ACCEPT_DELAY_MIN;
            if (conn_start(s, fd) < 0) {
                close(fd);
                if (!back_off(s, &delay))
                    break;
            } else if (++batch == ACCEPT_BATCH) {
                batch = 0;
                green_yield();
                if (green_cancelled())
                    break;
            }
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            batch = 0;
            int r = green__wait_fd(h, s->listen_fd, GREEN_READ, -1);
            if (r == -ECANCELED || s->stopped)
                break;
            if (r < 0 && !back_off(s, &delay)) /* ENOMEM, or the poller failed on the fd */
                break;
            continue;
        }
        /* EMFILE, ENFILE, ENOBUFS, ENOMEM, a network error on the new
         * connection...: wait a little, whatever it was, rather than spin. */
        if (!back_off(s, &delay))
            break;
    }
    return NULL;
}

/* The acceptor's link: runs when it finishes (or was killed before it ran). */
static void acceptor_done(struct green__link *l, green_t *g)
{
    struct green_server *s =
        (struct green_server *)((char *)l - offsetof(struct green_server, acceptor_link));
    s->acceptor = NULL;
    green_release(g);
    wake_idle(s);
    server_unref(s);
}

/* ------------------------------------------------------------------------ */
/* The calls                                                                  */
/* ------------------------------------------------------------------------ */

green_server_t *green_server_new(int listen_fd, void (*handler)(int fd, void *ud), void *ud,
                                 size_t max_conns)
{
    if (!handler) {
        errno = EINVAL;
        return NULL;
    }
    /* A listening stream socket: getsockopt gives EBADF or ENOTSOCK for
     * anything else, and SO_ACCEPTCONN tells whether it listens. */
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
        return NULL;
    if (!listening) {
        errno = EINVAL;
        return NULL;
    }
    struct green_hub *h = green__hub();
    if (!h)
        return NULL;
    struct green_server *s = calloc(1, sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    /* The acceptor calls accept4 directly, so the socket must not block. */
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
        free(s);
        return NULL;
    }
    green_attr_t attr = {.name = "green_server accept"};
    green_t *acceptor = green_spawn_attr(&attr, acceptor_main, s);
    if (!acceptor) {
        int err = errno;
        if (!(fl & O_NONBLOCK))
            fcntl(listen_fd, F_SETFL, fl);
        free(s);
        errno = err;
        return NULL;
    }
    s->hub = h;
    s->listen_fd = listen_fd;
    s->handler = handler;
    s->ud = ud;
    s->max_conns = max_conns;
    s->acceptor = acceptor;
    s->acceptor_link.fn = acceptor_done;
    green__link_add(acceptor, &s->acceptor_link);
    s->refs = 2; /* the program's and the acceptor's */
    return s;
}

/*
 * Parks until nothing but `mine` connections is left, or the deadline
 * (INFINITY: none). *own_deadline tells whether an ETIMEDOUT was the
 * call's own deadline rather than an enclosing green_timeout.
 */
static int wait_idle(struct green_server *s, struct green_hub *h, size_t mine, double deadline,
                     bool *own_deadline)
{
    *own_deadline = false;
    while (!is_idle(s, mine)) {
        double left = -1;
        if (deadline < INFINITY) {
            left = deadline - green__now(h);
            if (left <= 0) {
                *own_deadline = true;
                return ETIMEDOUT;
            }
        }
        struct green__waiter w;
        green__waiter_init(&w, "server stop", s);
        w.aux = mine;
        green__waitlist_push(&s->idle, &w);
        int err = green__park(&w, left);
        if (err == ETIMEDOUT && h->current->tmo_deadline >= w.deadline)
            *own_deadline = true;
        if (err)
            return err;
    }
    return 0;
}

/*
 * Stopping is done even when the call fails: the listening socket is closed
 * at once, and handlers the call cannot wait for are killed (as close(2)
 * releases the fd whatever it returns). A handler that stops its own server
 * is not waited for, nor killed: it finishes when it returns.
 */
int green_server_stop(green_server_t *s, double timeout)
{
    if (!s)
        return green__fail(EINVAL);
    int err = green__owner_check(s->hub);
    if (err)
        return green__fail(err);
    if (s->stopped)
        return green__fail(EPIPE);
    stop_accepting(s);
    struct green_hub *h = s->hub;
    green_t *self = h->current;
    size_t mine = own_handler(s, self);
    if (timeout == 0 || (err = green__enter(s->hub, &h))) {
        /* Cannot wait: what is still running is killed. The acceptor is no
         * handler; killed, it finishes the next time the hub runs. */
        if (s->nconns <= mine)
            return 0;
        kill_handlers(s, self);
        return green__fail(timeout == 0 ? EAGAIN : err);
    }
    s->refs++; /* the server stays valid while this call waits on it */
    double deadline = timeout < 0 ? INFINITY : green__now(h) + timeout;
    bool own_deadline;
    err = wait_idle(s, h, mine, deadline, &own_deadline);
    if (err == ETIMEDOUT && own_deadline) {
        /* The handlers had their time: kill the rest and wait for them. */
        kill_handlers(s, self);
        err = wait_idle(s, h, mine, INFINITY, &own_deadline);
    } else if (err) {
        kill_handlers(s, self); /* killed, or an enclosing green_timeout ran out */
    }
    server_unref(s);
    return err ? green__fail(err) : 0;
}

void green_server_free(green_server_t *s)
{
    if (!s || green__owner_check(s->hub))
        return;
    if (!s->stopped) {
        stop_accepting(s);
        kill_handlers(s, s->hub->current);
    }
    server_unref(s);
}
