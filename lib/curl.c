/*
 * HTTP through libcurl's multi interface, driven by the hub.
 *
 * GENERAL NOTES
 *
 * Each hub (OS thread) has one CURLM, created on the first transfer and kept
 * in a thread-local pointer, so connections and DNS results are reused by
 * every transfer of that hub (they live in the multi handle's caches). The
 * multi is driven the multi_socket way: curl's socket callback maps each of
 * its sockets to an ev_io watcher on the hub's loop, its timer callback to
 * one ev_timer. Nothing polls and no thread is used per transfer.
 *
 * The libev callbacks run on the hub greenlet's stack, where nothing may
 * block; the transfers' own callbacks (write, read, header, progress...)
 * must run on a greenlet's stack. So the libev callbacks only record what
 * happened (the socket's events, "timer expired") and wake the hub's curl
 * driver: a greenlet that calls curl_multi_socket_action for each recorded
 * event and reads the finished transfers with curl_multi_info_read. Every
 * call that can run a transfer's callbacks is the driver's, so they all run
 * on its stack. When no transfer is left it finishes; the next transfer
 * spawns a new one.
 *
 * A performer (green_curl_perform) keeps its transfer record on its own
 * stack and parks through the one suspension primitive. It adds its handle
 * to the multi itself (adding runs none of the transfer's callbacks). When
 * the transfer completes, the driver marks it so and hands over to the
 * performer at once (see handoff), which takes the handle out itself
 * (removing a completed transfer runs no callback either) and typically
 * adds its next transfer right away, as a raw multi loop re-adds a handle
 * from its completion callback. The driver takes a handle out itself when
 * it is the last one (so that it finishes before the performer resumes),
 * and when the transfer is still under way: when its performer was killed
 * or timed out, which then waits, ignoring further kills and timeouts,
 * until the driver has done so, so that the handle is out of the multi
 * whenever green_curl_perform returns.
 *
 * A transfer's callback may block (green_sleep...), and the driver is then
 * held up inside a curl call: meanwhile nobody else may call into the multi
 * (that would be a recursive API call), so performers queue their adds and
 * removals for the driver, which makes them once that curl call returns.
 * That also stalls the hub's other transfers, as green_curl.h says.
 *
 * green_curl_limit caps the handles in the multi. A performer that finds
 * no room, or others already waiting, queues its add like the above and
 * parks; whoever takes a handle out makes room (a performer then wakes the
 * driver), and the driver adds the queued transfers in arrival order while
 * the cap allows. A queued transfer ended by a kill or a timeout just
 * leaves the queue: it never reached curl.
 *
 * The driver finds a transfer from its easy handle through a small open-
 * addressing table keyed by the handle's address (CURLOPT_PRIVATE is the
 * user's, never touched). The table holds the keys itself, so a lookup
 * touches no record: the records live on the performers' stacks, each on a
 * page of its own and all at about the same offset in it (so in the same
 * L1 cache set), where walking them costs a miss each.
 *
 * Sockets are armed one-shot: the libev callback stops the socket's watcher
 * when it records an event, and the driver re-arms it after handing the
 * event to curl. Level-triggered watchers left armed would make the hub spin
 * while the driver is held up in a transfer's callback.
 *
 * A socket's record and watcher go when curl says CURL_POLL_REMOVE, which
 * it does at the end of every transfer, when the connection goes back to
 * the cache; the next transfer on that connection announces the fd anew,
 * and libev's ev_io_set makes one epoll_ctl for it (an ADD that fails with
 * EEXIST: ~0.8 per GET, ~3 % of the CPU of a small keep-alive GET; the raw
 * multi loop pays the same). Keeping the watcher across transfers would
 * need to know that the fd is still the same file, and libcurl 7.88 does
 * not report closing a cached connection's socket to the multi (only
 * CURLOPT_CLOSESOCKETFUNCTION would, an option of the program's own easy
 * handles): a reused fd number would then never reach epoll and its
 * transfer would hang. So it is not done.
 *
 * Cost: with N transfers to one host in flight, libcurl 7.88 walks its
 * connection cache linearly twice per transfer (the search for a free
 * connection, and close_connect_only when the handle is removed), so its
 * CPU per transfer grows with N: ~21 µs per small GET at 16 in flight,
 * ~38 µs at 500, on the bench machine, for this driver and a raw
 * curl_multi_socket_action loop alike (tests/bench/suite_curl.sh).
 *
 *   performer ── add_handle ──────────────────────────────────▶ CURLM
 *       │  ▲                                                      │
 *       │  └ trigger (completed), then remove_handle              │ socket and
 *       ▼                                                         │ timer callbacks
 *    parked          driver ── socket_action / info_read ──────▶ │ arm ev_io /
 *                      ▲                                          │ ev_timer
 *                      └──── wake: ev_io / ev_timer callbacks ◀──┘
 */
#include <curl/curl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "green_curl.h"
#include "internal.h"

enum xfer_state {
    X_QUEUED,    /* on the adds queue (the driver was inside curl, or the hub's
                  * limit was reached), not yet in the multi */
    X_RUNNING,   /* in the multi, under way */
    X_COMPLETED, /* finished, result set, still in the multi: its performer removes it */
    X_REMOVING,  /* on the removals queue, for the driver to take out */
    X_DONE,      /* out of the multi again (or never got in) */
};

/* One transfer in flight: lives on its performer's stack. */
struct xfer {
    CURL                 *easy;
    struct xfer          *qnext, *qprev; /* adds or removals queue */
    struct green__waiter *w;             /* the performer's waiter while parked */
    CURLcode              result;
    enum xfer_state       state;
};

struct xqueue {
    struct xfer *head, *tail;
};

/* One of curl's sockets, with its watcher. */
struct csock {
    ev_io            io;     /* first: the libev callback casts back */
    struct curl_hub *ch;
    curl_socket_t    fd;
    int              what;   /* what curl wants: CURL_POLL_* */
    int              pending; /* recorded events: CURL_CSELECT_* */
    bool             armed;  /* watcher started (counted active) */
    bool             queued; /* on the pending list */
    struct csock    *pnext, *pprev;
};

/* A slot of the easy -> transfer table (linear probing, no tombstones). */
struct slot {
    CURL        *easy; /* NULL: empty */
    struct xfer *x;
};

struct curl_hub {
    struct green_hub     *hub;
    CURLM                *multi;
    ev_timer              timer;
    bool                  timer_armed;
    bool                  timeout_pending; /* curl's timeout expired (or was 0) */
    bool                  closing;         /* thread exit: leave libev alone */
    bool                  in_curl;         /* the driver is inside a curl_multi_* call */
    unsigned              handed;          /* performers woken with a result, not yet run */
    green_t              *driver;          /* alive while transfers are in flight */
    struct green__waiter *driver_w;        /* set while the driver is idle-parked */
    struct xqueue         adds, removals;  /* for the driver, while it is inside curl */
    struct csock         *phead, *ptail;   /* sockets with recorded events, FIFO */
    struct csock         *cur;             /* socket being handed to curl; NULL if removed */
    struct slot          *tab;             /* easy handle -> transfer */
    size_t                tabsize, nxfers; /* tabsize: a power of two, or 0 */
    size_t                inmulti;         /* transfers in the multi now */
    long                  limit;           /* green_curl_limit: at most this many; 0: no cap */
    long                  maxconnects;
};

static __thread struct curl_hub *tls_curl __attribute__((tls_model("initial-exec")));
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static pthread_key_t curl_key;
static bool curl_init_ok;

/* Never fewer cached connections than this; more as concurrency grows. */
#define MAXCONNECTS_MIN 256

/* ------------------------------------------------------------------------ */
/* Transfer records: the table and the queues                                 */
/* ------------------------------------------------------------------------ */

static size_t home_of(const struct curl_hub *ch, const CURL *easy)
{
    uint64_t k = (uint64_t)(uintptr_t)easy;
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k & (ch->tabsize - 1);
}

static size_t slot_of(const struct curl_hub *ch, const CURL *easy)
{
    size_t mask = ch->tabsize - 1, i = home_of(ch, easy);
    while (ch->tab[i].easy && ch->tab[i].easy != easy)
        i = (i + 1) & mask;
    return i;
}

static struct xfer *xfer_find(const struct curl_hub *ch, const CURL *easy)
{
    if (!ch->tabsize)
        return NULL;
    return ch->tab[slot_of(ch, easy)].x;
}

/* Keeps the table at most half full. */
static int xfer_insert(struct curl_hub *ch, struct xfer *x)
{
    if ((ch->nxfers + 1) * 2 > ch->tabsize) {
        size_t n = ch->tabsize ? ch->tabsize * 2 : 128;
        struct slot *t = calloc(n, sizeof *t), *old = ch->tab;
        if (!t)
            return ENOMEM;
        size_t oldn = ch->tabsize;
        ch->tab = t;
        ch->tabsize = n;
        for (size_t i = 0; i < oldn; i++)
            if (old[i].easy)
                ch->tab[slot_of(ch, old[i].easy)] = old[i];
        free(old);
    }
    ch->tab[slot_of(ch, x->easy)] = (struct slot){x->easy, x};
    ch->nxfers++;
    return 0;
}

/* Removes x's slot and shifts back the entries that probed past it. */
static void xfer_unlink(struct curl_hub *ch, struct xfer *x)
{
    size_t mask = ch->tabsize - 1, i = slot_of(ch, x->easy);
    if (ch->tab[i].x != x)
        return;
    ch->nxfers--;
    for (size_t j = i;;) {
        ch->tab[i].easy = NULL;
        ch->tab[i].x = NULL;
        size_t home;
        do {
            j = (j + 1) & mask;
            if (!ch->tab[j].easy)
                return;
            home = home_of(ch, ch->tab[j].easy);
            /* Stays if its home lies cyclically in (i, j]. */
        } while (i <= j ? (i < home && home <= j) : (i < home || home <= j));
        ch->tab[i] = ch->tab[j];
        i = j;
    }
}

static void q_push(struct xqueue *q, struct xfer *x)
{
    x->qnext = NULL;
    x->qprev = q->tail;
    if (q->tail)
        q->tail->qnext = x;
    else
        q->head = x;
    q->tail = x;
}

static void q_remove(struct xqueue *q, struct xfer *x)
{
    if (x->qprev)
        x->qprev->qnext = x->qnext;
    else
        q->head = x->qnext;
    if (x->qnext)
        x->qnext->qprev = x->qprev;
    else
        q->tail = x->qprev;
    x->qnext = x->qprev = NULL;
}

static struct xfer *q_pop(struct xqueue *q)
{
    struct xfer *x = q->head;
    if (x)
        q_remove(q, x);
    return x;
}

/* ------------------------------------------------------------------------ */
/* Sockets and the timer (libev side)                                         */
/* ------------------------------------------------------------------------ */

static void wake_driver(struct curl_hub *ch);

static void pending_push(struct curl_hub *ch, struct csock *s)
{
    if (s->queued)
        return;
    s->queued = true;
    s->pnext = NULL;
    s->pprev = ch->ptail;
    if (ch->ptail)
        ch->ptail->pnext = s;
    else
        ch->phead = s;
    ch->ptail = s;
}

static void pending_remove(struct curl_hub *ch, struct csock *s)
{
    if (!s->queued)
        return;
    if (s->pprev)
        s->pprev->pnext = s->pnext;
    else
        ch->phead = s->pnext;
    if (s->pnext)
        s->pnext->pprev = s->pprev;
    else
        ch->ptail = s->pprev;
    s->pnext = s->pprev = NULL;
    s->queued = false;
}

static void disarm(struct curl_hub *ch, struct csock *s)
{
    if (ev_is_active(&s->io))
        ev_io_stop(ch->hub->loop, &s->io);
    if (s->armed) {
        s->armed = false;
        green__active_dec(ch->hub);
    }
}

/* Starts the watcher for what curl wants. Restarting it with an unchanged
 * event mask skips ev_io_set, so libev makes no epoll_ctl call for it. */
static void arm(struct curl_hub *ch, struct csock *s)
{
    int want = (s->what & CURL_POLL_IN ? EV_READ : 0) | (s->what & CURL_POLL_OUT ? EV_WRITE : 0);
    int have = s->io.events & (EV_READ | EV_WRITE);
    if (s->armed && ev_is_active(&s->io) && want == have)
        return;
    disarm(ch, s);
    if (!want)
        return;
    if (want != have || s->io.fd != s->fd)
        ev_io_set(&s->io, s->fd, want);
    ev_io_start(ch->hub->loop, &s->io);
    s->armed = true;
    green__active_inc(ch->hub);
}

static void sock_ev_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct csock *s = (struct csock *)io;
    struct curl_hub *ch = s->ch;
    s->pending |= (revents & EV_READ ? CURL_CSELECT_IN : 0) |
                  (revents & EV_WRITE ? CURL_CSELECT_OUT : 0) |
                  (revents & EV_ERROR ? CURL_CSELECT_ERR : 0);
    disarm(ch, s); /* one-shot: the driver re-arms it */
    pending_push(ch, s);
    wake_driver(ch);
}

static void timer_ev_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct curl_hub *ch = t->data;
    if (ch->timer_armed) { /* a non-repeating timer is inactive once it fired */
        ch->timer_armed = false;
        green__active_dec(ch->hub);
    }
    ch->timeout_pending = true;
    wake_driver(ch);
}

/* CURLMOPT_SOCKETFUNCTION: called from inside curl (the driver's calls, or a
 * performer's add or remove). */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct curl_hub *ch = userp;
    struct csock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            if (!ch->closing)
                disarm(ch, s);
            pending_remove(ch, s);
            if (ch->cur == s)
                ch->cur = NULL;
            free(s);
        }
        return 0;
    }
    if (!s) {
        if (!(s = calloc(1, sizeof *s)))
            return -1; /* curl fails the transfer */
        s->ch = ch;
        s->fd = fd;
        ev_io_init(&s->io, sock_ev_cb, fd, 0);
        curl_multi_assign(ch->multi, fd, s);
    }
    s->what = what;
    /* A socket with events still to hand to curl is re-armed after that. */
    if (!s->queued && !ch->closing)
        arm(ch, s);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: called from inside curl, as the socket callback. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct curl_hub *ch = userp;
    if (ch->closing)
        return 0;
    struct ev_loop *loop = ch->hub->loop;
    if (ch->timer_armed) {
        ev_timer_stop(loop, &ch->timer);
        ch->timer_armed = false;
        green__active_dec(ch->hub);
    }
    if (timeout_ms == 0) {
        ch->timeout_pending = true; /* the driver loops before parking */
        wake_driver(ch);
    } else if (timeout_ms > 0) {
        /* Relative to now, not to the loop's cached time, or it fires early. */
        ev_now_update(loop);
        ev_timer_set(&ch->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(loop, &ch->timer);
        ch->timer_armed = true;
        green__active_inc(ch->hub);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The driver                                                                 */
/* ------------------------------------------------------------------------ */

/* The hub's limit lets one more transfer into the multi. */
static bool room(const struct curl_hub *ch)
{
    return ch->limit == 0 || ch->inmulti < (size_t)ch->limit;
}

/* Every handle of ours goes in and out of the multi through these two. */
static CURLMcode multi_add(struct curl_hub *ch, struct xfer *x)
{
    CURLMcode mc = curl_multi_add_handle(ch->multi, x->easy);
    if (mc == CURLM_OK) {
        x->state = X_RUNNING;
        ch->inmulti++;
    }
    return mc;
}

static void multi_remove(struct curl_hub *ch, struct xfer *x)
{
    curl_multi_remove_handle(ch->multi, x->easy);
    ch->inmulti--;
}

static CURLcode code_of(CURLMcode mc)
{
    switch (mc) {
    case CURLM_OK:
        return CURLE_OK;
    case CURLM_OUT_OF_MEMORY:
        return CURLE_OUT_OF_MEMORY;
    case CURLM_BAD_EASY_HANDLE:
    case CURLM_ADDED_ALREADY:
        return CURLE_BAD_FUNCTION_ARGUMENT;
    case CURLM_RECURSIVE_API_CALL:
        return CURLE_RECURSIVE_API_CALL;
    default:
        return CURLE_FAILED_INIT;
    }
}

/* The transfer is out of the multi: hands the result to its performer. */
static void finish(struct curl_hub *ch, struct xfer *x, CURLcode result)
{
    xfer_unlink(ch, x);
    x->result = result;
    x->state = X_DONE;
    if (x->w)
        green__trigger(x->w, 0);
}

/* Takes every finished transfer out of the multi. */
static void drain_info(struct curl_hub *ch)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(ch->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode result = m->data.result; /* m is invalid after a removal */
        struct xfer *x = xfer_find(ch, easy);
        if (!x) {
            curl_multi_remove_handle(ch->multi, easy);
            continue;
        }
        if (x->state == X_REMOVING || ch->nxfers == 1) {
            /* Its performer gave up on it, or it is the last transfer: taken
             * out here, so that the driver, with nothing left, finishes
             * before the performer resumes, and a thread that ends right
             * after its last transfer leaves no greenlet behind. */
            multi_remove(ch, x);
            if (x->state == X_REMOVING)
                q_remove(&ch->removals, x);
            finish(ch, x, result);
            continue;
        }
        /* Its performer takes it out of the multi itself when it runs (see
         * handoff), and most often adds its next transfer right after, so
         * that curl starts that one in the driver's next call, while the
         * connection and the memory this one freed are still hot. */
        x->result = result;
        x->state = X_COMPLETED;
        if (x->w && !x->w->done) {
            green__trigger(x->w, 0);
            ch->handed++;
        }
    }
}

/* Keeps a connection cached for every transfer that ran at once. */
static void grow_cache(struct curl_hub *ch)
{
    long want = (long)ch->inmulti * 2;
    if (GREEN__UNLIKELY(want > ch->maxconnects)) {
        ch->maxconnects = want;
        curl_multi_setopt(ch->multi, CURLMOPT_MAXCONNECTS, want);
    }
}

/* Adds the queued transfers, first come first served, as far as the limit
 * lets them in. */
static void add_queued(struct curl_hub *ch)
{
    struct xfer *x;
    while (room(ch) && (x = q_pop(&ch->adds)) != NULL) {
        CURLMcode mc = multi_add(ch, x);
        if (mc != CURLM_OK)
            finish(ch, x, code_of(mc));
    }
    grow_cache(ch);
}

static void remove_queued(struct curl_hub *ch)
{
    struct xfer *x;
    while ((x = q_pop(&ch->removals)) != NULL) {
        multi_remove(ch, x);
        finish(ch, x, CURLE_ABORTED_BY_CALLBACK); /* the performer returns its own code */
    }
}

static bool has_work(const struct curl_hub *ch)
{
    return (ch->adds.head && room(ch)) || ch->removals.head || ch->phead || ch->timeout_pending;
}

/* One round: queued adds and removals first, then one curl event. */
static void drive_once(struct curl_hub *ch)
{
    int running;
    ch->in_curl = true;
    if (ch->removals.head)
        remove_queued(ch);
    if (ch->adds.head)
        add_queued(ch);
    struct csock *s = ch->phead;
    if (s) {
        pending_remove(ch, s);
        int ev = s->pending;
        s->pending = 0;
        ch->cur = s;
        curl_multi_socket_action(ch->multi, s->fd, ev, &running);
        if (ch->cur) /* curl did not remove it meanwhile */
            arm(ch, ch->cur);
        ch->cur = NULL;
        drain_info(ch);
    } else if (ch->timeout_pending) {
        ch->timeout_pending = false;
        curl_multi_socket_action(ch->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        drain_info(ch);
    }
    ch->in_curl = false;
}

/*
 * Lets the n greenlets the driver has just woken run now, before the driver
 * goes on with the next event and before the hub polls again, and resumes
 * the driver right behind them.
 *
 * Why: a performer woken with its result takes its handle out of the multi
 * and usually adds its next transfer at once; libcurl then starts that
 * transfer during the driver's very next curl_multi_socket_action, while
 * the connection and the memory the last transfer freed are still hot.
 * Waking every performer of a poll's batch first and letting them run after
 * it costs about 15 % more CPU per transfer at 500 transfers in flight
 * (measured: tests/bench/suite_curl.sh), and a plain green_yield would make
 * the hub poll between every two hand-offs (a pass of the ready queue ends),
 * which costs more than it saves.
 *
 * So the driver yields with green__yield_behind: the woken greenlets and
 * then the driver run in the hub's current pass over the ready queue.
 */
static void handoff(struct curl_hub *ch)
{
    unsigned n = ch->handed;
    ch->handed = 0;
    green__yield_behind(ch->hub, n);
}

static void *driver_main(void *arg)
{
    struct curl_hub *ch = arg;
    for (;;) {
        while (has_work(ch)) {
            drive_once(ch);
            if (ch->handed)
                handoff(ch);
        }
        if (ch->nxfers == 0)
            break;
        struct green__waiter w;
        green__waiter_init(&w, "curl driver idle", ch->multi);
        ch->driver_w = &w;
        /* Woken by the libev callbacks and by performers; a kill of the
         * driver itself is ignored: transfers are still in flight. */
        green__park(&w, -1);
        ch->driver_w = NULL;
    }
    ch->driver = NULL;
    return NULL;
}

static int spawn_driver(struct curl_hub *ch)
{
    green_attr_t attr = {.stack_size = 0, .name = "curl driver"};
    green_t *g = green_spawn_attr(&attr, driver_main, ch);
    if (!g)
        return errno ? errno : ENOMEM;
    ch->driver = g;
    green_release(g); /* the library keeps its own reference while it runs */
    return 0;
}

/* Never switches: the driver runs when the caller next blocks or yields. */
static void wake_driver(struct curl_hub *ch)
{
    if (ch->driver_w) {
        struct green__waiter *w = ch->driver_w;
        ch->driver_w = NULL;
        green__trigger(w, 0);
    } else if (!ch->driver) {
        /* Events with no transfer in flight: rare (nothing to do if it
         * fails; the next transfer spawns a driver, which handles them). */
        spawn_driver(ch);
    }
}

/* ------------------------------------------------------------------------ */
/* Per-hub state                                                              */
/* ------------------------------------------------------------------------ */

/* Thread exit: frees the multi if no transfer is left in it. */
static void curl_hub_destroy(void *arg)
{
    struct curl_hub *ch = arg;
    if (tls_curl == ch)
        tls_curl = NULL;
    if (ch->nxfers || ch->driver)
        return; /* greenlets left parked on an ending thread: leaked, as the hub does */
    /* The hub may have been destroyed already (destructor order is
     * unspecified): then libev must not be touched. */
    bool hub_alive = green__tls_hub == ch->hub;
    ch->closing = true;
    if (hub_alive && ch->timer_armed) {
        ev_timer_stop(ch->hub->loop, &ch->timer);
        green__active_dec(ch->hub);
    }
    for (struct csock *s = ch->phead; s; s = s->pnext)
        s->queued = false;
    ch->phead = ch->ptail = NULL;
    curl_multi_cleanup(ch->multi); /* frees every socket record through socket_cb */
    free(ch->tab);
    free(ch);
}

static void curl_global_once(void)
{
    curl_init_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK &&
                   pthread_key_create(&curl_key, curl_hub_destroy) == 0;
}

static struct curl_hub *curl_hub_get(struct green_hub *h)
{
    struct curl_hub *ch = tls_curl;
    if (GREEN__LIKELY(ch != NULL && ch->hub == h))
        return ch;
    pthread_once(&curl_once, curl_global_once);
    if (!curl_init_ok)
        return NULL;
    if (!(ch = calloc(1, sizeof *ch)))
        return NULL;
    ch->hub = h;
    if (!(ch->multi = curl_multi_init())) {
        free(ch);
        return NULL;
    }
    ev_init(&ch->timer, timer_ev_cb);
    ch->timer.data = ch;
    ch->maxconnects = MAXCONNECTS_MIN;
    curl_multi_setopt(ch->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(ch->multi, CURLMOPT_SOCKETDATA, ch);
    curl_multi_setopt(ch->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(ch->multi, CURLMOPT_TIMERDATA, ch);
    curl_multi_setopt(ch->multi, CURLMOPT_MAXCONNECTS, ch->maxconnects);
    tls_curl = ch;
    pthread_setspecific(curl_key, ch);
    return ch;
}

/* ------------------------------------------------------------------------ */
/* Performing                                                                 */
/* ------------------------------------------------------------------------ */

/* Gets the handle out of the multi, whatever state its transfer is in. */
static void leave_multi(struct curl_hub *ch, struct xfer *x)
{
    switch (x->state) {
    case X_DONE:
        return;
    case X_QUEUED: /* never got in: take it back */
        q_remove(&ch->adds, x);
        xfer_unlink(ch, x);
        x->state = X_DONE;
        return;
    case X_COMPLETED:
        /* Removing a finished transfer calls none of its callbacks: done
         * here unless the driver is inside curl right now. */
        if (!ch->in_curl) {
            multi_remove(ch, x);
            xfer_unlink(ch, x);
            x->state = X_DONE;
            if (ch->adds.head)
                wake_driver(ch); /* a transfer waits for the room this one made */
            return;
        }
        break;
    case X_RUNNING:
    case X_REMOVING:
        break;
    }
    /* Only the driver may take out a transfer under way (that may call its
     * callbacks), or any handle while it is inside a curl call (held up by
     * a callback that blocks). The wait ignores kills and timeouts: the
     * handle must be out on return. */
    if (x->state != X_REMOVING) {
        x->state = X_REMOVING;
        q_push(&ch->removals, x);
        wake_driver(ch);
    }
    green_t *self = ch->hub->current;
    double tmo = self->tmo_deadline;
    self->tmo_deadline = INFINITY;
    while (x->state != X_DONE) {
        struct green__waiter w;
        green__waiter_init(&w, "curl remove", x->easy);
        x->w = &w;
        green__park(&w, -1);
        x->w = NULL;
    }
    self->tmo_deadline = tmo;
}

CURLcode green_curl_perform(CURL *easy)
{
    if (!easy)
        return CURLE_BAD_FUNCTION_ARGUMENT;
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err == ECANCELED)
        return CURLE_ABORTED_BY_CALLBACK;
    if (err == EDEADLK)
        return CURLE_BAD_FUNCTION_ARGUMENT; /* from the hub: nothing may block there */
    if (err)
        return CURLE_OUT_OF_MEMORY;
    green_t *self = h->current;
    if (self->tmo_deadline < INFINITY && green__now(h) >= self->tmo_deadline)
        return CURLE_OPERATION_TIMEDOUT;
    struct curl_hub *ch = curl_hub_get(h);
    if (!ch)
        return CURLE_OUT_OF_MEMORY;
    if (self == ch->driver)
        return CURLE_RECURSIVE_API_CALL; /* from a transfer's callback */
    if (xfer_find(ch, easy))
        return CURLE_BAD_FUNCTION_ARGUMENT; /* performed by another greenlet now */

    struct xfer x = {.easy = easy, .state = X_QUEUED, .result = CURLE_OK};
    if (xfer_insert(ch, &x))
        return CURLE_OUT_OF_MEMORY;
    if (!ch->driver && spawn_driver(ch)) {
        xfer_unlink(ch, &x);
        return CURLE_OUT_OF_MEMORY;
    }
    if (!ch->in_curl && !ch->adds.head && room(ch)) {
        /* Added here and now, while the handle is hot in the cache: adding
         * calls none of the transfer's callbacks (only the multi's timer
         * callback, which wakes the driver), so it is no curl call the
         * driver could be in the middle of. */
        CURLMcode mc = multi_add(ch, &x);
        if (mc != CURLM_OK) {
            xfer_unlink(ch, &x);
            return code_of(mc);
        }
        grow_cache(ch);
    } else {
        /* The driver is held up in a callback, inside curl, or the limit
         * is reached: the driver adds the handle once that call has
         * returned, or when its turn comes. */
        q_push(&ch->adds, &x);
        wake_driver(ch);
    }

    struct green__waiter w;
    green__waiter_init(&w, "curl", easy);
    x.w = &w;
    err = green__park(&w, -1);
    x.w = NULL;
    /* Killed or timed out first: the first cause wins, whatever the
     * transfer did meanwhile. */
    CURLcode rc = err == 0           ? x.result
                  : err == ETIMEDOUT ? CURLE_OPERATION_TIMEDOUT
                                     : CURLE_ABORTED_BY_CALLBACK;
    leave_multi(ch, &x);
    return rc;
}

long green_curl_limit(long max)
{
    if (max < 0)
        return green__fail(EINVAL);
    struct green_hub *h = green__hub(); /* setting a number never waits */
    if (!h)
        return green__fail(ENOMEM);
    struct curl_hub *ch = curl_hub_get(h);
    if (!ch)
        return green__fail(ENOMEM);
    long old = ch->limit;
    ch->limit = max;
    if (ch->adds.head && room(ch))
        wake_driver(ch); /* a higher limit lets waiting transfers in */
    return old;
}

/* ------------------------------------------------------------------------ */
/* The convenience GET                                                        */
/* ------------------------------------------------------------------------ */

struct body {
    char  *data;
    size_t len, cap;
    bool   oom;
};

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct body *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->oom = true;
            return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

static int errno_of(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return ETIMEDOUT;
    case CURLE_ABORTED_BY_CALLBACK:
        return ECANCELED;
    case CURLE_COULDNT_CONNECT:
        return ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return ENOENT;
    case CURLE_OUT_OF_MEMORY:
        return ENOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return EINVAL;
    case CURLE_RECURSIVE_API_CALL:
        return EDEADLK;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return ECONNRESET;
    default:
        return EPROTO;
    }
}

int green_http_get(const char *url, char **body, size_t *len, long *status, double timeout)
{
    if (!url || !body)
        return green__fail(EINVAL);
    *body = NULL;
    if (len)
        *len = 0;
    if (status)
        *status = 0;
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return green__fail(err);
    if (timeout == 0)
        return green__fail(EAGAIN);
    CURL *easy = curl_easy_init();
    if (!easy)
        return green__fail(ENOMEM);
    struct body b = {0};
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 30L);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "libgreen/0.1");
    green_timeout_t t;
    if (timeout > 0)
        green_timeout_start(&t, timeout);
    CURLcode rc = green_curl_perform(easy);
    if (timeout > 0)
        green_timeout_cancel(&t);
    long code = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(easy);
    if (rc != CURLE_OK) {
        free(b.data);
        return green__fail(b.oom ? ENOMEM : errno_of(rc));
    }
    if (!b.data && !(b.data = malloc(1)))
        return green__fail(ENOMEM);
    b.data[b.len] = '\0';
    *body = b.data;
    if (len)
        *len = b.len;
    if (status)
        *status = code;
    return 0;
}
