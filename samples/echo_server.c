/*
 * Recipe: gevent's echo server (examples/echoserver.py, the StreamServer
 * recipe of the gevent tutorial's "Servers" section):
 *
 *     from gevent.server import StreamServer
 *
 *     def echo(socket, address):
 *         print('New connection from %s:%s' % address)
 *         socket.sendall(b'Welcome to the echo server! Type quit to exit.\r\n')
 *         rfileobj = socket.makefile(mode='rb')
 *         while True:
 *             line = rfileobj.readline()
 *             if not line:
 *                 print("client disconnected")
 *                 break
 *             if line.strip().lower() == b'quit':
 *                 print("client quit")
 *                 break
 *             socket.sendall(line)
 *             print("echoed %r" % line)
 *
 *     server = StreamServer(('127.0.0.1', 16000), echo)
 *     server.serve_forever()
 *
 * `echo_server PORT` serves on 127.0.0.1:PORT until killed (try it with
 * `nc 127.0.0.1 PORT`). With no argument it serves on a free port and runs
 * a built-in client against itself: a few client greenlets, each sending a
 * few lines and checking that every one comes back, then "quit". It prints
 * what each client did, stops the server and exits 0 if all went well.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <green.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WELCOME "Welcome to the echo server! Type quit to exit.\r\n"
#define NCLIENTS 5
#define NLINES 4

/* Prints what the server does (serving mode; the built-in run stays quiet
 * on the server side, so that its output is the same every time). */
static bool verbose;

/* A line reader over a connection, as Python's makefile().readline(). */
struct reader {
    int    fd;
    char   buf[4096];
    size_t start, end;
};

/*
 * Reads one line, newline included, into line (at most size - 1 bytes, so
 * a longer line comes in pieces). Returns its length, 0 at end of file, -1
 * on an error.
 */
static ssize_t read_line(struct reader *r, char *line, size_t size, double timeout)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        size_t avail = r->end - r->start;
        if (nl || avail >= size - 1 || avail == sizeof r->buf) {
            size_t n = nl ? (size_t)(nl - (r->buf + r->start)) + 1 : avail;
            if (n > size - 1)
                n = size - 1;
            memcpy(line, r->buf + r->start, n);
            line[n] = '\0';
            r->start += n;
            return (ssize_t)n;
        }
        if (r->start > 0) { /* make room at the end */
            memmove(r->buf, r->buf + r->start, avail);
            r->start = 0;
            r->end = avail;
        }
        ssize_t got = green_recv(r->fd, r->buf + r->end, sizeof r->buf - r->end, 0, timeout);
        if (got <= 0) {
            if (got == 0 && avail) { /* a last line without a newline */
                memcpy(line, r->buf, avail);
                line[avail] = '\0';
                r->start = r->end = 0;
                return (ssize_t)avail;
            }
            return got;
        }
        r->end += (size_t)got;
    }
}

/* True if the line is "quit", whatever the case and the spaces around it. */
static bool is_quit(const char *line)
{
    while (isspace((unsigned char)*line))
        line++;
    size_t n = strlen(line);
    while (n && isspace((unsigned char)line[n - 1]))
        n--;
    return n == 4 && strncasecmp(line, "quit", 4) == 0;
}

/* The handler: runs in a greenlet of its own; the server closes fd after it. */
static void echo(int fd, void *ud)
{
    (void)ud;
    if (verbose) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        char ip[INET_ADDRSTRLEN] = "?";
        if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0)
            inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
        printf("New connection from %s:%d\n", ip, ntohs(peer.sin_port));
    }
    if (green_write_all(fd, WELCOME, strlen(WELCOME), GREEN_FOREVER) < 0)
        return;
    struct reader r = {.fd = fd};
    char line[1024];
    for (;;) {
        ssize_t n = read_line(&r, line, sizeof line, GREEN_FOREVER);
        if (n <= 0) {
            if (verbose)
                printf("client disconnected\n");
            return;
        }
        if (is_quit(line)) {
            if (verbose)
                printf("client quit\n");
            return;
        }
        if (green_write_all(fd, line, (size_t)n, GREEN_FOREVER) < 0)
            return;
        if (verbose) {
            line[strcspn(line, "\r\n")] = '\0';
            printf("echoed '%s'\n", line);
        }
        fflush(stdout);
    }
}

/* ------------------------------------------------------------------------ */
/* The built-in client                                                        */
/* ------------------------------------------------------------------------ */

struct client {
    int  id, port;
    int  echoed;        /* lines that came back intact */
    bool welcomed, eof; /* saw the welcome line; saw the server close after quit */
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    int fd = green_tcp_connect("127.0.0.1", c->port, 5.0);
    if (fd < 0) {
        perror("connect");
        return NULL;
    }
    struct reader r = {.fd = fd};
    char line[1024], sent[128];
    c->welcomed = read_line(&r, line, sizeof line, 5.0) > 0 && strcmp(line, WELCOME) == 0;
    for (int i = 1; i <= NLINES; i++) {
        int n = snprintf(sent, sizeof sent, "client %d line %d\r\n", c->id, i);
        if (green_write_all(fd, sent, (size_t)n, 5.0) < 0)
            break;
        if (read_line(&r, line, sizeof line, 5.0) <= 0 || strcmp(line, sent) != 0)
            break;
        c->echoed++;
    }
    green_write_all(fd, "quit\r\n", 6, 5.0);
    c->eof = read_line(&r, line, sizeof line, 5.0) == 0; /* the server hangs up */
    green_close(fd);
    return NULL;
}

static int self_test(void)
{
    int lfd = green_tcp_listen("127.0.0.1", 0, 128);
    if (lfd < 0) {
        perror("listen");
        return 1;
    }
    int port = green_tcp_port(lfd);
    green_server_t *server = green_server_new(lfd, echo, NULL, 0);
    if (!server) {
        perror("green_server_new");
        return 1;
    }
    printf("Echo server on 127.0.0.1 (a free port), %d clients:\n", NCLIENTS);
    struct client clients[NCLIENTS];
    green_t *gs[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        clients[i] = (struct client){.id = i + 1, .port = port};
        gs[i] = green_spawn(client_main, &clients[i]);
    }
    green_joinall(gs, NCLIENTS, GREEN_FOREVER);
    int ok = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        struct client *c = &clients[i];
        bool good = c->welcomed && c->echoed == NLINES && c->eof;
        printf("client %d: %s, %d/%d lines echoed, quit: %s\n", c->id,
               c->welcomed ? "welcomed" : "NOT welcomed", c->echoed, NLINES, good ? "ok" : "FAILED");
        ok += good;
        green_release(gs[i]);
    }
    int rc = green_server_stop(server, 1.0);
    green_server_free(server);
    printf("%d/%d clients ok; server stopped%s\n", ok, NCLIENTS, rc == 0 ? "" : " (with errors)");
    return ok == NCLIENTS && rc == 0 ? 0 : 1;
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
    int lfd = green_tcp_listen("127.0.0.1", (int)port, 0);
    if (lfd < 0) {
        perror("listen");
        return 1;
    }
    verbose = true;
    green_server_t *server = green_server_new(lfd, echo, NULL, 0);
    if (!server) {
        perror("green_server_new");
        return 1;
    }
    printf("Starting echo server on 127.0.0.1:%ld\n", port);
    fflush(stdout);
    green_wait(GREEN_FOREVER); /* serve_forever: the acceptor never finishes */
    green_server_free(server);
    return 0;
}
