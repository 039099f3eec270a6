/*
 * Helpers shared by the C and C++ core benchmarks: a monotonic clock, the
 * median of repeated runs, /proc/self readings, and the one output format
 * suite_core.sh parses.
 *
 * Every figure a program reports is one line
 *
 *     result <key> <value>
 *
 * and everything else it prints (runs, sanity checks) starts with '#', so
 * the suite can show it as detail without parsing it.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The same clock in integer nanoseconds: no floating point, so reading it
 * leaves the MXCSR sticky flags alone (the MXCSR benchmarks depend on it). */
static inline long long bench_now_int(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0..n); sorts a copy so that the runs can still be shown in
 * the order they ran. */
static inline double bench_median(const double *v, int n)
{
    double s[64];
    if (n > 64)
        n = 64;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* CPU time of the whole process, in integer nanoseconds. When other
 * processes share the CPU, wall-clock figures grow with the time they take;
 * CPU time does not, so every timed figure is reported both ways ("KEY" and
 * "KEY@cpu") and the suite shows the CPU-time ratio beside the wall-clock
 * one. */
static inline long long bench_cpu_int(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Both clocks at once; integers only (see bench_now_int). */
struct bench_clock {
    long long wall, cpu;
};

static inline struct bench_clock bench_clock_now(void)
{
    struct bench_clock c;
    c.wall = bench_now_int();
    c.cpu = bench_cpu_int();
    return c;
}

/* Ends a run started at t0 that did `ops` operations: ns per operation. */
static inline void bench_lap(struct bench_clock t0, double ops, double *wall, double *cpu)
{
    struct bench_clock t1 = bench_clock_now();
    *wall = (double)(t1.wall - t0.wall) / ops;
    *cpu = (double)(t1.cpu - t0.cpu) / ops;
}

/* Prints the runs as a detail line and the median as the result. */
static inline void bench_report_runs(const char *key, const double *v, int n, const char *unit)
{
    printf("# %s runs (%s):", key, unit);
    for (int i = 0; i < n; i++)
        printf(" %.2f", v[i]);
    printf("\n");
    printf("result %s %.3f\n", key, bench_median(v, n));
    fflush(stdout);
}

static inline void bench_result(const char *key, double value)
{
    printf("result %s %.3f\n", key, value);
    fflush(stdout);
}

/* Wall-clock and CPU-time runs: "KEY" and "KEY@cpu". */
static inline void bench_report2(const char *key, const double *wall, const double *cpu, int n,
                                 const char *unit)
{
    char k[128];
    bench_report_runs(key, wall, n, unit);
    snprintf(k, sizeof k, "%s@cpu", key);
    bench_report_runs(k, cpu, n, unit);
}

/* Rounds of a batch: round 1 is cold, the median of the rest is warm. */
static inline void bench_report_rounds(const char *prefix, const double *wall, const double *cpu,
                                       int rounds, const char *unit)
{
    char k[128];
    printf("# %s rounds (%s):", prefix, unit);
    for (int r = 0; r < rounds; r++)
        printf(" %.1f", wall[r]);
    printf("\n# %s rounds, CPU time (%s):", prefix, unit);
    for (int r = 0; r < rounds; r++)
        printf(" %.1f", cpu[r]);
    printf("\n");
    snprintf(k, sizeof k, "%s_cold_ns", prefix);
    bench_result(k, wall[0]);
    snprintf(k, sizeof k, "%s_cold_ns@cpu", prefix);
    bench_result(k, cpu[0]);
    if (rounds > 1) {
        snprintf(k, sizeof k, "%s_warm_ns", prefix);
        bench_result(k, bench_median(wall + 1, rounds - 1));
        snprintf(k, sizeof k, "%s_warm_ns@cpu", prefix);
        bench_result(k, bench_median(cpu + 1, rounds - 1));
    }
}

/* A "Vm...:  1234 kB" field of /proc/self/status, in KiB; -1 if absent. */
static inline long bench_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    size_t len = strlen(field);
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            v = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* Lines of /proc/self/maps: the mappings this process holds, which the
 * kernel bounds by vm.max_map_count. */
static inline long bench_maps_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        if (c == '\n')
            n++;
    fclose(f);
    return n;
}

static inline long bench_max_map_count(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* A snapshot of the memory figures the RSS benchmarks compare. */
struct bench_mem {
    long rss, size, pte; /* KiB */
};

static inline struct bench_mem bench_mem_now(void)
{
    struct bench_mem m;
    m.rss = bench_status_kib("VmRSS");
    m.size = bench_status_kib("VmSize");
    m.pte = bench_status_kib("VmPTE");
    return m;
}

/* Reports (after - before) / n for each figure, in KiB per coroutine. */
static inline void bench_report_mem(const char *prefix, struct bench_mem before,
                                    struct bench_mem after, long n)
{
    char key[128];
    printf("# %s: VmRSS %ld -> %ld KiB, VmSize %ld -> %ld KiB, VmPTE %ld -> %ld KiB, n=%ld\n",
           prefix, before.rss, after.rss, before.size, after.size, before.pte, after.pte, n);
    snprintf(key, sizeof key, "%s_rss_kib", prefix);
    bench_result(key, (double)(after.rss - before.rss) / (double)n);
    snprintf(key, sizeof key, "%s_vmsize_kib", prefix);
    bench_result(key, (double)(after.size - before.size) / (double)n);
    snprintf(key, sizeof key, "%s_pte_kib", prefix);
    bench_result(key, (double)(after.pte - before.pte) / (double)n);
}

/* Reads an integer argument, or a default. */
static inline long bench_arg(int argc, char **argv, int i, long def)
{
    return argc > i ? strtol(argv[i], NULL, 10) : def;
}

#if defined(__SSE__)
#include <xmmintrin.h>
/*
 * The raw-switch ping-pongs (arch_switch.c, ucontext_switch.c): times `runs`
 * calls of pingpong(n), n round trips of two switches each, and fills v and
 * vc (at most 64) with wall and CPU ns per switch. Main's MXCSR sticky flags
 * are cleared before each run, and no floating point runs inside one (it
 * would set them again and change what is measured). Returns main's MXCSR
 * as the last run left it.
 */
static inline unsigned bench_switch_runs(void (*pingpong)(long n), long n, int runs, double *v,
                                         double *vc)
{
    unsigned main_mxcsr = 0;
    long long dt[64], dc[64];
    for (int r = 0; r < runs && r < 64; r++) {
        _mm_setcsr(_mm_getcsr() & ~0x3fu);
        long long c0 = bench_cpu_int();
        long long t0 = bench_now_int();
        pingpong(n);
        long long t1 = bench_now_int();
        long long c1 = bench_cpu_int();
        main_mxcsr = _mm_getcsr();
        dt[r] = t1 - t0;
        dc[r] = c1 - c0;
    }
    for (int r = 0; r < runs && r < 64; r++) {
        v[r] = (double)dt[r] / (2.0 * (double)n);
        vc[r] = (double)dc[r] / (2.0 * (double)n);
    }
    return main_mxcsr;
}
#endif

#endif
