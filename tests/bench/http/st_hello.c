/*
 * State Threads peer of the HTTP benchmark: the same "Hello, World!" server
 * as libgreen's hello_http, one ST thread per connection blocking in
 * st_read/st_write.
 *
 *   st_hello PORT        serves GET / on 127.0.0.1:PORT until killed
 *
 * It runs on ST's poll event system (Debian's build has no epoll, and its
 * default, select, cannot take fds past 1024) and says so on stderr: with
 * 1,000 connections, poll's O(n) scan per wakeup is part of its figures.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <st.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                               "Content-Type: text/plain\r\n\r\nHello, World!";
#define RESPONSE_LEN (sizeof RESPONSE - 1)
#define MAX_BATCH 32

static void *handle(void *arg)
{
    st_netfd_t fd = arg;
    char in[4096];
    char batch[MAX_BATCH * RESPONSE_LEN];
    size_t len = 0;
    for (;;) {
        ssize_t n = st_read(fd, in + len, sizeof in - len, ST_UTIME_NO_TIMEOUT);
        if (n <= 0)
            break;
        len += (size_t)n;
        /* Every complete request ("\r\n\r\n") gets a response; pipelined
           ones are answered in one write. */
        size_t start = 0;
        int k = 0;
        char *end;
        while ((end = memmem(in + start, len - start, "\r\n\r\n", 4)) != NULL) {
            start = (size_t)(end - in) + 4;
            k++;
        }
        if (start > 0) {
            memmove(in, in + start, len - start);
            len -= start;
        } else if (len == sizeof in) {
            break; /* a header larger than the buffer */
        }
        int failed = 0;
        while (k > 0 && !failed) {
            int m = k < MAX_BATCH ? k : MAX_BATCH;
            const char *buf = RESPONSE;
            if (m > 1) {
                for (int i = 0; i < m; i++)
                    memcpy(batch + (size_t)i * RESPONSE_LEN, RESPONSE, RESPONSE_LEN);
                buf = batch;
            }
            size_t want = (size_t)m * RESPONSE_LEN;
            failed = st_write(fd, buf, want, ST_UTIME_NO_TIMEOUT) != (ssize_t)want;
            k -= m;
        }
        if (failed)
            break;
    }
    st_netfd_close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* poll: Debian's libst has no epoll (asking for ST_EVENTSYS_ALT silently
       gives select), and select cannot take fds past 1024. */
    if (st_set_eventsys(ST_EVENTSYS_POLL) < 0) {
        perror("st_hello: st_set_eventsys(poll)");
        return 1;
    }
    if (st_init() < 0) {
        perror("st_hello: st_init");
        return 1;
    }
    fprintf(stderr, "st_hello: event system %s, fd limit %d\n", st_get_eventsys_name(),
            st_getfdlimit());
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
        perror("st_hello: listen");
        return 1;
    }
    st_netfd_t listener = st_netfd_open_socket(lfd);
    if (!listener) {
        perror("st_hello: st_netfd_open_socket");
        return 1;
    }
    for (;;) {
        st_netfd_t c = st_accept(listener, NULL, NULL, ST_UTIME_NO_TIMEOUT);
        if (!c) {
            st_usleep(1000); /* EMFILE and the like: do not spin */
            continue;
        }
        /* The default stack (64 KiB) is plenty: the handler uses ~6 KiB. */
        if (!st_thread_create(handle, c, 0, 0))
            st_netfd_close(c);
    }
}
