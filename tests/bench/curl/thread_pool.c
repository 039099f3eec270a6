/*
 * The blocking peer: a pool of THREADS OS threads (16), each reusing its own
 * easy handle (so its keep-alive connection) with curl_easy_perform in a
 * loop until N transfers have finished in all.
 *
 *   thread_pool URL [N] [THREADS] [RUNS]
 *
 * Each run first makes one warm-up transfer per thread, then times N.
 * Prints "result curl_threads_rps <median requests/s>" and
 * "result curl_threads_cpu_us <median CPU µs per request>" (all threads),
 * and the requests per second of its CPU time as "result
 * curl_threads_rps@cpu".
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "../core/bench.h"

static atomic_long left, errors;
static atomic_size_t bytes;

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    atomic_fetch_add(&bytes, size * nmemb);
    return size * nmemb;
}

static void *worker(void *arg)
{
    CURL *e = arg;
    while (atomic_fetch_sub(&left, 1) > 0) {
        long code = 0;
        if (curl_easy_perform(e) != CURLE_OK ||
            (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code), code != 200))
            atomic_fetch_add(&errors, 1);
    }
    return NULL;
}

static void run(CURL **es, long nthreads, long n)
{
    pthread_t *ts = calloc((size_t)nthreads, sizeof *ts);
    atomic_store(&left, n);
    for (long i = 0; i < nthreads; i++)
        pthread_create(&ts[i], NULL, worker, es[i]);
    for (long i = 0; i < nthreads; i++)
        pthread_join(ts[i], NULL);
    free(ts);
}

static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: thread_pool URL [N] [THREADS] [RUNS]\n");
        return 2;
    }
    const char *url = argv[1];
    long n = argc > 2 ? atol(argv[2]) : 20000;
    long nthreads = argc > 3 ? atol(argv[3]) : 16;
    int runs = argc > 4 ? atoi(argv[4]) : 5;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL **es = calloc((size_t)nthreads, sizeof *es);
    for (long i = 0; i < nthreads; i++) {
        es[i] = curl_easy_init();
        curl_easy_setopt(es[i], CURLOPT_URL, url);
        curl_easy_setopt(es[i], CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(es[i], CURLOPT_NOSIGNAL, 1L); /* required with threads */
    }
    double rps[64], rps_cpu[64], cpu[64];
    if (runs > 64)
        runs = 64;
    for (int r = 0; r < runs; r++) {
        run(es, nthreads, nthreads); /* warm-up: the keep-alive connections */
        atomic_store(&errors, 0);
        double c0 = cpu_us(), t0 = bench_now_ns();
        run(es, nthreads, n);
        double dt = (bench_now_ns() - t0) / 1e9;
        rps[r] = (double)n / dt;
        cpu[r] = (cpu_us() - c0) / (double)n;
        rps_cpu[r] = 1e6 / cpu[r];
        if (atomic_load(&errors)) {
            fprintf(stderr, "thread_pool: %ld failed transfers\n", atomic_load(&errors));
            return 1;
        }
    }
    printf("# %ld GETs of %s per run, %ld threads, %zu bytes of bodies in all\n", n, url,
           nthreads, atomic_load(&bytes));
    bench_report_runs("curl_threads_rps", rps, runs, "requests/s");
    bench_report_runs("curl_threads_rps@cpu", rps_cpu, runs, "requests per CPU second");
    bench_report_runs("curl_threads_cpu_us", cpu, runs, "CPU us per request");
    for (long i = 0; i < nthreads; i++)
        curl_easy_cleanup(es[i]);
    free(es);
    curl_global_cleanup();
    return 0;
}
