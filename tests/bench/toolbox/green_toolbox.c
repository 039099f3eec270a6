/*
 * libgreen's side of the toolbox benchmarks.
 *
 *   green_toolbox queue MAXSIZE [N] [RUNS]   1 boss -> queue -> 3 workers (gevent's
 *                                            "Assigning Jobs in Queue"): items/s;
 *                                            MAXSIZE 0 = unbounded
 *   green_toolbox event [N] [RUNS]           two greenlets pass the turn through two
 *                                            Events (wait, clear, set the other's):
 *                                            ns per wake-up
 *   green_toolbox sem [N] [RUNS]             the same through two Semaphores
 *                                            (acquire, release the other's): ns per
 *                                            hand-off
 *   green_toolbox yield [N] [RUNS]           bare green_yield ping-pong: ns per switch
 *
 * In the three ping-pongs both greenlets run the same function, as in the
 * yield one, so that they compare the cost of the primitives, not where the
 * return addresses lie. Each run is timed from the first spawn to the last
 * join, on the wall clock and on the process's CPU time (KEY@cpu); the
 * results are the medians of RUNS runs. Every queue run checks that every
 * item arrived exactly once, every ping-pong that every round took place.
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

/* One run: items per second of wall clock (*cpu: per second of CPU time). */
static double queue_run(size_t maxsize, double *cpu)
{
    queue = green_queue_new(maxsize);
    memset(got, 0, sizeof got);
    memset(sum, 0, sizeof sum);
    green_t *g[1 + WORKERS];
    double t0 = tb_now(), c0 = tb_cpu();
    g[0] = green_spawn(boss, NULL);
    for (long k = 0; k < WORKERS; k++)
        g[1 + k] = green_spawn(worker, (void *)(intptr_t)k);
    if (green_joinall(g, 1 + WORKERS, GREEN_FOREVER) != 0) {
        perror("green_joinall");
        exit(1);
    }
    double dt = tb_now() - t0, dc = tb_cpu() - c0;
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
    printf("# maxsize %zu: %ld items in %.4f s (CPU %.4f s); per worker %ld %ld %ld\n", maxsize,
           n_items, dt, dc, got[0], got[1], got[2]);
    *cpu = (double)n_items / dc;
    return (double)n_items / dt;
}

/* ------------------------------------------------------------------------ */
/* Ping-pongs                                                                 */
/* ------------------------------------------------------------------------ */

static green_event_t *ev[2];
static green_sem_t *sem[2];
static long rounds[2];

/* Waits for its own event, clears it, sets the other's. */
static void *event_side(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < n_items; i++) {
        green_event_wait(ev[me], GREEN_FOREVER);
        green_event_clear(ev[me]);
        green_event_set(ev[1 - me]);
        rounds[me]++;
    }
    return NULL;
}

/* Takes its own semaphore's unit, gives the other one one. */
static void *sem_side(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < n_items; i++) {
        green_sem_acquire(sem[me], GREEN_FOREVER);
        green_sem_release(sem[1 - me]);
        rounds[me]++;
    }
    return NULL;
}

static void *yield_side(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < n_items; i++) {
        green_yield();
        rounds[me]++;
    }
    return NULL;
}

/* Two greenlets running fn: ns per hand-off (two per round). */
static double pingpong(green_fn fn, double *cpu)
{
    rounds[0] = rounds[1] = 0;
    double t0 = tb_now(), c0 = tb_cpu();
    green_t *g[2] = {green_spawn(fn, (void *)0), green_spawn(fn, (void *)1)};
    green_joinall(g, 2, GREEN_FOREVER);
    double dt = tb_now() - t0, dc = tb_cpu() - c0;
    green_release(g[0]);
    green_release(g[1]);
    if (rounds[0] != n_items || rounds[1] != n_items) {
        fprintf(stderr, "ping-pong: %ld + %ld rounds, want %ld each\n", rounds[0], rounds[1],
                n_items);
        exit(1);
    }
    *cpu = dc * 1e9 / (2.0 * (double)n_items);
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
    double v[64], c[64];
    char key[64], ckey[80];
    const char *unit = "ns per hand-off", *cunit = "CPU ns per hand-off";
    if (!strcmp(mode, "queue")) {
        for (int r = 0; r < runs; r++)
            v[r] = queue_run(maxsize, &c[r]);
        snprintf(key, sizeof key, "green_queue_%s_ips", maxsize ? "bounded" : "unbounded");
        if (maxsize && maxsize != 3)
            snprintf(key, sizeof key, "green_queue_%zu_ips", maxsize);
        unit = "items/s";
        cunit = "items per CPU second";
    } else if (!strcmp(mode, "event")) {
        ev[0] = green_event_new();
        ev[1] = green_event_new();
        green_event_set(ev[0]); /* greenlet 0 has the turn */
        for (int r = 0; r < runs; r++)
            v[r] = pingpong(event_side, &c[r]);
        green_event_free(ev[0]);
        green_event_free(ev[1]);
        snprintf(key, sizeof key, "green_event_ns");
        unit = "ns per wake-up";
        cunit = "CPU ns per wake-up";
    } else if (!strcmp(mode, "sem")) {
        sem[0] = green_sem_new(1); /* greenlet 0 has the turn */
        sem[1] = green_sem_new(0);
        for (int r = 0; r < runs; r++)
            v[r] = pingpong(sem_side, &c[r]);
        green_sem_free(sem[0]);
        green_sem_free(sem[1]);
        snprintf(key, sizeof key, "green_sem_ns");
    } else if (!strcmp(mode, "yield")) {
        for (int r = 0; r < runs; r++)
            v[r] = pingpong(yield_side, &c[r]);
        snprintf(key, sizeof key, "green_yield_pp_ns");
        unit = "ns per switch";
        cunit = "CPU ns per switch";
    } else {
        fprintf(stderr, "green_toolbox: unknown mode %s\n", mode);
        return 2;
    }
    tb_report(key, unit, v, runs);
    snprintf(ckey, sizeof ckey, "%s@cpu", key);
    tb_report(ckey, cunit, c, runs);
    return 0;
}
