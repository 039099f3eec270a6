/*
 * libgreen-monkey.so: the blocking calls of libc, made cooperative.
 *
 * This is the only code in the project that defines libc's names. Each
 * interposed call finds the real function once with dlsym(RTLD_NEXT) and:
 *
 *  - goes straight to libc when the thread has no hub, when it runs in the
 *    hub itself (libev's own calls), inside a signal handler, or when the
 *    call could not block anyway (MSG_DONTWAIT, a regular file, a descriptor
 *    the program made non-blocking);
 *  - otherwise tries the call without blocking and, where it would block,
 *    parks the greenlet on the hub, so other greenlets run meanwhile.
 *
 * THE PROGRAM'S VIEW IS THE KERNEL'S
 *
 * The shim never leaves O_NONBLOCK on a descriptor. It makes single calls
 * non-blocking instead: MSG_DONTWAIT for sockets, preadv2/pwritev2 with
 * RWF_NOWAIT for pipes and FIFOs, readiness first (poll with timeout 0) for
 * terminals, eventfds and the like. So the O_NONBLOCK the program set, by
 * fcntl, SOCK_NONBLOCK, accept4's flags or ioctl(FIONBIO), stays in the
 * kernel's open file description exactly as it was set: F_GETFL reports it,
 * dups share it, children inherit it, and the shim reads it (F_GETFL) only
 * when a call is about to wait, to return EAGAIN at once instead. Likewise
 * SO_RCVTIMEO and SO_SNDTIMEO stay on the socket (getsockopt reads them
 * back) and are read only on the path that waits, where they become the
 * wait's deadline (EAGAIN, as the kernel's timeout). That is why fcntl,
 * ioctl, socket, setsockopt and dup are not interposed: there is nothing to
 * remember, and the common path stays at one system call, as without the
 * shim.
 *
 * Two calls have no per-call non-blocking form, accept and connect. For
 * them the listening or connecting socket is made non-blocking for the one
 * system call and restored right after, without a switch in between; the
 * wait that follows is on readiness, with the program's flags back in place.
 *
 * SIGNALS AND EINTR
 *
 * Without the shim, a handler that runs while the thread blocks in read()
 * makes it fail with EINTR, or restarts it if the handler was installed with
 * SA_RESTART (poll, select, epoll_wait and the sleeps fail with EINTR either
 * way, as man 7 signal lists; socket calls with a SO_RCVTIMEO/SO_SNDTIMEO
 * fail too). Under the shim the thread does not block in that call: the hub
 * does, in epoll_wait, and the handler runs there and returns, and nobody
 * would know. So the shim wraps the program's handlers: sigaction, signal,
 * sysv_signal and siginterrupt install a trampoline in the kernel, keep the
 * program's handler and flags in a table, and report them back unchanged
 * (the kernel's action is shown as is when it is not the trampoline, e.g.
 * after SA_RESETHAND). The trampoline, on the thread the signal was
 * delivered to, bumps that thread's signal generation (and the "no restart"
 * generation for a handler without SA_RESTART), wakes the hub's loop with an
 * ev_async (async-signal-safe) if any greenlet of the thread is in an
 * interruptible wait, and calls the program's handler. The ev_async callback,
 * on the hub, wakes every such wait that began before the bump with EINTR;
 * the interposed call then fails with EINTR or, when only SA_RESTART
 * handlers ran and the call is one Linux restarts, waits again. A handler
 * that ran while its call was not parked is seen by the call before it parks
 * next. Handlers that libev and libgreen install for themselves (their
 * addresses lie in those libraries) are not wrapped: a green_waitpid's
 * SIGCHLD interrupts nobody. Calls made inside a handler pass straight to
 * libc (a handler must not switch greenlets).
 *
 * Errors are libc's, plus ECANCELED when the calling greenlet was killed
 * (sleep returns the seconds left) and EBADF when the descriptor was closed
 * while waited on: close, dup2 and dup3 wake the other greenlets waiting on
 * the descriptor first.
 *
 * FORK
 *
 * fork needs nothing from the shim: the child goes on in the forking
 * greenlet, and libgreen's pthread_atfork handlers re-create the hub's
 * kernel state (ev_loop_fork), the thread pool and the signal slots, as
 * gevent's reinit does. The shim only notes its new pid: a vfork child
 * (posix_spawn's) shares the parent's memory, so its close and dup2 must not
 * touch the parent's hub.
 *
 * Not interposed, and so blocking the thread when they wait: ppoll and
 * epoll_pwait with a signal mask (the mask's atomicity cannot be kept),
 * waitid, sigwait, pause, the reentrant name lookups, and stdio's reads
 * and flushes and pclose (glibc calls its internal read, write and waitpid,
 * which no preloaded library can replace): fgets on a pipe or a socket
 * blocks the thread, where read() on the same descriptor would not.
 * system() is interposed: its wait is cooperative.
 */
#include <dlfcn.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "monkey.h"
#include "shim.h"

/* glibc's fortified variants and aliases, declared here since no header does. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                       struct sockaddr *addr, socklen_t *len);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout_ms, size_t fdslen);
void __longjmp_chk(sigjmp_buf env, int val) __attribute__((noreturn));
int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);
sighandler_t sysv_signal(int sig, sighandler_t handler);
sighandler_t __sysv_signal(int sig, sighandler_t handler);
sighandler_t bsd_signal(int sig, sighandler_t handler);


/* ------------------------------------------------------------------------ */
/* The real functions                                                         */
/* ------------------------------------------------------------------------ */

/*
 * Each real function is looked up once, by the constructor or by its first
 * call if that comes earlier (from another library's constructor). dlsym may
 * itself call an interposed function (a malloc that reads a file, a lock
 * that sleeps): such a nested call must not look up again, so while a
 * lookup runs on a thread, REAL gives NULL and the caller makes the system
 * call itself (the FALLBACK below). A lookup racing on two threads finds the
 * same address twice.
 */
static __thread bool resolving;

static void *resolve(const char *sym, void **slot)
{
    if (resolving)
        return NULL;
    resolving = true;
    void *p = dlsym(RTLD_NEXT, sym);
    resolving = false;
    if (p)
        __atomic_store_n(slot, p, __ATOMIC_RELEASE);
    return p;
}

#define DECLARE_REAL(name) static __typeof__(&name) real_##name
#define REAL(name)                                                                 \
    (__builtin_expect(real_##name != NULL, 1)                                      \
         ? real_##name                                                             \
         : (__typeof__(&name))resolve(#name, (void **)&real_##name))
/* Calls the real function, or `fallback` while it cannot be looked up. */
#define CALL_REAL(name, fallback, ...)                                             \
    ({                                                                             \
        __typeof__(&name) f_ = REAL(name);                                         \
        f_ ? f_(__VA_ARGS__) : (fallback);                                         \
    })

DECLARE_REAL(read);
DECLARE_REAL(readv);
DECLARE_REAL(write);
DECLARE_REAL(writev);
DECLARE_REAL(recv);
DECLARE_REAL(recvfrom);
DECLARE_REAL(recvmsg);
DECLARE_REAL(send);
DECLARE_REAL(sendto);
DECLARE_REAL(sendmsg);
DECLARE_REAL(accept);
DECLARE_REAL(accept4);
DECLARE_REAL(connect);
DECLARE_REAL(close);
DECLARE_REAL(dup2);
DECLARE_REAL(dup3);
DECLARE_REAL(poll);
DECLARE_REAL(ppoll);
DECLARE_REAL(select);
DECLARE_REAL(epoll_wait);
DECLARE_REAL(epoll_pwait);
DECLARE_REAL(sleep);
DECLARE_REAL(usleep);
DECLARE_REAL(nanosleep);
DECLARE_REAL(clock_nanosleep);
DECLARE_REAL(getaddrinfo);
DECLARE_REAL(gethostbyname);
DECLARE_REAL(waitpid);
DECLARE_REAL(wait4);
DECLARE_REAL(wait);
DECLARE_REAL(system);
DECLARE_REAL(sigaction);
DECLARE_REAL(__read_chk);
DECLARE_REAL(__recv_chk);
DECLARE_REAL(__recvfrom_chk);
DECLARE_REAL(__poll_chk);
DECLARE_REAL(longjmp);
DECLARE_REAL(_longjmp);
DECLARE_REAL(siglongjmp);
DECLARE_REAL(__longjmp_chk);

/* The system calls the calls fall back on while their lookup runs. */
static long sys_ret(long r)
{
    return r; /* syscall(2) already returns -1 and sets errno */
}
#define SYS(...) sys_ret(syscall(__VA_ARGS__))

static ssize_t lc_read(int fd, void *b, size_t n)
{
    return CALL_REAL(read, SYS(SYS_read, fd, b, n), fd, b, n);
}
static ssize_t lc_readv(int fd, const struct iovec *v, int n)
{
    return CALL_REAL(readv, SYS(SYS_readv, fd, v, n), fd, v, n);
}
static ssize_t lc_write(int fd, const void *b, size_t n)
{
    return CALL_REAL(write, SYS(SYS_write, fd, b, n), fd, b, n);
}
static ssize_t lc_writev(int fd, const struct iovec *v, int n)
{
    return CALL_REAL(writev, SYS(SYS_writev, fd, v, n), fd, v, n);
}
static ssize_t lc_recv(int fd, void *b, size_t n, int fl)
{
    return CALL_REAL(recv, SYS(SYS_recvfrom, fd, b, n, fl, NULL, NULL), fd, b, n, fl);
}
static ssize_t lc_recvfrom(int fd, void *b, size_t n, int fl, struct sockaddr *a, socklen_t *l)
{
    return CALL_REAL(recvfrom, SYS(SYS_recvfrom, fd, b, n, fl, a, l), fd, b, n, fl, a, l);
}
static ssize_t lc_recvmsg(int fd, struct msghdr *m, int fl)
{
    return CALL_REAL(recvmsg, SYS(SYS_recvmsg, fd, m, fl), fd, m, fl);
}
static ssize_t lc_send(int fd, const void *b, size_t n, int fl)
{
    return CALL_REAL(send, SYS(SYS_sendto, fd, b, n, fl, NULL, 0), fd, b, n, fl);
}
static ssize_t lc_sendto(int fd, const void *b, size_t n, int fl, const struct sockaddr *a,
                         socklen_t l)
{
    return CALL_REAL(sendto, SYS(SYS_sendto, fd, b, n, fl, a, l), fd, b, n, fl, a, l);
}
static ssize_t lc_sendmsg(int fd, const struct msghdr *m, int fl)
{
    return CALL_REAL(sendmsg, SYS(SYS_sendmsg, fd, m, fl), fd, m, fl);
}
static int lc_accept4(int fd, struct sockaddr *a, socklen_t *l, int fl)
{
    return CALL_REAL(accept4, SYS(SYS_accept4, fd, a, l, fl), fd, a, l, fl);
}
static int lc_connect(int fd, const struct sockaddr *a, socklen_t l)
{
    return CALL_REAL(connect, SYS(SYS_connect, fd, a, l), fd, a, l);
}
static int lc_close(int fd)
{
    return CALL_REAL(close, SYS(SYS_close, fd), fd);
}
static int lc_dup3(int o, int n, int fl)
{
    return CALL_REAL(dup3, SYS(SYS_dup3, o, n, fl), o, n, fl);
}
static int lc_dup2(int o, int n)
{
    /* dup3 rejects o == n, which dup2 accepts when o is open. */
    return CALL_REAL(dup2,
                     o == n ? (fcntl(o, F_GETFD) < 0 ? -1 : n) : SYS(SYS_dup3, o, n, 0), o, n);
}
static int ts_of_ms(int ms, struct timespec *ts)
{
    ts->tv_sec = ms / 1000;
    ts->tv_nsec = (long)(ms % 1000) * 1000000;
    return ms >= 0;
}
static int lc_ppoll(struct pollfd *f, nfds_t n, const struct timespec *ts, const sigset_t *m)
{
    return CALL_REAL(ppoll, SYS(SYS_ppoll, f, n, ts, m, _NSIG / 8), f, n, ts, m);
}
static int lc_poll(struct pollfd *f, nfds_t n, int ms)
{
    struct timespec ts;
    return CALL_REAL(poll, SYS(SYS_ppoll, f, n, ts_of_ms(ms, &ts) ? &ts : NULL, NULL, 0), f, n,
                     ms);
}
static int lc_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    struct timespec ts, *tsp = NULL;
    if (tv) {
        ts.tv_sec = tv->tv_sec;
        ts.tv_nsec = tv->tv_usec * 1000;
        tsp = &ts;
    }
    return CALL_REAL(select, SYS(SYS_pselect6, n, r, w, e, tsp, NULL), n, r, w, e, tv);
}
static int lc_epoll_pwait(int ep, struct epoll_event *ev, int max, int ms, const sigset_t *m)
{
    return CALL_REAL(epoll_pwait, SYS(SYS_epoll_pwait, ep, ev, max, ms, m, _NSIG / 8), ep, ev,
                     max, ms, m);
}
static int lc_epoll_wait(int ep, struct epoll_event *ev, int max, int ms)
{
    return CALL_REAL(epoll_wait, SYS(SYS_epoll_pwait, ep, ev, max, ms, NULL, 0), ep, ev, max, ms);
}
static int lc_nanosleep(const struct timespec *req, struct timespec *rem)
{
    return CALL_REAL(nanosleep, SYS(SYS_nanosleep, req, rem), req, rem);
}
static int lc_clock_nanosleep(clockid_t c, int fl, const struct timespec *req, struct timespec *rem)
{
    /* The system call returns -1 errno; the function returns the error. */
    return CALL_REAL(clock_nanosleep,
                     SYS(SYS_clock_nanosleep, c, fl, req, rem) == 0 ? 0 : errno, c, fl, req, rem);
}
static unsigned lc_sleep(unsigned s)
{
    struct timespec ts = {(time_t)s, 0};
    return CALL_REAL(sleep, SYS(SYS_nanosleep, &ts, &ts) == 0 ? 0 : (unsigned)ts.tv_sec, s);
}
static int lc_usleep(useconds_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    return CALL_REAL(usleep, SYS(SYS_nanosleep, &ts, NULL), us);
}
static pid_t lc_wait4(pid_t pid, int *st, int opt, struct rusage *ru)
{
    return CALL_REAL(wait4, SYS(SYS_wait4, pid, st, opt, ru), pid, st, opt, ru);
}
static pid_t lc_waitpid(pid_t pid, int *st, int opt)
{
    return CALL_REAL(waitpid, SYS(SYS_wait4, pid, st, opt, NULL), pid, st, opt);
}
static int lc_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    /* glibc's public alias of itself needs no lookup. */
    return CALL_REAL(sigaction, __sigaction(sig, act, old), sig, act, old);
}
static int lc_fcntl_getfl(int fd)
{
    return fcntl(fd, F_GETFL);
}

/* ------------------------------------------------------------------------ */
/* Per-thread state: signal generations and interruptible waits               */
/* ------------------------------------------------------------------------ */

/* A greenlet parked in an interruptible wait, listed on its own stack. */
struct intr_rec {
    struct intr_rec *next, *prev;
    green_t         *g;
    unsigned         gen0; /* the thread's signal generation it has seen */
};

struct thread_state {
    volatile unsigned     gen;           /* wrapped handlers run on this thread */
    volatile unsigned     norestart_gen; /* gen after the last one without SA_RESTART */
    volatile int          depth;         /* inside a wrapped handler */
    volatile int          nwaits;        /* records listed; the async is started */
    struct intr_rec      *head;
    struct ev_loop       *loop;
    ev_async              async;
};

static __thread struct thread_state ts_self __attribute__((tls_model("initial-exec")));

/* The pid this copy of the shim runs in (a vfork child shares our memory). */
static pid_t shim_pid;

/* Whether a call may wait cooperatively here. */
static inline bool coop(void)
{
    return ts_self.depth == 0 && green__monkey_active();
}

/* On the hub: wakes every wait that began before the latest handler. */
static void intr_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)a;
    (void)revents;
    struct thread_state *t = &ts_self;
    for (struct intr_rec *r = t->head; r; r = r->next)
        if (r->gen0 != t->gen)
            green__monkey_interrupt(r->g, EINTR);
}

static void intr_push(struct intr_rec *r, unsigned gen0)
{
    struct thread_state *t = &ts_self;
    r->g = green_current();
    r->gen0 = gen0;
    r->prev = NULL;
    r->next = t->head;
    if (t->head)
        t->head->prev = r;
    t->head = r;
    if (t->nwaits == 0) {
        /* Started before nwaits says so: a handler that sees nwaits != 0
         * finds a started watcher. Unreferenced: it keeps no loop alive. */
        struct ev_loop *loop = green__monkey_loop();
        ev_async_init(&t->async, intr_cb);
        ev_async_start(loop, &t->async);
        ev_unref(loop);
        t->loop = loop;
        atomic_signal_fence(memory_order_seq_cst);
    }
    t->nwaits++;
}

static void intr_pop(struct intr_rec *r)
{
    struct thread_state *t = &ts_self;
    if (r->prev)
        r->prev->next = r->next;
    else
        t->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (--t->nwaits == 0) {
        atomic_signal_fence(memory_order_seq_cst);
        ev_ref(t->loop); /* libev: reference an unref'd watcher before stopping it */
        ev_async_stop(t->loop, &t->async);
    }
}

/* ------------------------------------------------------------------------ */
/* One interposed call's waits                                                */
/* ------------------------------------------------------------------------ */

struct call {
    double   deadline; /* CLOCK_MONOTONIC seconds, or < 0 for none */
    unsigned gen0;     /* the signal generation when the call first waited */
    bool     waited;
    bool     restart;  /* SA_RESTART restarts it (read, accept...), else EINTR */
};

#define CALL(restartable) {.deadline = -1, .restart = (restartable)}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds left before the deadline: -1 forever, else > 0 (0 means "now" to
 * libgreen, which is not a wait). */
static double left(double deadline)
{
    if (deadline < 0)
        return -1;
    double l = deadline - now_mono();
    return l > 1e-6 ? l : 1e-6;
}

/* Whether a handler that ran since the call first waited interrupts it; a
 * call that SA_RESTART handlers restart just takes them as seen. */
static bool interrupted(struct call *c)
{
    struct thread_state *t = &ts_self;
    unsigned gen = t->gen;
    if (!c->waited) {
        c->waited = true;
        c->gen0 = gen;
        return false;
    }
    if (gen == c->gen0)
        return false;
    if (!c->restart || (int)(t->norestart_gen - c->gen0) > 0)
        return true;
    c->gen0 = gen;
    return false;
}

/*
 * Parks the call in wait(arg, timeout) (0 or an errno) until it returns
 * something other than EINTR, or a handler interrupts the call. Returns 0
 * (ready: try again), EINTR, ETIMEDOUT (the call's deadline), ECANCELED,
 * EBADF...
 */
static int park(struct call *c, int (*wait)(void *arg, double timeout), void *arg)
{
    for (;;) {
        if (interrupted(c))
            return EINTR;
        if (c->deadline >= 0 && now_mono() >= c->deadline)
            return ETIMEDOUT;
        struct intr_rec r;
        intr_push(&r, c->gen0);
        int err = wait(arg, left(c->deadline));
        intr_pop(&r);
        if (err != EINTR)
            return err;
    }
}

struct fd_wait {
    int fd, events;
};

static int wait_fd_cb(void *arg, double timeout)
{
    struct fd_wait *w = arg;
    return green_wait_fd(w->fd, w->events, timeout) >= 0 ? 0 : errno;
}

static int park_fd(struct call *c, int fd, int events)
{
    struct fd_wait w = {fd, events};
    return park(c, wait_fd_cb, &w);
}

static int wait_sleep_cb(void *arg, double timeout)
{
    (void)arg;
    return green_sleep(timeout) == 0 ? 0 : errno;
}

/* A deadline from SO_RCVTIMEO / SO_SNDTIMEO, or -1 for none. */
static double sock_deadline(int fd, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof tv;
    if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0))
        return -1;
    return now_mono() + (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Socket calls with a timeout are not restarted (man 7 signal). */
static void sock_call_timeout(struct call *c, int fd, int opt)
{
    c->deadline = sock_deadline(fd, opt);
    if (c->deadline >= 0)
        c->restart = false;
}

static bool prog_nonblocking(int fd)
{
    int fl = lc_fcntl_getfl(fd);
    return fl >= 0 && (fl & O_NONBLOCK);
}

/* The errno of a failed socket wait: a socket timeout is the kernel's EAGAIN. */
static ssize_t sock_fail(int err)
{
    errno = err == ETIMEDOUT ? EAGAIN : err;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Receiving on sockets: MSG_DONTWAIT, then wait                              */
/* ------------------------------------------------------------------------ */

enum recv_op { OP_RECV, OP_RECVFROM, OP_RECVMSG };

struct recv_args {
    enum recv_op     op;
    void            *buf;
    size_t           n;
    struct sockaddr *addr;
    socklen_t       *len;
    struct msghdr   *msg;
};

static ssize_t recv_once(int fd, const struct recv_args *a, size_t done, int flags)
{
    switch (a->op) {
    case OP_RECV:
        return lc_recv(fd, (char *)a->buf + done, a->n - done, flags);
    case OP_RECVFROM:
        return lc_recvfrom(fd, (char *)a->buf + done, a->n - done, flags, a->addr, a->len);
    default:
        return lc_recvmsg(fd, a->msg, flags);
    }
}

static bool is_stream(int fd)
{
    int type = 0;
    socklen_t tl = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM;
}

/*
 * The receive loop, after a first MSG_DONTWAIT attempt gave r (or -1 EAGAIN).
 * MSG_WAITALL on a stream (recv, recvfrom) gathers until the buffer is full,
 * the peer closes, or an error, a signal or the timeout ends it with part of
 * it, as the kernel does.
 */
static ssize_t coop_recv(int fd, const struct recv_args *a, int flags, ssize_t r)
{
    struct call c = CALL(true);
    bool timeout_read = false;
    bool waitall = (flags & MSG_WAITALL) && !(flags & MSG_PEEK) && a->op != OP_RECVMSG;
    size_t done = 0;
    for (;;) {
        if (r > 0 && waitall) {
            done += (size_t)r;
            if (done >= a->n || (done == (size_t)r && !is_stream(fd)))
                return (ssize_t)done;
        } else if (r >= 0) {
            return (ssize_t)done + r;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return done ? (ssize_t)done : -1;
        } else if (prog_nonblocking(fd)) {
            return done ? (ssize_t)done : -1;
        }
        if (!timeout_read) {
            sock_call_timeout(&c, fd, SO_RCVTIMEO);
            timeout_read = true;
        }
        int err = park_fd(&c, fd, GREEN_READ);
        if (err)
            return done && err != ECANCELED ? (ssize_t)done : sock_fail(err);
        r = recv_once(fd, a, done, flags | MSG_DONTWAIT);
    }
}

static bool passthrough(int flags)
{
    return (flags & MSG_DONTWAIT) || !coop();
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    if (passthrough(flags))
        return lc_recv(fd, buf, n, flags);
    ssize_t r = lc_recv(fd, buf, n, flags | MSG_DONTWAIT);
    if (r >= 0 && !(flags & MSG_WAITALL))
        return r;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return r;
    struct recv_args a = {.op = OP_RECV, .buf = buf, .n = n};
    return coop_recv(fd, &a, flags, r);
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                        socklen_t *len)
{
    if (passthrough(flags))
        return lc_recvfrom(fd, buf, n, flags, addr, len);
    ssize_t r = lc_recvfrom(fd, buf, n, flags | MSG_DONTWAIT, addr, len);
    if (r >= 0 && !(flags & MSG_WAITALL))
        return r;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return r;
    struct recv_args a = {.op = OP_RECVFROM, .buf = buf, .n = n, .addr = addr, .len = len};
    return coop_recv(fd, &a, flags, r);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (passthrough(flags))
        return lc_recvmsg(fd, msg, flags);
    ssize_t r = lc_recvmsg(fd, msg, flags | MSG_DONTWAIT);
    if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
        return r;
    struct recv_args a = {.op = OP_RECVMSG, .msg = msg};
    return coop_recv(fd, &a, flags, r);
}

/* ------------------------------------------------------------------------ */
/* Sending on sockets                                                         */
/* ------------------------------------------------------------------------ */

/* Returned by coop_sendmsg when fd is not a socket (nothing was sent). */
#define NOT_A_SOCKET (-2)

/*
 * Sends all of msg as a blocking send would: in pieces, waiting while the
 * socket is full. An error, a signal or the socket's timeout after a part
 * went out returns that part, as the kernel does; a kill returns -1
 * ECANCELED.
 */
static ssize_t coop_sendmsg(int fd, const struct msghdr *msg, int flags, bool probe)
{
    ssize_t r = lc_sendmsg(fd, msg, flags | MSG_DONTWAIT);
    if (r < 0 && errno == ENOTSOCK && probe)
        return NOT_A_SOCKET;
    size_t total = 0;
    for (size_t i = 0; i < msg->msg_iovlen; i++)
        total += msg->msg_iov[i].iov_len;
    if ((r >= 0 && ((size_t)r >= total || msg->msg_name)) ||
        (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        return r; /* all of it (datagrams go whole), or an error */
    if (prog_nonblocking(fd))
        return r; /* the part that fitted, or EAGAIN, as the program asked */
    /* Work on a copy of the iovec, advanced as bytes go out. */
    struct iovec iov_stack[16], *iov = iov_stack;
    if (msg->msg_iovlen > 16 && !(iov = malloc(msg->msg_iovlen * sizeof *iov))) {
        errno = ENOBUFS;
        return -1;
    }
    memcpy(iov, msg->msg_iov, msg->msg_iovlen * sizeof *iov);
    struct msghdr m = *msg;
    m.msg_iov = iov;
    struct call c = CALL(true);
    bool timeout_read = false;
    size_t sent = 0;
    ssize_t result;
    for (;;) {
        if (r >= 0) {
            sent += (size_t)r;
            if (sent >= total) {
                result = (ssize_t)sent;
                break;
            }
            m.msg_control = NULL; /* ancillary data went with the first piece */
            m.msg_controllen = 0;
            size_t skip = (size_t)r;
            while (m.msg_iovlen && skip >= m.msg_iov->iov_len) {
                skip -= m.msg_iov->iov_len;
                m.msg_iov++;
                m.msg_iovlen--;
            }
            if (m.msg_iovlen) {
                m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + skip;
                m.msg_iov->iov_len -= skip;
            }
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            result = sent ? (ssize_t)sent : -1;
            break;
        }
        if (r >= 0 && sent < total) {
            r = lc_sendmsg(fd, &m, flags | MSG_DONTWAIT); /* more may fit at once */
            if (r >= 0 || errno != EAGAIN)
                continue;
        }
        if (!timeout_read) {
            sock_call_timeout(&c, fd, SO_SNDTIMEO);
            timeout_read = true;
        }
        int err = park_fd(&c, fd, GREEN_WRITE);
        if (err) {
            result = sent && err != ECANCELED ? (ssize_t)sent : sock_fail(err);
            break;
        }
        r = lc_sendmsg(fd, &m, flags | MSG_DONTWAIT);
    }
    if (iov != iov_stack)
        free(iov);
    return result;
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (passthrough(flags) || !msg || !msg->msg_iov)
        return lc_sendmsg(fd, msg, flags);
    return coop_sendmsg(fd, msg, flags, false);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (passthrough(flags))
        return lc_send(fd, buf, n, flags);
    struct iovec iov = {(void *)buf, n};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    return coop_sendmsg(fd, &m, flags, false);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
                      socklen_t len)
{
    if (passthrough(flags) || (!addr && len))
        return lc_sendto(fd, buf, n, flags, addr, len);
    struct iovec iov = {(void *)buf, n};
    struct msghdr m = {.msg_name = (void *)addr, .msg_namelen = addr ? len : 0,
                       .msg_iov = &iov, .msg_iovlen = 1};
    return coop_sendmsg(fd, &m, flags, false);
}

/* ------------------------------------------------------------------------ */
/* read, write, readv, writev: any descriptor                                 */
/* ------------------------------------------------------------------------ */

/* Regular files, directories and block devices never wait (in poll's sense). */
static bool never_waits(int fd, bool *bad)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *bad = true; /* let libc report the error */
        return true;
    }
    *bad = false;
    return S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode);
}

static int poll_one(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    return lc_poll(&p, 1, 0);
}

/*
 * read/readv and write/writev on a descriptor that is not a socket: pipes
 * and FIFOs with RWF_NOWAIT, the rest (terminals, eventfds, timerfds...)
 * readiness first. A blocking write is carried out whole, in pieces, as the
 * kernel's; a signal or error after a part returns that part.
 */
static ssize_t coop_fd_rw(int fd, const struct iovec *iov, int n, bool wr)
{
    bool bad;
    if (never_waits(fd, &bad))
        return wr ? lc_writev(fd, iov, n) : lc_readv(fd, iov, n);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    struct iovec iov_stack[16], *v = iov_stack;
    if (n > 16 && !(v = malloc((size_t)n * sizeof *v)))
        return wr ? lc_writev(fd, iov, n) : lc_readv(fd, iov, n);
    memcpy(v, iov, (size_t)n * sizeof *v);
    struct iovec *cur = v;
    int left_n = n;
    struct call c = CALL(true);
    bool nowait = true;
    size_t done = 0;
    ssize_t result;
    for (;;) {
        ssize_t r;
        if (nowait) {
            r = wr ? pwritev2(fd, cur, left_n, -1, RWF_NOWAIT)
                   : preadv2(fd, cur, left_n, -1, RWF_NOWAIT);
            if (r < 0 && (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS)) {
                nowait = false; /* not for this kind of file, or an old kernel */
                continue;
            }
        } else if (poll_one(fd, wr ? POLLOUT : POLLIN) != 0 || prog_nonblocking(fd)) {
            /* Writable means room for PIPE_BUF bytes at least: a bigger
             * write goes in pieces of that size, which cannot block. */
            if (wr && total - done > PIPE_BUF && !prog_nonblocking(fd))
                r = lc_write(fd, cur->iov_base, cur->iov_len < PIPE_BUF ? cur->iov_len : PIPE_BUF);
            else
                r = wr ? lc_writev(fd, cur, left_n) : lc_readv(fd, cur, left_n);
        } else {
            r = -1;
            errno = EAGAIN;
        }
        if (r >= 0) {
            done += (size_t)r;
            if (!wr || done >= total || r == 0) {
                result = (ssize_t)done;
                break;
            }
            size_t skip = (size_t)r;
            while (left_n && skip >= cur->iov_len) {
                skip -= cur->iov_len;
                cur++;
                left_n--;
            }
            if (left_n) {
                cur->iov_base = (char *)cur->iov_base + skip;
                cur->iov_len -= skip;
            }
            continue;
        }
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || prog_nonblocking(fd)) {
            result = done ? (ssize_t)done : -1;
            break;
        }
        int err = park_fd(&c, fd, wr ? GREEN_WRITE : GREEN_READ);
        if (err) {
            if (done && err != ECANCELED) {
                result = (ssize_t)done;
            } else {
                errno = err;
                result = -1;
            }
            break;
        }
    }
    if (v != iov_stack)
        free(v);
    return result;
}

/* readv once coop() said yes. */
static ssize_t coop_readv(int fd, const struct iovec *iov, int n)
{
    /* read on a socket is recvmsg with no flags (the kernel's own sock_read_iter). */
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    ssize_t r = lc_recvmsg(fd, &m, MSG_DONTWAIT);
    if (__builtin_expect(r >= 0, 1) || (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTSOCK))
        return r;
    if (errno == ENOTSOCK)
        return coop_fd_rw(fd, iov, n, false);
    struct recv_args a = {.op = OP_RECVMSG, .msg = &m};
    return coop_recv(fd, &a, 0, r);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
    if (n < 0 || n > IOV_MAX || !coop())
        return lc_readv(fd, iov, n);
    return coop_readv(fd, iov, n);
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    if (!coop())
        return lc_read(fd, buf, n);
    struct iovec iov = {buf, n};
    return coop_readv(fd, &iov, 1);
}

/* writev once coop() said yes. */
static ssize_t coop_writev(int fd, const struct iovec *iov, int n)
{
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    ssize_t r = coop_sendmsg(fd, &m, 0, true);
    if (__builtin_expect(r != NOT_A_SOCKET, 1))
        return r;
    return coop_fd_rw(fd, iov, n, true);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (n < 0 || n > IOV_MAX || !coop())
        return lc_writev(fd, iov, n);
    return coop_writev(fd, iov, n);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (!coop())
        return lc_write(fd, buf, n);
    struct iovec iov = {(void *)buf, n};
    return coop_writev(fd, &iov, 1);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                                */
/* ------------------------------------------------------------------------ */

/* Runs one accept4 or connect with the socket non-blocking for that call. */
static int nonblocking_once(int fd, int fl, int (*fn)(int fd, void *arg), void *arg)
{
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int r = fn(fd, arg);
    int err = errno;
    fcntl(fd, F_SETFL, fl);
    errno = err;
    return r;
}

struct accept_args {
    struct sockaddr *addr;
    socklen_t       *len;
    int              flags;
};

static int accept_cb(int fd, void *arg)
{
    struct accept_args *a = arg;
    return lc_accept4(fd, a->addr, a->len, a->flags);
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int fl;
    if (!coop() || (fl = lc_fcntl_getfl(fd)) < 0 || (fl & O_NONBLOCK))
        return lc_accept4(fd, addr, len, flags);
    struct accept_args a = {addr, len, flags};
    struct call c = CALL(true);
    bool timeout_read = false;
    for (;;) {
        /* The listener made non-blocking for the call: a connection another
         * process took first cannot block the thread. */
        int s = nonblocking_once(fd, fl, accept_cb, &a);
        if (s >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return s;
        if (!timeout_read) {
            sock_call_timeout(&c, fd, SO_RCVTIMEO);
            timeout_read = true;
        }
        int err = park_fd(&c, fd, GREEN_READ);
        if (err)
            return (int)sock_fail(err);
    }
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return accept4(fd, addr, len, 0);
}

struct connect_args {
    const struct sockaddr *addr;
    socklen_t              len;
};

static int connect_cb(int fd, void *arg)
{
    struct connect_args *a = arg;
    return lc_connect(fd, a->addr, a->len);
}

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    int fl;
    if (!coop() || (fl = lc_fcntl_getfl(fd)) < 0 || (fl & O_NONBLOCK))
        return lc_connect(fd, addr, len);
    struct connect_args a = {addr, len};
    int r = nonblocking_once(fd, fl, connect_cb, &a);
    if (r == 0 || (errno != EINPROGRESS && errno != EAGAIN))
        return r;
    struct call c = CALL(true);
    sock_call_timeout(&c, fd, SO_SNDTIMEO);
    int err;
    if (errno == EAGAIN) {
        /* A Unix socket whose listener's backlog is full: a blocking
         * connect waits for room, which no readiness event announces, so
         * try again after short sleeps. */
        double pause = 0.001;
        for (;;) {
            struct call s = c;
            s.deadline = now_mono() + pause;
            if (c.deadline >= 0 && s.deadline > c.deadline)
                s.deadline = c.deadline;
            err = park(&s, wait_sleep_cb, NULL);
            c.gen0 = s.gen0;
            c.waited = s.waited;
            if (err != 0 && err != ETIMEDOUT)
                return (int)sock_fail(err);
            r = nonblocking_once(fd, fl, connect_cb, &a);
            if (r == 0 || errno != EAGAIN)
                break;
            if (c.deadline >= 0 && now_mono() >= c.deadline)
                return (int)sock_fail(EAGAIN);
            if (pause < 0.05)
                pause *= 2;
        }
        if (r == 0 || errno != EINPROGRESS)
            return r;
    }
    err = park_fd(&c, fd, GREEN_WRITE);
    if (err) {
        /* A timed-out blocking connect reports EINPROGRESS (the kernel's answer). */
        errno = err == ETIMEDOUT ? EINPROGRESS : err;
        return -1;
    }
    socklen_t sl = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0)
        return -1;
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* A vfork child runs on its parent's memory: it must leave the hub alone. */
static bool in_parent_memory(void)
{
    return getpid() != shim_pid;
}

EXPORT int close(int fd)
{
    if (coop() && !in_parent_memory())
        green__monkey_fd_closed(fd);
    return lc_close(fd);
}

/* dup2/dup3 close newfd first: wake its waiters the same way, unless the
 * call is bound to fail (then newfd stays as it was). */
static void before_dup(int oldfd, int newfd)
{
    if (oldfd != newfd && newfd >= 0 && coop() && fcntl(oldfd, F_GETFD) >= 0 &&
        !in_parent_memory())
        green__monkey_fd_closed(newfd);
}

EXPORT int dup2(int oldfd, int newfd)
{
    before_dup(oldfd, newfd);
    return lc_dup2(oldfd, newfd);
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
    before_dup(oldfd, newfd);
    return lc_dup3(oldfd, newfd, flags);
}

/* ------------------------------------------------------------------------ */
/* poll, select, epoll                                                        */
/* ------------------------------------------------------------------------ */

struct poll_wait_args {
    struct pollfd *fds;
    nfds_t         n;
};

static int wait_poll_cb(void *arg, double timeout)
{
    struct poll_wait_args *p = arg;
    return green__monkey_poll(p->fds, p->n, timeout);
}

/* poll, cooperatively: a zero-timeout poll, and waits until it finds
 * something. Never restarted after a handler (Linux's poll is not). */
static int coop_poll(struct pollfd *fds, nfds_t n, double timeout)
{
    struct call c = CALL(false);
    c.deadline = timeout < 0 ? -1 : now_mono() + timeout;
    struct poll_wait_args a = {fds, n};
    for (;;) {
        int r = lc_poll(fds, n, 0);
        if (r != 0)
            return r;
        int err = park(&c, wait_poll_cb, &a);
        if (err == ETIMEDOUT)
            return lc_poll(fds, n, 0);
        if (err) {
            errno = err;
            return -1;
        }
    }
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    if (timeout_ms == 0 || !coop())
        return lc_poll(fds, n, timeout_ms);
    return coop_poll(fds, n, timeout_ms < 0 ? -1 : timeout_ms / 1e3);
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
    /* With a signal mask the call's atomicity cannot be kept: leave it to libc. */
    if (mask || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0) ||
        (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)) || !coop())
        return lc_ppoll(fds, n, ts, mask);
    return coop_poll(fds, n, ts ? (double)ts->tv_sec + (double)ts->tv_nsec / 1e9 : -1);
}

EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    if (nfds < 0 || nfds > FD_SETSIZE || (tv && (tv->tv_sec < 0 || tv->tv_usec < 0)) ||
        (tv && tv->tv_sec == 0 && tv->tv_usec == 0) || !coop())
        return lc_select(nfds, rd, wr, ex, tv);
    struct pollfd stack_fds[64], *fds = stack_fds;
    int n = 0;
    for (int fd = 0; fd < nfds; fd++)
        n += (rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)) || (ex && FD_ISSET(fd, ex));
    if (n > 64 && !(fds = malloc((size_t)n * sizeof *fds)))
        return lc_select(nfds, rd, wr, ex, tv);
    n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (short)((rd && FD_ISSET(fd, rd) ? POLLIN : 0) |
                           (wr && FD_ISSET(fd, wr) ? POLLOUT : 0) |
                           (ex && FD_ISSET(fd, ex) ? POLLPRI : 0));
        if (ev)
            fds[n++] = (struct pollfd){.fd = fd, .events = ev};
    }
    /* Wait cooperatively until something is ready (a closed fd shows as
     * POLLNVAL), then let select itself fill in the sets, or report EBADF,
     * with a zero timeout. On EINTR the sets are left as they were. */
    double timeout = tv ? (double)tv->tv_sec + (double)tv->tv_usec / 1e6 : -1;
    double start = now_mono();
    int r = coop_poll(fds, (nfds_t)n, timeout);
    int err = errno;
    if (fds != stack_fds)
        free(fds);
    if (tv) { /* Linux reports the time left */
        double l = timeout - (now_mono() - start);
        if (l < 0)
            l = 0;
        tv->tv_sec = (time_t)l;
        tv->tv_usec = (suseconds_t)((l - (double)tv->tv_sec) * 1e6);
    }
    if (r < 0) {
        errno = err;
        return -1;
    }
    struct timeval zero = {0, 0};
    return lc_select(nfds, rd, wr, ex, &zero);
}

EXPORT int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout_ms)
{
    if (timeout_ms == 0 || !coop())
        return lc_epoll_wait(epfd, events, max, timeout_ms);
    struct call c = CALL(false);
    c.deadline = timeout_ms < 0 ? -1 : now_mono() + timeout_ms / 1e3;
    for (;;) {
        int r = lc_epoll_wait(epfd, events, max, 0);
        if (r != 0)
            return r;
        /* An epoll descriptor is readable while it has events to report. */
        int err = park_fd(&c, epfd, GREEN_READ);
        if (err == ETIMEDOUT)
            return lc_epoll_wait(epfd, events, max, 0);
        if (err) {
            errno = err;
            return -1;
        }
    }
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int max, int timeout_ms,
                       const sigset_t *mask)
{
    if (mask)
        return lc_epoll_pwait(epfd, events, max, timeout_ms, mask);
    return epoll_wait(epfd, events, max, timeout_ms);
}

/* ------------------------------------------------------------------------ */
/* Time                                                                       */
/* ------------------------------------------------------------------------ */

/*
 * Sleeps cooperatively. 0 when done; else an errno (EINTR for a handler,
 * never restarted; ECANCELED for a kill) and *left_out the time unslept.
 */
static int coop_sleep(double seconds, double *left_out)
{
    if (!(seconds > 0)) {
        green_yield();
        return 0;
    }
    struct call c = CALL(false);
    c.deadline = now_mono() + seconds;
    int err = park(&c, wait_sleep_cb, NULL);
    if (err == 0 || err == ETIMEDOUT)
        return 0;
    double l = c.deadline - now_mono();
    *left_out = l > 0 ? l : 0;
    return err;
}

static void to_timespec(double s, struct timespec *ts)
{
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)((s - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec > 999999999)
        ts->tv_nsec = 999999999;
}

EXPORT unsigned int sleep(unsigned int seconds)
{
    if (!coop())
        return lc_sleep(seconds);
    double l = 0;
    int err = coop_sleep(seconds, &l);
    if (err == 0)
        return 0;
    errno = err;
    return (unsigned)l; /* glibc: the whole seconds left */
}

EXPORT int usleep(useconds_t usec)
{
    if (!coop())
        return lc_usleep(usec);
    double l;
    int err = coop_sleep(usec / 1e6, &l);
    if (err == 0)
        return 0;
    errno = err;
    return -1;
}

static bool bad_timespec(const struct timespec *ts)
{
    return !ts || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000 || ts->tv_sec < 0;
}

EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (bad_timespec(req) || !coop())
        return lc_nanosleep(req, rem);
    double l = 0;
    int err = coop_sleep((double)req->tv_sec + (double)req->tv_nsec / 1e9, &l);
    if (err == 0)
        return 0;
    if (rem)
        to_timespec(l, rem);
    errno = err;
    return -1;
}

EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                           struct timespec *rem)
{
    if ((clk != CLOCK_MONOTONIC && clk != CLOCK_REALTIME) || bad_timespec(req) || !coop())
        return lc_clock_nanosleep(clk, flags, req, rem);
    double s = (double)req->tv_sec + (double)req->tv_nsec / 1e9;
    if (flags & TIMER_ABSTIME) {
        struct timespec now;
        clock_gettime(clk, &now);
        s -= (double)now.tv_sec + (double)now.tv_nsec / 1e9;
        rem = NULL; /* never written for absolute sleeps */
        if (s <= 0)
            return 0;
    }
    double l = 0;
    int err = coop_sleep(s, &l);
    if (err && rem)
        to_timespec(l, rem);
    return err; /* clock_nanosleep returns the error */
}

/* ------------------------------------------------------------------------ */
/* Names                                                                      */
/* ------------------------------------------------------------------------ */

/* Lookups are not interrupted by handlers: glibc retries its own waits. */
EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    /* The thread pool's workers have no hub: their lookup is the real one. */
    if (!coop()) {
        __typeof__(&getaddrinfo) f = REAL(getaddrinfo);
        if (!f) {
            errno = ENOSYS;
            return EAI_SYSTEM;
        }
        return f(node, service, hints, res);
    }
    return green_getaddrinfo(node, service, hints, res);
}

struct hostbyname_call {
    char           *name;
    struct hostent *result;
    int             herr;
};

static void *hostbyname_run(void *arg)
{
    struct hostbyname_call *c = arg;
    c->result = REAL(gethostbyname)(c->name);
    c->herr = h_errno;
    return NULL;
}

EXPORT struct hostent *gethostbyname(const char *name)
{
    if (!REAL(gethostbyname)) {
        h_errno = NO_RECOVERY;
        return NULL;
    }
    if (!coop() || !name)
        return REAL(gethostbyname)(name);
    /* The lookup runs on the thread pool; its result lives in glibc's
     * static buffer, as it would for the caller. */
    struct hostbyname_call *c = malloc(sizeof *c);
    if (!c || !(c->name = strdup(name))) {
        free(c);
        return REAL(gethostbyname)(name);
    }
    if (green_threadpool_call(hostbyname_run, c, NULL, -1) != 0) {
        /* Killed: the lookup finishes on its thread and c is leaked on
         * purpose rather than freed under it. */
        h_errno = TRY_AGAIN;
        return NULL;
    }
    struct hostent *r = c->result;
    h_errno = c->herr;
    free(c->name);
    free(c);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Processes                                                                  */
/* ------------------------------------------------------------------------ */

static int wait_pidfd_cb(void *arg, double timeout)
{
    int fd = *(int *)arg;
    return green_wait_fd(fd, GREEN_READ, timeout) >= 0 ? 0 : errno;
}

/*
 * wait4 cooperatively: WNOHANG tries, and between them a wait on the
 * child's pidfd (readable once it has exited) or, for a group of children,
 * stops and continues, or a kernel without pidfds, short sleeps. Nothing is
 * reaped but what the program's own call asks for, and SIGCHLD is left to
 * the program. Restarted after SA_RESTART handlers, as wait4 is.
 */
static bool no_pidfd;

static pid_t coop_wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
    struct call c = CALL(true);
    int pidfd = -1;
    double pause = 0.001;
    pid_t r;
    for (;;) {
        r = lc_wait4(pid, status, options | WNOHANG, ru);
        if (r != 0)
            break;
        int err;
        if (pid > 0 && !(options & (WUNTRACED | WCONTINUED)) && pidfd == -1 && !no_pidfd) {
            pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
            if (pidfd < 0 && errno == ENOSYS)
                no_pidfd = true; /* an old kernel (or valgrind): sleeps from now on */
        }
        if (pidfd >= 0) {
            err = park(&c, wait_pidfd_cb, &pidfd);
        } else {
            struct call s = c;
            s.deadline = now_mono() + pause;
            err = park(&s, wait_sleep_cb, NULL);
            c.gen0 = s.gen0;
            c.waited = s.waited;
            if (err == ETIMEDOUT)
                err = 0;
            if (pause < 0.02)
                pause *= 2;
        }
        if (err) {
            errno = err;
            r = -1;
            break;
        }
    }
    if (pidfd >= 0) {
        int e = errno;
        lc_close(pidfd);
        errno = e;
    }
    return r;
}

EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
    if ((options & WNOHANG) || !coop())
        return lc_wait4(pid, status, options, ru);
    return coop_wait4(pid, status, options, ru);
}

EXPORT pid_t waitpid(pid_t pid, int *status, int options)
{
    if ((options & WNOHANG) || !coop())
        return lc_waitpid(pid, status, options);
    return coop_wait4(pid, status, options, NULL);
}

EXPORT pid_t wait(int *status)
{
    if (!coop())
        return CALL_REAL(wait, SYS(SYS_wait4, -1, status, 0, NULL), status);
    return coop_wait4(-1, status, 0, NULL);
}

/*
 * system(3): the command runs as glibc runs it (posix_spawn of /bin/sh -c,
 * SIGINT and SIGQUIT ignored by the caller while any system() is in
 * progress, and back to their defaults in the child), but the wait for it
 * is cooperative. SIGCHLD is not blocked: nothing here needs it.
 */
static pthread_mutex_t system_lock = PTHREAD_MUTEX_INITIALIZER;
static int system_count;
static struct sigaction system_intr, system_quit;

EXPORT int system(const char *cmd)
{
    if (!coop()) {
        __typeof__(&system) f = REAL(system);
        if (!f) {
            errno = ENOSYS;
            return -1;
        }
        return f(cmd);
    }
    if (!cmd)
        return system("exit 0") == 0; /* is there a shell? */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    pthread_mutex_lock(&system_lock);
    if (system_count++ == 0) {
        lc_sigaction(SIGINT, &ign, &system_intr);
        lc_sigaction(SIGQUIT, &ign, &system_quit);
    }
    pthread_mutex_unlock(&system_lock);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults, mask;
    sigemptyset(&defaults);
    /* The child gets back the defaults of what the caller did not ignore. */
    if (system_intr.sa_handler != SIG_IGN)
        sigaddset(&defaults, SIGINT);
    if (system_quit.sa_handler != SIG_IGN)
        sigaddset(&defaults, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &mask);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    pid_t pid;
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    extern char **environ;
    int err = posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    int status = -1;
    if (err == 0) {
        /* system() is not interrupted: like glibc's, it waits on. */
        while (coop_wait4(pid, &status, 0, NULL) < 0 && errno == EINTR)
            ;
    } else {
        status = W_EXITCODE(127, 0); /* what glibc reports when sh cannot run */
    }
    int saved = errno;
    pthread_mutex_lock(&system_lock);
    if (--system_count == 0) {
        lc_sigaction(SIGINT, &system_intr, NULL);
        lc_sigaction(SIGQUIT, &system_quit, NULL);
    }
    pthread_mutex_unlock(&system_lock);
    errno = saved;
    return status;
}

/* ------------------------------------------------------------------------ */
/* Signal handlers                                                            */
/* ------------------------------------------------------------------------ */

/* The program's own action for each signal whose kernel handler is the
 * trampoline. fn and flags are read by the trampoline (atomics); act is
 * what sigaction reports back. */
static struct {
    _Atomic(void *) fn;
    _Atomic int     flags;
    struct sigaction act;
} actions[NSIG];

/* siginterrupt's choice per signal, for signal() (as glibc's _sigintr). */
static sigset_t sigintr;

/* Text ranges of libev, libgreen and the shim: their handlers are not wrapped. */
static struct {
    uintptr_t probe, lo, hi;
} own_libs[3];

static void trampoline(int sig, siginfo_t *si, void *uc)
{
    struct thread_state *t = &ts_self;
    int saved_errno = errno;
    void *fn = atomic_load_explicit(&actions[sig].fn, memory_order_acquire);
    int flags = atomic_load_explicit(&actions[sig].flags, memory_order_relaxed);
    unsigned gen = t->gen + 1;
    t->gen = gen;
    if (!(flags & SA_RESTART))
        t->norestart_gen = gen;
    atomic_signal_fence(memory_order_seq_cst);
    if (t->nwaits)
        ev_async_send(t->loop, &t->async);
    errno = saved_errno;
    if (!fn)
        return;
    t->depth++;
    if (flags & SA_SIGINFO)
        ((void (*)(int, siginfo_t *, void *))fn)(sig, si, uc);
    else
        ((void (*)(int))fn)(sig);
    t->depth--;
}

static bool is_trampoline(const struct sigaction *sa)
{
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == trampoline;
}

/* Whether a handler belongs to libev, libgreen or the shim. */
static bool own_handler(void *fn)
{
    uintptr_t a = (uintptr_t)fn;
    for (int i = 0; i < 3; i++)
        if (a >= own_libs[i].lo && a < own_libs[i].hi)
            return true;
    return false;
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (sig <= 0 || sig >= NSIG)
        return lc_sigaction(sig, act, old);
    struct sigaction prev_prog = actions[sig].act, kold;
    void *fn = act ? ((act->sa_flags & SA_SIGINFO) ? (void *)act->sa_sigaction
                                                   : (void *)act->sa_handler)
                   : NULL;
    int r;
    if (act && fn != (void *)SIG_DFL && fn != (void *)SIG_IGN && !own_handler(fn)) {
        /* The program's handler first, so that a signal arriving once the
         * trampoline is in place finds it. */
        actions[sig].act = *act;
        atomic_store_explicit(&actions[sig].flags, act->sa_flags, memory_order_relaxed);
        atomic_store_explicit(&actions[sig].fn, fn, memory_order_release);
        struct sigaction k = *act;
        k.sa_sigaction = trampoline;
        k.sa_flags |= SA_SIGINFO;
        r = lc_sigaction(sig, &k, &kold);
        if (r != 0) {
            actions[sig].act = prev_prog;
            return r;
        }
    } else {
        r = lc_sigaction(sig, act, &kold);
        if (r != 0)
            return r;
    }
    if (old)
        *old = is_trampoline(&kold) ? prev_prog : kold;
    return 0;
}

/* What glibc's signal functions refuse with EINVAL. */
static bool signal_args_bad(int sig, sighandler_t handler)
{
    if (handler != SIG_ERR && sig > 0 && sig < NSIG)
        return false;
    errno = EINVAL;
    return true;
}

/* signal(), as glibc's: BSD semantics, SA_RESTART unless siginterrupt said not. */
EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    if (signal_args_bad(sig, handler))
        return SIG_ERR;
    struct sigaction act = {.sa_handler = handler}, old;
    sigemptyset(&act.sa_mask);
    sigaddset(&act.sa_mask, sig);
    act.sa_flags = sigismember(&sigintr, sig) == 1 ? 0 : SA_RESTART;
    if (sigaction(sig, &act, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
    return signal(sig, handler);
}

/* System V semantics: one-shot, not deferred, not restarted (what `signal`
 * means to a program built in strict ISO C mode). */
EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
    if (signal_args_bad(sig, handler))
        return SIG_ERR;
    struct sigaction act = {.sa_handler = handler, .sa_flags = SA_RESETHAND | SA_NODEFER}, old;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
    return __sysv_signal(sig, handler);
}

EXPORT int siginterrupt(int sig, int flag)
{
    struct sigaction act;
    if (sigaction(sig, NULL, &act) != 0)
        return -1;
    if (flag) {
        sigaddset(&sigintr, sig);
        act.sa_flags &= ~SA_RESTART;
    } else {
        sigdelset(&sigintr, sig);
        act.sa_flags |= SA_RESTART;
    }
    return sigaction(sig, &act, NULL);
}

/* A handler that jumps out never returns through the trampoline: the jump
 * leaves the handler, so calls are cooperative again. */
EXPORT void siglongjmp(sigjmp_buf env, int val)
{
    ts_self.depth = 0;
    REAL(siglongjmp)(env, val);
    abort();
}

EXPORT void longjmp(jmp_buf env, int val)
{
    ts_self.depth = 0;
    REAL(longjmp)(env, val);
    abort();
}

EXPORT void _longjmp(jmp_buf env, int val)
{
    ts_self.depth = 0;
    REAL(_longjmp)(env, val);
    abort();
}

EXPORT void __longjmp_chk(sigjmp_buf env, int val)
{
    ts_self.depth = 0;
    REAL(__longjmp_chk)(env, val);
    abort();
}

/* ------------------------------------------------------------------------ */
/* _FORTIFY_SOURCE entry points (Debian builds programs with them)            */
/* ------------------------------------------------------------------------ */

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen || !coop())
        return CALL_REAL(__read_chk, n > buflen ? (abort(), -1) : SYS(SYS_read, fd, buf, n), fd,
                         buf, n, buflen);
    struct iovec iov = {buf, n};
    return coop_readv(fd, &iov, 1);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (n > buflen || !coop())
        return CALL_REAL(__recv_chk,
                         n > buflen ? (abort(), -1) : SYS(SYS_recvfrom, fd, buf, n, flags, NULL, NULL),
                         fd, buf, n, buflen, flags);
    return recv(fd, buf, n, flags);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                              struct sockaddr *addr, socklen_t *len)
{
    if (n > buflen || !coop())
        return CALL_REAL(__recvfrom_chk,
                         n > buflen ? (abort(), -1) : SYS(SYS_recvfrom, fd, buf, n, flags, addr, len),
                         fd, buf, n, buflen, flags, addr, len);
    return recvfrom(fd, buf, n, flags, addr, len);
}

EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout_ms, size_t fdslen)
{
    if (fdslen / sizeof *fds < n || !coop())
        return CALL_REAL(__poll_chk, fdslen / sizeof *fds < n ? (abort(), -1) : lc_poll(fds, n, timeout_ms),
                         fds, n, timeout_ms, fdslen);
    return poll(fds, n, timeout_ms);
}

/* ------------------------------------------------------------------------ */
/* Start-up                                                                   */
/* ------------------------------------------------------------------------ */

void shim_object_extent(const struct dl_phdr_info *info, bool exec_only, uintptr_t *lo,
                        uintptr_t *hi)
{
    *lo = UINTPTR_MAX;
    *hi = 0;
    for (int p = 0; p < info->dlpi_phnum; p++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[p];
        if (ph->p_type != PT_LOAD || (exec_only && !(ph->p_flags & PF_X)))
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < *lo)
            *lo = a;
        if (a + ph->p_memsz > *hi)
            *hi = a + ph->p_memsz;
    }
}

/* Finds the loaded object each probe address lies in and notes its extent. */
static int find_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    uintptr_t lo, hi;
    shim_object_extent(info, false, &lo, &hi);
    for (int i = 0; i < 3; i++) {
        if (own_libs[i].probe >= lo && own_libs[i].probe < hi) {
            own_libs[i].lo = lo;
            own_libs[i].hi = hi;
        }
    }
    return 0;
}

static void atfork_child(void)
{
    shim_pid = getpid();
}

__attribute__((constructor)) static void monkey_init(void)
{
    shim_pid = getpid();
    pthread_atfork(NULL, NULL, atfork_child);
    /* Look everything up now, so that no lookup ever runs later inside a
     * signal handler (write is async-signal-safe, dlsym is not). */
#define LOOKUP(name) (void)REAL(name)
    LOOKUP(read); LOOKUP(readv); LOOKUP(write); LOOKUP(writev);
    LOOKUP(recv); LOOKUP(recvfrom); LOOKUP(recvmsg);
    LOOKUP(send); LOOKUP(sendto); LOOKUP(sendmsg);
    LOOKUP(accept); LOOKUP(accept4); LOOKUP(connect); LOOKUP(close);
    LOOKUP(dup2); LOOKUP(dup3); LOOKUP(poll); LOOKUP(ppoll); LOOKUP(select);
    LOOKUP(epoll_wait); LOOKUP(epoll_pwait);
    LOOKUP(sleep); LOOKUP(usleep); LOOKUP(nanosleep); LOOKUP(clock_nanosleep);
    LOOKUP(getaddrinfo); LOOKUP(gethostbyname);
    LOOKUP(waitpid); LOOKUP(wait4); LOOKUP(wait); LOOKUP(system); LOOKUP(sigaction);
    LOOKUP(__read_chk); LOOKUP(__recv_chk); LOOKUP(__recvfrom_chk); LOOKUP(__poll_chk);
    LOOKUP(longjmp); LOOKUP(_longjmp); LOOKUP(siglongjmp); LOOKUP(__longjmp_chk);
#undef LOOKUP
    /* Where libev, libgreen and the shim lie, for sigaction. */
    own_libs[0].probe = (uintptr_t)ev_run;
    own_libs[1].probe = (uintptr_t)green_spawn;
    own_libs[2].probe = (uintptr_t)trampoline;
    dl_iterate_phdr(find_object, NULL);
}
