/*
 * libgreen: CONC greenlets, each performing its own easy handle with
 * green_curl_perform in a loop until N transfers have finished (the hub's
 * one multi handle keeps the connections alive between them).
 *
 *   green_get URL [N] [CONC] [RUNS]
 *
 * Each run first makes one warm-up transfer per greenlet (to open the
 * keep-alive connections), then times N transfers. Prints
 * "result curl_green_rps <median requests/s>" and "result curl_green_cpu_us
 * <median CPU µs per request>", and the requests per second of its own CPU
 * time as "result curl_green_rps@cpu".
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "../core/bench.h"
#include "green_curl.h"

static long left, errors;
static size_t bytes;

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    bytes += size * nmemb;
    return size * nmemb;
}

static void *client(void *arg)
{
    CURL *e = arg;
    while (left > 0) {
        left--;
        long code = 0;
        if (green_curl_perform(e) != CURLE_OK ||
            (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code), code != 200))
            errors++;
    }
    return NULL;
}

static void run(CURL **es, green_t **gs, long conc, long n)
{
    left = n;
    for (long i = 0; i < conc; i++)
        gs[i] = green_spawn(client, es[i]);
    green_joinall(gs, (size_t)conc, -1);
    for (long i = 0; i < conc; i++)
        green_release(gs[i]);
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
        fprintf(stderr, "usage: green_get URL [N] [CONC] [RUNS]\n");
        return 2;
    }
    const char *url = argv[1];
    long n = argc > 2 ? atol(argv[2]) : 20000;
    long conc = argc > 3 ? atol(argv[3]) : 500;
    int runs = argc > 4 ? atoi(argv[4]) : 5;
    CURL **es = calloc((size_t)conc, sizeof *es);
    green_t **gs = calloc((size_t)conc, sizeof *gs);
    for (long i = 0; i < conc; i++) {
        es[i] = curl_easy_init();
        curl_easy_setopt(es[i], CURLOPT_URL, url);
        curl_easy_setopt(es[i], CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(es[i], CURLOPT_NOSIGNAL, 1L); /* as the thread pool must */
    }
    double rps[64], rps_cpu[64], cpu[64];
    if (runs > 64)
        runs = 64;
    for (int r = 0; r < runs; r++) {
        run(es, gs, conc, conc); /* warm-up: the keep-alive connections */
        errors = 0;
        double c0 = cpu_us(), t0 = bench_now_ns();
        run(es, gs, conc, n);
        double dt = (bench_now_ns() - t0) / 1e9;
        rps[r] = (double)n / dt;
        cpu[r] = (cpu_us() - c0) / (double)n;
        rps_cpu[r] = 1e6 / cpu[r];
        if (errors) {
            fprintf(stderr, "green_get: %ld failed transfers\n", errors);
            return 1;
        }
    }
    printf("# %ld GETs of %s per run, %ld greenlets, %zu bytes of bodies in all\n", n, url, conc,
           bytes);
    bench_report_runs("curl_green_rps", rps, runs, "requests/s");
    bench_report_runs("curl_green_rps@cpu", rps_cpu, runs, "requests per CPU second");
    bench_report_runs("curl_green_cpu_us", cpu, runs, "CPU us per request");
    for (long i = 0; i < conc; i++)
        curl_easy_cleanup(es[i]);
    free(es);
    free(gs);
    return 0;
}
