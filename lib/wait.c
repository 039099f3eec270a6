/*
 * The one suspension primitive (see internal.h, where its hot calls are
 * inline): waking a whole list, parking with a deadline, and the
 * green_timeout deadlines that park honours.
 */
#include <math.h>

#include "internal.h"

size_t green__waitlist_wake_all(struct green__waitlist *l, int err)
{
    size_t n = 0;
    for (; !green__waitlist_empty(l); n++)
        green__trigger_first(l->head->g->hub, l, err);
    return n;
}

static void park_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    green__trigger(t->data, ETIMEDOUT);
}

int green__park_deadline(struct green__waiter *w, double timeout)
{
    green_t *g = w->g;
    struct green_hub *h = g->hub;
    /* green__park comes here only with a deadline: its own or a
     * green_timeout's. */
    double now = green__now(h), deadline = INFINITY;
    if (timeout >= 0)
        deadline = now + timeout;
    w->deadline = deadline;
    if (g->tmo_deadline < deadline)
        deadline = g->tmo_deadline;
    if (deadline <= now) {
        green__waitlist_remove(w);
        return ETIMEDOUT;
    }
    ev_timer timer;
    ev_timer_init(&timer, park_timer_cb, deadline - now, 0.);
    timer.data = w;
    ev_timer_start(h->loop, &timer);
    green__active_inc(h);
    g->waiter = w;
    do
        green__schedule_inline(h);
    while (!w->done);
    g->waiter = NULL;
    ev_timer_stop(h->loop, &timer);
    green__active_dec(h);
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
