/*
 * libgreen through its public API: the scheduler, spawn and join, and the
 * memory a blocked greenlet costs.
 *
 *   green_bench yield    [N] [RUNS]    two greenlets ping-pong with green_yield:
 *                                      ns per yield (one hand-off)
 *   green_bench spawn    [N] [RUNS]    spawn + run + join, one at a time, warm:
 *                                      ns per greenlet
 *   green_bench batch    [N] [ROUNDS]  spawn N, then green_joinall; round 1 is
 *                                      cold (fresh stacks: page faults), the
 *                                      others warm; ns per greenlet
 *   green_bench mem      [N]           N greenlets blocked in green_sleep, default
 *                                      stack: KiB per greenlet (VmRSS, VmSize, VmPTE)
 *   green_bench million  [N] [exit]    N (default 1,000,000) concurrent greenlets
 *                                      blocked in green_sleep: succeeds or not,
 *                                      map count at peak, KiB per greenlet
 *
 * Every greenlet is killed, joined and released before the program exits, so
 * the figures come from a program that ends clean; except with "exit" after
 * million, which ends the process once the figures are printed. On these VMs
 * a pass that touches a million greenlet stacks again costs about as much as
 * creating them did (minutes when the machine is busy), and `make bench` has
 * a time budget; the 100,000 of "mem" are always killed and joined.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "green.h"

static long yield_n;

static void *yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < yield_n; i++)
        green_yield();
    return NULL;
}

static void *nothing(void *arg)
{
    return arg;
}

static void *sleeper(void *arg)
{
    (void)arg;
    green_sleep(3600); /* killed long before */
    return NULL;
}

static int die(const char *what)
{
    fprintf(stderr, "green_bench: %s: %s\n", what, strerror(errno));
    return 1;
}

static int bench_yield(long n, int runs)
{
    double v[64], vc[64];
    yield_n = n;
    for (int r = 0; r < runs; r++) {
        green_t *a = green_spawn(yielder, NULL), *b = green_spawn(yielder, NULL);
        if (!a || !b)
            return die("spawn");
        green_t *both[2] = {a, b};
        /* The clock starts before the join lets them run: the two first
         * switches and the two exits are noise over 2N yields. */
        struct bench_clock t0 = bench_clock_now();
        if (green_joinall(both, 2, GREEN_FOREVER) != 0)
            return die("joinall");
        bench_lap(t0, 2.0 * (double)n, &v[r], &vc[r]);
        green_release(a);
        green_release(b);
    }
    bench_report2("green_yield_ns", v, vc, runs, "ns/yield");
    return 0;
}

static int bench_spawn(long n, int runs)
{
    double v[64], vc[64];
    /* Warm: the first spawn creates the hub and a stack; a few more put
     * everything in the caches the loop will hit. */
    for (int i = 0; i < 1000; i++) {
        green_t *g = green_spawn(nothing, NULL);
        if (!g || green_join(g, GREEN_FOREVER) != 0)
            return die("warm-up");
        green_release(g);
    }
    for (int r = 0; r < runs; r++) {
        struct bench_clock t0 = bench_clock_now();
        for (long i = 0; i < n; i++) {
            green_t *g = green_spawn(nothing, NULL);
            if (!g)
                return die("spawn");
            green_join(g, GREEN_FOREVER);
            green_release(g);
        }
        bench_lap(t0, (double)n, &v[r], &vc[r]);
    }
    bench_report2("green_spawn_seq_ns", v, vc, runs, "ns/greenlet");
    return 0;
}

static int bench_batch(long n, int rounds)
{
    if (rounds < 1 || rounds > 64)
        rounds = 7;
    green_t **gs = malloc((size_t)n * sizeof *gs);
    if (!gs)
        return die("malloc");
    memset(gs, 0, (size_t)n * sizeof *gs);
    green_current(); /* the hub: not part of round 1 */
    double v[64], vc[64];
    for (int r = 0; r < rounds; r++) {
        struct bench_clock t0 = bench_clock_now();
        for (long i = 0; i < n; i++)
            if (!(gs[i] = green_spawn(nothing, NULL)))
                return die("spawn");
        if (green_joinall(gs, (size_t)n, GREEN_FOREVER) != 0)
            return die("joinall");
        bench_lap(t0, (double)n, &v[r], &vc[r]);
        for (long i = 0; i < n; i++)
            green_release(gs[i]);
    }
    free(gs);
    bench_report_rounds("green_batch", v, vc, rounds, "ns/greenlet");
    return 0;
}

/* Spawns n sleepers, lets every one of them block, and measures. */
static int bench_sleepers(long n, const char *prefix, int million, int clean)
{
    green_t **gs = malloc((size_t)n * sizeof *gs);
    if (!gs)
        return die("malloc");
    memset(gs, 0, (size_t)n * sizeof *gs); /* touched now: not in the delta */
    green_current();
    struct bench_mem before = bench_mem_now();
    long maps_before = bench_maps_count();
    struct bench_clock t0 = bench_clock_now();
    long spawned = 0;
    for (; spawned < n; spawned++)
        if (!(gs[spawned] = green_spawn(sleeper, NULL)))
            break;
    int spawn_errno = errno;
    /* One yield runs every ready greenlet once: each blocks in its sleep. */
    green_yield();
    double wall_s, cpu_s;
    bench_lap(t0, 1e9, &wall_s, &cpu_s);
    size_t alive = green_count();
    struct bench_mem after = bench_mem_now();
    long maps = bench_maps_count();
    double each = 1e9 / (double)(spawned ? spawned : 1);
    printf("# %s: spawned %ld of %ld, %zu alive and blocked, in %.2f s (%.0f ns each), "
           "CPU time %.2f s (%.0f ns each)\n",
           prefix, spawned, n, alive, wall_s, wall_s * each, cpu_s, cpu_s * each);
    if (spawned < n)
        printf("# %s: spawn %ld failed: %s\n", prefix, spawned, strerror(spawn_errno));
    printf("# %s: /proc/self/maps lines %ld before, %ld at peak; vm.max_map_count %ld\n", prefix,
           maps_before, maps, bench_max_map_count());
    bench_report_mem(prefix, before, after, spawned ? spawned : 1);
    if (million) {
        bench_result("green_million_ok", spawned == n && (long)alive == n);
        bench_result("green_million_maps", (double)maps);
        bench_result("green_million_max_map_count", (double)bench_max_map_count());
        bench_result("green_million_spawn_s", wall_s);
        bench_result("green_million_spawn_s@cpu", cpu_s);
    }
    if (!clean) {
        printf("# %s: exiting without killing them (\"exit\")\n", prefix);
        fflush(stdout);
        _exit(spawned == n ? 0 : 1);
    }
    /* Clean end: kill and join every one. */
    double k0 = bench_now_ns();
    if (green_killall(gs, (size_t)spawned, GREEN_FOREVER) != 0)
        return die("killall");
    printf("# %s: killall + join of %ld took %.2f s\n", prefix, spawned, (bench_now_ns() - k0) / 1e9);
    for (long i = 0; i < spawned; i++)
        green_release(gs[i]);
    free(gs);
    return spawned == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    int runs = (int)bench_arg(argc, argv, 3, 5);
    if (runs < 1 || runs > 64)
        runs = 5;
    if (strcmp(mode, "yield") == 0)
        return bench_yield(bench_arg(argc, argv, 2, 5000000), runs);
    if (strcmp(mode, "spawn") == 0)
        return bench_spawn(bench_arg(argc, argv, 2, 1000000), runs);
    if (strcmp(mode, "batch") == 0)
        return bench_batch(bench_arg(argc, argv, 2, 100000), (int)bench_arg(argc, argv, 3, 7));
    if (strcmp(mode, "mem") == 0)
        return bench_sleepers(bench_arg(argc, argv, 2, 100000), "green_mem", 0, 1);
    if (strcmp(mode, "million") == 0)
        return bench_sleepers(bench_arg(argc, argv, 2, 1000000), "green_million", 1,
                              !(argc > 3 && strcmp(argv[3], "exit") == 0));
    fprintf(stderr, "usage: green_bench yield|spawn|batch|mem|million [N] [RUNS|exit]\n");
    return 2;
}
