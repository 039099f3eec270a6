/*
 * What the curl suite's three clients share: the arguments, the easy
 * handles, the timed runs and the report. A client supplies
 *
 *   run(es, conc, n)   N transfers, CONC of the handles es[] at once
 *
 * counts a finished transfer with curl_client_done(easy, result), and calls
 * curl_client_main from main. Each run first makes one transfer per handle
 * (opening the keep-alive connections), then times N. Prints
 * "result curl_<key>_rps", "result curl_<key>_rps@cpu" (requests per second
 * of the process's CPU time, all threads) and "result curl_<key>_cpu_us"
 * (CPU µs per request), medians over RUNS, and as a comment the time the
 * client's threads spent runnable but waiting for a CPU (schedstat): for a
 * one-thread client, the wall time that other processes on its CPU took
 * from it (as opposed to waiting for the network); summed over the pool's
 * threads, it also counts their waits behind one another. KEY, when given,
 * replaces the client's own key (a second configuration of one client in
 * the same suite).
 *
 *   <name> URL [N] [CONC] [RUNS] [KEY]
 */
#ifndef CURL_BENCH_CLIENT_H
#define CURL_BENCH_CLIENT_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "../core/bench.h"

/* Atomic: the thread pool's workers count from several threads. */
static atomic_long curl_client_errors;
static atomic_size_t curl_client_bytes;

static size_t curl_client_write(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    atomic_fetch_add(&curl_client_bytes, size * nmemb);
    return size * nmemb;
}

/* A transfer has finished with rc: anything but a 200 is a failure. */
static inline void curl_client_done(CURL *e, CURLcode rc)
{
    long code = 0;
    if (rc != CURLE_OK || (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code), code != 200))
        atomic_fetch_add(&curl_client_errors, 1);
}

/* Nanoseconds the calling thread has waited for a CPU while runnable
 * (/proc/thread-self/schedstat, second field); 0 where unavailable. */
static inline long long curl_client_runq_ns(void)
{
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    long long run = 0, wait = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lld %lld", &run, &wait) != 2)
        wait = 0;
    fclose(f);
    return wait;
}

/* Run-queue waits of threads that end during a timed run (the pool's
 * workers), added by each from its own start and end readings. */
static atomic_llong curl_client_runq_threads;

static inline double curl_client_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* conc_what names the CONC argument in the usage and report ("greenlets"). */
static inline int curl_client_main(int argc, char **argv, const char *name, const char *key,
                                   const char *conc_what, long conc_default,
                                   void (*run)(CURL **es, long conc, long n))
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s URL [N] [CONC] [RUNS] [KEY]\n", name);
        return 2;
    }
    const char *url = argv[1];
    long n = bench_arg(argc, argv, 2, 20000);
    long conc = bench_arg(argc, argv, 3, conc_default);
    int runs = (int)bench_arg(argc, argv, 4, 5);
    if (runs > 64)
        runs = 64;
    if (argc > 5)
        key = argv[5];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL **es = calloc((size_t)conc, sizeof *es);
    for (long i = 0; i < conc; i++) {
        es[i] = curl_easy_init();
        curl_easy_setopt(es[i], CURLOPT_URL, url);
        curl_easy_setopt(es[i], CURLOPT_WRITEFUNCTION, curl_client_write);
        curl_easy_setopt(es[i], CURLOPT_NOSIGNAL, 1L); /* as the thread pool must */
    }
    double rps[64], rps_cpu[64], cpu[64], runq_ms[64], wall_ms[64];
    for (int r = 0; r < runs; r++) {
        run(es, conc, conc); /* warm-up: the keep-alive connections */
        atomic_store(&curl_client_errors, 0);
        atomic_store(&curl_client_runq_threads, 0);
        long long q0 = curl_client_runq_ns();
        double c0 = curl_client_cpu_us(), t0 = bench_now_ns();
        run(es, conc, n);
        double dt = (bench_now_ns() - t0) / 1e9;
        runq_ms[r] = (double)(curl_client_runq_ns() - q0 + atomic_load(&curl_client_runq_threads)) / 1e6;
        wall_ms[r] = dt * 1e3;
        rps[r] = (double)n / dt;
        cpu[r] = (curl_client_cpu_us() - c0) / (double)n;
        rps_cpu[r] = 1e6 / cpu[r];
        if (atomic_load(&curl_client_errors)) {
            fprintf(stderr, "%s: %ld failed transfers\n", name, atomic_load(&curl_client_errors));
            return 1;
        }
    }
    printf("# %ld GETs of %s per run, %ld %s, %zu bytes of bodies in all\n", n, url, conc,
           conc_what, atomic_load(&curl_client_bytes));
    printf("# run-queue wait (runnable, no CPU; summed over threads), ms / wall ms of each run:");
    for (int r = 0; r < runs; r++)
        printf(" %.0f/%.0f", runq_ms[r], wall_ms[r]);
    printf("\n");
    char k[64];
    snprintf(k, sizeof k, "curl_%s_rps", key);
    bench_report_runs(k, rps, runs, "requests/s");
    snprintf(k, sizeof k, "curl_%s_rps@cpu", key);
    bench_report_runs(k, rps_cpu, runs, "requests per CPU second");
    snprintf(k, sizeof k, "curl_%s_cpu_us", key);
    bench_report_runs(k, cpu, runs, "CPU us per request");
    for (long i = 0; i < conc; i++)
        curl_easy_cleanup(es[i]);
    free(es);
    return 0;
}

#endif
