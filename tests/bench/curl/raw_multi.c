/*
 * The floor for green_curl_perform: a raw curl_multi_socket_action loop on
 * libev, with no greenlets at all. CONC easy handles, each re-added to the
 * multi as soon as its transfer is done, until N transfers have finished.
 * libev's ev_io callbacks call curl_multi_socket_action directly, curl's
 * socket and timer callbacks drive ev_io / ev_timer watchers: what any
 * hand-written libev + libcurl program does.
 *
 *   raw_multi URL [N] [CONC] [RUNS]
 *
 * Each run first makes one warm-up transfer per handle (to open the
 * keep-alive connections), then times N transfers. Prints
 * "result curl_raw_rps <median requests/s>" and "result curl_raw_cpu_us
 * <median CPU µs per request>", and the requests per second of its own CPU
 * time as "result curl_raw_rps@cpu".
 */
#include <curl/curl.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "../core/bench.h"

struct sock {
    ev_io io;
    curl_socket_t fd;
};

static struct ev_loop *loop;
static CURLM *multi;
static ev_timer timer;
static long started, finished, target, errors;
static size_t bytes;

static void check_done(void);

static void io_cb(struct ev_loop *l, ev_io *w, int revents)
{
    (void)l;
    struct sock *s = (struct sock *)w;
    int ev = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(multi, s->fd, ev, &running);
    check_done();
}

static void timer_ev_cb(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
    int running;
    curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done();
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    (void)userp;
    struct sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(loop, &s->io);
            free(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        s->fd = fd;
        ev_init(&s->io, io_cb);
        curl_multi_assign(multi, fd, s);
    }
    int ev = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (ev_is_active(&s->io) && (s->io.events & (EV_READ | EV_WRITE)) == ev)
        return 0;
    ev_io_stop(loop, &s->io);
    ev_io_set(&s->io, fd, ev);
    ev_io_start(loop, &s->io);
    return 0;
}

static int timer_cb(CURLM *m, long ms, void *userp)
{
    (void)m;
    (void)userp;
    ev_timer_stop(loop, &timer);
    if (ms >= 0) {
        ev_now_update(loop);
        ev_timer_set(&timer, (double)ms / 1000.0, 0.);
        ev_timer_start(loop, &timer);
    }
    return 0;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    bytes += size * nmemb;
    return size * nmemb;
}

/* Re-adds every finished handle while transfers remain to start. */
static void check_done(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        long code = 0;
        if (m->data.result != CURLE_OK ||
            (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code), code != 200))
            errors++;
        curl_multi_remove_handle(multi, e);
        finished++;
        if (started < target) {
            started++;
            curl_multi_add_handle(multi, e);
        }
    }
    if (finished == target)
        ev_break(loop, EVBREAK_ALL);
}

static void run(CURL **es, long conc, long n)
{
    started = finished = 0;
    target = n;
    for (long i = 0; i < conc && started < target; i++) {
        started++;
        curl_multi_add_handle(multi, es[i]);
    }
    ev_run(loop, 0);
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
        fprintf(stderr, "usage: raw_multi URL [N] [CONC] [RUNS]\n");
        return 2;
    }
    const char *url = argv[1];
    long n = argc > 2 ? atol(argv[2]) : 20000;
    long conc = argc > 3 ? atol(argv[3]) : 500;
    int runs = argc > 4 ? atoi(argv[4]) : 5;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    loop = ev_default_loop(0);
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, conc * 2);
    ev_init(&timer, timer_ev_cb);
    CURL **es = calloc((size_t)conc, sizeof *es);
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
        run(es, conc, conc); /* warm-up: the keep-alive connections */
        errors = 0;
        double c0 = cpu_us(), t0 = bench_now_ns();
        run(es, conc, n);
        double dt = (bench_now_ns() - t0) / 1e9;
        rps[r] = (double)n / dt;
        cpu[r] = (cpu_us() - c0) / (double)n;
        rps_cpu[r] = 1e6 / cpu[r];
        if (errors) {
            fprintf(stderr, "raw_multi: %ld failed transfers\n", errors);
            return 1;
        }
    }
    printf("# %ld GETs of %s per run, %ld handles at once, %zu bytes of bodies in all\n", n, url,
           conc, bytes);
    bench_report_runs("curl_raw_rps", rps, runs, "requests/s");
    bench_report_runs("curl_raw_rps@cpu", rps_cpu, runs, "requests per CPU second");
    bench_report_runs("curl_raw_cpu_us", cpu, runs, "CPU us per request");
    for (long i = 0; i < conc; i++)
        curl_easy_cleanup(es[i]);
    free(es);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return 0;
}
