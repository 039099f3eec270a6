/*
 * The one suspension primitive (see internal.h): waiters, waitlists,
 * green__park and green__trigger, and the green_timeout deadlines that park
 * honours.
 */
#include <math.h>

#include "internal.h"

void green__waiter_init(struct green__waiter *w, const char *what, const void *obj)
{
    w->g = green__tls_hub->current;
    w->next = w->prev = NULL;
    w->list = NULL;
    w->err = 0;
    w->done = false;
    w->value = NULL;
    w->aux = 0;
    w->deadline = INFINITY;
    w->what = what;
    w->obj = obj;
}

void green__waitlist_push(struct green__waitlist *l, struct green__waiter *w)
{
    w->list = l;
    w->next = NULL;
    w->prev = l->tail;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
}

void green__waitlist_remove(struct green__waiter *w)
{
    struct green__waitlist *l = w->list;
    if (!l)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->next = w->prev = NULL;
    w->list = NULL;
}

size_t green__waitlist_wake_all(struct green__waitlist *l, int err)
{
    size_t n = 0;
    struct green__waiter *w;
    while ((w = l->head) != NULL) {
        green__trigger(w, err);
        n++;
    }
    return n;
}

void green__trigger(struct green__waiter *w, int err)
{
    if (w->done)
        return;
    w->done = true;
    w->err = err;
    green__waitlist_remove(w);
    green__make_ready(w->g->hub, w->g);
}

static void park_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    green__trigger(t->data, ETIMEDOUT);
}

int green__park(struct green__waiter *w, double timeout)
{
    green_t *g = w->g;
    struct green_hub *h = g->hub;
    double now = 0, deadline = INFINITY;
    if (timeout >= 0 || g->tmo_deadline < INFINITY) {
        now = green__now(h);
        if (timeout >= 0)
            w->deadline = deadline = now + timeout;
        if (g->tmo_deadline < deadline)
            deadline = g->tmo_deadline;
        if (deadline <= now) {
            green__waitlist_remove(w);
            return ETIMEDOUT;
        }
    }
    ev_timer timer;
    if (deadline < INFINITY) {
        ev_timer_init(&timer, park_timer_cb, deadline - now, 0.);
        timer.data = w;
        ev_timer_start(h->loop, &timer);
        green__active_inc(h);
    }
    g->waiter = w;
    do
        green__schedule(h);
    while (!w->done);
    g->waiter = NULL;
    if (deadline < INFINITY) {
        ev_timer_stop(h->loop, &timer);
        green__active_dec(h);
    }
    return w->err;
}

/* ------------------------------------------------------------------------ */
/* green_timeout                                                              */
/* ------------------------------------------------------------------------ */

void green_timeout_start(green_timeout_t *t, double seconds)
{
    struct green_hub *h = green__hub();
    if (!t || !h)
        return;
    green_t *g = h->current;
    t->deadline_ = green__now(h) + (seconds > 0 ? seconds : 0);
    t->owner_ = g;
    t->prev_ = g->tmo_top;
    g->tmo_top = t;
    if (t->deadline_ < g->tmo_deadline)
        g->tmo_deadline = t->deadline_;
}

bool green_timeout_cancel(green_timeout_t *t)
{
    struct green_hub *h = green__tls_hub;
    if (!t || !h || !t->owner_)
        return false;
    green_t *g = t->owner_;
    if (g->hub != h)
        return false;
    /* Unlink it (normally the top: timeouts nest) and recompute the
     * earliest deadline of those left. */
    green_timeout_t **pp = &g->tmo_top;
    while (*pp && *pp != t)
        pp = &(*pp)->prev_;
    if (!*pp)
        return false;
    *pp = t->prev_;
    double min = INFINITY;
    for (green_timeout_t *o = g->tmo_top; o; o = o->prev_)
        if (o->deadline_ < min)
            min = o->deadline_;
    g->tmo_deadline = min;
    t->owner_ = NULL;
    return green__now(h) >= t->deadline_;
}
