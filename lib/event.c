/*
 * Event and AsyncResult (gevent.event).
 *
 * Both are a flag (or a value) plus one FIFO waitlist. A set wakes every
 * waiter through green__trigger and hands each its outcome in the waiter
 * itself (w->value, w->aux), so a waiter never looks at the object again
 * once green__park returns: that is what makes a wake-up survive a clear
 * that happens before the waiter runs, and what makes freeing an object that
 * is still waited on safe (the waiters wake with EPIPE and touch nothing).
 *
 * Ownership. An Event or AsyncResult belongs to the hub of the thread that
 * created it and is owned by whoever created it, who frees it once with
 * green_event_free / green_result_free, at any time, even while greenlets
 * still wait on it (they return -1 EPIPE); it must not be used after that.
 */
#include <stdlib.h>

#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Event                                                                      */
/* ------------------------------------------------------------------------ */

struct green_event {
    struct green_hub      *hub;
    bool                   set;
    struct green__waitlist waiters;
};

green_event_t *green_event_new(void)
{
    struct green_hub *h = green__hub();
    if (!h)
        return NULL;
    green_event_t *e = calloc(1, sizeof *e);
    if (!e) {
        errno = ENOMEM;
        return NULL;
    }
    e->hub = h;
    return e;
}

void green_event_set(green_event_t *e)
{
    if (!e || green__owner_check(e->hub))
        return;
    e->set = true;
    /* The trigger is the wake-up itself: a waiter returns 0 whatever the
     * flag says by the time it runs. */
    green__waitlist_wake_all(&e->waiters, 0);
}

void green_event_clear(green_event_t *e)
{
    if (!e || green__owner_check(e->hub))
        return;
    e->set = false;
}

bool green_event_is_set(const green_event_t *e)
{
    return e && e->set;
}

int green_event_wait(green_event_t *e, double timeout)
{
    if (!e)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(e->hub, &h);
    if (err)
        return green__fail(err);
    if (e->set)
        return 0;
    if (timeout == 0)
        return green__fail(EAGAIN);
    struct green__waiter w;
    green__waiter_init(&w, "event wait", e);
    green__waitlist_push(&e->waiters, &w);
    err = green__park(&w, timeout); /* e may be freed once this returns */
    return err ? green__fail(err) : 0;
}

void green_event_free(green_event_t *e)
{
    if (!e || green__owner_check(e->hub))
        return;
    green__waitlist_wake_all(&e->waiters, EPIPE);
    free(e);
}

/* ------------------------------------------------------------------------ */
/* AsyncResult                                                                */
/* ------------------------------------------------------------------------ */

struct green_result {
    struct green_hub      *hub;
    bool                   ready;
    int                    err;     /* 0: set to value; > 0: failed with err */
    void                  *value;
    struct green__waitlist waiters;
};

green_result_t *green_result_new(void)
{
    struct green_hub *h = green__hub();
    if (!h)
        return NULL;
    green_result_t *r = calloc(1, sizeof *r);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    r->hub = h;
    return r;
}

/* Makes r ready and hands the outcome to every waiter. */
static int result_settle(green_result_t *r, void *value, int err)
{
    if (!r)
        return green__fail(EINVAL);
    int perm = green__owner_check(r->hub);
    if (perm)
        return green__fail(perm);
    if (r->ready)
        return green__fail(EINVAL);
    r->ready = true;
    r->value = value;
    r->err = err;
    struct green__waiter *w;
    while ((w = green__waitlist_first(&r->waiters)) != NULL) {
        w->value = value;
        w->aux = (uintptr_t)err;
        green__trigger(w, 0);
    }
    return 0;
}

int green_result_set(green_result_t *r, void *value)
{
    return result_settle(r, value, 0);
}

int green_result_fail(green_result_t *r, int err)
{
    if (err <= 0)
        return green__fail(EINVAL);
    return result_settle(r, NULL, err);
}

/* value may be NULL: the call then only waits (gevent's AsyncResult.wait). */
int green_result_get(green_result_t *r, void **value, double timeout)
{
    if (!r)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(r->hub, &h);
    if (err)
        return green__fail(err);
    if (r->ready) {
        if (r->err)
            return green__fail(r->err);
        if (value)
            *value = r->value;
        return 0;
    }
    if (timeout == 0)
        return green__fail(EAGAIN);
    struct green__waiter w;
    green__waiter_init(&w, "result get", r);
    green__waitlist_push(&r->waiters, &w);
    err = green__park(&w, timeout); /* r may be freed once this returns */
    if (err)
        return green__fail(err);
    if (w.aux)
        return green__fail((int)w.aux);
    if (value)
        *value = w.value;
    return 0;
}

bool green_result_ready(const green_result_t *r)
{
    return r && r->ready;
}

void green_result_free(green_result_t *r)
{
    if (!r || green__owner_check(r->hub))
        return;
    green__waitlist_wake_all(&r->waiters, EPIPE);
    free(r);
}
