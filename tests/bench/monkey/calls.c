/*
 * The shim's cost on calls that never wait: a read/write ping on a
 * socketpair whose data is always there, and poll() on descriptors that are
 * already ready. The same binary (linked with libgreen.so, not the shim)
 * runs without the shim and under green-run, which preloads it; the suite
 * compares the two.
 *
 *   monkey_calls rw|poll N RUNS KEY [main]
 *
 * The calls run inside a greenlet, where the shim takes its cooperative path
 * (without "main"), or on the thread's main greenlet before any hub exists,
 * where it passes them straight to libc ("main"). Prints "result KEY ns" and
 * "result KEY@cpu ns": nanoseconds per call (a ping is two calls).
 */
#include <green.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/bench.h"

static const char *mode, *key;
static long n;
static int runs;

/* One byte written to a, read back from b: the read never waits. */
static double rw_run(int a, int b, double *cpu)
{
    char c = 'x';
    struct bench_clock t0 = bench_clock_now();
    for (long i = 0; i < n; i++) {
        if (write(a, &c, 1) != 1 || read(b, &c, 1) != 1) {
            perror("ping");
            exit(1);
        }
    }
    double wall;
    bench_lap(t0, 2.0 * (double)n, &wall, cpu);
    return wall;
}

/* poll with a timeout on two descriptors that are both readable: it returns
 * at once, without the shim's wait. */
static double poll_run(int a, int b, double *cpu)
{
    struct pollfd fds[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    struct bench_clock t0 = bench_clock_now();
    for (long i = 0; i < n; i++) {
        if (poll(fds, 2, 1000) != 2) {
            perror("poll");
            exit(1);
        }
    }
    double wall;
    bench_lap(t0, (double)n, &wall, cpu);
    return wall;
}

static void *bench(void *arg)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("socketpair");
        exit(1);
    }
    bool rw = strcmp(mode, "rw") == 0;
    if (!rw && (write(sv[0], "x", 1) != 1 || write(sv[1], "y", 1) != 1)) {
        perror("write");
        exit(1);
    }
    double wall[64], cpu[64];
    for (int r = 0; r < runs; r++)
        wall[r] = rw ? rw_run(sv[0], sv[1], &cpu[r]) : poll_run(sv[0], sv[1], &cpu[r]);
    bench_report2(key, wall, cpu, runs, "ns per call");
    close(sv[0]);
    close(sv[1]);
    return arg;
}

int main(int argc, char **argv)
{
    if (argc < 5 || (strcmp(argv[1], "rw") != 0 && strcmp(argv[1], "poll") != 0)) {
        fprintf(stderr, "usage: monkey_calls rw|poll N RUNS KEY [main]\n");
        return 2;
    }
    mode = argv[1];
    n = atol(argv[2]);
    runs = atoi(argv[3]);
    if (runs < 1 || runs > 64)
        runs = 5;
    key = argv[4];
    printf("# %s, %ld calls x %d runs, %s\n", mode, n, runs,
           argc > 5 ? "on the main greenlet (no hub)" : "in a greenlet");
    if (argc > 5) {
        bench(NULL);
        return 0;
    }
    green_t *g = green_spawn(bench, NULL);
    if (!g || green_join(g, -1) != 0) {
        perror("green");
        return 1;
    }
    green_release(g);
    return 0;
}
