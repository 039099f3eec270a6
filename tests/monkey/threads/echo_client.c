/*
 * An epoll client that holds many echo connections at once and checks every
 * byte that comes back.
 *
 *   echo_client PORT NCONNS MSGSIZE SECONDS [SERVER_PID]
 *
 * Opens NCONNS connections to 127.0.0.1:PORT (at most 256 connecting at a
 * time) and keeps them all open. Every connection then sends a MSGSIZE-byte
 * message (bytes derived from the connection, the round and the offset) and
 * checks that the echo is the same, byte for byte. When every connection has
 * had its first echo (so the server holds them all), it prints the server's
 * VmRSS and OS thread count if SERVER_PID is given, then goes on with rounds for SECONDS and
 * prints the request rate (and the server's CPU time per request). Closes everything at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int      fd;
    int      connected;
    uint32_t round;
    size_t   sent, got;
};

static size_t msgsize;
static unsigned long long bad;

static inline uint8_t byte_at(uint32_t c, uint32_t round, size_t off)
{
    uint64_t x = ((uint64_t)c << 40) ^ ((uint64_t)round << 24) ^ (uint64_t)(off / 8);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint8_t)(x >> (8 * (off % 8)));
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The server's VmRSS and OS thread count, from /proc. */
static void server_status(long pid, long *kb, long *threads)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    *kb = *threads = -1;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "VmRSS: %ld kB", kb);
        sscanf(line, "Threads: %ld", threads);
    }
    fclose(f);
}

/* The server's CPU time (user + system, all threads) in seconds. */
static double server_cpu(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: echo_client PORT NCONNS MSGSIZE SECONDS [SERVER_PID]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    long n = atol(argv[2]);
    msgsize = (size_t)atol(argv[3]);
    double seconds = atof(argv[4]);
    long spid = argc > 5 ? atol(argv[5]) : 0;
    alarm(240); /* a bound, whatever happens */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct conn *cs = calloc((size_t)n, sizeof *cs);
    uint8_t *buf = malloc(msgsize > 65536 ? msgsize : 65536);
    int ep = epoll_create1(0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct epoll_event evs[512];
    long next = 0, connecting = 0, connected = 0, first_done = 0;
    unsigned long long rounds = 0, bytes = 0;
    double t_start = 0, t_end = 0, cpu_start = 0, cpu_end = 0;
    int phase = 0; /* 0: connecting, 1: first round, 2: timed rounds, 3: done */
    double t0 = now();
    while (phase < 3) {
        while (phase == 0 && next < n && connecting < 256) {
            struct conn *c = &cs[next];
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (c->fd < 0) {
                perror("echo_client: socket");
                return 1;
            }
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
                perror("echo_client: connect");
                return 1;
            }
            struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)next};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            connecting++;
            next++;
        }
        int k = epoll_wait(ep, evs, 512, 1000);
        if (k < 0 && errno != EINTR) {
            perror("echo_client: epoll_wait");
            return 1;
        }
        for (int i = 0; i < k; i++) {
            uint32_t idx = (uint32_t)evs[i].data.u64;
            struct conn *c = &cs[idx];
            if (!c->connected) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    fprintf(stderr, "echo_client: connect: %s\n", strerror(err));
                    return 1;
                }
                c->connected = 1;
                connecting--;
                struct epoll_event ev = {.events = EPOLLIN, .data.u64 = idx};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                if (++connected == n) {
                    phase = 1;
                    /* Every connection is open: all start their first round. */
                    for (long j = 0; j < n; j++) {
                        struct epoll_event ev2 = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)j};
                        epoll_ctl(ep, EPOLL_CTL_MOD, cs[j].fd, &ev2);
                    }
                }
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && c->sent < msgsize) {
                size_t m = msgsize - c->sent;
                if (m > 65536)
                    m = 65536;
                for (size_t j = 0; j < m; j++)
                    buf[j] = byte_at(idx, c->round, c->sent + j);
                ssize_t w = send(c->fd, buf, m, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN) {
                    perror("echo_client: send");
                    return 1;
                }
                if (w > 0)
                    c->sent += (size_t)w;
                if (c->sent == msgsize) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = idx};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                ssize_t r = recv(c->fd, buf, 65536, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    fprintf(stderr, "echo_client: connection %u lost\n", idx);
                    return 1;
                }
                if (r < 0)
                    continue;
                for (ssize_t j = 0; j < r; j++)
                    if (buf[j] != byte_at(idx, c->round, c->got + (size_t)j))
                        bad++;
                c->got += (size_t)r;
                bytes += (unsigned long long)r;
                if (c->got > c->sent) {
                    fprintf(stderr, "echo_client: more came back than was sent\n");
                    return 1;
                }
                if (c->got == msgsize) {
                    c->round++;
                    c->sent = c->got = 0;
                    if (phase == 1) {
                        /* It waits (no EPOLLOUT) until every connection has
                         * had its first echo. */
                        if (++first_done == n) {
                            if (spid) {
                                long kb, nthreads;
                                server_status(spid, &kb, &nthreads);
                                printf("rss_kb=%ld threads=%ld\n", kb, nthreads);
                            }
                            fflush(stdout);
                            phase = seconds > 0 ? 2 : 3;
                            t_start = now();
                            if (spid)
                                cpu_start = server_cpu(spid);
                            for (long j = 0; phase == 2 && j < n; j++) {
                                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
                                                         .data.u64 = (uint64_t)j};
                                epoll_ctl(ep, EPOLL_CTL_MOD, cs[j].fd, &ev);
                            }
                        }
                    } else if (phase == 2) {
                        rounds++;
                        if (now() - t_start >= seconds) {
                            t_end = now();
                            if (spid)
                                cpu_end = server_cpu(spid);
                            phase = 3;
                        } else {
                            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = idx};
                            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                        }
                    }
                }
            }
        }
    }
    for (long j = 0; j < n; j++)
        close(cs[j].fd);
    if (seconds > 0 && t_end > t_start)
        printf("requests=%llu seconds=%.2f server_cpu_us=%.2f rps=%.0f\n", rounds, t_end - t_start,
               spid && rounds ? (cpu_end - cpu_start) * 1e6 / (double)rounds : 0.0,
               (double)rounds / (t_end - t_start));
    printf("conns=%ld bytes=%llu bad=%llu time=%.2f\n", n, bytes, bad, now() - t0);
    free(cs);
    free(buf);
    return bad != 0;
}
