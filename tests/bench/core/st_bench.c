/*
 * State Threads 1.9 (libst-dev), the C peer closest to libgreen: stackful
 * threads on one OS thread, a run queue, an event loop (select) behind it.
 *
 *   st_bench usleep0 [N] [RUNS]     two threads ping-pong with st_usleep(0):
 *                                   every call goes through ST's idle thread
 *   st_bench cond    [N] [RUNS]     two threads hand off with st_cond_signal +
 *                                   st_cond_wait: the run queue alone
 *   st_bench spawn   [N] [RUNS]     st_thread_create (joinable) + st_thread_join,
 *                                   one at a time, warm (ST recycles stacks)
 *   st_bench batch   [N] [ROUNDS]   create N joinable threads, join all;
 *                                   round 1 cold, the median of the rest warm
 *   st_bench mem     [N] [STACK]    N threads blocked in st_sleep, stack size
 *                                   STACK bytes (0: ST's default, 64 KiB)
 *
 * Results in ns per hand-off / per thread, or KiB per thread.
 */
#include <errno.h>
#include <st.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static long pp_n;
static st_cond_t cond_a, cond_b;
static int turn;

static void *usleeper(void *arg)
{
    (void)arg;
    for (long i = 0; i < pp_n; i++)
        st_usleep(0);
    return NULL;
}

static void *cond_ping(void *arg)
{
    (void)arg;
    for (long i = 0; i < pp_n; i++) {
        turn = 1;
        st_cond_signal(cond_b);
        while (turn == 1)
            st_cond_wait(cond_a);
    }
    return NULL;
}

static void *cond_pong(void *arg)
{
    (void)arg;
    for (long i = 0; i < pp_n; i++) {
        while (turn != 1)
            st_cond_wait(cond_b);
        turn = 0;
        st_cond_signal(cond_a);
    }
    return NULL;
}

static void *nothing(void *arg)
{
    return arg;
}

static void *sleeper(void *arg)
{
    (void)arg;
    st_sleep(3600); /* interrupted long before */
    return NULL;
}

static int die(const char *what)
{
    fprintf(stderr, "st_bench: %s: %s\n", what, strerror(errno));
    return 1;
}

/* Two threads running fa and fb, joined; ns per hand-off. */
static int pingpong(const char *key, void *(*fa)(void *), void *(*fb)(void *), long n, int runs)
{
    double v[64], vc[64];
    pp_n = n;
    for (int r = 0; r < runs; r++) {
        turn = 0;
        /* pong first, so that it waits before ping's first signal */
        st_thread_t b = st_thread_create(fb, NULL, 1, 0);
        st_thread_t a = st_thread_create(fa, NULL, 1, 0);
        if (!a || !b)
            return die("st_thread_create");
        struct bench_clock t0 = bench_clock_now();
        st_thread_join(b, NULL);
        st_thread_join(a, NULL);
        bench_lap(t0, 2.0 * (double)n, &v[r], &vc[r]);
    }
    bench_report2(key, v, vc, runs, "ns/hand-off");
    return 0;
}

static int bench_spawn(long n, int runs)
{
    double v[64], vc[64];
    for (int i = 0; i < 1000; i++) {
        st_thread_t t = st_thread_create(nothing, NULL, 1, 0);
        if (!t)
            return die("st_thread_create");
        st_thread_join(t, NULL);
    }
    for (int r = 0; r < runs; r++) {
        struct bench_clock t0 = bench_clock_now();
        for (long i = 0; i < n; i++) {
            st_thread_t t = st_thread_create(nothing, NULL, 1, 0);
            if (!t)
                return die("st_thread_create");
            st_thread_join(t, NULL);
        }
        bench_lap(t0, (double)n, &v[r], &vc[r]);
    }
    bench_report2("st_spawn_seq_ns", v, vc, runs, "ns/thread");
    return 0;
}

static int bench_batch(long n, int rounds)
{
    if (rounds < 1 || rounds > 64)
        rounds = 7;
    st_thread_t *ts = malloc((size_t)n * sizeof *ts);
    if (!ts)
        return die("malloc");
    memset(ts, 0, (size_t)n * sizeof *ts);
    double v[64], vc[64];
    for (int r = 0; r < rounds; r++) {
        struct bench_clock t0 = bench_clock_now();
        for (long i = 0; i < n; i++)
            if (!(ts[i] = st_thread_create(nothing, NULL, 1, 0)))
                return die("st_thread_create");
        for (long i = 0; i < n; i++)
            st_thread_join(ts[i], NULL);
        bench_lap(t0, (double)n, &v[r], &vc[r]);
    }
    free(ts);
    bench_report_rounds("st_batch", v, vc, rounds, "ns/thread");
    return 0;
}

static int bench_mem(long n, int stack)
{
    st_thread_t *ts = malloc((size_t)n * sizeof *ts);
    if (!ts)
        return die("malloc");
    memset(ts, 0, (size_t)n * sizeof *ts);
    struct bench_mem before = bench_mem_now();
    long created = 0;
    for (; created < n; created++)
        if (!(ts[created] = st_thread_create(sleeper, NULL, 1, stack)))
            break;
    st_usleep(0); /* every new thread runs once and blocks in st_sleep */
    struct bench_mem after = bench_mem_now();
    printf("# st_mem: %ld of %ld threads, stack %s; /proc/self/maps lines %ld\n", created, n,
           stack ? "as given" : "default", bench_maps_count());
    bench_report_mem(stack ? "st_mem_stack" : "st_mem", before, after, created ? created : 1);
    for (long i = 0; i < created; i++)
        st_thread_interrupt(ts[i]);
    for (long i = 0; i < created; i++)
        st_thread_join(ts[i], NULL);
    free(ts);
    return created == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (st_init() != 0)
        return die("st_init");
    const char *mode = argc > 1 ? argv[1] : "";
    int runs = (int)bench_arg(argc, argv, 3, 5);
    if (runs < 1 || runs > 64)
        runs = 5;
    if (strcmp(mode, "usleep0") == 0)
        return pingpong("st_usleep0_ns", usleeper, usleeper, bench_arg(argc, argv, 2, 1000000), runs);
    if (strcmp(mode, "cond") == 0) {
        cond_a = st_cond_new();
        cond_b = st_cond_new();
        return pingpong("st_cond_ns", cond_ping, cond_pong, bench_arg(argc, argv, 2, 5000000), runs);
    }
    if (strcmp(mode, "spawn") == 0)
        return bench_spawn(bench_arg(argc, argv, 2, 1000000), runs);
    if (strcmp(mode, "batch") == 0)
        return bench_batch(bench_arg(argc, argv, 2, 100000), (int)bench_arg(argc, argv, 3, 7));
    if (strcmp(mode, "mem") == 0)
        return bench_mem(bench_arg(argc, argv, 2, 100000), (int)bench_arg(argc, argv, 3, 0));
    fprintf(stderr, "usage: st_bench usleep0|cond|spawn|batch|mem [N] [RUNS|ROUNDS|STACK]\n");
    return 2;
}
