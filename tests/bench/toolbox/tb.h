/*
 * Helpers for the toolbox benchmark programs (tests/bench/toolbox/): a
 * monotonic clock, the median of repeated runs, and the output format
 * suite_toolbox.sh parses:
 *
 *     result <key> <value>      a figure (the median of the runs)
 *     result <key>@cpu <value>  the same figure on the process's CPU time
 *     # ...                     anything else: details, shown as is
 */
#ifndef TB_H
#define TB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double tb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The process's CPU time: unlike the wall clock, it does not grow while
 * other processes run on the CPU (figures reported as KEY@cpu). */
static inline double tb_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int tb_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Prints every run (in the order they ran) and their median as the result. */
static inline void tb_report(const char *key, const char *unit, const double *v, int n)
{
    double s[64];
    if (n > 64)
        n = 64;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, tb_cmp);
    double median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    printf("# %s runs (%s):", key, unit);
    for (int i = 0; i < n; i++)
        printf(" %.4g", v[i]);
    printf("\nresult %s %.6g\n", key, median);
    fflush(stdout);
}

#endif
