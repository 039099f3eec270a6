/*
 * Cooperative I/O: fd waits on the hub's libev loop, and the fd functions
 * built on them.
 *
 * One libev watcher per fd, shared by every greenlet waiting on it: the
 * first waiter creates the watcher record, the last one to leave frees it,
 * and its event mask is always the union of what the waiters want. Outside
 * of waits the library keeps nothing about an fd, so an fd closed with plain
 * close(2) and its number reused is simply a new fd.
 *
 * Kept fds. Re-registering an fd with libev at every wait costs an
 * epoll_ctl, and a read that finds nothing costs a recv; a keep-alive
 * server would pay both per request. For an fd whose whole life the library
 * owns (a StreamServer connection: accepted, then closed with green_close
 * after its handler returns, and SPEC forbids the handler to close it), the
 * number cannot be reused behind our back, so green__fd_keep marks it: its
 * record stays between waits, its watcher stays registered while idle
 * (unref'd and not counted as active, so it keeps no one waiting), and a
 * read that came back short makes the next one wait first. An event on an
 * idle watcher (data nobody waits for yet) stops it, so level-triggered
 * polling cannot spin; the next wait starts it again.
 *
 * Waiters park on the record's waitlist through the one suspension
 * primitive (internal.h), so kill and timeouts work at every wait point. An
 * event wakes the first waiter (FIFO) of each direction that became ready:
 * libev is level-triggered, so if the first one leaves data unread the next
 * poll wakes the next one, and no wake-up is lost. An error on the fd
 * (libev's EV_ERROR) and green_close wake them all with EBADF.
 *
 * The calls try the system call first and wait only on EAGAIN. Sockets use
 * MSG_DONTWAIT, so their file status flags are left as the program set them;
 * other descriptors (pipes, ttys) get O_NONBLOCK when first used here.
 * Writes never raise SIGPIPE: sockets use MSG_NOSIGNAL, and writes to other
 * descriptors block SIGPIPE around the call and discard one it raised.
 */
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct green__fdw {
    ev_io                  io;
    struct green__waitlist waiters; /* w->aux: the events each one wants */
    bool                   keep;    /* a kept fd (see the top of the file) */
    bool                   idle;    /* kept: active without waiters, unref'd */
    bool                   drained; /* kept: the last read came back short */
};

static struct green__fdw **slot_of(struct green_hub *h, int fd, bool grow)
{
    if (fd < 0)
        return NULL;
    if (fd >= h->nfdw) {
        if (!grow)
            return NULL;
        int n = h->nfdw ? h->nfdw : 64;
        while (n <= fd)
            n *= 2;
        struct green__fdw **v = realloc(h->fdw, (size_t)n * sizeof *v);
        if (!v)
            return NULL;
        memset(v + h->nfdw, 0, (size_t)(n - h->nfdw) * sizeof *v);
        h->fdw = v;
        h->nfdw = n;
    }
    return &h->fdw[fd];
}

static int mask_of(struct green__fdw *f)
{
    int m = 0;
    for (struct green__waiter *w = f->waiters.head; w; w = w->next)
        m |= (int)w->aux;
    return m;
}

/* A kept fd's idle watcher counts again (libev: ref before it is stopped). */
static void fdw_wake_idle(struct green_hub *h, struct green__fdw *f)
{
    f->idle = false;
    ev_ref(h->loop);
    green__active_inc(h);
}

/* Re-arms the watcher for the waiters left, or frees the record. */
static void fdw_update(struct green_hub *h, int fd, struct green__fdw *f)
{
    int want = mask_of(f);
    int have = f->io.events & (EV_READ | EV_WRITE);
    if (f->idle)
        fdw_wake_idle(h, f);
    if (want == have && ev_is_active(&f->io))
        return;
    if (f->keep && !want) {
        if (ev_is_active(&f->io)) { /* stays registered, idle */
            f->idle = true;
            ev_unref(h->loop);
            green__active_dec(h);
        }
        return;
    }
    if (ev_is_active(&f->io)) {
        ev_io_stop(h->loop, &f->io);
        green__active_dec(h);
    }
    if (!want) {
        h->fdw[fd] = NULL;
        free(f);
        return;
    }
    ev_io_set(&f->io, fd, want);
    ev_io_start(h->loop, &f->io);
    green__active_inc(h);
}

static void fdw_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct green__fdw *f = (struct green__fdw *)io;
    if (f->idle) {
        /* A kept fd's event that no one waits for yet: stop polling it until
         * someone does, or level-triggered polling would spin. */
        f->idle = false;
        ev_ref(loop);
        if (!(revents & EV_ERROR)) /* else libev stopped it already */
            ev_io_stop(loop, io);
        return;
    }
    if (revents & EV_ERROR) {
        /* libev stopped the watcher before reporting the error. */
        green__active_dec(green__tls_hub);
        green__waitlist_wake_all(&f->waiters, EBADF);
    } else {
        int woken = 0;
        struct green__waiter *w = f->waiters.head, *next;
        for (; w && woken != (revents & (EV_READ | EV_WRITE)); w = next) {
            next = w->next;
            int ready = (int)w->aux & revents & ~woken;
            if (ready) {
                w->value = (void *)(intptr_t)((int)w->aux & revents);
                woken |= ready;
                green__trigger(w, 0);
            }
        }
    }
    /* The woken greenlets re-arm or free the record when they leave. */
}

int green__wait_fd(struct green_hub *h, int fd, int events, double timeout)
{
    if (fd < 0)
        return -EBADF;
    if (timeout == 0)
        return -EAGAIN;
    struct green__fdw **sp = slot_of(h, fd, true);
    if (!sp)
        return -ENOMEM;
    struct green__fdw *f = *sp;
    if (!f) {
        if (!(f = calloc(1, sizeof *f)))
            return -ENOMEM;
        ev_init(&f->io, fdw_cb);
        *sp = f;
    }
    struct green__waiter w;
    green__waiter_init(&w, events == GREEN_READ ? "fd read" : events == GREEN_WRITE ? "fd write" : "fd",
                       (const void *)(intptr_t)fd);
    w.aux = (uintptr_t)((events & GREEN_READ ? EV_READ : 0) | (events & GREEN_WRITE ? EV_WRITE : 0));
    green__waitlist_push(&f->waiters, &w);
    fdw_update(h, fd, f);
    int err = green__park(&w, timeout);
    /* green_close may have freed the record while we slept. */
    if ((sp = slot_of(h, fd, false)) && *sp == f)
        fdw_update(h, fd, f);
    if (err)
        return -err;
    int ev = (int)(intptr_t)w.value;
    return (ev & EV_READ ? GREEN_READ : 0) | (ev & EV_WRITE ? GREEN_WRITE : 0);
}

int green_wait_fd(int fd, int events, double timeout)
{
    if (events <= 0 || (events & ~(GREEN_READ | GREEN_WRITE)))
        return green__fail(EINVAL);
    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return green__fail(EBADF);
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return green__fail(err);
    int r = green__wait_fd(h, fd, events, timeout);
    return r < 0 ? green__fail(-r) : r;
}

void green__fd_forget(int fd)
{
    struct green_hub *h = green__tls_hub;
    struct green__fdw **sp = h ? slot_of(h, fd, false) : NULL;
    if (sp && *sp) {
        struct green__fdw *f = *sp;
        green__waitlist_wake_all(&f->waiters, EBADF);
        if (f->idle)
            fdw_wake_idle(h, f);
        if (ev_is_active(&f->io)) {
            ev_io_stop(h->loop, &f->io);
            green__active_dec(h);
        }
        *sp = NULL;
        free(f);
    }
}

int green__fd_keep(struct green_hub *h, int fd)
{
    struct green__fdw **sp = slot_of(h, fd, true);
    if (!sp)
        return ENOMEM;
    if (!*sp) {
        if (!(*sp = calloc(1, sizeof **sp)))
            return ENOMEM;
        ev_init(&(*sp)->io, fdw_cb);
    }
    (*sp)->keep = true;
    return 0;
}

int green_close(int fd)
{
    green__fd_forget(fd);
    return close(fd);
}

void green__io_free(struct green_hub *h)
{
    for (int fd = 0; fd < h->nfdw; fd++)
        free(h->fdw[fd]);
    free(h->fdw);
    h->fdw = NULL;
    h->nfdw = 0;
}

/* ------------------------------------------------------------------------ */
/* The calls                                                                  */
/* ------------------------------------------------------------------------ */

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

/* write(2) that fails with EPIPE instead of raising SIGPIPE. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t n)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t r = write(fd, buf, n);
    int err = errno;
    if (r < 0 && err == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return r;
}

enum op { OP_READ, OP_WRITE, OP_RECV, OP_SEND };

/* One attempt, never blocking. */
static ssize_t try_op(enum op op, int fd, void *buf, size_t n, int flags)
{
    ssize_t r;
    switch (op) {
    case OP_RECV:
        return recv(fd, buf, n, flags | MSG_DONTWAIT);
    case OP_SEND:
        return send(fd, buf, n, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
    case OP_READ:
        r = recv(fd, buf, n, MSG_DONTWAIT);
        if (r >= 0 || errno != ENOTSOCK)
            return r;
        if (set_nonblock(fd) < 0)
            return -1;
        return read(fd, buf, n);
    case OP_WRITE:
        r = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r >= 0 || errno != ENOTSOCK)
            return r;
        if (set_nonblock(fd) < 0)
            return -1;
        return write_nosigpipe(fd, buf, n);
    }
    return -1;
}

/* Deadline bookkeeping shared by the calls that loop. */
static double deadline_of(struct green_hub *h, double timeout)
{
    return timeout < 0 ? -1 : timeout == 0 ? 0 : green__now(h) + timeout;
}

static double left_of(struct green_hub *h, double deadline)
{
    if (deadline < 0)
        return -1;
    if (deadline == 0)
        return 0;
    double left = deadline - green__now(h);
    return left > 0 ? left : 1e-9; /* park reports ETIMEDOUT */
}

static struct green__fdw *kept_of(struct green_hub *h, int fd)
{
    struct green__fdw *f = fd >= 0 && fd < h->nfdw ? h->fdw[fd] : NULL;
    return f && f->keep ? f : NULL;
}

static ssize_t do_io(enum op op, int fd, void *buf, size_t n, int flags, double timeout)
{
    if ((!buf && n) || n > SSIZE_MAX)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return green__fail(err);
    int events = op == OP_READ || op == OP_RECV ? GREEN_READ : GREEN_WRITE;
    double deadline = deadline_of(h, timeout);
    /* A kept fd whose last read came back short most likely has nothing to
     * read yet: wait first rather than pay for a recv that says EAGAIN. (The
     * record is looked up again after every wait: a green_close meanwhile
     * frees it.) */
    struct green__fdw *kept = kept_of(h, fd);
    if (kept && events == GREEN_READ && kept->drained && timeout != 0 && n) {
        kept->drained = false;
        int w = green__wait_fd(h, fd, events, left_of(h, deadline));
        if (w < 0)
            return green__fail(-w);
    }
    for (;;) {
        ssize_t r = try_op(op, fd, buf, n, flags);
        if (r >= 0) {
            if (events == GREEN_READ && (kept = kept_of(h, fd)))
                kept->drained = (size_t)r < n;
            return r;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        int w = green__wait_fd(h, fd, events, left_of(h, deadline));
        if (w < 0)
            return green__fail(-w);
    }
}

ssize_t green_read(int fd, void *buf, size_t n, double timeout)
{
    return do_io(OP_READ, fd, buf, n, 0, timeout);
}

ssize_t green_write(int fd, const void *buf, size_t n, double timeout)
{
    return do_io(OP_WRITE, fd, (void *)buf, n, 0, timeout);
}

ssize_t green_recv(int fd, void *buf, size_t n, int flags, double timeout)
{
    return do_io(OP_RECV, fd, buf, n, flags, timeout);
}

ssize_t green_send(int fd, const void *buf, size_t n, int flags, double timeout)
{
    return do_io(OP_SEND, fd, (void *)buf, n, flags, timeout);
}

ssize_t green_write_all(int fd, const void *buf, size_t n, double timeout)
{
    if ((!buf && n) || n > SSIZE_MAX)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return green__fail(err);
    double deadline = deadline_of(h, timeout);
    size_t done = 0;
    while (done < n) {
        ssize_t r = try_op(OP_WRITE, fd, (char *)buf + done, n - done, 0);
        if (r >= 0) {
            done += (size_t)r;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        int w = green__wait_fd(h, fd, GREEN_WRITE, left_of(h, deadline));
        if (w < 0)
            return green__fail(-w);
    }
    return (ssize_t)n;
}

int green_accept(int fd, struct sockaddr *addr, socklen_t *len, double timeout)
{
    if (addr && !len)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return green__fail(err);
    if (set_nonblock(fd) < 0)
        return -1;
    double deadline = deadline_of(h, timeout);
    for (;;) {
        int c = accept4(fd, addr, len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c >= 0)
            return c;
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        int w = green__wait_fd(h, fd, GREEN_READ, left_of(h, deadline));
        if (w < 0)
            return green__fail(-w);
    }
}

int green_connect(int fd, const struct sockaddr *addr, socklen_t len, double timeout)
{
    if (!addr)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return green__fail(err);
    if (set_nonblock(fd) < 0)
        return -1;
    int r;
    while ((r = connect(fd, addr, len)) < 0 && errno == EINTR)
        ;
    if (r == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -1;
    int w = green__wait_fd(h, fd, GREEN_WRITE, timeout);
    if (w < 0)
        return green__fail(-w);
    socklen_t sl = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
        return -1;
    return err ? green__fail(err) : 0;
}

/* ------------------------------------------------------------------------ */
/* TCP helpers                                                                */
/* ------------------------------------------------------------------------ */

int green_tcp_listen(const char *host, int port, int backlog)
{
    if (port < 0 || port > 65535)
        return green__fail(EINVAL);
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = green_getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return green__fail(rc == EAI_SYSTEM ? errno : ENOENT);
    int fd = -1, err = EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, backlog > 0 ? backlog : SOMAXCONN) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd >= 0 ? fd : green__fail(err);
}

int green_tcp_port(int listen_fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(listen_fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return green__fail(EINVAL);
}

int green_tcp_connect(const char *host, int port, double timeout)
{
    if (!host || port <= 0 || port > 65535)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return green__fail(err);
    if (timeout == 0)
        return green__fail(EAGAIN);
    double deadline = deadline_of(h, timeout);
    green_timeout_t t;
    if (timeout > 0)
        green_timeout_start(&t, timeout); /* bounds the resolver's wait too */
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = green_getaddrinfo(host, service, &hints, &res);
    if (timeout > 0)
        green_timeout_cancel(&t);
    if (rc != 0)
        return green__fail(rc == EAI_SYSTEM ? errno : ENOENT);
    int fd = -1;
    err = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (green_connect(fd, ai->ai_addr, ai->ai_addrlen, left_of(h, deadline)) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
        if (err == ETIMEDOUT || err == ECANCELED)
            break;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd >= 0 ? fd : green__fail(err);
}
