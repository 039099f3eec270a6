/*
 * libgreen's side of the toolbox benchmarks.
 *
 *   green_toolbox queue MAXSIZE [N] [RUNS]   1 boss -> queue -> 3 workers (gevent's
 *                                            "Assigning Jobs in Queue"): items/s;
 *                                            MAXSIZE 0 = unbounded
 *   green_toolbox event [N] [RUNS]           two greenlets hand off through two
 *                                            Events (set, wait, clear): ns per wake-up
 *   green_toolbox sem [N] [RUNS]             the same through two Semaphores
 *                                            (release, acquire): ns per hand-off
 *   green_toolbox yield [N] [RUNS]           bare green_yield ping-pong: ns per switch
 *
 * Each run is timed from the first spawn to the last join; the result is the
 * median of RUNS runs. Every run checks that every item arrived exactly once.
 */
#include <green.h>
#include <stdint.h>

#include "tb.h"

#define WORKERS 3

static long n_items;

/* ------------------------------------------------------------------------ */
/* Boss and workers                                                           */
/* ------------------------------------------------------------------------ */

static green_queue_t *queue;
static long got[WORKERS];
static unsigned long long sum[WORKERS];

static void *boss(void *arg)
{
    (void)arg;
    for (long i = 1; i <= n_items; i++)
        if (green_queue_put(queue, (void *)(uintptr_t)i, GREEN_FOREVER) != 0) {
            perror("green_queue_put");
            exit(1);
        }
    green_queue_close(queue); /* the workers drain it, then get EPIPE */
    return NULL;
}

static void *worker(void *arg)
{
    long k = (long)(intptr_t)arg;
    void *item;
    while (green_queue_get(queue, &item, GREEN_FOREVER) == 0) {
        got[k]++;
        sum[k] += (uintptr_t)item;
    }
    return NULL;
}

static double queue_run(size_t maxsize)
{
    queue = green_queue_new(maxsize);
    memset(got, 0, sizeof got);
    memset(sum, 0, sizeof sum);
    green_t *g[1 + WORKERS];
    double t0 = tb_now();
    g[0] = green_spawn(boss, NULL);
    for (long k = 0; k < WORKERS; k++)
        g[1 + k] = green_spawn(worker, (void *)(intptr_t)k);
    if (green_joinall(g, 1 + WORKERS, GREEN_FOREVER) != 0) {
        perror("green_joinall");
        exit(1);
    }
    double dt = tb_now() - t0;
    long total = 0;
    unsigned long long s = 0;
    for (int k = 0; k < WORKERS; k++) {
        total += got[k];
        s += sum[k];
        green_release(g[1 + k]);
    }
    green_release(g[0]);
    green_queue_free(queue);
    if (total != n_items || s != (unsigned long long)n_items * (n_items + 1) / 2) {
        fprintf(stderr, "queue: %ld items arrived, want %ld (or a wrong sum)\n", total, n_items);
        exit(1);
    }
    printf("# maxsize %zu: %ld items in %.4f s; per worker %ld %ld %ld\n", maxsize, n_items, dt,
           got[0], got[1], got[2]);
    return (double)n_items / dt;
}

/* ------------------------------------------------------------------------ */
/* Ping-pongs                                                                 */
/* ------------------------------------------------------------------------ */

static green_event_t *ev_a, *ev_b;
static green_sem_t *sem_a, *sem_b;
static long rounds_done;

static void *event_ping(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_items; i++) {
        green_event_set(ev_b);
        green_event_wait(ev_a, GREEN_FOREVER);
        green_event_clear(ev_a);
    }
    return NULL;
}

static void *event_pong(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_items; i++) {
        green_event_wait(ev_b, GREEN_FOREVER);
        green_event_clear(ev_b);
        green_event_set(ev_a);
        rounds_done++;
    }
    return NULL;
}

static void *sem_ping(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_items; i++) {
        green_sem_release(sem_b);
        green_sem_acquire(sem_a, GREEN_FOREVER);
    }
    return NULL;
}

static void *sem_pong(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_items; i++) {
        green_sem_acquire(sem_b, GREEN_FOREVER);
        green_sem_release(sem_a);
        rounds_done++;
    }
    return NULL;
}

static void *yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_items; i++)
        green_yield();
    __atomic_add_fetch(&rounds_done, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* Two greenlets; ns per hand-off (2 per round). */
static double pingpong(green_fn a, green_fn b)
{
    rounds_done = 0;
    double t0 = tb_now();
    green_t *g[2] = {green_spawn(a, NULL), green_spawn(b, NULL)};
    green_joinall(g, 2, GREEN_FOREVER);
    double dt = tb_now() - t0;
    green_release(g[0]);
    green_release(g[1]);
    if (a != yielder && rounds_done != n_items) {
        fprintf(stderr, "ping-pong: %ld rounds, want %ld\n", rounds_done, n_items);
        exit(1);
    }
    return dt * 1e9 / (2.0 * (double)n_items);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "queue";
    int arg = 2;
    size_t maxsize = 0;
    if (!strcmp(mode, "queue"))
        maxsize = argc > arg ? strtoul(argv[arg++], NULL, 10) : 3;
    n_items = argc > arg ? atol(argv[arg++]) : 200000;
    int runs = argc > arg ? atoi(argv[arg++]) : 5;
    if (runs < 1 || runs > 64 || n_items < 1) {
        fprintf(stderr, "usage: green_toolbox queue MAXSIZE|event|sem|yield [N] [RUNS<=64]\n");
        return 2;
    }
    double v[64];
    char key[64];
    if (!strcmp(mode, "queue")) {
        for (int r = 0; r < runs; r++)
            v[r] = queue_run(maxsize);
        snprintf(key, sizeof key, "green_queue_%s_ips", maxsize ? "bounded" : "unbounded");
        if (maxsize && maxsize != 3)
            snprintf(key, sizeof key, "green_queue_%zu_ips", maxsize);
        tb_report(key, "items/s", v, runs);
    } else if (!strcmp(mode, "event")) {
        ev_a = green_event_new();
        ev_b = green_event_new();
        for (int r = 0; r < runs; r++)
            v[r] = pingpong(event_ping, event_pong);
        tb_report("green_event_ns", "ns per wake-up", v, runs);
        green_event_free(ev_a);
        green_event_free(ev_b);
    } else if (!strcmp(mode, "sem")) {
        sem_a = green_sem_new(0);
        sem_b = green_sem_new(0);
        for (int r = 0; r < runs; r++)
            v[r] = pingpong(sem_ping, sem_pong);
        tb_report("green_sem_ns", "ns per hand-off", v, runs);
        green_sem_free(sem_a);
        green_sem_free(sem_b);
    } else if (!strcmp(mode, "yield")) {
        for (int r = 0; r < runs; r++)
            v[r] = pingpong(yielder, yielder);
        tb_report("green_yield_pp_ns", "ns per switch", v, runs);
    } else {
        fprintf(stderr, "green_toolbox: unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
