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
 * Runs and results as client.h says, under the key "raw".
 */
#include <ev.h>

#include "client.h"

struct sock {
    ev_io io;
    curl_socket_t fd;
};

static struct ev_loop *loop;
static CURLM *multi;
static ev_timer timer;
static long started, finished, target;

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

/* Re-adds every finished handle while transfers remain to start. */
static void check_done(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        curl_client_done(e, m->data.result);
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
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, conc * 2);
    started = finished = 0;
    target = n;
    for (long i = 0; i < conc && started < target; i++) {
        started++;
        curl_multi_add_handle(multi, es[i]);
    }
    ev_run(loop, 0);
}

int main(int argc, char **argv)
{
    loop = ev_default_loop(0);
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    ev_init(&timer, timer_ev_cb);
    int rc = curl_client_main(argc, argv, "raw_multi", "raw", "handles at once", 500, run);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return rc;
}
