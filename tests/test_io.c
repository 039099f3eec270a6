/*
 * Cooperative I/O (lib/io.c, lib/dns.c, lib/threadpool.c), loopback only:
 * echo with checksummed payloads over many concurrent connections, 10,000
 * connections held open at once, green_close under waiting greenlets, peer
 * resets and EPIPE without SIGPIPE, kills and timeouts at every wait point
 * (read, write, accept, connect, wait_fd, getaddrinfo, the thread pool), a
 * slow reader against green_write_all, several greenlets on one fd, fd
 * numbers reused after a plain close(2), the TCP helpers (EADDRINUSE,
 * ECONNREFUSED, names that do not resolve, IPv6) and misuse.
 *
 * Under valgrind the connection counts and sizes are scaled down, never
 * skipped.
 */
#define _GNU_SOURCE /* unshare, CLONE_NEWNET */
#include <arpa/inet.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <resolv.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)

/* The full size under a plain build, `small` under valgrind (~30x slower). */
static size_t scaled(size_t full, size_t small)
{
    return RUNNING_ON_VALGRIND ? small : full;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------ */

/* Makes sure at least n descriptors can be open (root may raise the hard limit). */
static void raise_nofile(rlim_t n)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= n)
        return;
    if (rl.rlim_max < n)
        rl.rlim_max = n; /* needs CAP_SYS_RESOURCE: we run the tests as root */
    rl.rlim_cur = n;
    ck_assert_msg(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit(NOFILE, %lu): %s",
                  (unsigned long)n, strerror(errno));
}

/* A loopback listener on a free port. */
static int listen_loopback(int *port)
{
    int fd = green_tcp_listen("127.0.0.1", 0, 0);
    ck_assert_msg(fd >= 0, "green_tcp_listen: %s", strerror(errno));
    *port = green_tcp_port(fd);
    ck_assert_int_gt(*port, 0);
    return fd;
}

static struct sockaddr_in loopback_addr(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* A connected loopback socket (no name resolution: straight to the address). */
static int connect_loopback(int port, double timeout)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = loopback_addr(port);
    if (green_connect(fd, (struct sockaddr *)&sa, sizeof sa, timeout) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* A connected TCP pair on loopback: *client and *server. */
static void tcp_pair(int *client, int *server)
{
    int port, lfd = listen_loopback(&port);
    *client = connect_loopback(port, 5.0);
    ck_assert_msg(*client >= 0, "connect: %s", strerror(errno));
    *server = green_accept(lfd, NULL, NULL, 5.0);
    ck_assert_msg(*server >= 0, "accept: %s", strerror(errno));
    green_close(lfd);
}

/* Closes with a reset instead of a FIN: no TIME_WAIT left behind. */
static void close_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    green_close(fd);
}

/*
 * Fills fd's send buffer (and the peer's receive buffer) so that the next
 * write, even of one byte, waits: writes of shrinking sizes until a byte no
 * longer fits, repeated until a pass after a pause adds nothing (the kernel
 * may move data on to the peer meanwhile). Returns the bytes written.
 */
static size_t fill_send_buffer(int fd)
{
    static char junk[64 * 1024];
    size_t total = 0;
    for (int pass = 0; pass < 50; pass++) {
        size_t added = 0;
        for (size_t chunk = sizeof junk; chunk > 0; chunk /= 2) {
            for (int i = 0; i < 100000; i++) {
                ssize_t n = green_write(fd, junk, chunk, 0);
                if (n < 0) {
                    ck_assert_int_eq(errno, EAGAIN);
                    break;
                }
                added += (size_t)n;
            }
        }
        total += added;
        if (pass > 0 && added == 0)
            return total;
        green_sleep(0.01);
    }
    ck_abort_msg("the send buffer never filled");
    return 0;
}

/* Reads and discards exactly n bytes. */
static void drain(int fd, size_t n)
{
    static char sink[64 * 1024];
    while (n > 0) {
        ssize_t r = green_read(fd, sink, n < sizeof sink ? n : sizeof sink, 10.0);
        ck_assert_msg(r > 0, "drain: %zd %s", r, strerror(errno));
        n -= (size_t)r;
    }
}

/* FNV-1a, 64 bits: the payload checksum. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}
#define FNV_INIT 14695981039346656037ULL

/* xorshift64*: deterministic payloads. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void fill_random(void *buf, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    unsigned char *b = buf;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(rnd(&s) >> 56);
}

static green_t *spawn_small(green_fn fn, void *arg)
{
    green_attr_t attr = {.stack_size = 64 * KIB};
    green_t *g = green_spawn_attr(&attr, fn, arg);
    ck_assert_ptr_nonnull(g);
    return g;
}

static void join_release(green_t *g)
{
    ck_assert_int_eq(green_join(g, 20.0), 0);
    green_release(g);
}

/* ------------------------------------------------------------------------ */
/* Echo over many connections                                                 */
/* ------------------------------------------------------------------------ */

/* Echoes until end of file, then closes. */
static void *echo_handler(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = green_read(fd, buf, sizeof buf, 15.0);
        if (n <= 0)
            break;
        if (green_write_all(fd, buf, (size_t)n, 15.0) != n)
            break;
    }
    green_close(fd);
    return NULL;
}

struct echo_server {
    int      lfd;
    size_t   n;        /* connections to accept */
    green_t **handlers;
};

static void *echo_acceptor(void *arg)
{
    struct echo_server *es = arg;
    for (size_t i = 0; i < es->n; i++) {
        int fd = green_accept(es->lfd, NULL, NULL, 15.0);
        ck_assert_msg(fd >= 0, "accept %zu: %s", i, strerror(errno));
        es->handlers[i] = spawn_small(echo_handler, (void *)(intptr_t)fd);
    }
    return NULL;
}

struct echo_client {
    int      port;
    size_t   size;      /* payload bytes */
    uint64_t seed;
    bool     ok;
};

static void *echo_client(void *arg)
{
    struct echo_client *c = arg;
    char *out = malloc(c->size), in[4096];
    ck_assert_ptr_nonnull(out);
    fill_random(out, c->size, c->seed);
    uint64_t want = fnv1a(FNV_INIT, out, c->size), got = FNV_INIT;
    int fd = connect_loopback(c->port, 15.0);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(green_write_all(fd, out, c->size, 15.0), (ssize_t)c->size);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    size_t total = 0;
    for (;;) {
        ssize_t n = green_read(fd, in, sizeof in, 15.0);
        ck_assert_msg(n >= 0, "read: %s", strerror(errno));
        if (n == 0)
            break;
        got = fnv1a(got, in, (size_t)n);
        total += (size_t)n;
    }
    c->ok = total == c->size && got == want;
    green_close(fd);
    free(out);
    return NULL;
}

START_TEST(io_echo_1000_connections)
{
    size_t n = scaled(1000, 50);
    raise_nofile(2 * n + 64);
    int port;
    struct echo_server es = {.lfd = listen_loopback(&port), .n = n};
    es.handlers = calloc(n, sizeof *es.handlers);
    struct echo_client *cs = calloc(n, sizeof *cs);
    green_t **clients = calloc(n, sizeof *clients);
    green_t *acc = green_spawn(echo_acceptor, &es);
    for (size_t i = 0; i < n; i++) {
        /* 1 byte to 16 KiB: small enough that a client writing all before
         * reading never fills both directions' buffers. */
        cs[i] = (struct echo_client){.port = port, .size = 1 + (i * 7919) % (16 * KIB), .seed = i};
        clients[i] = spawn_small(echo_client, &cs[i]);
    }
    double t0 = tu_now();
    for (size_t i = 0; i < n; i++)
        join_release(clients[i]);
    join_release(acc);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(cs[i].ok, "client %zu: echo mismatch", i);
        join_release(es.handlers[i]);
    }
    ck_assert_elapsed(t0, 0, 15);
    green_close(es.lfd);
    ck_assert_uint_eq(green_count(), 0);
    free(es.handlers);
    free(cs);
    free(clients);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 10,000 connections held open at once                                       */
/* ------------------------------------------------------------------------ */

/*
 * Each process may hold fewer than 20,000 descriptors here (a container's
 * hard limit that even root cannot raise), so the server's ends of the
 * connections live in a child process: the parent holds the 10,000 client
 * ends, each waited on by a greenlet of its own.
 */
struct hold {
    size_t    n;
    int       port;
    int      *fds;
    green_t **readers;
    size_t    nconnected, nwaiting, nreplied;
};

struct hold_conn {
    struct hold *h;
    size_t       i;
};

/* Waits for one byte and answers it plus one. */
static void *hold_reader(void *arg)
{
    struct hold_conn *hc = arg;
    struct hold *h = hc->h;
    int fd = h->fds[hc->i];
    unsigned char b;
    h->nwaiting++;
    ssize_t n = green_read(fd, &b, 1, 15.0);
    h->nwaiting--;
    ck_assert_msg(n == 1, "reader %zu: %zd %s", hc->i, n, strerror(errno));
    b++;
    ck_assert_int_eq(green_write(fd, &b, 1, 15.0), 1);
    h->nreplied++;
    return NULL;
}

struct hold_connector {
    struct hold      *h;
    size_t            from, to;
    struct hold_conn *conns;
};

static void *hold_connector(void *arg)
{
    struct hold_connector *k = arg;
    struct hold *h = k->h;
    green_attr_t attr = {.stack_size = 32 * KIB};
    for (size_t i = k->from; i < k->to; i++) {
        h->fds[i] = connect_loopback(h->port, 15.0);
        ck_assert_msg(h->fds[i] >= 0, "connect %zu: %s", i, strerror(errno));
        k->conns[i] = (struct hold_conn){.h = h, .i = i};
        h->readers[i] = green_spawn_attr(&attr, hold_reader, &k->conns[i]);
        ck_assert_ptr_nonnull(h->readers[i]);
        h->nconnected++;
    }
    return NULL;
}

/*
 * The child: accepts n connections, waits for the parent's go, sends byte i
 * down connection i and checks that i + 1 comes back. Writes how many did
 * to `result` and exits (no Check assertions in this process).
 */
static void hold_child(int lfd, size_t n, int go, int result)
{
    int *fds = calloc(n, sizeof *fds);
    uint32_t ok = 0;
    size_t i;
    for (i = 0; i < n; i++)
        if ((fds[i] = green_accept(lfd, NULL, NULL, 15.0)) < 0)
            break;
    char b;
    if (i == n && green_read(go, &b, 1, 20.0) == 1) {
        for (i = 0; i < n; i++) {
            unsigned char c = (unsigned char)i;
            if (green_write(fds[i], &c, 1, 5.0) != 1)
                break;
        }
        for (i = 0; i < n; i++) {
            unsigned char c;
            if (green_read(fds[i], &c, 1, 15.0) == 1 && c == (unsigned char)(i + 1))
                ok++;
        }
    }
    ssize_t w = write(result, &ok, sizeof ok);
    (void)w;
    for (i = 0; i < n; i++)
        if (fds[i] > 0)
            green_close(fds[i]);
    free(fds);
    _exit(0);
}

START_TEST(io_hold_10000_connections)
{
    enum { CONNECTORS = 16 };
    size_t n = scaled(10000, 300);
    raise_nofile(n + 256);
    /* The listener is made by hand: nothing of libgreen before the fork. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = loopback_addr(0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(lfd, SOMAXCONN), 0);
    int go[2], result[2];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(result), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(go[1]);
        close(result[0]);
        hold_child(lfd, n, go[0], result[1]);
    }
    close(go[0]);
    close(result[1]);
    struct hold h = {.n = n, .port = green_tcp_port(lfd)};
    close(lfd);
    h.fds = calloc(n, sizeof *h.fds);
    h.readers = calloc(n, sizeof *h.readers);
    struct hold_conn *conns = calloc(n, sizeof *conns);
    struct hold_connector ks[CONNECTORS];
    green_t *kg[CONNECTORS];
    double t0 = tu_now();
    for (size_t k = 0; k < CONNECTORS; k++) {
        ks[k] = (struct hold_connector){.h = &h, .from = n * k / CONNECTORS,
                                        .to = n * (k + 1) / CONNECTORS, .conns = conns};
        kg[k] = green_spawn(hold_connector, &ks[k]);
    }
    for (size_t k = 0; k < CONNECTORS; k++)
        join_release(kg[k]);
    ck_assert_uint_eq(h.nconnected, n);
    /* Let every reader park on its fd: all n connections wait at once. */
    for (int i = 0; i < 200 && h.nwaiting < n; i++)
        green_sleep(0.01);
    ck_assert_uint_eq(h.nwaiting, n);
    ck_assert_uint_eq(green_count(), n);
    /* Go: a byte down each connection, each answered plus one. */
    ck_assert_int_eq(green_write(go[1], "g", 1, 1.0), 1);
    for (size_t i = 0; i < n; i++)
        join_release(h.readers[i]);
    ck_assert_uint_eq(h.nreplied, n);
    uint32_t ok = 0;
    ck_assert_int_eq(green_read(result[0], &ok, sizeof ok, 15.0), (ssize_t)sizeof ok);
    ck_assert_uint_eq(ok, n);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (size_t i = 0; i < n; i++)
        close_reset(h.fds[i]);
    close(go[1]);
    close(result[0]);
    ck_assert_elapsed(t0, 0, 18);
    ck_assert_uint_eq(green_count(), 0);
    free(h.fds);
    free(h.readers);
    free(conns);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* One operation in a greenlet, for kills and timeouts at the wait point      */
/* ------------------------------------------------------------------------ */

enum op_kind { OP_READ, OP_WRITE, OP_WRITE_ALL, OP_RECV, OP_SEND, OP_ACCEPT, OP_CONNECT, OP_WAIT_FD };
static const char *const op_names[] = {"read", "write", "write_all", "recv", "send", "accept",
                                       "connect", "wait_fd"};

struct op {
    enum op_kind      kind;
    int               fd;
    double            timeout;
    struct sockaddr_in addr; /* connect */
    size_t            size;  /* write_all */
    bool              sleep_first; /* park in a sleep first: to be killed before the call */
    long              rc;
    int               err;
    double            t_call, t_done;
    bool              done;
};

static void *run_op(void *arg)
{
    struct op *o = arg;
    static char buf[4 * 1024 * 1024];
    if (o->sleep_first)
        green_sleep(10); /* killed here: the call below starts in a killed greenlet */
    o->t_call = tu_now();
    errno = 0;
    switch (o->kind) {
    case OP_READ:
        o->rc = green_read(o->fd, buf, 1, o->timeout);
        break;
    case OP_WRITE:
        o->rc = green_write(o->fd, buf, 1, o->timeout);
        break;
    case OP_WRITE_ALL:
        o->rc = green_write_all(o->fd, buf, o->size, o->timeout);
        break;
    case OP_RECV:
        o->rc = green_recv(o->fd, buf, 1, 0, o->timeout);
        break;
    case OP_SEND:
        o->rc = green_send(o->fd, buf, 1, 0, o->timeout);
        break;
    case OP_ACCEPT:
        o->rc = green_accept(o->fd, NULL, NULL, o->timeout);
        break;
    case OP_CONNECT:
        o->rc = green_connect(o->fd, (struct sockaddr *)&o->addr, sizeof o->addr, o->timeout);
        break;
    case OP_WAIT_FD:
        o->rc = green_wait_fd(o->fd, GREEN_READ, o->timeout);
        break;
    }
    o->err = errno;
    o->t_done = tu_now();
    o->done = true;
    return NULL;
}

/*
 * A set of fds on which each operation has to wait: an idle socket to read
 * from, a full one to write to, a listener with nobody connecting, and a
 * listener whose backlog is full (connect stays in SYN_SENT).
 */
struct waits {
    int rd_client, rd_server; /* nothing to read on rd_client */
    int wr_client, wr_server; /* wr_client's send buffer is full (a socketpair: nothing
                               * drains it behind the test's back, as TCP's acks may) */
    size_t filled;
    int idle_lfd;             /* nobody connects */
    int full_lfd, full_port;  /* backlog 0, full */
    int fillers[16];
    int nfillers;
};

/* A raw listener with backlog 0, filled until a connect no longer completes. */
static void make_full_listener(struct waits *w)
{
    w->full_lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = loopback_addr(0);
    ck_assert_int_eq(bind(w->full_lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(w->full_lfd, 0), 0);
    w->full_port = green_tcp_port(w->full_lfd);
    /* Linux queues backlog + 1 connections; past that it drops the SYNs,
     * and the connect waits for a retransmission a second later. */
    for (w->nfillers = 0; w->nfillers < 16; w->nfillers++) {
        int fd = connect_loopback(w->full_port, 0.3);
        if (fd < 0) {
            ck_assert_int_eq(errno, ETIMEDOUT);
            return;
        }
        w->fillers[w->nfillers] = fd;
    }
    ck_abort_msg("a listener with backlog 0 never filled");
}

static void waits_open(struct waits *w)
{
    tcp_pair(&w->rd_client, &w->rd_server);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    w->wr_client = sv[0];
    w->wr_server = sv[1];
    w->filled = fill_send_buffer(w->wr_client);
    int port;
    w->idle_lfd = listen_loopback(&port);
    make_full_listener(w);
}

static void waits_close(struct waits *w)
{
    int fds[] = {w->rd_client, w->rd_server, w->wr_client, w->wr_server, w->idle_lfd, w->full_lfd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close_reset(fds[i]);
    for (int i = 0; i < w->nfillers; i++)
        close_reset(w->fillers[i]);
}

/* The op of that kind set up to wait; connect gets a fresh socket. */
static void op_setup(struct op *o, enum op_kind kind, struct waits *w, double timeout)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->timeout = timeout;
    o->size = 4 * MIB;
    switch (kind) {
    case OP_READ:
    case OP_RECV:
    case OP_WAIT_FD:
        o->fd = w->rd_client;
        break;
    case OP_WRITE:
    case OP_WRITE_ALL:
    case OP_SEND:
        o->fd = w->wr_client;
        break;
    case OP_ACCEPT:
        o->fd = w->idle_lfd;
        break;
    case OP_CONNECT:
        o->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(o->fd, 0);
        o->addr = loopback_addr(w->full_port);
        break;
    }
}

static void op_cleanup(struct op *o)
{
    if (o->kind == OP_CONNECT)
        close_reset(o->fd);
}

START_TEST(io_timeouts_at_every_wait_point)
{
    struct waits w;
    waits_open(&w);
    for (enum op_kind k = OP_READ; k <= OP_WAIT_FD; k++) {
        struct op o;
        /* timeout 0: EAGAIN at once */
        op_setup(&o, k, &w, 0);
        run_op(&o);
        ck_assert_msg(o.rc == -1 && o.err == EAGAIN, "%s timeout 0: %ld %s", op_names[k], o.rc,
                      strerror(o.err));
        op_cleanup(&o);
        /* its own timeout: ETIMEDOUT when it runs out */
        op_setup(&o, k, &w, 0.1);
        run_op(&o);
        ck_assert_msg(o.rc == -1 && o.err == ETIMEDOUT, "%s timeout: %ld %s", op_names[k], o.rc,
                      strerror(o.err));
        ck_assert_msg(o.t_done - o.t_call >= 0.09 && o.t_done - o.t_call < 2.0,
                      "%s timed out after %.3f s", op_names[k], o.t_done - o.t_call);
        op_cleanup(&o);
        /* an enclosing green_timeout */
        op_setup(&o, k, &w, GREEN_FOREVER);
        green_timeout_t t;
        green_timeout_start(&t, 0.05);
        run_op(&o);
        ck_assert(green_timeout_cancel(&t));
        ck_assert_msg(o.rc == -1 && o.err == ETIMEDOUT, "%s green_timeout: %ld %s", op_names[k],
                      o.rc, strerror(o.err));
        op_cleanup(&o);
    }
    waits_close(&w);
}
END_TEST

START_TEST(io_kills_at_every_wait_point)
{
    struct waits w;
    waits_open(&w);
    for (enum op_kind k = OP_READ; k <= OP_WAIT_FD; k++) {
        /* killed while it waits */
        struct op o;
        op_setup(&o, k, &w, GREEN_FOREVER);
        green_t *g = green_spawn(run_op, &o);
        green_sleep(0.03);
        ck_assert_msg(!o.done, "%s did not wait", op_names[k]);
        double t0 = tu_now();
        ck_assert_int_eq(green_kill(g, 1.0), 0);
        ck_assert_msg(o.rc == -1 && o.err == ECANCELED, "%s killed: %ld %s", op_names[k], o.rc,
                      strerror(o.err));
        ck_assert_elapsed(t0, 0, 0.5);
        green_release(g);
        op_cleanup(&o);
        /* killed before the call: it fails at once, without trying */
        op_setup(&o, k, &w, GREEN_FOREVER);
        o.sleep_first = true;
        g = green_spawn(run_op, &o);
        green_sleep(0.01);
        ck_assert_int_eq(green_kill(g, 1.0), 0);
        ck_assert_msg(o.rc == -1 && o.err == ECANCELED, "%s after kill: %ld %s", op_names[k],
                      o.rc, strerror(o.err));
        green_release(g);
        op_cleanup(&o);
    }
    /* A killed greenlet's read fails even when data is there to read. */
    ck_assert_int_eq(green_write(w.rd_server, "x", 1, 1.0), 1);
    struct op o;
    op_setup(&o, OP_READ, &w, 1.0);
    o.sleep_first = true;
    green_t *g = green_spawn(run_op, &o);
    green_sleep(0.01);
    ck_assert_int_eq(green_kill(g, 1.0), 0);
    ck_assert_int_eq(o.err, ECANCELED);
    green_release(g);
    char c;
    ck_assert_int_eq(green_read(w.rd_client, &c, 1, 1.0), 1); /* still there */
    ck_assert_int_eq(c, 'x');
    waits_close(&w);
    ck_assert_uint_eq(green_count(), 0);
}
END_TEST

/* green_write_all interrupted after a partial write reports only the error. */
START_TEST(io_write_all_partial_then_timeout)
{
    int c, s;
    tcp_pair(&c, &s);
    size_t size = 64 * MIB; /* far more than the socket buffers take */
    char *buf = malloc(size);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 'a', size);
    double t0 = tu_now();
    ck_assert_fails(green_write_all(c, buf, size, 0.2), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.15, 3);
    char peek[16];
    ck_assert_int_gt(recv(s, peek, sizeof peek, MSG_DONTWAIT), 0); /* part of it went out */
    free(buf);
    close_reset(c);
    green_close(s);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* green_close under waiting greenlets                                        */
/* ------------------------------------------------------------------------ */

START_TEST(io_close_wakes_reader_and_writer)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fill_send_buffer(sv[0]);
    struct op rd = {.kind = OP_READ, .fd = sv[0], .timeout = GREEN_FOREVER};
    struct op wr = {.kind = OP_WRITE_ALL, .fd = sv[0], .timeout = GREEN_FOREVER, .size = 64 * KIB};
    green_t *gr = green_spawn(run_op, &rd), *gw = green_spawn(run_op, &wr);
    green_sleep(0.03);
    ck_assert(!rd.done && !wr.done);
    double t0 = tu_now();
    ck_assert_int_eq(green_close(sv[0]), 0);
    join_release(gr);
    join_release(gw);
    ck_assert_elapsed(t0, 0, 0.5);
    ck_assert_msg(rd.rc == -1 && rd.err == EBADF, "reader: %ld %s", rd.rc, strerror(rd.err));
    ck_assert_msg(wr.rc == -1 && wr.err == EBADF, "writer: %ld %s", wr.rc, strerror(wr.err));
    ck_assert_fails(green_read(sv[0], &t0, 1, 0), EBADF);
    close(sv[1]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Resets and EPIPE                                                           */
/* ------------------------------------------------------------------------ */

START_TEST(io_peer_reset_surfaces_as_read_would)
{
    /* What read(2) itself says after a reset, for comparison. */
    int c, s;
    tcp_pair(&c, &s);
    close_reset(s);
    green_sleep(0.05);
    char b;
    errno = 0;
    ck_assert_int_eq(read(c, &b, 1), -1);
    int read_err = errno;
    ck_assert_int_eq(read_err, ECONNRESET);
    green_close(c);

    /* A greenlet waiting in green_read when the reset comes. */
    tcp_pair(&c, &s);
    struct op rd = {.kind = OP_READ, .fd = c, .timeout = 5.0};
    green_t *g = green_spawn(run_op, &rd);
    green_sleep(0.03);
    ck_assert(!rd.done);
    close_reset(s);
    join_release(g);
    ck_assert_msg(rd.rc == -1 && rd.err == read_err, "green_read: %ld %s", rd.rc,
                  strerror(rd.err));
    green_close(c);

    /* recv the same. */
    tcp_pair(&c, &s);
    close_reset(s);
    ck_assert_fails(green_recv(c, &b, 1, 0, 5.0), ECONNRESET);
    green_close(c);
}
END_TEST

START_TEST(io_epipe_never_sigpipe)
{
    /* The default disposition: a SIGPIPE would kill this process. */
    signal(SIGPIPE, SIG_DFL);
    char buf[1024] = {0};

    /* Our own side shut for writing. */
    int c, s;
    tcp_pair(&c, &s);
    ck_assert_int_eq(shutdown(c, SHUT_WR), 0);
    ck_assert_fails(green_write(c, buf, 1, 1.0), EPIPE);
    ck_assert_fails(green_send(c, buf, 1, 0, 1.0), EPIPE);
    ck_assert_fails(green_write_all(c, buf, sizeof buf, 1.0), EPIPE);
    green_close(c);
    green_close(s);

    /* The peer closed: once its reset is back, writes fail with EPIPE. */
    tcp_pair(&c, &s);
    green_close(s);
    int err = 0;
    for (int i = 0; i < 100 && !err; i++) {
        if (green_write(c, buf, sizeof buf, 1.0) < 0)
            err = errno;
        else
            green_sleep(0.01);
    }
    ck_assert_msg(err == EPIPE, "writing to a closed peer: %s", strerror(err));
    green_close(c);

    /* A pipe whose reader is gone (not a socket: no MSG_NOSIGNAL). */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    close(p[0]);
    ck_assert_fails(green_write(p[1], buf, 1, 1.0), EPIPE);
    ck_assert_fails(green_write_all(p[1], buf, sizeof buf, 1.0), EPIPE);
    close(p[1]);

    /* No SIGPIPE left pending either, and the disposition is untouched. */
    sigset_t pending;
    sigpending(&pending);
    ck_assert(!sigismember(&pending, SIGPIPE));
    struct sigaction sa;
    sigaction(SIGPIPE, NULL, &sa);
    ck_assert(sa.sa_handler == SIG_DFL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The thread pool and the resolver, killed and timed out                     */
/* ------------------------------------------------------------------------ */

static atomic_int slow_calls_done;

static void *slow_fn(void *arg)
{
    usleep(200 * 1000);
    atomic_fetch_add(&slow_calls_done, 1);
    return arg;
}

struct pool_call {
    void  *arg, *result;
    double timeout;
    int    rc, err;
    double elapsed;
};

static void *pool_caller(void *arg)
{
    struct pool_call *pc = arg;
    double t0 = tu_now();
    errno = 0;
    pc->rc = green_threadpool_call(slow_fn, pc->arg, &pc->result, pc->timeout);
    pc->err = errno;
    pc->elapsed = tu_now() - t0;
    return NULL;
}

START_TEST(io_threadpool_kill_and_timeout)
{
    static int token;
    /* It works, and the result comes back. */
    struct pool_call ok = {.arg = &token, .timeout = 5.0};
    pool_caller(&ok);
    ck_assert_int_eq(ok.rc, 0);
    ck_assert_ptr_eq(ok.result, &token);
    ck_assert_int_eq(atomic_load(&slow_calls_done), 1);

    /* Killed while fn sleeps in its thread: ECANCELED at once. */
    struct pool_call killed = {.arg = &token, .timeout = GREEN_FOREVER, .result = NULL};
    green_t *g = green_spawn(pool_caller, &killed);
    green_sleep(0.03);
    double t0 = tu_now();
    ck_assert_int_eq(green_kill(g, 1.0), 0);
    ck_assert_elapsed(t0, 0, 0.1);
    ck_assert_int_eq(killed.rc, -1);
    ck_assert_int_eq(killed.err, ECANCELED);
    ck_assert_ptr_null(killed.result); /* the result is dropped, never stored */
    green_release(g);

    /* Its own timeout. */
    struct pool_call timed = {.arg = &token, .timeout = 0.05};
    pool_caller(&timed);
    ck_assert_int_eq(timed.rc, -1);
    ck_assert_int_eq(timed.err, ETIMEDOUT);
    ck_assert_msg(timed.elapsed >= 0.04 && timed.elapsed < 0.18, "%.3f s", timed.elapsed);
    ck_assert_ptr_null(timed.result);

    /* timeout 0 would wait: EAGAIN, and nothing ran. */
    ck_assert_fails(green_threadpool_call(slow_fn, NULL, NULL, 0), EAGAIN);
    ck_assert_fails(green_threadpool_call(NULL, NULL, NULL, 1.0), EINVAL);

    /* The abandoned calls still run to their end; their results arrive
     * and are dropped while the hub goes on. */
    for (int i = 0; i < 100 && atomic_load(&slow_calls_done) < 3; i++)
        green_sleep(0.02);
    ck_assert_int_ge(atomic_load(&slow_calls_done), 3);
    green_sleep(0.05);
    struct pool_call again = {.arg = &token, .timeout = 5.0};
    pool_caller(&again);
    ck_assert_int_eq(again.rc, 0);
    ck_assert_ptr_eq(again.result, &token);
    ck_assert_int_eq(green_wait(5.0), 0);
}
END_TEST

struct lookup {
    bool             sleep_first;
    int              rc, err;
    struct addrinfo *res;
    double           elapsed;
};

static void *lookup_caller(void *arg)
{
    struct lookup *l = arg;
    if (l->sleep_first)
        green_sleep(10);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    double t0 = tu_now();
    errno = 0;
    l->rc = green_getaddrinfo("127.0.0.1", "80", &hints, &l->res);
    l->err = errno;
    l->elapsed = tu_now() - t0;
    return NULL;
}

static void *busy_pool(void *arg)
{
    (void)arg;
    green_threadpool_call(slow_fn, NULL, NULL, GREEN_FOREVER);
    return NULL;
}

START_TEST(io_getaddrinfo_killed_and_timed_out)
{
    /* One pool thread, so that a slow job holds up the lookups behind it
     * (each test is its own process: the pool starts with this setting). */
    setenv("GREEN_THREADPOOL_SIZE", "1", 1);

    /* Killed before the call. */
    struct lookup before = {.sleep_first = true, .res = (void *)&before};
    green_t *g = green_spawn(lookup_caller, &before);
    green_sleep(0.01);
    ck_assert_int_eq(green_kill(g, 1.0), 0);
    ck_assert_int_eq(before.rc, EAI_SYSTEM);
    ck_assert_int_eq(before.err, ECANCELED);
    ck_assert_ptr_eq(before.res, (void *)&before); /* untouched */
    green_release(g);

    /* Killed while the lookup waits behind a busy pool: at once. */
    green_t *busy = green_spawn(busy_pool, NULL);
    green_sleep(0.02);
    struct lookup during = {0};
    g = green_spawn(lookup_caller, &during);
    green_sleep(0.03);
    ck_assert_int_eq(green_kill(g, 1.0), 0);
    ck_assert_int_eq(during.rc, EAI_SYSTEM);
    ck_assert_int_eq(during.err, ECANCELED);
    ck_assert_msg(during.elapsed < 0.15, "%.3f s", during.elapsed);
    ck_assert_ptr_null(during.res);
    green_release(g);

    /* Timed out by an enclosing green_timeout. */
    struct lookup timed = {0};
    green_timeout_t t;
    green_timeout_start(&t, 0.03);
    lookup_caller(&timed);
    green_timeout_cancel(&t);
    ck_assert_int_eq(timed.rc, EAI_SYSTEM);
    ck_assert_int_eq(timed.err, ETIMEDOUT);

    /* The abandoned lookups finish on their thread and are freed there
     * (ASan and valgrind check that); lookups still work afterwards. */
    join_release(busy);
    struct lookup after = {0};
    lookup_caller(&after);
    ck_assert_int_eq(after.rc, 0);
    ck_assert_ptr_nonnull(after.res);
    ck_assert_int_eq(after.res->ai_family, AF_INET);
    freeaddrinfo(after.res);
    ck_assert_int_eq(green_wait(5.0), 0);

    /* NULL res. */
    errno = 0;
    ck_assert_int_eq(green_getaddrinfo("127.0.0.1", NULL, NULL, NULL), EAI_SYSTEM);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A slow reader against green_write_all                                      */
/* ------------------------------------------------------------------------ */

struct bulk {
    int      fd;
    char    *data;
    size_t   size;
    ssize_t  rc;
    uint64_t sum;
    size_t   got;
};

static void *bulk_writer(void *arg)
{
    struct bulk *b = arg;
    b->rc = green_write_all(b->fd, b->data, b->size, 15.0);
    ck_assert_msg(b->rc == (ssize_t)b->size, "write_all: %zd %s", b->rc, strerror(errno));
    shutdown(b->fd, SHUT_WR);
    return NULL;
}

static void *slow_reader(void *arg)
{
    struct bulk *b = arg;
    char buf[32 * 1024];
    b->sum = FNV_INIT;
    for (;;) {
        ssize_t n = green_read(b->fd, buf, sizeof buf, 15.0);
        ck_assert_msg(n >= 0, "read: %s", strerror(errno));
        if (n == 0)
            break;
        b->sum = fnv1a(b->sum, buf, (size_t)n);
        b->got += (size_t)n;
        green_sleep(0.0005); /* slower than the writer: it keeps finding the socket full */
    }
    return NULL;
}

START_TEST(io_slow_reader_write_all)
{
    size_t size = scaled(8 * MIB, 1 * MIB);
    int c, s;
    tcp_pair(&c, &s);
    struct bulk w = {.fd = c, .size = size}, r = {.fd = s};
    w.data = malloc(size);
    ck_assert_ptr_nonnull(w.data);
    fill_random(w.data, size, 42);
    uint64_t want = fnv1a(FNV_INIT, w.data, size);
    double t0 = tu_now();
    green_t *gw = green_spawn(bulk_writer, &w), *gr = green_spawn(slow_reader, &r);
    join_release(gw);
    join_release(gr);
    ck_assert_elapsed(t0, 0, 15);
    ck_assert_uint_eq(r.got, size);
    ck_assert(r.sum == want);
    free(w.data);
    green_close(c);
    green_close(s);

    /* The same through a pipe (not a socket: O_NONBLOCK and write(2)). */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    size = scaled(2 * MIB, 256 * KIB);
    struct bulk pw = {.fd = p[1], .size = size}, pr = {.fd = p[0]};
    pw.data = malloc(size);
    fill_random(pw.data, size, 7);
    want = fnv1a(FNV_INIT, pw.data, size);
    gw = green_spawn(bulk_writer, &pw); /* shutdown on a pipe fails harmlessly */
    gr = green_spawn(slow_reader, &pr);
    join_release(gw);
    green_close(p[1]); /* the reader's end of file */
    join_release(gr);
    ck_assert_uint_eq(pr.got, size);
    ck_assert(pr.sum == want);
    free(pw.data);
    green_close(p[0]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Several greenlets on one fd                                                */
/* ------------------------------------------------------------------------ */

START_TEST(io_reader_and_writer_on_one_fd)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    size_t filled = fill_send_buffer(sv[0]);
    struct op rd = {.kind = OP_READ, .fd = sv[0], .timeout = 5.0};
    struct op wr = {.kind = OP_WRITE_ALL, .fd = sv[0], .timeout = 5.0, .size = 64 * KIB};
    green_t *gr = green_spawn(run_op, &rd), *gw = green_spawn(run_op, &wr);
    green_sleep(0.03);
    ck_assert(!rd.done && !wr.done);
    /* Data for the reader: it wakes, the writer keeps waiting. */
    ck_assert_int_eq(green_write(sv[1], "r", 1, 1.0), 1);
    join_release(gr);
    ck_assert_int_eq(rd.rc, 1);
    green_sleep(0.02);
    ck_assert(!wr.done);
    /* Room for the writer. */
    drain(sv[1], filled + wr.size);
    join_release(gw);
    ck_assert_int_eq(wr.rc, (long)wr.size);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

struct fifo_reader {
    int  fd, turn;
    char byte;
};
static int fifo_turns;

static void *fifo_read(void *arg)
{
    struct fifo_reader *r = arg;
    ck_assert_int_eq(green_read(r->fd, &r->byte, 1, 5.0), 1);
    r->turn = fifo_turns++;
    return NULL;
}

static void *fifo_write(void *arg)
{
    struct fifo_reader *r = arg;
    ck_assert_int_eq(green_write(r->fd, &r->byte, 1, 5.0), 1);
    r->turn = fifo_turns++;
    return NULL;
}

static ssize_t read_exactly(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = green_read(fd, buf + got, n - got, 5.0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

START_TEST(io_readers_and_writers_woken_fifo)
{
    enum { N = 4 };
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct fifo_reader rs[N];
    green_t *gs[N];
    for (int i = 0; i < N; i++) {
        rs[i] = (struct fifo_reader){.fd = sv[0], .turn = -1};
        gs[i] = green_spawn(fifo_read, &rs[i]);
        green_sleep(0.005); /* they start waiting in this order */
    }
    ck_assert_int_eq(green_write(sv[1], "abcd", N, 1.0), N);
    for (int i = 0; i < N; i++)
        join_release(gs[i]);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(rs[i].turn, i);
        ck_assert_int_eq(rs[i].byte, "abcd"[i]);
    }
    /* Writers too: each waits its turn for room, and their bytes follow
     * one another in the order they started waiting. */
    size_t filled = fill_send_buffer(sv[0]);
    for (int i = 0; i < N; i++) {
        rs[i] = (struct fifo_reader){.fd = sv[0], .turn = -1, .byte = "wxyz"[i]};
        gs[i] = green_spawn(fifo_write, &rs[i]);
        green_sleep(0.005);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(rs[i].turn, -1); /* all waiting */
    drain(sv[1], filled);
    char got[N];
    ck_assert_int_eq(read_exactly(sv[1], got, N), N);
    ck_assert_int_eq(memcmp(got, "wxyz", N), 0);
    for (int i = 0; i < N; i++) {
        join_release(gs[i]);
        ck_assert_int_eq(rs[i].turn, N + i);
    }
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* fd numbers reused after a plain close(2)                                   */
/* ------------------------------------------------------------------------ */

struct delayed_write {
    int    fd;
    double delay;
};

static void *write_later(void *arg)
{
    struct delayed_write *d = arg;
    green_sleep(d->delay);
    ck_assert_int_eq(green_write(d->fd, "z", 1, 1.0), 1);
    return NULL;
}

/* Waits on p[0] until a write 20 ms later arrives. */
static void read_after_delay(int rfd, int wfd)
{
    struct delayed_write d = {.fd = wfd, .delay = 0.02};
    green_t *g = green_spawn(write_later, &d);
    char c = 0;
    ck_assert_int_eq(green_read(rfd, &c, 1, 2.0), 1);
    ck_assert_int_eq(c, 'z');
    join_release(g);
}

/* A pipe whose read end is fd number `at` (free), whatever is lowest. */
static void pipe_at(int p[2], int at)
{
    ck_assert_int_eq(pipe(p), 0);
    if (p[1] == at) { /* move the write end out of the way first */
        int w = dup(p[1]);
        ck_assert_int_ge(w, 0);
        close(p[1]);
        p[1] = w;
    }
    if (p[0] != at) {
        ck_assert_int_eq(dup2(p[0], at), at);
        close(p[0]);
        p[0] = at;
    }
}

START_TEST(io_fd_reused_after_plain_close)
{
    int p[2], q[2];
    ck_assert_int_eq(pipe(p), 0);
    read_after_delay(p[0], p[1]);
    char c;
    ck_assert_fails(green_read(p[0], &c, 1, 0.02), ETIMEDOUT);
    int old = p[0];
    close(p[0]);
    close(p[1]);
    pipe_at(q, old);
    read_after_delay(q[0], q[1]);

    /* The old file kept alive by a dup: the poller may still know it under
     * the old number, and its events must not confuse the new fd. */
    int keep = dup(q[0]), keep_w = q[1];
    close(q[0]);
    pipe_at(p, old);
    ck_assert_int_eq(write(keep_w, "old", 3), 3); /* the old file is readable */
    ck_assert_fails(green_read(p[0], &c, 1, 0.05), ETIMEDOUT); /* the new one is not */
    read_after_delay(p[0], p[1]);
    close(keep);
    close(keep_w);
    close(p[0]);
    close(p[1]);

    /* A socket's number reused by a pipe. */
    int c1, s1;
    tcp_pair(&c1, &s1);
    ck_assert_fails(green_read(c1, &c, 1, 0.02), ETIMEDOUT);
    old = c1;
    close(c1);
    pipe_at(p, old);
    read_after_delay(p[0], p[1]);
    close(p[0]);
    close(p[1]);
    close(s1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Misuse                                                                     */
/* ------------------------------------------------------------------------ */

static int hub_results[4];

static void from_hub_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    int fd = (int)(intptr_t)t->data;
    char b;
    errno = 0;
    hub_results[0] = (int)green_read(fd, &b, 1, 1.0) == -1 ? errno : 0;
    hub_results[1] = green_wait_fd(fd, GREEN_READ, 1.0) == -1 ? errno : 0;
    hub_results[2] = green_accept(fd, NULL, NULL, 1.0) == -1 ? errno : 0;
}

START_TEST(io_bad_arguments)
{
    char buf[8] = {0};
    int c, s;
    tcp_pair(&c, &s);
    int closed = dup(c);
    close(closed);

    /* Bad fds: EBADF from every call. */
    int bad[] = {-1, closed};
    for (size_t i = 0; i < 2; i++) {
        int fd = bad[i];
        ck_assert_fails(green_read(fd, buf, 1, 0), EBADF);
        ck_assert_fails(green_read(fd, buf, 1, 1.0), EBADF);
        ck_assert_fails(green_write(fd, buf, 1, 1.0), EBADF);
        ck_assert_fails(green_write_all(fd, buf, 1, 1.0), EBADF);
        ck_assert_fails(green_recv(fd, buf, 1, 0, 1.0), EBADF);
        ck_assert_fails(green_send(fd, buf, 1, 0, 1.0), EBADF);
        ck_assert_fails(green_accept(fd, NULL, NULL, 1.0), EBADF);
        struct sockaddr_in sa = loopback_addr(1);
        ck_assert_fails(green_connect(fd, (struct sockaddr *)&sa, sizeof sa, 1.0), EBADF);
        ck_assert_fails(green_wait_fd(fd, GREEN_READ, 1.0), EBADF);
        ck_assert_fails(green_tcp_port(fd), EBADF);
    }
    ck_assert_fails(green_close(closed), EBADF);

    /* NULL buffers with n > 0, and sizes read(2) cannot take: EINVAL. */
    ck_assert_fails(green_read(c, NULL, 1, 1.0), EINVAL);
    ck_assert_fails(green_write(c, NULL, 1, 1.0), EINVAL);
    ck_assert_fails(green_write_all(c, NULL, 1, 1.0), EINVAL);
    ck_assert_fails(green_recv(c, NULL, 1, 0, 1.0), EINVAL);
    ck_assert_fails(green_send(c, NULL, 1, 0, 1.0), EINVAL);
    ck_assert_fails(green_read(c, buf, (size_t)SSIZE_MAX + 1, 1.0), EINVAL);
    ck_assert_fails(green_write(c, buf, SIZE_MAX, 1.0), EINVAL);
    ck_assert_fails(green_write_all(c, buf, SIZE_MAX, 1.0), EINVAL);
    ck_assert_int_eq(green_write_all(c, NULL, 0, 1.0), 0); /* nothing to write */

    /* Events outside GREEN_READ | GREEN_WRITE. */
    ck_assert_fails(green_wait_fd(c, 0, 1.0), EINVAL);
    ck_assert_fails(green_wait_fd(c, 4, 1.0), EINVAL);
    ck_assert_fails(green_wait_fd(c, -1, 1.0), EINVAL);
    ck_assert_fails(green_wait_fd(c, GREEN_READ | 8, 1.0), EINVAL);
    /* ...and inside: a fresh socket can be written, not read. */
    ck_assert_int_eq(green_wait_fd(c, GREEN_READ | GREEN_WRITE, 1.0), GREEN_WRITE);
    ck_assert_fails(green_wait_fd(c, GREEN_READ, 0), EAGAIN);

    /* accept and connect. */
    struct sockaddr_in sa;
    ck_assert_fails(green_accept(c, (struct sockaddr *)&sa, NULL, 1.0), EINVAL);
    ck_assert_fails(green_accept(c, NULL, NULL, 1.0), EINVAL); /* not listening */
    ck_assert_fails(green_connect(c, NULL, sizeof sa, 1.0), EINVAL);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_fails(green_accept(p[0], NULL, NULL, 1.0), ENOTSOCK);
    ck_assert_fails(green_tcp_port(p[0]), ENOTSOCK);
    close(p[0]);
    close(p[1]);

    /* The TCP helpers. */
    ck_assert_fails(green_tcp_listen("127.0.0.1", -1, 0), EINVAL);
    ck_assert_fails(green_tcp_listen("127.0.0.1", 65536, 0), EINVAL);
    ck_assert_fails(green_tcp_connect(NULL, 80, 1.0), EINVAL);
    ck_assert_fails(green_tcp_connect("127.0.0.1", 0, 1.0), EINVAL);
    ck_assert_fails(green_tcp_connect("127.0.0.1", 65536, 1.0), EINVAL);

    /* From the hub (a libev callback): EDEADLK, never a blocked loop. */
    ev_timer t;
    ev_timer_init(&t, from_hub_cb, 0.001, 0);
    t.data = (void *)(intptr_t)c;
    ev_timer_start(green_loop(), &t);
    green_sleep(0.05);
    ck_assert_int_eq(hub_results[0], EDEADLK);
    ck_assert_int_eq(hub_results[1], EDEADLK);
    ck_assert_int_eq(hub_results[2], EDEADLK);

    green_close(c);
    green_close(s);
}
END_TEST

/* green_close of a negative fd: EBADF, as close(2), with or without a hub. */
START_TEST(io_close_negative_fd)
{
    ck_assert_fails(green_close(-1), EBADF);
    green_sleep(0); /* now with a hub, and its fd table */
    ck_assert_fails(green_close(-1), EBADF);
    ck_assert_fails(green_close(-100000), EBADF);
    ck_assert_fails(green_close(INT_MIN), EBADF);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The TCP helpers                                                            */
/* ------------------------------------------------------------------------ */

/*
 * glibc attaches its resolver configuration to the thread that made a name
 * lookup (its _res) and frees it only when that thread exits. The pool's
 * threads never exit, so valgrind would call that block lost at the end of
 * a test that resolved a name. The tests that do run the pool with one
 * thread and detach the configuration on it before they end.
 */
static void *resolver_detach(void *arg)
{
    (void)arg;
    res_nclose(&_res);
    return NULL;
}

static void one_pool_thread(void)
{
    setenv("GREEN_THREADPOOL_SIZE", "1", 1); /* read when this test process starts the pool */
}

static void resolver_forget(void)
{
    ck_assert_int_eq(green_threadpool_call(resolver_detach, NULL, NULL, 15.0), 0);
}

START_TEST(io_tcp_listen_in_use)
{
    int port, lfd = listen_loopback(&port);
    ck_assert_fails(green_tcp_listen("127.0.0.1", port, 0), EADDRINUSE);
    green_close(lfd);
    /* Free again once closed (SO_REUSEADDR: no wait for TIME_WAIT). */
    lfd = green_tcp_listen("127.0.0.1", port, 0);
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(green_tcp_port(lfd), port);
    green_close(lfd);
}
END_TEST

START_TEST(io_tcp_connect_refused_and_any_address)
{
    one_pool_thread();
    /* A port that was free a moment ago: nothing listens there. */
    int port, lfd = listen_loopback(&port);
    green_close(lfd);
    ck_assert_fails(green_tcp_connect("127.0.0.1", port, 5.0), ECONNREFUSED);
    struct sockaddr_in sa = loopback_addr(port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_fails(green_connect(fd, (struct sockaddr *)&sa, sizeof sa, 5.0), ECONNREFUSED);
    close(fd);

    /* "localhost" may resolve to ::1 first: the connect goes on to the
     * next address, 127.0.0.1, where the server is. */
    lfd = listen_loopback(&port);
    fd = green_tcp_connect("localhost", port, 5.0);
    ck_assert_msg(fd >= 0, "localhost: %s", strerror(errno));
    int s = green_accept(lfd, NULL, NULL, 5.0);
    ck_assert_int_ge(s, 0);
    int nodelay = 0;
    socklen_t len = sizeof nodelay;
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
    ck_assert_int_ne(nodelay, 0);
    ck_assert_int_eq(green_write_all(fd, "ping", 4, 1.0), 4);
    char buf[4];
    ck_assert_int_eq(green_read(s, buf, 4, 1.0), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
    green_close(fd);
    green_close(s);
    green_close(lfd);
    resolver_forget();
}
END_TEST

/*
 * A name that does not resolve: ENOENT. glibc does not treat ".invalid"
 * specially, so the lookup would ask the configured DNS server. To keep
 * every packet on this machine, the test first moves into a network
 * namespace of its own (we run as root), where no server is reachable and
 * the resolver fails at once. Where that is not allowed, the lookup goes to
 * the real resolver; the connect is bounded to 8 s and then may end with
 * ETIMEDOUT instead (a resolver that never answers is a timeout, not a
 * missing name) — only in that fallback.
 */
START_TEST(io_tcp_connect_unresolvable)
{
    one_pool_thread();
    bool isolated = unshare(CLONE_NEWNET) == 0;
    double t0 = tu_now();
    errno = 0;
    int fd = green_tcp_connect("nonexistent.invalid", 80, 8.0);
    int err = errno;
    ck_assert_int_eq(fd, -1);
    if (isolated) {
        ck_assert_msg(err == ENOENT, "got %s", strerror(err));
        ck_assert_elapsed(t0, 0, 5);
    } else {
        ck_assert_msg(err == ENOENT || err == ETIMEDOUT, "got %s", strerror(err));
        ck_assert_elapsed(t0, 0, 10);
    }
    /* A name glibc rejects without asking anyone. */
    ck_assert_fails(green_tcp_connect("bad name with spaces..", 80, 5.0), ENOENT);
    resolver_forget();
}
END_TEST

/* Whether ::1 can be bound here, asked of the kernel directly. */
static int ipv6_loopback_errno(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int err = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : errno;
    close(fd);
    return err;
}

START_TEST(io_ipv6_loopback)
{
    int avail_err = ipv6_loopback_errno();
    errno = 0;
    int lfd = green_tcp_listen("::1", 0, 0);
    if (avail_err) {
        /* No ::1 here: the listen must fail as bind did, not quietly. */
        ck_assert_int_eq(lfd, -1);
        ck_assert_msg(errno == avail_err || errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT,
                      "listen on ::1: %s (bind said %s)", strerror(errno), strerror(avail_err));
        return;
    }
    ck_assert_msg(lfd >= 0, "listen on ::1: %s", strerror(errno));
    int port = green_tcp_port(lfd);
    ck_assert_int_gt(port, 0);
    int c = green_tcp_connect("::1", port, 5.0);
    ck_assert_msg(c >= 0, "connect to ::1: %s", strerror(errno));
    struct sockaddr_in6 peer;
    socklen_t len = sizeof peer;
    int s = green_accept(lfd, (struct sockaddr *)&peer, &len, 5.0);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(peer.sin6_family, AF_INET6);
    ck_assert(IN6_IS_ADDR_LOOPBACK(&peer.sin6_addr));
    ck_assert_int_eq(green_write_all(c, "v6", 2, 1.0), 2);
    char buf[2];
    ck_assert_int_eq(green_read(s, buf, 2, 1.0), 2);
    ck_assert_int_eq(memcmp(buf, "v6", 2), 0);
    green_close(c);
    green_close(s);
    green_close(lfd);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io");
    struct {
        const char *name;
        const TTest *tests[8];
    } cases[] = {
        {"many", {io_echo_1000_connections, io_hold_10000_connections}},
        {"waits", {io_timeouts_at_every_wait_point, io_kills_at_every_wait_point,
                   io_write_all_partial_then_timeout, io_close_wakes_reader_and_writer,
                   io_slow_reader_write_all, io_reader_and_writer_on_one_fd,
                   io_readers_and_writers_woken_fifo, io_fd_reused_after_plain_close}},
        {"errors", {io_peer_reset_surfaces_as_read_would, io_epipe_never_sigpipe,
                    io_bad_arguments, io_close_negative_fd}},
        {"pool", {io_threadpool_kill_and_timeout, io_getaddrinfo_killed_and_timed_out}},
        {"tcp", {io_tcp_listen_in_use, io_tcp_connect_refused_and_any_address,
                 io_tcp_connect_unresolvable, io_ipv6_loopback}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, RUNNING_ON_VALGRIND ? 300 : 30);
        for (size_t j = 0; j < 8 && cases[i].tests[j]; j++)
            tcase_add_test(tc, cases[i].tests[j]);
        suite_add_tcase(s, tc);
    }
    return tu_run(s);
}
