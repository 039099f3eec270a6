/*
 * libgreen-monkey.so: the blocking calls of libc, made cooperative.
 *
 * This is the only code in the project that defines libc's names. Each
 * interposed call finds the real function once with dlsym(RTLD_NEXT) and:
 *
 *  - goes straight to libc when the thread has no hub, when it runs in the
 *    hub itself (libev's own calls), or when the call could not block anyway
 *    (MSG_DONTWAIT, a regular file, a descriptor the program made
 *    non-blocking);
 *  - otherwise tries the call without blocking (MSG_DONTWAIT for sockets,
 *    readiness first for pipes and terminals) and, where it would block,
 *    waits on the hub with green_wait_fd, so other greenlets run meanwhile.
 *
 * The shim keeps no state of its own about descriptors. The program's
 * O_NONBLOCK stays in the kernel exactly as the program set it (fcntl,
 * SOCK_NONBLOCK, accept4 flags, FIONBIO all keep working and F_GETFL reports
 * them), and so do SO_RCVTIMEO and SO_SNDTIMEO, which the shim reads back
 * (getsockopt) only when a call is about to wait: a wait that runs past them
 * fails with EAGAIN, as the kernel's would. Reading the flags only on the
 * path that waits keeps the common path at one system call, as without the
 * shim.
 *
 * Errors are libc's, plus ECANCELED when the calling greenlet was killed
 * (sleep returns the seconds left) and EBADF when the descriptor was closed
 * while waited on: close wakes the other greenlets waiting on it first.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "monkey.h"

/* glibc's fortified variants, declared here since no header does. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                       struct sockaddr *addr, socklen_t *len);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout_ms, size_t fdslen);

#define EXPORT __attribute__((visibility("default")))

/* The real functions, found once. dlsym may be called very early (from
 * other libraries' constructors); a racing first lookup just finds the same
 * address twice. */
#define REAL(name)                                                               \
    ({                                                                           \
        static __typeof__(&name) real_;                                          \
        if (__builtin_expect(real_ == NULL, 0))                                  \
            real_ = (__typeof__(&name))dlsym(RTLD_NEXT, #name);                  \
        real_;                                                                   \
    })

/* ------------------------------------------------------------------------ */
/* Waiting                                                                    */
/* ------------------------------------------------------------------------ */

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

static double left(double deadline)
{
    if (deadline < 0)
        return -1;
    double l = deadline - now_mono();
    return l > 0 ? l : 1e-9;
}

static bool prog_nonblocking(int fd)
{
    int fl = REAL(fcntl)(fd, F_GETFL);
    return fl >= 0 && (fl & O_NONBLOCK);
}

/*
 * Waits for fd; 0 when ready, else -1 with errno as the interrupted call
 * should report it: EAGAIN for a socket timeout, ECANCELED, EBADF.
 */
static int wait_for(int fd, int events, double deadline)
{
    if (green_wait_fd(fd, events, left(deadline)) >= 0)
        return 0;
    if (errno == ETIMEDOUT)
        errno = EAGAIN;
    return -1;
}

/* What kind of descriptor: sockets wait with MSG_DONTWAIT, pipes and ttys
 * wait for readiness first, everything else never blocks (regular files). */
enum kind { K_SOCKET, K_WAITABLE, K_PLAIN };

static enum kind kind_of(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return K_PLAIN; /* let libc report the error */
    if (S_ISSOCK(st.st_mode))
        return K_SOCKET;
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))
        return K_WAITABLE;
    return K_PLAIN;
}

/* ------------------------------------------------------------------------ */
/* Socket calls: MSG_DONTWAIT, then wait                                      */
/* ------------------------------------------------------------------------ */

/* Receives with `op` (which must honour MSG_DONTWAIT) and waits while it
 * would block. */
#define COOP_RECV(fd, flags, call)                                                \
    do {                                                                          \
        double dl_ = -2;                                                          \
        for (;;) {                                                                \
            ssize_t r_ = (call);                                                  \
            if (r_ >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))             \
                return r_;                                                        \
            if (prog_nonblocking(fd))                                             \
                return -1;                                                        \
            if (dl_ == -2)                                                        \
                dl_ = sock_deadline(fd, SO_RCVTIMEO);                             \
            if (wait_for(fd, GREEN_READ, dl_) != 0)                               \
                return -1;                                                        \
        }                                                                         \
    } while (0)

static bool passthrough(int flags)
{
    return !green__monkey_active() || (flags & MSG_DONTWAIT);
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    if (passthrough(flags))
        return REAL(recv)(fd, buf, n, flags);
    COOP_RECV(fd, flags, REAL(recv)(fd, buf, n, flags | MSG_DONTWAIT));
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                        socklen_t *len)
{
    if (passthrough(flags))
        return REAL(recvfrom)(fd, buf, n, flags, addr, len);
    COOP_RECV(fd, flags, REAL(recvfrom)(fd, buf, n, flags | MSG_DONTWAIT, addr, len));
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (passthrough(flags))
        return REAL(recvmsg)(fd, msg, flags);
    COOP_RECV(fd, flags, REAL(recvmsg)(fd, msg, flags | MSG_DONTWAIT));
}

/*
 * Sends all of msg as a blocking send would: in pieces, waiting while the
 * socket is full. A socket timeout returns what was sent (or -1 EAGAIN).
 */
static ssize_t coop_sendmsg(int fd, struct msghdr *msg, int flags)
{
    size_t total = 0;
    for (size_t i = 0; i < msg->msg_iovlen; i++)
        total += msg->msg_iov[i].iov_len;
    /* Work on a copy of the iovec, advanced as bytes go out. */
    struct iovec iov_stack[16], *iov = iov_stack;
    if (msg->msg_iovlen > 16 && !(iov = malloc(msg->msg_iovlen * sizeof *iov)))
        return REAL(sendmsg)(fd, msg, flags); /* out of memory: block as libc would */
    memcpy(iov, msg->msg_iov, msg->msg_iovlen * sizeof *iov);
    struct msghdr m = *msg;
    m.msg_iov = iov;
    size_t sent = 0;
    double dl = -2;
    ssize_t result;
    for (;;) {
        ssize_t r = REAL(sendmsg)(fd, &m, flags | MSG_DONTWAIT);
        if (r >= 0) {
            sent += (size_t)r;
            if (sent >= total || m.msg_name) { /* datagrams go whole */
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
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            result = sent ? (ssize_t)sent : -1;
            break;
        }
        if (prog_nonblocking(fd)) {
            result = sent ? (ssize_t)sent : -1;
            break;
        }
        if (dl == -2)
            dl = sock_deadline(fd, SO_SNDTIMEO);
        if (wait_for(fd, GREEN_WRITE, dl) != 0) {
            result = sent && errno == EAGAIN ? (ssize_t)sent : -1;
            break;
        }
    }
    if (iov != iov_stack)
        free(iov);
    return result;
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (passthrough(flags) || !msg)
        return REAL(sendmsg)(fd, msg, flags);
    return coop_sendmsg(fd, (struct msghdr *)msg, flags);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (passthrough(flags))
        return REAL(send)(fd, buf, n, flags);
    struct iovec iov = {(void *)buf, n};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    return coop_sendmsg(fd, &m, flags);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
                      socklen_t len)
{
    if (passthrough(flags))
        return REAL(sendto)(fd, buf, n, flags, addr, len);
    struct iovec iov = {(void *)buf, n};
    struct msghdr m = {.msg_name = (void *)addr, .msg_namelen = addr ? len : 0,
                       .msg_iov = &iov, .msg_iovlen = 1};
    return coop_sendmsg(fd, &m, flags);
}

/* ------------------------------------------------------------------------ */
/* read, write, readv, writev: any descriptor                                 */
/* ------------------------------------------------------------------------ */

EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
    if (!green__monkey_active())
        return REAL(readv)(fd, iov, n);
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = n > 0 ? (size_t)n : 0};
    ssize_t r = REAL(recvmsg)(fd, &m, MSG_DONTWAIT);
    if (r >= 0 || errno != ENOTSOCK) {
        if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return r;
        COOP_RECV(fd, 0, REAL(recvmsg)(fd, &m, MSG_DONTWAIT));
    }
    if (kind_of(fd) == K_WAITABLE && !prog_nonblocking(fd) && wait_for(fd, GREEN_READ, -1) != 0)
        return -1;
    return REAL(readv)(fd, iov, n);
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    if (!green__monkey_active())
        return REAL(read)(fd, buf, n);
    struct iovec iov = {buf, n};
    return readv(fd, &iov, 1);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (!green__monkey_active() || n < 0)
        return REAL(writev)(fd, iov, n);
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    int type;
    socklen_t tl = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0)
        return coop_sendmsg(fd, &m, 0);
    if (errno != ENOTSOCK)
        return REAL(writev)(fd, iov, n); /* EBADF and the like, from libc */
    if (kind_of(fd) != K_WAITABLE || prog_nonblocking(fd))
        return REAL(writev)(fd, iov, n);
    /* A pipe or terminal: write once it has room. A blocking write of more
     * than the pipe holds still blocks until the reader catches up, as
     * without the shim; the waits before it are cooperative. */
    if (wait_for(fd, GREEN_WRITE, -1) != 0)
        return -1;
    return REAL(writev)(fd, iov, n);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (!green__monkey_active())
        return REAL(write)(fd, buf, n);
    struct iovec iov = {(void *)buf, n};
    return writev(fd, &iov, 1);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                                */
/* ------------------------------------------------------------------------ */

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    if (!green__monkey_active() || prog_nonblocking(fd))
        return REAL(accept4)(fd, addr, len, flags);
    double dl = -2;
    for (;;) {
        /* Briefly non-blocking, so that a connection another process took
         * first cannot block the thread; the flag is restored at once. */
        int fl = REAL(fcntl)(fd, F_GETFL);
        REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK);
        int c = REAL(accept4)(fd, addr, len, flags);
        int err = errno;
        REAL(fcntl)(fd, F_SETFL, fl);
        errno = err;
        if (c >= 0 || (err != EAGAIN && err != EWOULDBLOCK))
            return c;
        if (dl == -2)
            dl = sock_deadline(fd, SO_RCVTIMEO);
        if (wait_for(fd, GREEN_READ, dl) != 0)
            return -1;
    }
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return accept4(fd, addr, len, 0);
}

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (!green__monkey_active() || prog_nonblocking(fd))
        return REAL(connect)(fd, addr, len);
    int fl = REAL(fcntl)(fd, F_GETFL);
    REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK);
    int r = REAL(connect)(fd, addr, len);
    int err = errno;
    if (r < 0 && err == EINPROGRESS) {
        if (wait_for(fd, GREEN_WRITE, sock_deadline(fd, SO_SNDTIMEO)) != 0) {
            err = errno == EAGAIN ? EINPROGRESS : errno; /* the kernel's answer to a timeout */
        } else {
            socklen_t sl = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0)
                err = errno;
            r = err ? -1 : 0;
        }
    }
    REAL(fcntl)(fd, F_SETFL, fl);
    errno = err;
    return r;
}

EXPORT int close(int fd)
{
    if (green__monkey_active())
        green__monkey_fd_closed(fd);
    return REAL(close)(fd);
}

/* dup2/dup3 close newfd first: wake its waiters the same way. */
EXPORT int dup2(int oldfd, int newfd)
{
    if (green__monkey_active() && oldfd != newfd)
        green__monkey_fd_closed(newfd);
    return REAL(dup2)(oldfd, newfd);
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
    if (green__monkey_active() && oldfd != newfd)
        green__monkey_fd_closed(newfd);
    return REAL(dup3)(oldfd, newfd, flags);
}

/* ------------------------------------------------------------------------ */
/* poll, select, epoll                                                        */
/* ------------------------------------------------------------------------ */

static int coop_poll(struct pollfd *fds, nfds_t n, double timeout)
{
    double deadline = timeout < 0 ? -1 : now_mono() + timeout;
    for (;;) {
        int r = REAL(poll)(fds, n, 0);
        if (r != 0 || timeout == 0)
            return r;
        double l = deadline < 0 ? -1 : deadline - now_mono();
        if (deadline >= 0 && l <= 0)
            return 0;
        int err = green__monkey_poll(fds, n, l);
        if (err == ETIMEDOUT)
            return 0;
        if (err) {
            errno = err;
            return -1;
        }
    }
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    if (!green__monkey_active() || timeout_ms == 0)
        return REAL(poll)(fds, n, timeout_ms);
    return coop_poll(fds, n, timeout_ms < 0 ? -1 : timeout_ms / 1e3);
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
    /* With a signal mask the call's atomicity cannot be kept: leave it to libc. */
    if (!green__monkey_active() || mask || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0))
        return REAL(ppoll)(fds, n, ts, mask);
    return coop_poll(fds, n, ts ? (double)ts->tv_sec + (double)ts->tv_nsec / 1e9 : -1);
}

EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    if (!green__monkey_active() || nfds < 0 || nfds > FD_SETSIZE ||
        (tv && tv->tv_sec == 0 && tv->tv_usec == 0))
        return REAL(select)(nfds, rd, wr, ex, tv);
    struct pollfd stack_fds[64], *fds = stack_fds;
    int n = 0;
    for (int fd = 0; fd < nfds; fd++)
        n += (rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)) || (ex && FD_ISSET(fd, ex));
    if (n > 64 && !(fds = malloc((size_t)n * sizeof *fds)))
        return REAL(select)(nfds, rd, wr, ex, tv);
    n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (short)((rd && FD_ISSET(fd, rd) ? POLLIN : 0) |
                           (wr && FD_ISSET(fd, wr) ? POLLOUT : 0) |
                           (ex && FD_ISSET(fd, ex) ? POLLPRI : 0));
        if (ev)
            fds[n++] = (struct pollfd){.fd = fd, .events = ev};
    }
    /* Wait cooperatively until something is ready, then let select itself
     * fill in the sets (and report EBADF) with a zero timeout. */
    double timeout = tv ? (double)tv->tv_sec + (double)tv->tv_usec / 1e6 : -1;
    double start = now_mono();
    int r = coop_poll(fds, (nfds_t)n, timeout);
    if (fds != stack_fds)
        free(fds);
    if (r < 0)
        return -1;
    if (tv) {
        double l = timeout - (now_mono() - start);
        if (l < 0)
            l = 0;
        tv->tv_sec = (time_t)l;
        tv->tv_usec = (suseconds_t)((l - (double)tv->tv_sec) * 1e6);
    }
    struct timeval zero = {0, 0};
    return REAL(select)(nfds, rd, wr, ex, &zero);
}

EXPORT int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout_ms)
{
    if (!green__monkey_active() || timeout_ms == 0)
        return REAL(epoll_wait)(epfd, events, max, timeout_ms);
    double deadline = timeout_ms < 0 ? -1 : now_mono() + timeout_ms / 1e3;
    for (;;) {
        int r = REAL(epoll_wait)(epfd, events, max, 0);
        if (r != 0)
            return r;
        if (deadline >= 0 && deadline - now_mono() <= 0)
            return 0;
        /* An epoll descriptor is readable while it has events to report. */
        if (green_wait_fd(epfd, GREEN_READ, left(deadline)) < 0)
            return errno == ETIMEDOUT ? 0 : -1;
    }
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int max, int timeout_ms,
                       const sigset_t *mask)
{
    if (mask)
        return REAL(epoll_pwait)(epfd, events, max, timeout_ms, mask);
    return epoll_wait(epfd, events, max, timeout_ms);
}

/* ------------------------------------------------------------------------ */
/* Time                                                                       */
/* ------------------------------------------------------------------------ */

/* Sleeps cooperatively; on a kill returns -1 ECANCELED and *left. */
static int coop_sleep(double seconds, double *left_out)
{
    double end = now_mono() + seconds;
    if (green_sleep(seconds) == 0)
        return 0;
    if (left_out) {
        double l = end - now_mono();
        *left_out = l > 0 ? l : 0;
    }
    return -1;
}

EXPORT unsigned int sleep(unsigned int seconds)
{
    if (!green__monkey_active())
        return REAL(sleep)(seconds);
    double l = 0;
    if (coop_sleep(seconds, &l) == 0)
        return 0;
    return (unsigned)ceil(l);
}

EXPORT int usleep(useconds_t usec)
{
    if (!green__monkey_active())
        return REAL(usleep)(usec);
    return coop_sleep(usec / 1e6, NULL);
}

static void to_timespec(double s, struct timespec *ts)
{
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)((s - (double)ts->tv_sec) * 1e9);
}

EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!green__monkey_active() || !req || req->tv_nsec < 0 || req->tv_nsec >= 1000000000 ||
        req->tv_sec < 0)
        return REAL(nanosleep)(req, rem);
    double l = 0;
    if (coop_sleep((double)req->tv_sec + (double)req->tv_nsec / 1e9, &l) == 0)
        return 0;
    if (rem)
        to_timespec(l, rem);
    return -1;
}

EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                           struct timespec *rem)
{
    if (!green__monkey_active() || !req || (clk != CLOCK_MONOTONIC && clk != CLOCK_REALTIME) ||
        req->tv_nsec < 0 || req->tv_nsec >= 1000000000)
        return REAL(clock_nanosleep)(clk, flags, req, rem);
    double s = (double)req->tv_sec + (double)req->tv_nsec / 1e9;
    if (flags & TIMER_ABSTIME) {
        struct timespec now;
        clock_gettime(clk, &now);
        s -= (double)now.tv_sec + (double)now.tv_nsec / 1e9;
        rem = NULL; /* never written for absolute sleeps */
    }
    double l = 0;
    if (s <= 0 || coop_sleep(s, &l) == 0)
        return 0;
    if (rem)
        to_timespec(l, rem);
    return errno; /* clock_nanosleep returns the error */
}

/* ------------------------------------------------------------------------ */
/* Names                                                                      */
/* ------------------------------------------------------------------------ */

EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    /* The thread pool's workers have no hub: their lookup is the real one. */
    if (!green__monkey_active())
        return REAL(getaddrinfo)(node, service, hints, res);
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
    if (!green__monkey_active())
        return REAL(gethostbyname)(name);
    /* The lookup runs on the thread pool; its result lives in glibc's
     * static buffer, as it would for the caller. */
    struct hostbyname_call *c = malloc(sizeof *c);
    if (!c || !name || !(c->name = strdup(name))) {
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

EXPORT pid_t waitpid(pid_t pid, int *status, int options)
{
    if (!green__monkey_active() || pid <= 0 || options != 0)
        return REAL(waitpid)(pid, status, options);
    return green_waitpid(pid, status, -1) == 0 ? pid : -1;
}

EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
    if (!green__monkey_active() || pid <= 0 || options != 0 || ru)
        return REAL(wait4)(pid, status, options, ru);
    return green_waitpid(pid, status, -1) == 0 ? pid : -1;
}

/* ------------------------------------------------------------------------ */
/* _FORTIFY_SOURCE entry points (Debian builds programs with them)            */
/* ------------------------------------------------------------------------ */

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen || !green__monkey_active())
        return REAL(__read_chk)(fd, buf, n, buflen); /* aborts on overflow, as before */
    return read(fd, buf, n);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (n > buflen || !green__monkey_active())
        return REAL(__recv_chk)(fd, buf, n, buflen, flags);
    return recv(fd, buf, n, flags);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                              struct sockaddr *addr, socklen_t *len)
{
    if (n > buflen || !green__monkey_active())
        return REAL(__recvfrom_chk)(fd, buf, n, buflen, flags, addr, len);
    return recvfrom(fd, buf, n, flags, addr, len);
}

EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout_ms, size_t fdslen)
{
    if (fdslen / sizeof *fds < n || !green__monkey_active())
        return REAL(__poll_chk)(fds, n, timeout_ms, fdslen);
    return poll(fds, n, timeout_ms);
}
