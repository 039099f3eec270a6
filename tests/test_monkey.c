/*
 * The monkey shim, linked in (-lgreen-monkey): blocking libc calls made from
 * greenlets wait on the hub, the program's view of its descriptors is
 * unchanged, signals interrupt waits as they interrupt system calls, fork
 * works, and calls without a hub go straight to libc.
 *
 * Most tests prove a call was cooperative by a ticker greenlet that kept
 * running while the call waited: without the shim the thread would block and
 * the ticker would not move.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "monkey.h"

/* The deliberate misuse below (NULL buffers) is what valgrind reports. */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define MISUSE_BEGIN() VALGRIND_DISABLE_ERROR_REPORTING
#define MISUSE_END() VALGRIND_ENABLE_ERROR_REPORTING
#else
#define MISUSE_BEGIN() ((void)0)
#define MISUSE_END() ((void)0)
#endif

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------ */

static int sv[2];

/* Misuse the compiler would warn about, hidden from it. */
static void *volatile null_ptr;
static volatile int minus_one = -1, too_many = IOV_MAX + 1;

/* Ticks every 10 ms until told to stop (bounded). */
static volatile int ticks, stop_ticking;
static void *ticker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000 && !stop_ticking; i++) {
        green_sleep(0.01);
        ticks++;
    }
    return NULL;
}

static green_t *ticker_start(void)
{
    ticks = 0;
    stop_ticking = 0;
    return green_spawn(ticker, NULL);
}

static void ticker_stop(green_t *t)
{
    stop_ticking = 1;
    ck_assert_int_eq(green_join(t, 2), 0);
    green_release(t);
}

static void pair(int type)
{
    ck_assert_int_eq(socketpair(AF_UNIX, type, 0, sv), 0);
}

static void pair_close(void)
{
    close(sv[0]);
    close(sv[1]);
}

/* A loopback TCP listener on a free port; *addr gets its address. */
static int tcp_listener(struct sockaddr_in *addr)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(l, 0);
    *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(l, (struct sockaddr *)addr, sizeof *addr), 0);
    ck_assert_int_eq(listen(l, 16), 0);
    socklen_t len = sizeof *addr;
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)addr, &len), 0);
    return l;
}

static int is_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_ge(fl, 0);
    return (fl & O_NONBLOCK) != 0;
}

/* Signals: a handler that counts, installed with the given flags. */
static volatile sig_atomic_t handled;
static void count_handler(int sig)
{
    (void)sig;
    handled++;
}

static void install(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa = {.sa_handler = fn, .sa_flags = flags};
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(sig, &sa, NULL), 0);
    handled = 0;
}

/* SIGALRM once, after `s` seconds. */
static void alarm_in(double s)
{
    struct itimerval it = {{0, 0}, {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)}};
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

/* Writes `msg` to fd after `delay` seconds, from a greenlet. */
struct later_write {
    int         fd;
    double      delay;
    const char *msg;
};
static void *write_later(void *arg)
{
    struct later_write *w = arg;
    green_sleep(w->delay);
    ssize_t n = write(w->fd, w->msg, strlen(w->msg));
    ck_assert_int_eq(n, (ssize_t)strlen(w->msg));
    return NULL;
}

/* The same from another OS thread: it works whether or not the shim does. */
static void *thread_write_later(void *arg)
{
    struct later_write *w = arg;
    struct timespec ts = {0, (long)(w->delay * 1e9)};
    nanosleep(&ts, NULL); /* no hub on this thread: libc's own */
    ssize_t n = write(w->fd, w->msg, strlen(w->msg));
    (void)n;
    return NULL;
}

/* Counts this process's descriptors whose link contains `what`. */
static int count_fds(const char *what)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l > 0) {
            link[l] = '\0';
            n += strstr(link, what) != NULL;
        }
    }
    closedir(d);
    return n;
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Sleeps                                                                     */
/* ------------------------------------------------------------------------ */

static void *sleeper(void *arg)
{
    (void)arg;
    ck_assert_int_eq(usleep(200000), 0);
    struct timespec ts = {0, 50000000};
    ck_assert_int_eq(nanosleep(&ts, NULL), 0);
    ck_assert_int_eq(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), 0);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    now.tv_nsec += 20000000;
    if (now.tv_nsec >= 1000000000) {
        now.tv_sec++;
        now.tv_nsec -= 1000000000;
    }
    ck_assert_int_eq(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &now, NULL), 0);
    return NULL;
}

START_TEST(test_sleeps_overlap)
{
    green_t *g[20];
    double t0 = tu_now();
    for (int i = 0; i < 20; i++)
        g[i] = green_spawn(sleeper, NULL);
    ck_assert_int_eq(green_joinall(g, 20, GREEN_FOREVER), 0);
    /* 20 x 0.32 s one after another would be 6.4 s. */
    ck_assert_elapsed(t0, 0.31, 2.0);
    for (int i = 0; i < 20; i++)
        green_release(g[i]);
    ck_assert_int_eq(sleep(0), 0);
}
END_TEST

static void *killed_sleeper(void *arg)
{
    errno = 0;
    unsigned left = sleep(10);
    ((int *)arg)[0] = (int)left;
    ((int *)arg)[1] = errno;
    struct timespec req = {5, 0}, rem = {0, 0};
    ((int *)arg)[2] = nanosleep(&req, &rem);
    ((int *)arg)[3] = errno;
    ((int *)arg)[4] = (int)(rem.tv_sec * 1000 + rem.tv_nsec / 1000000);
    return NULL;
}

START_TEST(test_sleep_killed_returns_left)
{
    int out[5] = {-1, -1, -1, -1, -1};
    green_t *g = green_spawn(killed_sleeper, out);
    green_sleep(0.05);
    ck_assert_int_eq(green_kill(g, 1), 0);
    /* glibc's sleep returns the whole seconds left: 9.95 gives 9. */
    ck_assert_int_eq(out[0], 9);
    ck_assert_int_eq(out[1], ECANCELED);
    /* Once killed, every wait fails at once with the whole time left. */
    ck_assert_int_eq(out[2], -1);
    ck_assert_int_eq(out[3], ECANCELED);
    ck_assert_int_ge(out[4], 4900); /* ms left */
    ck_assert_int_le(out[4], 5000);
    green_release(g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Passing straight through                                                   */
/* ------------------------------------------------------------------------ */

/*
 * A program that never spawns a greenlet: every interposed call goes to
 * libc, and no hub is made (no epoll or eventfd descriptor, no thread).
 */
START_TEST(test_no_greenlet_no_hub)
{
    int epolls = count_fds("eventpoll"), eventfds = count_fds("eventfd");
    ck_assert_int_eq(count_threads(), 1);
    pair(SOCK_STREAM);
    ck_assert_int_eq(write(sv[0], "abc", 3), 3);
    char buf[8];
    ck_assert_int_eq(read(sv[1], buf, sizeof buf), 3);
    ck_assert_int_eq(send(sv[1], "x", 1, 0), 1);
    ck_assert_int_eq(recv(sv[0], buf, 1, 0), 1);
    struct pollfd p = {.fd = sv[0], .events = POLLIN};
    double t0 = tu_now();
    ck_assert_int_eq(poll(&p, 1, 50), 0);
    ck_assert_elapsed(t0, 0.045, 1.0);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(sv[0], &rd);
    struct timeval tv = {0, 20000};
    ck_assert_int_eq(select(sv[0] + 1, &rd, NULL, NULL, &tv), 0);
    t0 = tu_now();
    ck_assert_int_eq(usleep(20000), 0);
    struct timespec ts = {0, 20000000};
    ck_assert_int_eq(nanosleep(&ts, NULL), 0);
    ck_assert_elapsed(t0, 0.039, 1.0);
    struct addrinfo *res = NULL;
    ck_assert_int_eq(getaddrinfo("127.0.0.1", "80", NULL, &res), 0);
    freeaddrinfo(res);
    /* A blocking read interrupted by a handler: the kernel's own EINTR. */
    install(SIGALRM, count_handler, 0);
    alarm_in(0.05);
    ck_assert_fails(read(sv[0], buf, 1), EINTR);
    ck_assert_int_eq(handled, 1);
    pid_t pid = fork();
    if (pid == 0)
        _exit(3);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_int_eq(WEXITSTATUS(st), 3);
    pair_close();
    /* Nothing of libgreen's was made. */
    ck_assert_uint_eq(green_count(), 0);
    ck_assert_int_eq(count_fds("eventpoll"), epolls);
    ck_assert_int_eq(count_fds("eventfd"), eventfds);
    ck_assert_int_eq(count_threads(), 1);
}
END_TEST

static void *no_hub_thread(void *arg)
{
    (void)arg;
    /* No hub on this thread: straight to libc, and no hub gets created. */
    double t0 = tu_now();
    usleep(20000);
    ck_assert_elapsed(t0, 0.019, 1.0);
    ck_assert_uint_eq(green_count(), 0);
    return NULL;
}

START_TEST(test_thread_without_hub_passes_through)
{
    int epolls = count_fds("eventpoll");
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, no_hub_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(count_fds("eventpoll"), epolls);
}
END_TEST

/* The hub's own calls (here a libev callback's) go straight to libc: the
 * hub must never park. */
static int hub_usleep_rc = -2;
static double hub_usleep_dt;
static void hub_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    double t0 = tu_now();
    hub_usleep_rc = usleep(20000);
    hub_usleep_dt = tu_now() - t0;
}

START_TEST(test_hub_calls_pass_through)
{
    struct ev_loop *loop = green_loop();
    ev_timer t;
    ev_timer_init(&t, hub_timer_cb, 0.01, 0.);
    ev_timer_start(loop, &t);
    green_sleep(0.1);
    ck_assert_int_eq(hub_usleep_rc, 0);
    ck_assert(hub_usleep_dt >= 0.019);
}
END_TEST

START_TEST(test_regular_file_and_ready_calls_do_not_switch)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    int fd = fileno(f);
    tu_flag = 0;
    green_t *g = green_spawn(tu_set_flag, NULL);
    ck_assert_int_eq(write(fd, "hello", 5), 5);
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    char buf[8];
    ck_assert_int_eq(read(fd, buf, sizeof buf), 5);
    pair(SOCK_STREAM);
    ck_assert_int_eq(write(sv[0], "x", 1), 1);
    ck_assert_int_eq(read(sv[1], buf, 1), 1);
    struct pollfd p = {.fd = sv[0], .events = POLLOUT};
    ck_assert_int_eq(poll(&p, 1, 1000), 1);
    ck_assert_int_eq(tu_flag, 0); /* nothing waited, so nothing else ran */
    ck_assert_int_eq(is_nonblocking(fd), 0);
    ck_assert_int_eq(green_join(g, 1), 0);
    green_release(g);
    pair_close();
    fclose(f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Cooperative calls                                                          */
/* ------------------------------------------------------------------------ */

static void *blocking_reader(void *arg)
{
    char buf[16];
    ssize_t n = read(sv[1], buf, sizeof buf);
    *(ssize_t *)arg = n;
    return NULL;
}

START_TEST(test_blocking_read_is_cooperative)
{
    pair(SOCK_STREAM);
    ssize_t got = -2;
    green_t *g = green_spawn(blocking_reader, &got);
    green_sleep(0.05); /* the reader is parked, the thread is not */
    ck_assert_int_eq(got, -2);
    /* The program never asked for O_NONBLOCK and never sees it, even while
     * a greenlet waits on the socket. */
    ck_assert_int_eq(is_nonblocking(sv[1]), 0);
    ck_assert_int_eq(write(sv[0], "hello", 5), 5);
    ck_assert_int_eq(green_join(g, 1), 0);
    ck_assert_int_eq(got, 5);
    ck_assert_int_eq(is_nonblocking(sv[1]), 0);
    green_release(g);
    pair_close();
}
END_TEST

/* A read on a pipe, written by another thread, while a ticker runs. */
START_TEST(test_pipe_read_cooperative)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    green_t *t = ticker_start();
    struct later_write lw = {p[1], 0.2, "pipe"};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, thread_write_later, &lw), 0);
    char buf[16];
    double t0 = tu_now();
    ck_assert_int_eq(read(p[0], buf, sizeof buf), 4);
    ck_assert_elapsed(t0, 0.15, 2.0);
    ck_assert_int_ge(ticks, 5);
    pthread_join(th, NULL);
    ck_assert_int_eq(is_nonblocking(p[0]), 0);
    ticker_stop(t);
    close(p[0]);
    close(p[1]);
}
END_TEST

static void *eventfd_poster(void *arg)
{
    int fd = *(int *)arg;
    green_sleep(0.2);
    uint64_t one = 1;
    ck_assert_int_eq(write(fd, &one, sizeof one), (ssize_t)sizeof one);
    return NULL;
}

START_TEST(test_eventfd_read_cooperative)
{
    int efd = eventfd(0, 0);
    ck_assert_int_ge(efd, 0);
    green_t *t = ticker_start();
    green_t *w = green_spawn(eventfd_poster, &efd);
    uint64_t v = 0;
    double t0 = tu_now();
    ck_assert_int_eq(read(efd, &v, sizeof v), (ssize_t)sizeof v);
    ck_assert_elapsed(t0, 0.15, 2.0);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_ge(ticks, 5);
    ck_assert_int_eq(green_join(w, 1), 0);
    green_release(w);
    ticker_stop(t);
    close(efd);
}
END_TEST

/* A blocking write bigger than the pipe holds, read by another greenlet of
 * the same thread: only a cooperative write can finish. */
static void *pipe_drainer(void *arg)
{
    int fd = *(int *)arg;
    static char buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        total += (size_t)n;
    return (void *)total;
}

START_TEST(test_big_writes_cooperative)
{
    enum { BIG = 1 << 20 };
    char *data = malloc(BIG);
    memset(data, 'x', BIG);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    green_t *r = green_spawn(pipe_drainer, &p[0]);
    ck_assert_int_eq(write(p[1], data, BIG), BIG);
    close(p[1]);
    ck_assert_int_eq(green_join(r, 5), 0);
    ck_assert_int_eq((size_t)green_value(r), BIG);
    green_release(r);
    close(p[0]);

    /* The same over a socket, with send and writev. */
    pair(SOCK_STREAM);
    r = green_spawn(pipe_drainer, &sv[1]);
    ck_assert_int_eq(send(sv[0], data, BIG, 0), BIG);
    struct iovec iov[2] = {{data, BIG / 2}, {data, BIG / 2}};
    ck_assert_int_eq(writev(sv[0], iov, 2), BIG);
    shutdown(sv[0], SHUT_WR);
    ck_assert_int_eq(green_join(r, 5), 0);
    ck_assert_int_eq((size_t)green_value(r), 2 * BIG);
    green_release(r);
    pair_close();
    free(data);
}
END_TEST

START_TEST(test_recv_waitall_gathers)
{
    pair(SOCK_STREAM);
    struct later_write a = {sv[0], 0.05, "hello"}, b = {sv[0], 0.1, "world"};
    green_t *ga = green_spawn(write_later, &a), *gb = green_spawn(write_later, &b);
    char buf[16] = {0};
    ck_assert_int_eq(recv(sv[1], buf, 10, MSG_WAITALL), 10);
    ck_assert_str_eq(buf, "helloworld");
    /* The peer closing ends it with what came. */
    struct later_write c = {sv[0], 0.05, "abc"};
    green_t *gc = green_spawn(write_later, &c);
    green_join(gc, 1);
    shutdown(sv[0], SHUT_WR);
    memset(buf, 0, sizeof buf);
    ck_assert_int_eq(recv(sv[1], buf, 10, MSG_WAITALL), 3);
    green_join(ga, 1);
    green_join(gb, 1);
    green_release(ga);
    green_release(gb);
    green_release(gc);
    pair_close();
}
END_TEST

START_TEST(test_poll_select_cooperative)
{
    pair(SOCK_STREAM);
    green_t *t = ticker_start();
    struct pollfd p = {.fd = sv[1], .events = POLLIN};
    double t0 = tu_now();
    ck_assert_int_eq(poll(&p, 1, 200), 0); /* timed out, but others ran */
    ck_assert_elapsed(t0, 0.19, 1.5);
    ck_assert_int_ge(ticks, 5);
    ck_assert_int_eq(p.revents, 0);
    struct later_write lw = {sv[0], 0.1, "x"};
    green_t *w = green_spawn(write_later, &lw);
    ck_assert_int_eq(poll(&p, 1, 1000), 1);
    ck_assert(p.revents & POLLIN);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(sv[1], &rd);
    struct timeval tv = {1, 0};
    ck_assert_int_eq(select(sv[1] + 1, &rd, NULL, NULL, &tv), 1);
    ck_assert(FD_ISSET(sv[1], &rd));
    /* select's timeout: others run, the set comes back empty. */
    char c;
    ck_assert_int_eq(read(sv[1], &c, 1), 1);
    FD_ZERO(&rd);
    FD_SET(sv[1], &rd);
    tv = (struct timeval){0, 150000};
    ticks = 0;
    t0 = tu_now();
    ck_assert_int_eq(select(sv[1] + 1, &rd, NULL, NULL, &tv), 0);
    ck_assert_elapsed(t0, 0.14, 1.5);
    ck_assert(!FD_ISSET(sv[1], &rd));
    ck_assert_int_ge(ticks, 4);
    /* ppoll without a mask is cooperative too. */
    struct timespec ts = {0, 100000000};
    ticks = 0;
    ck_assert_int_eq(ppoll(&p, 1, &ts, NULL), 0);
    ck_assert_int_ge(ticks, 3);
    green_join(w, 1);
    green_release(w);
    ticker_stop(t);
    pair_close();
}
END_TEST

START_TEST(test_epoll_wait_cooperative)
{
    pair(SOCK_STREAM);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = sv[1]}, out[4];
    ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev), 0);
    green_t *t = ticker_start();
    double t0 = tu_now();
    ck_assert_int_eq(epoll_wait(ep, out, 4, 150), 0);
    ck_assert_elapsed(t0, 0.14, 1.5);
    ck_assert_int_ge(ticks, 4);
    struct later_write lw = {sv[0], 0.1, "x"};
    green_t *w = green_spawn(write_later, &lw);
    ticks = 0;
    ck_assert_int_eq(epoll_pwait(ep, out, 4, -1, NULL), 1);
    ck_assert_int_eq(out[0].data.fd, sv[1]);
    ck_assert_int_ge(ticks, 3);
    ck_assert_fails(epoll_wait(ep, out, 0, 10), EINVAL);
    ck_assert_fails(epoll_wait(-1, out, 4, 10), EBADF);
    green_join(w, 1);
    green_release(w);
    ticker_stop(t);
    close(ep);
    pair_close();
}
END_TEST

static void *accept_echo(void *arg)
{
    int l = *(int *)arg;
    int c = accept(l, NULL, NULL);
    char buf[8];
    ssize_t n = c >= 0 ? read(c, buf, sizeof buf) : -1;
    if (n > 0)
        ck_assert_int_eq(write(c, buf, (size_t)n), n);
    if (c >= 0)
        close(c);
    return NULL;
}

START_TEST(test_tcp_blocking_api_on_loopback)
{
    struct sockaddr_in a;
    int l = tcp_listener(&a);
    green_t *s = green_spawn(accept_echo, &l);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(is_nonblocking(c), 0);
    ck_assert_int_eq(is_nonblocking(l), 0);
    ck_assert_int_eq(send(c, "ping", 4, 0), 4);
    char buf[8];
    ck_assert_int_eq(recv(c, buf, sizeof buf, 0), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
    green_join(s, GREEN_FOREVER);
    green_release(s);
    close(c);
    /* Connection refused comes back as libc reports it. */
    close(l);
    c = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_fails(connect(c, (struct sockaddr *)&a, sizeof a), ECONNREFUSED);
    ck_assert_int_eq(is_nonblocking(c), 0);
    close(c);
}
END_TEST

START_TEST(test_getaddrinfo_and_gethostbyname)
{
    struct addrinfo *res = NULL;
    ck_assert_int_eq(getaddrinfo("127.0.0.1", "80", NULL, &res), 0);
    ck_assert_ptr_nonnull(res);
    ck_assert_int_eq(((struct sockaddr_in *)res->ai_addr)->sin_port, htons(80));
    freeaddrinfo(res);
    struct hostent *h = gethostbyname("127.0.0.1");
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(h->h_addrtype, AF_INET);
}
END_TEST

START_TEST(test_waitpid_cooperative)
{
    green_t *t = ticker_start();
    pid_t pid = fork();
    if (pid == 0) {
        usleep(100000);
        _exit(7);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    ck_assert_int_ge(ticks, 3);
    /* wait4 with a rusage, wait for any child, wait(). */
    pid = fork();
    if (pid == 0) {
        usleep(50000);
        _exit(8);
    }
    struct rusage ru;
    ticks = 0;
    ck_assert_int_eq(wait4(pid, &status, 0, &ru), pid);
    ck_assert_int_eq(WEXITSTATUS(status), 8);
    ck_assert_int_ge(ticks, 2);
    pid = fork();
    if (pid == 0) {
        usleep(50000);
        _exit(9);
    }
    ticks = 0;
    ck_assert_int_eq(waitpid(-1, &status, 0), pid);
    ck_assert_int_eq(WEXITSTATUS(status), 9);
    ck_assert_int_ge(ticks, 2);
    pid = fork();
    if (pid == 0)
        _exit(10);
    ck_assert_int_eq(wait(&status), pid);
    ck_assert_int_eq(WEXITSTATUS(status), 10);
    ck_assert_fails(waitpid(getppid(), &status, 0), ECHILD);
    ck_assert_fails(wait(&status), ECHILD);
    ticker_stop(t);
}
END_TEST

static void *run_system(void *arg)
{
    return (void *)(intptr_t)system((const char *)arg);
}

START_TEST(test_system_cooperative)
{
    green_t *g[3];
    double t0 = tu_now();
    for (int i = 0; i < 3; i++)
        g[i] = green_spawn(run_system, "sleep 0.3; exit 3");
    ck_assert_int_eq(green_joinall(g, 3, 10), 0);
    ck_assert_elapsed(t0, 0.29, 0.85); /* together, not one after another */
    for (int i = 0; i < 3; i++) {
        int st = (int)(intptr_t)green_value(g[i]);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3);
        green_release(g[i]);
    }
    ck_assert_int_ne(system(NULL), 0);
    /* SIGINT is ignored by the caller while the command runs, and back after. */
    install(SIGINT, count_handler, 0);
    int st = system("kill -INT $PPID; exit 0");
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_eq(handled, 0);
    struct sigaction now;
    ck_assert_int_eq(sigaction(SIGINT, NULL, &now), 0);
    ck_assert_ptr_eq((void *)now.sa_handler, (void *)count_handler);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The program's view                                                         */
/* ------------------------------------------------------------------------ */

START_TEST(test_program_nonblocking_honoured_and_shared)
{
    pair(SOCK_STREAM | SOCK_NONBLOCK);
    tu_flag = 0;
    green_t *g = green_spawn(tu_set_flag, NULL);
    char buf[4];
    double t0 = tu_now();
    ck_assert_fails(read(sv[1], buf, sizeof buf), EAGAIN);
    ck_assert_fails(recv(sv[1], buf, sizeof buf, 0), EAGAIN);
    struct iovec iov = {buf, sizeof buf};
    ck_assert_fails(readv(sv[1], &iov, 1), EAGAIN);
    ck_assert_elapsed(t0, 0, 0.05);
    ck_assert_int_eq(tu_flag, 0); /* returned at once, no wait */
    ck_assert_int_eq(is_nonblocking(sv[1]), 1);
    /* Dups share the flag with the original, whichever way they are made. */
    int d1 = dup(sv[1]), d2 = fcntl(sv[1], F_DUPFD_CLOEXEC, 100), d3 = dup2(sv[1], 200),
        d4 = dup3(sv[1], 201, O_CLOEXEC), d5 = fcntl(sv[1], F_DUPFD, 0);
    ck_assert_int_ge(d1, 0);
    ck_assert_int_ge(d2, 100);
    ck_assert_int_eq(d3, 200);
    ck_assert_int_eq(d4, 201);
    ck_assert_int_ge(d5, 0);
    ck_assert_int_eq(is_nonblocking(d1) + is_nonblocking(d2) + is_nonblocking(d3) +
                         is_nonblocking(d4) + is_nonblocking(d5),
                     5);
    ck_assert_fails(read(d3, buf, sizeof buf), EAGAIN);
    /* ioctl(FIONBIO) on a dup: the kernel keeps it, for all of them. */
    int off = 0, on = 1;
    ck_assert_int_eq(ioctl(d1, FIONBIO, &off), 0);
    ck_assert_int_eq(is_nonblocking(sv[1]) + is_nonblocking(d4), 0);
    ck_assert_int_eq(ioctl(d2, FIONBIO, &on), 0);
    ck_assert_int_eq(is_nonblocking(sv[1]) + is_nonblocking(d5), 2);
    ck_assert_int_eq(fcntl(d3, F_SETFL, fcntl(d3, F_GETFL) & ~O_NONBLOCK), 0);
    ck_assert_int_eq(is_nonblocking(sv[1]), 0);
    /* Now blocking: a read waits (cooperatively) for data. */
    struct later_write lw = {sv[0], 0.05, "ab"};
    green_t *w = green_spawn(write_later, &lw);
    ck_assert_int_eq(read(sv[1], buf, sizeof buf), 2);
    green_join(w, 1);
    green_release(w);
    green_join(g, 1);
    green_release(g);
    close(d1);
    close(d2);
    close(d3);
    close(d4);
    close(d5);
    pair_close();

    /* A pipe made non-blocking with pipe2, an eventfd with EFD_NONBLOCK. */
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
    ck_assert_fails(read(p[0], buf, sizeof buf), EAGAIN);
    close(p[0]);
    close(p[1]);
    int efd = eventfd(0, EFD_NONBLOCK);
    uint64_t v;
    ck_assert_fails(read(efd, &v, sizeof v), EAGAIN);
    close(efd);
}
END_TEST

START_TEST(test_accept4_nonblock_and_listener_flags)
{
    struct sockaddr_in a;
    int l = tcp_listener(&a);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_eq(is_nonblocking(c), 1);
    int r = connect(c, (struct sockaddr *)&a, sizeof a);
    ck_assert(r == 0 || errno == EINPROGRESS); /* the program's non-blocking connect */
    int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(is_nonblocking(s), 1);
    ck_assert_int_eq(is_nonblocking(l), 0);
    char buf[4];
    ck_assert_fails(read(s, buf, sizeof buf), EAGAIN);
    close(s);
    /* A plain accept gives a blocking socket, whatever the shim did. */
    int c2 = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(c2, (struct sockaddr *)&a, sizeof a), 0);
    s = accept(l, NULL, NULL);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(is_nonblocking(s), 0);
    /* A non-blocking listener with nothing pending: EAGAIN at once. */
    ck_assert_int_eq(fcntl(l, F_SETFL, O_NONBLOCK), 0);
    ck_assert_fails(accept(l, NULL, NULL), EAGAIN);
    ck_assert_int_eq(is_nonblocking(l), 1);
    close(s);
    close(c);
    close(c2);
    close(l);
}
END_TEST

START_TEST(test_socket_timeouts)
{
    pair(SOCK_STREAM);
    struct timeval tv = {0, 100000};
    ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct timeval back;
    socklen_t len = sizeof back;
    ck_assert_int_eq(getsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &back, &len), 0);
    ck_assert_int_eq(back.tv_sec, 0);
    ck_assert_int_eq(back.tv_usec, 100000);
    green_t *t = ticker_start();
    char buf[4];
    double t0 = tu_now();
    ck_assert_fails(recv(sv[1], buf, sizeof buf, 0), EAGAIN);
    ck_assert_elapsed(t0, 0.09, 1.0);
    ck_assert_fails(read(sv[1], buf, sizeof buf), EAGAIN);
    ck_assert_int_ge(ticks, 8); /* others ran meanwhile */
    /* SO_SNDTIMEO: a full socket sends what fits, then reports it. */
    ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    len = sizeof back;
    ck_assert_int_eq(getsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &back, &len), 0);
    ck_assert_int_eq(back.tv_usec, 100000);
    enum { BIG = 4 << 20 };
    char *big = calloc(1, BIG);
    t0 = tu_now();
    ssize_t n = send(sv[0], big, BIG, 0);
    ck_assert_elapsed(t0, 0.09, 1.5);
    ck_assert_int_gt(n, 0);
    ck_assert_int_lt(n, BIG);
    t0 = tu_now();
    ck_assert_fails(send(sv[0], big, BIG, 0), EAGAIN);
    ck_assert_elapsed(t0, 0.09, 1.5);
    free(big);
    /* A listener's SO_RCVTIMEO times accept out. */
    struct sockaddr_in a;
    int l = tcp_listener(&a);
    ck_assert_int_eq(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    t0 = tu_now();
    ck_assert_fails(accept(l, NULL, NULL), EAGAIN);
    ck_assert_elapsed(t0, 0.09, 1.0);
    close(l);
    ticker_stop(t);
    pair_close();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Misuse: errno values as libc's                                             */
/* ------------------------------------------------------------------------ */

static void *efault_reader(void *arg)
{
    (void)arg;
    errno = 0;
    ssize_t n = read(sv[1], null_ptr, 10);
    return (void *)(intptr_t)(n < 0 ? errno : 0);
}

START_TEST(test_bad_fds_and_buffers)
{
    green_t *t = ticker_start(); /* calls are made with a hub, from a greenlet */
    char buf[8] = {0};
    ck_assert_fails(read(-1, buf, 1), EBADF);
    ck_assert_fails(write(-1, buf, 1), EBADF);
    ck_assert_fails(recv(-1, buf, 1, 0), EBADF);
    ck_assert_fails(send(-1, buf, 1, 0), EBADF);
    ck_assert_fails(accept(-1, NULL, NULL), EBADF);
    ck_assert_fails(connect(-1, NULL, 0), EBADF);
    ck_assert_fails(close(-1), EBADF);
    ck_assert_fails(dup2(-1, 5), EBADF);
    int closed = dup(0);
    close(closed);
    ck_assert_fails(read(closed, buf, 1), EBADF);
    struct iovec iov = {buf, 1};
    ck_assert_fails(readv(closed, &iov, 1), EBADF);
    ck_assert_fails(writev(closed, &iov, 1), EBADF);
    ck_assert_fails(readv(0, &iov, minus_one), EINVAL);
    struct iovec *many = calloc((size_t)too_many, sizeof *many);
    ck_assert_fails(writev(1, many, too_many), EINVAL);
    free(many);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(closed, &rd);
    struct timeval tv = {0, 100000};
    ck_assert_fails(select(closed + 1, &rd, NULL, NULL, &tv), EBADF);
    struct pollfd p = {.fd = closed, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 100), 1);
    ck_assert_int_eq(p.revents, POLLNVAL);
    MISUSE_BEGIN();
    ck_assert_fails(poll(null_ptr, 1, 100), EFAULT);
    MISUSE_END();
    ck_assert_fails(waitpid(getppid(), NULL, 0), ECHILD);
    struct timespec bad = {0, 2000000000};
    ck_assert_fails(nanosleep(&bad, NULL), EINVAL);
    ck_assert_int_eq(clock_nanosleep(CLOCK_MONOTONIC, 0, &bad, NULL), EINVAL);
    MISUSE_BEGIN();
    ck_assert_fails(nanosleep(NULL, NULL), EFAULT);
    MISUSE_END();
    /* Sockets calls on a pipe: ENOTSOCK. */
    int pp[2];
    ck_assert_int_eq(pipe(pp), 0);
    ck_assert_fails(recv(pp[0], buf, 1, 0), ENOTSOCK);
    ck_assert_fails(send(pp[1], buf, 1, 0), ENOTSOCK);
    ck_assert_fails(accept(pp[0], NULL, NULL), ENOTSOCK);
    /* NULL buffers: EFAULT from the kernel, with data there... */
    ck_assert_int_eq(write(pp[1], "x", 1), 1);
    MISUSE_BEGIN();
    ck_assert_fails(read(pp[0], null_ptr, 10), EFAULT);
    ck_assert_fails(write(pp[1], null_ptr, 10), EFAULT);
    pair(SOCK_STREAM);
    ck_assert_int_eq(write(sv[0], "y", 1), 1);
    ck_assert_fails(read(sv[1], null_ptr, 10), EFAULT);
    ck_assert_fails(recv(sv[1], null_ptr, 10, 0), EFAULT);
    ck_assert_fails(write(sv[0], null_ptr, 10), EFAULT);
    ck_assert_fails(send(sv[0], null_ptr, 10, 0), EFAULT);
    ck_assert_fails(recvmsg(sv[1], NULL, 0), EFAULT);
    MISUSE_END();
    /* ...and when it comes later: the wait ends, with EFAULT. */
    char drain[4];
    ck_assert_int_eq(recv(sv[1], drain, sizeof drain, MSG_DONTWAIT), 1);
    MISUSE_BEGIN();
    green_t *r = green_spawn(efault_reader, NULL);
    green_sleep(0.05);
    ck_assert_int_eq(write(sv[0], "z", 1), 1);
    ck_assert_int_eq(green_join(r, 1), 0);
    MISUSE_END();
    ck_assert_int_eq((intptr_t)green_value(r), EFAULT);
    green_release(r);
    /* Not a listener, not connected. */
    ck_assert_fails(accept(sv[0], NULL, NULL), EINVAL);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_fails(recv(s, buf, 1, 0), ENOTCONN);
    ck_assert_fails(read(s, buf, 1), ENOTCONN);
    close(s);
    close(pp[0]);
    close(pp[1]);
    pair_close();
    ticker_stop(t);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* close wakes waiters                                                        */
/* ------------------------------------------------------------------------ */

static void *reader_errno(void *arg)
{
    int fd = *(int *)arg;
    char buf[4];
    errno = 0;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    return (void *)(intptr_t)(n < 0 ? errno : n);
}

static void *poller(void *arg)
{
    int fd = *(int *)arg;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 5000);
    return (void *)(intptr_t)(r == 1 ? p.revents : -1);
}

START_TEST(test_close_wakes_waiters)
{
    pair(SOCK_STREAM);
    int fd = sv[1];
    green_t *g = green_spawn(reader_errno, &fd), *p = green_spawn(poller, &fd);
    green_sleep(0.02);
    double t0 = tu_now();
    close(sv[1]);
    ck_assert_int_eq(green_join(g, 1), 0);
    ck_assert_int_eq(green_join(p, 1), 0);
    ck_assert_elapsed(t0, 0, 0.5);
    ck_assert_int_eq((intptr_t)green_value(g), EBADF);
    ck_assert_int_eq((intptr_t)green_value(p), POLLNVAL);
    green_release(g);
    green_release(p);
    close(sv[0]);
}
END_TEST

START_TEST(test_dup2_onto_waited_fd_wakes)
{
    pair(SOCK_STREAM);
    int other[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
    int fd = sv[1];
    green_t *g = green_spawn(reader_errno, &fd);
    green_sleep(0.02);
    /* A dup2 bound to fail leaves the waiter alone. */
    ck_assert_fails(dup2(-1, fd), EBADF);
    green_sleep(0.02);
    ck_assert(!green_ready(g));
    ck_assert_int_eq(dup2(other[0], fd), fd);
    ck_assert_int_eq(green_join(g, 1), 0);
    ck_assert_int_eq((intptr_t)green_value(g), EBADF);
    green_release(g);
    /* dup3 the same. */
    g = green_spawn(reader_errno, &fd);
    green_sleep(0.02);
    ck_assert_int_eq(dup3(other[1], fd, 0), fd);
    ck_assert_int_eq(green_join(g, 1), 0);
    ck_assert_int_eq((intptr_t)green_value(g), EBADF);
    green_release(g);
    close(other[0]);
    close(other[1]);
    pair_close();
}
END_TEST

/* A vfork child runs on its parent's memory: its close must not wake the
 * parent's greenlets (the parent's fd stays open). */
START_TEST(test_vfork_child_close_leaves_hub_alone)
{
    pair(SOCK_STREAM);
    int fd = sv[1];
    green_t *g = green_spawn(reader_errno, &fd);
    green_sleep(0.02);
    pid_t pid = vfork();
    if (pid == 0) {
        close(fd);
        _exit(0);
    }
    ck_assert_int_gt(pid, 0);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    green_sleep(0.02);
    ck_assert(!green_ready(g));
    ck_assert_int_eq(write(sv[0], "ok", 2), 2);
    ck_assert_int_eq(green_join(g, 1), 0);
    ck_assert_int_eq((intptr_t)green_value(g), 2);
    green_release(g);
    pair_close();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Kills                                                                      */
/* ------------------------------------------------------------------------ */

static void *read_and_report(void *arg)
{
    int fd = *(int *)arg;
    char buf[4];
    errno = 0;
    ssize_t n = read(fd, buf, sizeof buf);
    return (void *)(intptr_t)(n < 0 ? errno : 0);
}

static void *poll_and_report(void *arg)
{
    int fd = *(int *)arg;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    errno = 0;
    int r = poll(&p, 1, -1);
    return (void *)(intptr_t)(r < 0 ? errno : 0);
}

static void *accept_and_report(void *arg)
{
    int fd = *(int *)arg;
    errno = 0;
    int r = accept(fd, NULL, NULL);
    return (void *)(intptr_t)(r < 0 ? errno : 0);
}

static void *waitpid_and_report(void *arg)
{
    pid_t pid = *(pid_t *)arg;
    errno = 0;
    pid_t r = waitpid(pid, NULL, 0);
    return (void *)(intptr_t)(r < 0 ? errno : 0);
}

static void *write_full_and_report(void *arg)
{
    int fd = *(int *)arg;
    static char big[1 << 20];
    errno = 0;
    ssize_t r = write(fd, big, sizeof big);
    return (void *)(intptr_t)(r < 0 ? errno : 0);
}

START_TEST(test_killed_inside_calls)
{
    pair(SOCK_STREAM);
    int p[2], p2[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(pipe(p2), 0);
    struct sockaddr_in a;
    int l = tcp_listener(&a);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(2000000);
        _exit(0);
    }
    green_t *g[6] = {
        green_spawn(read_and_report, &sv[1]),  green_spawn(read_and_report, &p[0]),
        green_spawn(poll_and_report, &sv[1]),  green_spawn(accept_and_report, &l),
        green_spawn(waitpid_and_report, &pid), green_spawn(write_full_and_report, &p2[1]),
    };
    green_sleep(0.05);
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(!green_ready(g[i]), "call %d did not wait", i);
        ck_assert_int_eq(green_kill(g[i], 1), 0);
        ck_assert_int_eq((intptr_t)green_value(g[i]), ECANCELED);
        green_release(g[i]);
    }
    kill(pid, SIGKILL);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    close(l);
    close(p[0]);
    close(p[1]);
    close(p2[0]);
    close(p2[1]);
    pair_close();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Signals                                                                    */
/* ------------------------------------------------------------------------ */

START_TEST(test_signal_interrupts_read)
{
    pair(SOCK_STREAM);
    green_t *t = ticker_start();
    install(SIGALRM, count_handler, 0);
    alarm_in(0.1);
    char buf[4];
    double t0 = tu_now();
    ck_assert_fails(read(sv[1], buf, sizeof buf), EINTR);
    ck_assert_elapsed(t0, 0.08, 1.5);
    ck_assert_int_eq(handled, 1);
    ck_assert_int_ge(ticks, 5); /* the wait was cooperative */
    /* The same for a pipe, recv and accept. */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    alarm_in(0.05);
    ck_assert_fails(read(p[0], buf, sizeof buf), EINTR);
    alarm_in(0.05);
    ck_assert_fails(recv(sv[1], buf, sizeof buf, 0), EINTR);
    struct sockaddr_in a;
    int l = tcp_listener(&a);
    alarm_in(0.05);
    ck_assert_fails(accept(l, NULL, NULL), EINTR);
    ck_assert_int_eq(handled, 4);
    /* A handler that ran while nobody waited interrupts nothing later. */
    alarm_in(0.02);
    green_sleep(0.1);
    ck_assert_int_eq(handled, 5);
    struct later_write lw = {sv[0], 0.05, "ok"};
    green_t *w = green_spawn(write_later, &lw);
    ck_assert_int_eq(read(sv[1], buf, sizeof buf), 2);
    green_join(w, 1);
    green_release(w);
    close(l);
    close(p[0]);
    close(p[1]);
    ticker_stop(t);
    pair_close();
}
END_TEST

START_TEST(test_sa_restart_restarts_read_not_poll)
{
    pair(SOCK_STREAM);
    install(SIGALRM, count_handler, SA_RESTART);
    /* read: restarted, it gets the data written after the handler ran. */
    struct later_write lw = {sv[0], 0.25, "ok"};
    green_t *w = green_spawn(write_later, &lw);
    alarm_in(0.1);
    char buf[4];
    double t0 = tu_now();
    ck_assert_int_eq(read(sv[1], buf, sizeof buf), 2);
    ck_assert_elapsed(t0, 0.2, 1.5);
    ck_assert_int_eq(handled, 1);
    green_join(w, 1);
    green_release(w);
    /* poll, select, epoll_wait: EINTR even with SA_RESTART, as Linux's. */
    struct pollfd p = {.fd = sv[1], .events = POLLIN};
    alarm_in(0.05);
    t0 = tu_now();
    ck_assert_fails(poll(&p, 1, 2000), EINTR);
    ck_assert_elapsed(t0, 0.03, 1.0);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(sv[1], &rd);
    struct timeval tv = {2, 0};
    alarm_in(0.05);
    ck_assert_fails(select(sv[1] + 1, &rd, NULL, NULL, &tv), EINTR);
    ck_assert(FD_ISSET(sv[1], &rd)); /* the sets are left as they were */
    ck_assert(tv.tv_sec >= 1 && tv.tv_sec < 2); /* and the time left reported */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
    alarm_in(0.05);
    ck_assert_fails(epoll_wait(ep, &out, 1, 2000), EINTR);
    ck_assert_int_eq(handled, 4);
    /* A socket with a receive timeout is not restarted either. */
    struct timeval rt = {2, 0};
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof rt);
    alarm_in(0.05);
    t0 = tu_now();
    ck_assert_fails(recv(sv[1], buf, sizeof buf, 0), EINTR);
    ck_assert_elapsed(t0, 0.03, 1.0);
    close(ep);
    pair_close();
}
END_TEST

START_TEST(test_signal_interrupts_sleeps)
{
    install(SIGALRM, count_handler, SA_RESTART);
    green_t *t = ticker_start();
    alarm_in(0.1);
    struct timespec req = {1, 0}, rem = {0, 0};
    double t0 = tu_now();
    ck_assert_fails(nanosleep(&req, &rem), EINTR);
    ck_assert_elapsed(t0, 0.08, 0.8);
    ck_assert(rem.tv_sec == 0 && rem.tv_nsec > 500000000); /* about 0.9 s left */
    alarm_in(0.1);
    ck_assert_int_eq(sleep(2), 1); /* 1.9 s left: glibc says 1 */
    ck_assert_int_eq(errno, EINTR);
    alarm_in(0.05);
    ck_assert_fails(usleep(1000000), EINTR);
    alarm_in(0.05);
    rem = (struct timespec){0, 0};
    ck_assert_int_eq(clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem), EINTR);
    ck_assert_int_gt(rem.tv_nsec, 500000000);
    ck_assert_int_eq(handled, 4);
    ck_assert_int_ge(ticks, 10);
    ticker_stop(t);
}
END_TEST

static volatile int info_signo;
static void info_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    info_signo = si->si_signo;
}

START_TEST(test_sigaction_reports_program_view)
{
    struct sigaction sa = {.sa_handler = count_handler, .sa_flags = SA_RESTART | SA_NODEFER},
                     old;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    ck_assert_int_eq(sigaction(SIGUSR1, NULL, &old), 0);
    ck_assert_ptr_eq((void *)old.sa_handler, (void *)count_handler);
    ck_assert_int_eq(old.sa_flags & (SA_RESTART | SA_NODEFER | SA_SIGINFO), SA_RESTART | SA_NODEFER);
    ck_assert_int_eq(sigismember(&old.sa_mask, SIGUSR2), 1);
    /* Replacing reports the previous one, as the program set it. */
    struct sigaction si = {.sa_sigaction = info_handler, .sa_flags = SA_SIGINFO};
    sigemptyset(&si.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &si, &old), 0);
    ck_assert_ptr_eq((void *)old.sa_handler, (void *)count_handler);
    raise(SIGUSR1);
    ck_assert_int_eq(info_signo, SIGUSR1);
    /* signal() returns the old handler and installs a restarting one. */
    ck_assert_ptr_eq((void *)signal(SIGUSR1, count_handler), (void *)info_handler);
    ck_assert_int_eq(sigaction(SIGUSR1, NULL, &old), 0);
    ck_assert_ptr_eq((void *)old.sa_handler, (void *)count_handler);
    ck_assert(old.sa_flags & SA_RESTART);
    ck_assert_ptr_eq((void *)signal(SIGUSR1, SIG_IGN), (void *)count_handler);
    ck_assert_ptr_eq((void *)signal(SIGUSR1, SIG_DFL), (void *)SIG_IGN);
    ck_assert_ptr_eq((void *)signal(SIGKILL, count_handler), (void *)SIG_ERR);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_fails(sigaction(0, &sa, NULL), EINVAL);
    ck_assert_fails(sigaction(SIGSTOP, &sa, NULL), EINVAL);
    /* SA_RESETHAND: after one delivery the kernel's SIG_DFL shows. */
    sa.sa_flags = SA_RESETHAND;
    handled = 0;
    ck_assert_int_eq(sigaction(SIGUSR2, &sa, NULL), 0);
    raise(SIGUSR2);
    ck_assert_int_eq(handled, 1);
    ck_assert_int_eq(sigaction(SIGUSR2, NULL, &old), 0);
    ck_assert_ptr_eq((void *)old.sa_handler, (void *)SIG_DFL);
}
END_TEST

START_TEST(test_signal_and_siginterrupt)
{
    pair(SOCK_STREAM);
    /* signal(): BSD semantics, the read restarts. */
    ck_assert_ptr_ne((void *)signal(SIGALRM, count_handler), (void *)SIG_ERR);
    handled = 0;
    struct later_write lw = {sv[0], 0.2, "ok"};
    green_t *w = green_spawn(write_later, &lw);
    alarm_in(0.05);
    char buf[4];
    ck_assert_int_eq(read(sv[1], buf, sizeof buf), 2);
    ck_assert_int_eq(handled, 1);
    green_join(w, 1);
    green_release(w);
    /* siginterrupt(1): the read is interrupted. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    ck_assert_int_eq(siginterrupt(SIGALRM, 1), 0); /* what older programs still call */
#pragma GCC diagnostic pop
    alarm_in(0.05);
    ck_assert_fails(read(sv[1], buf, sizeof buf), EINTR);
    ck_assert_int_eq(handled, 2);
    /* ...and signal() keeps that choice, as glibc's does. */
    signal(SIGALRM, count_handler);
    alarm_in(0.05);
    ck_assert_fails(read(sv[1], buf, sizeof buf), EINTR);
    pair_close();
}
END_TEST

/* The classic self-pipe: the handler writes a byte (its write passes
 * straight to libc), the restarted read gets it. */
static int self_pipe[2];
static void self_pipe_handler(int sig)
{
    (void)sig;
    int e = errno;
    ck_assert_int_eq(write(self_pipe[1], "s", 1), 1);
    errno = e;
}

START_TEST(test_handler_writes_self_pipe)
{
    ck_assert_int_eq(pipe(self_pipe), 0);
    install(SIGALRM, self_pipe_handler, SA_RESTART);
    green_t *t = ticker_start();
    alarm_in(0.1);
    char c = 0;
    ck_assert_int_eq(read(self_pipe[0], &c, 1), 1);
    ck_assert_int_eq(c, 's');
    ck_assert_int_ge(ticks, 5);
    ticker_stop(t);
    close(self_pipe[0]);
    close(self_pipe[1]);
}
END_TEST

/* Calls made inside a handler pass straight to libc, even on a greenlet's
 * stack: a handler must never switch. A handler that jumps out leaves the
 * calls after it cooperative. */
static double handler_slept;
static void sleeping_handler(int sig)
{
    (void)sig;
    double t0 = tu_now();
    struct timespec ts = {0, 30000000};
    nanosleep(&ts, NULL); /* async-signal-safe */
    handler_slept = tu_now() - t0;
}

static sigjmp_buf jump_env;
static void jumping_handler(int sig)
{
    (void)sig;
    siglongjmp(jump_env, 1);
}

START_TEST(test_handler_calls_pass_through)
{
    install(SIGUSR1, sleeping_handler, 0);
    tu_flag = 0;
    green_t *g = green_spawn(tu_set_flag, NULL); /* ready to run */
    raise(SIGUSR1);                             /* the handler runs here, on main */
    ck_assert(handler_slept >= 0.029);
    ck_assert_int_eq(tu_flag, 0); /* nothing else ran: the sleep blocked */
    green_join(g, 1);
    green_release(g);
    install(SIGUSR1, jumping_handler, 0);
    if (sigsetjmp(jump_env, 1) == 0) {
        raise(SIGUSR1);
        ck_abort_msg("the handler did not jump");
    }
    green_t *t = ticker_start();
    double t0 = tu_now();
    ck_assert_int_eq(usleep(100000), 0);
    ck_assert_elapsed(t0, 0.09, 1.0);
    ck_assert_int_ge(ticks, 4); /* cooperative again */
    ticker_stop(t);
}
END_TEST

/* libgreen's own handlers (green_waitpid's SIGCHLD, through libev) are not
 * the program's: they interrupt no interposed call. */
static void *green_waiter(void *arg)
{
    pid_t pid = *(pid_t *)arg;
    int st = -1;
    ck_assert_int_eq(green_waitpid(pid, &st, 5), 0);
    return (void *)(intptr_t)WEXITSTATUS(st);
}

START_TEST(test_library_handlers_do_not_interrupt)
{
    pair(SOCK_STREAM);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(50000);
        _exit(4);
    }
    green_t *g = green_spawn(green_waiter, &pid);
    struct pollfd p = {.fd = sv[1], .events = POLLIN};
    double t0 = tu_now();
    ck_assert_int_eq(poll(&p, 1, 300), 0);
    ck_assert_elapsed(t0, 0.29, 1.5);
    ck_assert_int_eq(green_join(g, 1), 0);
    ck_assert_int_eq((intptr_t)green_value(g), 4);
    green_release(g);
    pair_close();
}
END_TEST

START_TEST(test_signal_interrupts_waitpid)
{
    pid_t pid = fork();
    if (pid == 0) {
        usleep(300000);
        _exit(5);
    }
    install(SIGALRM, count_handler, 0);
    alarm_in(0.05);
    int st;
    ck_assert_fails(waitpid(pid, &st, 0), EINTR);
    install(SIGALRM, count_handler, SA_RESTART);
    alarm_in(0.05);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_int_eq(handled, 1);
    ck_assert_int_eq(WEXITSTATUS(st), 5);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* fork                                                                       */
/* ------------------------------------------------------------------------ */

/* Child-side checks, each failure an exit status of its own. */
static int child_checks(void)
{
    /* A cooperative sleep with a ticker of its own. */
    green_t *t = ticker_start();
    double t0 = tu_now();
    if (usleep(100000) != 0)
        return 20;
    if (tu_now() - t0 < 0.09)
        return 21;
    if (ticks < 3)
        return 22;
    /* A cooperative read, written by another greenlet. */
    int p[2];
    if (pipe(p) != 0)
        return 23;
    struct later_write lw = {p[1], 0.05, "kid"};
    green_t *w = green_spawn(write_later, &lw);
    char buf[4];
    if (read(p[0], buf, sizeof buf) != 3)
        return 24;
    if (green_join(w, 1) != 0)
        return 25;
    green_release(w);
    /* waitpid on a grandchild, cooperatively. */
    pid_t gc = fork();
    if (gc == 0) {
        usleep(50000);
        _exit(6);
    }
    ticks = 0;
    int st;
    if (waitpid(gc, &st, 0) != gc || WEXITSTATUS(st) != 6)
        return 26;
    if (ticks < 2)
        return 27;
    /* The thread pool, whose threads the child does not have, starts afresh. */
    struct addrinfo *res = NULL;
    if (getaddrinfo("127.0.0.1", "80", NULL, &res) != 0 || !res)
        return 29;
    freeaddrinfo(res);
    stop_ticking = 1;
    if (green_join(t, 2) != 0)
        return 28;
    green_release(t);
    close(p[0]);
    close(p[1]);
    return 42;
}

static void *forker(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_checks());
    int st = -1;
    pid_t r = waitpid(pid, &st, 0);
    ck_assert_int_eq(r, pid);
    return (void *)(intptr_t)(WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st));
}

static volatile int parent_ticks;
static void *parent_ticker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 30; i++) {
        green_sleep(0.01);
        parent_ticks++;
    }
    return NULL;
}

START_TEST(test_fork_in_greenlet)
{
    green_t *pt = green_spawn(parent_ticker, NULL);
    green_t *f = green_spawn(forker, NULL);
    double t0 = tu_now();
    ck_assert_int_eq(green_join(f, 10), 0);
    ck_assert_int_eq((intptr_t)green_value(f), 42);
    ck_assert_elapsed(t0, 0.15, 5.0);
    ck_assert_int_ge(parent_ticks, 10); /* the parent went on meanwhile */
    ck_assert_int_eq(green_join(pt, 2), 0);
    green_release(pt);
    green_release(f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The shim preloaded into programs from scratch                              */
/* ------------------------------------------------------------------------ */

#if defined(__SANITIZE_ADDRESS__)
void __asan_init(void);
#endif

START_TEST(test_preloaded_into_a_shell)
{
    /* Dl_info of a symbol of the shim: where the suite found it. */
    Dl_info info;
    ck_assert(dladdr((void *)green__monkey_poll, &info));
    char shim[4096];
    /* The shim is beside libgreen.so in the build directory. */
    const char *slash = strrchr(info.dli_fname, '/');
    ck_assert_ptr_nonnull(slash);
    snprintf(shim, sizeof shim, "%.*s/libgreen-monkey.so", (int)(slash - info.dli_fname),
             info.dli_fname);
    ck_assert_int_eq(access(shim, R_OK), 0);
    char preload[8192];
    snprintf(preload, sizeof preload, "%s", shim);
    const char *script = "echo one | cat; sleep 0.05; echo two";
    bool exits = true;
#if defined(__SANITIZE_ADDRESS__)
    /* An instrumented shim needs the ASan runtime loaded first. A program
     * given the ASan runtime this way hangs in its exit handlers (in
     * libp11-kit's destructor, which libcurl brings; it does so with libcurl
     * preloaded and no shim at all): here the shell's builtins print, and
     * it is killed. The plain and valgrind runs check the whole script. */
    ck_assert(dladdr((void *)__asan_init, &info));
    snprintf(preload, sizeof preload, "%s:%s", info.dli_fname, shim);
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    script = "echo one; echo two";
    exits = false;
#endif
    int out[2];
    ck_assert_int_eq(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        setenv("LD_PRELOAD", preload, 1);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char buf[64] = {0};
    size_t got = 0;
    ssize_t n;
    while (got < sizeof buf - 1 && !strstr(buf, "two\n") &&
           (n = read(out[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    ck_assert_str_eq(buf, "one\ntwo\n");
    if (!exits)
        kill(pid, SIGKILL);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    if (exits)
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(out[0]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("monkey");
    TCase *tc = tcase_create("monkey");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_sleeps_overlap);
    tcase_add_test(tc, test_sleep_killed_returns_left);
    tcase_add_test(tc, test_no_greenlet_no_hub);
    tcase_add_test(tc, test_thread_without_hub_passes_through);
    tcase_add_test(tc, test_hub_calls_pass_through);
    tcase_add_test(tc, test_regular_file_and_ready_calls_do_not_switch);
    tcase_add_test(tc, test_blocking_read_is_cooperative);
    tcase_add_test(tc, test_pipe_read_cooperative);
    tcase_add_test(tc, test_eventfd_read_cooperative);
    tcase_add_test(tc, test_big_writes_cooperative);
    tcase_add_test(tc, test_recv_waitall_gathers);
    tcase_add_test(tc, test_poll_select_cooperative);
    tcase_add_test(tc, test_epoll_wait_cooperative);
    tcase_add_test(tc, test_tcp_blocking_api_on_loopback);
    tcase_add_test(tc, test_getaddrinfo_and_gethostbyname);
    tcase_add_test(tc, test_waitpid_cooperative);
    tcase_add_test(tc, test_system_cooperative);
    tcase_add_test(tc, test_program_nonblocking_honoured_and_shared);
    tcase_add_test(tc, test_accept4_nonblock_and_listener_flags);
    tcase_add_test(tc, test_socket_timeouts);
    tcase_add_test(tc, test_bad_fds_and_buffers);
    tcase_add_test(tc, test_close_wakes_waiters);
    tcase_add_test(tc, test_dup2_onto_waited_fd_wakes);
    tcase_add_test(tc, test_vfork_child_close_leaves_hub_alone);
    tcase_add_test(tc, test_killed_inside_calls);
    tcase_add_test(tc, test_signal_interrupts_read);
    tcase_add_test(tc, test_sa_restart_restarts_read_not_poll);
    tcase_add_test(tc, test_signal_interrupts_sleeps);
    tcase_add_test(tc, test_sigaction_reports_program_view);
    tcase_add_test(tc, test_signal_and_siginterrupt);
    tcase_add_test(tc, test_handler_writes_self_pipe);
    tcase_add_test(tc, test_handler_calls_pass_through);
    tcase_add_test(tc, test_library_handlers_do_not_interrupt);
    tcase_add_test(tc, test_signal_interrupts_waitpid);
    tcase_add_test(tc, test_fork_in_greenlet);
    tcase_add_test(tc, test_preloaded_into_a_shell);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
