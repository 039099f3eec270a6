/*
 * The floor of the HTTP benchmark: a "Hello, World!" server written directly
 * on libev callbacks, with no coroutines at all. Whatever libgreen's
 * hello_http costs above this is the price of its greenlets, hub and
 * cooperative I/O.
 *
 *   libev_hello PORT        serves GET / on 127.0.0.1:PORT until killed
 *
 * One thread, one ev_io per connection. A request is everything up to
 * "\r\n\r\n" (the benchmark's requests have no body); every complete request
 * in the buffer gets one response, so pipelined requests work too. The
 * connection stays open (HTTP/1.1 keep-alive) until the client closes it.
 */
#define _GNU_SOURCE /* memmem, accept4 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                               "Content-Type: text/plain\r\n\r\nHello, World!";
#define RESPONSE_LEN (sizeof RESPONSE - 1)
#define MAX_BATCH 32 /* responses written at once for pipelined requests */

struct conn {
    ev_io io;
    size_t in_len;      /* bytes of an incomplete request kept in `in` */
    size_t out_len;     /* bytes still to write (only when the socket was full) */
    size_t out_off;
    char *out;          /* pending output, allocated only on a short write */
    char in[4096];
};

static void conn_close(struct ev_loop *loop, struct conn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c->out);
    free(c);
}

/* Counts the complete requests in c->in and keeps the incomplete tail. */
static int take_requests(struct conn *c)
{
    int n = 0;
    size_t start = 0;
    for (;;) {
        char *end = memmem(c->in + start, c->in_len - start, "\r\n\r\n", 4);
        if (!end)
            break;
        start = (size_t)(end - c->in) + 4;
        n++;
    }
    if (start > 0) {
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
    }
    return n;
}

/* Writes n responses; what the socket does not take waits for EV_WRITE. */
static int send_responses(struct ev_loop *loop, struct conn *c, int n)
{
    static char batch[MAX_BATCH * RESPONSE_LEN];
    while (n > 0) {
        int k = n < MAX_BATCH ? n : MAX_BATCH;
        const char *buf = RESPONSE;
        if (k > 1) {
            for (int i = 0; i < k; i++)
                memcpy(batch + (size_t)i * RESPONSE_LEN, RESPONSE, RESPONSE_LEN);
            buf = batch;
        }
        size_t len = (size_t)k * RESPONSE_LEN;
        ssize_t w = write(c->io.fd, buf, len);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (w < 0)
            w = 0;
        n -= k;
        if ((size_t)w < len) {
            /* The socket is full: keep the rest (and any later responses) and
               stop reading until it drains, so a client that never reads
               cannot make us buffer without bound. */
            size_t rest = len - (size_t)w + (size_t)n * RESPONSE_LEN;
            c->out = malloc(rest);
            if (!c->out)
                return -1;
            memcpy(c->out, buf + w, len - (size_t)w);
            for (size_t off = len - (size_t)w; off < rest; off += RESPONSE_LEN)
                memcpy(c->out + off, RESPONSE, RESPONSE_LEN);
            c->out_len = rest;
            c->out_off = 0;
            ev_io_stop(loop, &c->io);
            ev_io_set(&c->io, c->io.fd, EV_WRITE);
            ev_io_start(loop, &c->io);
            return 0;
        }
    }
    return 0;
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents; /* c->out says whether we wait to write or to read */
    struct conn *c = (struct conn *)w;
    if (c->out) {
        ssize_t n = write(w->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            conn_close(loop, c);
            return;
        }
        if (n > 0)
            c->out_off += (size_t)n;
        if (c->out_off < c->out_len)
            return;
        free(c->out);
        c->out = NULL;
        ev_io_stop(loop, &c->io);
        ev_io_set(&c->io, c->io.fd, EV_READ);
        ev_io_start(loop, &c->io);
        return;
    }
    ssize_t n = read(w->fd, c->in + c->in_len, sizeof c->in - c->in_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(loop, c);
        return;
    }
    c->in_len += (size_t)n;
    int requests = take_requests(c);
    if (requests == 0 && c->in_len == sizeof c->in) {
        conn_close(loop, c); /* a header larger than the buffer: not ours */
        return;
    }
    if (send_responses(loop, c, requests) < 0)
        conn_close(loop, c);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                fprintf(stderr, "libev_hello: accept: %s\n", strerror(errno));
            return; /* EAGAIN: the backlog is empty */
        }
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->in_len = c->out_len = c->out_off = 0;
        c->out = NULL;
        ev_io_init(&c->io, conn_cb, fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
        perror("libev_hello: listen");
        return 1;
    }
    struct ev_loop *loop = EV_DEFAULT;
    ev_io accept_io;
    ev_io_init(&accept_io, accept_cb, lfd, EV_READ);
    ev_io_start(loop, &accept_io);
    ev_run(loop, 0);
    return 0;
}
