/*
 * Recipe: gevent's "Hello, World!" WSGI server (examples/wsgiserver.py),
 * here as a minimal HTTP/1.1 server on StreamServer, the shape the wrk
 * benchmark loads:
 *
 *     from gevent.pywsgi import WSGIServer
 *
 *     def application(env, start_response):
 *         start_response('200 OK', [('Content-Type', 'text/plain')])
 *         return [b'Hello, World!']
 *
 *     WSGIServer(('127.0.0.1', 8088), application).serve_forever()
 *
 * Each connection's handler reads requests into one buffer on its own
 * greenlet's stack, finds each request's end ("\r\n\r\n", skipping a
 * Content-Length body), and answers every complete request in the buffer
 * with one send: keep-alive and pipelined requests cost no malloc and one
 * recv and one send per batch. "Connection: close" is honoured (and
 * HTTP/1.0's default close, unless it asks for keep-alive).
 *
 * `hello_http PORT` serves on 127.0.0.1:PORT until SIGINT or SIGTERM, then
 * stops cleanly. With no argument it serves on a free port and runs a
 * built-in client against itself: 50 greenlets sending 20 keep-alive
 * requests each, a pipelined burst and a "Connection: close" request; it
 * prints a summary and exits 0 if every answer was right.
 */
#define _GNU_SOURCE /* memmem */
#include <green.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY "Hello, World!"
#define HEAD "HTTP/1.1 200 OK\r\n"
#define TAIL "Content-Length: 13\r\nContent-Type: text/plain\r\n\r\n" BODY
static const char RESP[] = HEAD TAIL;
static const char RESP_CLOSE[] = HEAD "Connection: close\r\n" TAIL;
static const char RESP_KEEP[] = HEAD "Connection: keep-alive\r\n" TAIL; /* HTTP/1.0 keep-alive */
static const char RESP_BAD[] =
    "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
static const char RESP_TOO_LARGE[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                     "Connection: close\r\nContent-Length: 0\r\n\r\n";

/* What the server did, for the summary. */
struct stats {
    unsigned long connections, requests;
};

/* ------------------------------------------------------------------------ */
/* The server                                                                 */
/* ------------------------------------------------------------------------ */

struct request {
    bool   keep_alive;
    bool   http10; /* an HTTP/1.0 client: keep-alive must be said in the answer */
    bool   bad;
    size_t body; /* Content-Length */
};

/* Case-insensitive search for a token in a header value. */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t k = strlen(tok);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(v + i, tok, k) == 0)
            return true;
    return false;
}

/* Parses the request head [p, p + n), which ends with "\r\n\r\n". */
static void parse_request(const char *p, size_t n, struct request *r)
{
    const char *end = p + n;
    const char *eol = memchr(p, '\r', n);
    /* "METHOD SP TARGET SP HTTP/1.x": only the version matters here. */
    if (eol - p < 14 || memcmp(eol - 8, "HTTP/1.", 7) != 0 || !memchr(p, ' ', (size_t)(eol - p))) {
        r->bad = true;
        return;
    }
    r->bad = false;
    r->http10 = eol[-1] == '0';
    r->keep_alive = !r->http10; /* 1.1 keeps the connection by default, 1.0 does not */
    r->body = 0;
    for (const char *line = eol + 2; line < end - 2; line = eol + 2) {
        eol = memchr(line, '\r', (size_t)(end - line));
        size_t len = (size_t)(eol - line);
        if (line[0] != 'C' && line[0] != 'c' && line[0] != 'T' && line[0] != 't')
            continue; /* the common case: a header we ignore */
        if (len > 11 && strncasecmp(line, "connection:", 11) == 0) {
            if (has_token(line + 11, len - 11, "close"))
                r->keep_alive = false;
            else if (has_token(line + 11, len - 11, "keep-alive"))
                r->keep_alive = true;
        } else if (len > 15 && strncasecmp(line, "content-length:", 15) == 0) {
            r->body = strtoul(line + 15, NULL, 10);
        } else if (len > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0) {
            r->bad = true; /* chunked bodies: beyond "just enough" */
        }
    }
}

/* The handler: one buffer on this greenlet's stack, no malloc. */
static void handle(int fd, void *ud)
{
    struct stats *st = ud;
    st->connections++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char in[8192], out[8192];
    size_t have = 0, skip = 0; /* skip: body bytes still to discard */
    for (;;) {
        ssize_t n = green_recv(fd, in + have, sizeof in - have, 0, GREEN_FOREVER);
        if (n <= 0)
            return; /* the client went away; the server closes fd */
        have += (size_t)n;
        size_t pos = 0, outn = 0;
        bool done = false;
        while (!done) {
            if (skip) {
                size_t k = skip < have - pos ? skip : have - pos;
                pos += k;
                skip -= k;
                if (skip)
                    break;
            }
            const char *head = in + pos;
            const char *end = memmem(head, have - pos, "\r\n\r\n", 4);
            if (!end)
                break;
            size_t hlen = (size_t)(end + 4 - head);
            struct request r;
            parse_request(head, hlen, &r);
            pos += hlen;
            const char *resp = RESP;
            size_t rlen = sizeof RESP - 1;
            if (r.bad) {
                resp = RESP_BAD, rlen = sizeof RESP_BAD - 1;
                done = true;
            } else {
                st->requests++;
                skip = r.body;
                if (!r.keep_alive)
                    resp = RESP_CLOSE, rlen = sizeof RESP_CLOSE - 1, done = true;
                else if (r.http10)
                    resp = RESP_KEEP, rlen = sizeof RESP_KEEP - 1;
            }
            if (outn + rlen > sizeof out) {
                if (green_write_all(fd, out, outn, GREEN_FOREVER) < 0)
                    return;
                outn = 0;
            }
            memcpy(out + outn, resp, rlen);
            outn += rlen;
        }
        if (outn && green_write_all(fd, out, outn, GREEN_FOREVER) < 0)
            return;
        if (done)
            return; /* Connection: close (or a bad request): the server closes fd */
        have -= pos;
        memmove(in, in + pos, have);
        if (have == sizeof in) { /* a head that does not fit */
            green_write_all(fd, RESP_TOO_LARGE, sizeof RESP_TOO_LARGE - 1, 1.0);
            return;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The built-in client                                                        */
/* ------------------------------------------------------------------------ */

#define NCLIENTS 50
#define NREQUESTS 20
#define NPIPELINED 10

static const char REQ[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: hello_http\r\n\r\n";
static const char REQ_CLOSE[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

struct conn {
    int    fd;
    char   buf[4096];
    size_t len;
};

/*
 * Reads one response: 1 if it is "200 OK" with the body "Hello, World!"
 * (*closing: it said "Connection: close"), 0 at end of file, -1 for
 * anything else.
 */
static int read_response(struct conn *c, bool *closing)
{
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end) {
            size_t hlen = (size_t)(end + 4 - c->buf);
            const char *cl = memmem(c->buf, hlen, "Content-Length: ", 16);
            size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
            while (c->len < hlen + body) {
                ssize_t n = green_recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0, 5.0);
                if (n <= 0)
                    return -1;
                c->len += (size_t)n;
            }
            int ok = strncmp(c->buf, "HTTP/1.1 200 OK\r\n", 17) == 0 && body == 13 &&
                     memcmp(c->buf + hlen, BODY, 13) == 0;
            if (closing)
                *closing = memmem(c->buf, hlen, "Connection: close\r\n", 19) != NULL;
            c->len -= hlen + body;
            memmove(c->buf, c->buf + hlen + body, c->len);
            return ok ? 1 : -1;
        }
        if (c->len == sizeof c->buf)
            return -1;
        ssize_t n = green_recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0, 5.0);
        if (n <= 0)
            return n == 0 && c->len == 0 ? 0 : -1;
        c->len += (size_t)n;
    }
}

struct client {
    int port;
    int ok; /* right answers */
};

static void *keepalive_client(void *arg)
{
    struct client *cl = arg;
    struct conn c = {.fd = green_tcp_connect("127.0.0.1", cl->port, 5.0)};
    if (c.fd < 0)
        return NULL;
    for (int i = 0; i < NREQUESTS; i++) {
        if (green_write_all(c.fd, REQ, sizeof REQ - 1, 5.0) < 0 || read_response(&c, NULL) != 1)
            break;
        cl->ok++;
    }
    green_close(c.fd);
    return NULL;
}

/* NPIPELINED requests in one write, then their answers: how many were right. */
static int pipelined(int port)
{
    struct conn c = {.fd = green_tcp_connect("127.0.0.1", port, 5.0)};
    if (c.fd < 0)
        return 0;
    char burst[NPIPELINED * sizeof REQ];
    for (int i = 0; i < NPIPELINED; i++)
        memcpy(burst + i * (sizeof REQ - 1), REQ, sizeof REQ - 1);
    int ok = 0;
    if (green_write_all(c.fd, burst, NPIPELINED * (sizeof REQ - 1), 5.0) > 0)
        while (ok < NPIPELINED && read_response(&c, NULL) == 1)
            ok++;
    green_close(c.fd);
    return ok;
}

/* A "Connection: close" request: answered, marked close, then end of file. */
static bool close_honoured(int port)
{
    struct conn c = {.fd = green_tcp_connect("127.0.0.1", port, 5.0)};
    if (c.fd < 0)
        return false;
    bool closing = false;
    bool ok = green_write_all(c.fd, REQ_CLOSE, sizeof REQ_CLOSE - 1, 5.0) > 0 &&
              read_response(&c, &closing) == 1 && closing && read_response(&c, NULL) == 0;
    green_close(c.fd);
    return ok;
}

static int self_test(void)
{
    struct stats st = {0};
    int lfd = green_tcp_listen("127.0.0.1", 0, 0);
    green_server_t *server = lfd >= 0 ? green_server_new(lfd, handle, &st, 0) : NULL;
    if (!server) {
        perror("hello_http: listen");
        return 1;
    }
    int port = green_tcp_port(lfd);
    printf("Serving Hello, World! on 127.0.0.1 (a free port)\n");

    struct client clients[NCLIENTS];
    green_t *gs[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        clients[i] = (struct client){.port = port};
        gs[i] = green_spawn(keepalive_client, &clients[i]);
    }
    green_joinall(gs, NCLIENTS, GREEN_FOREVER);
    int ok = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        ok += clients[i].ok;
        green_release(gs[i]);
    }
    printf("%d clients x %d keep-alive requests: %d/%d answered right\n", NCLIENTS, NREQUESTS, ok,
           NCLIENTS * NREQUESTS);
    int piped = pipelined(port);
    printf("%d pipelined requests in one write: %d/%d answered right\n", NPIPELINED, piped,
           NPIPELINED);
    bool closed = close_honoured(port);
    printf("Connection: close: %s\n", closed ? "answered, then closed" : "FAILED");

    int rc = green_server_stop(server, 1.0);
    green_server_free(server);
    printf("Server stopped: %lu connections, %lu requests\n", st.connections, st.requests);
    bool good = ok == NCLIENTS * NREQUESTS && piped == NPIPELINED && closed && rc == 0 &&
                st.requests == (unsigned long)(ok + piped + 1);
    return good ? 0 : 1;
}

/* ------------------------------------------------------------------------ */
/* Serving until a signal                                                     */
/* ------------------------------------------------------------------------ */

static green_event_t *quit;

static void *wait_signal(void *arg)
{
    if (green_signal_wait((int)(intptr_t)arg, GREEN_FOREVER) == 0)
        green_event_set(quit);
    return NULL;
}

static int serve(int port)
{
    struct stats st = {0};
    int lfd = green_tcp_listen("127.0.0.1", port, 0);
    green_server_t *server = lfd >= 0 ? green_server_new(lfd, handle, &st, 0) : NULL;
    if (!server) {
        perror("hello_http: listen");
        return 1;
    }
    quit = green_event_new();
    green_t *sigs[2] = {green_spawn(wait_signal, (void *)(intptr_t)SIGINT),
                        green_spawn(wait_signal, (void *)(intptr_t)SIGTERM)};
    printf("Serving on http://127.0.0.1:%d/ (SIGINT or SIGTERM stops it)\n", port);
    fflush(stdout);
    green_event_wait(quit, GREEN_FOREVER);
    int rc = green_server_stop(server, 1.0); /* finishing requests get a second */
    green_server_free(server);
    green_killall(sigs, 2, GREEN_FOREVER);
    green_release(sigs[0]);
    green_release(sigs[1]);
    green_event_free(quit);
    printf("Stopped: %lu connections, %lu requests\n", st.connections, st.requests);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return self_test();
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end || port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s [PORT]\n", argv[0]);
        return 2;
    }
    return serve((int)port);
}
