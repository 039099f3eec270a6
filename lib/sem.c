/*
 * Semaphore, BoundedSemaphore and RLock (gevent.lock).
 *
 * No barging. A release that finds a waiter does not put the unit (or the
 * lock) back where the releaser, or any greenlet that runs before the
 * waiter, could take it: it hands it to the first waiter on the spot, and
 * green__trigger makes the hand-over final. So a semaphore with waiters
 * always has value 0, and a waiter that is killed or times out after the
 * hand-over still returns 0 holding the unit, while one that left before
 * never receives it (it is no longer on the list).
 *
 * Ownership. A semaphore or lock belongs to the hub of the thread that
 * created it and is owned by whoever created it, who frees it once with
 * green_sem_free / green_lock_free, at any time, even while greenlets still
 * wait on it (they return -1 EPIPE); units or a lock still held are simply
 * forgotten.
 */
#include <limits.h>
#include <stdlib.h>

#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Semaphore                                                                  */
/* ------------------------------------------------------------------------ */

struct green_sem {
    struct green_hub      *hub;
    unsigned               value;  /* units available; 0 whenever someone waits */
    unsigned               bound;  /* the start value, for a bounded semaphore */
    bool                   bounded;
    struct green__waitlist waiters;
};

static green_sem_t *sem_create(unsigned value, bool bounded)
{
    struct green_hub *h = green__hub();
    if (!h)
        return NULL;
    green_sem_t *s = calloc(1, sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->hub = h;
    s->value = value;
    s->bound = value;
    s->bounded = bounded;
    return s;
}

green_sem_t *green_sem_new(unsigned value)
{
    return sem_create(value, false);
}

green_sem_t *green_sem_new_bounded(unsigned value)
{
    return sem_create(value, true);
}

int green_sem_acquire(green_sem_t *s, double timeout)
{
    if (!s)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(s->hub, &h);
    if (err)
        return green__fail(err);
    if (s->value > 0) {
        s->value--;
        return 0;
    }
    if (timeout == 0)
        return green__fail(EAGAIN);
    struct green__waiter w;
    green__waiter_init(&w, "semaphore", s);
    green__waitlist_push(&s->waiters, &w);
    err = green__park(&w, timeout); /* 0: the releaser handed us its unit */
    return err ? green__fail(err) : 0;
}

int green_sem_release(green_sem_t *s)
{
    if (!s)
        return green__fail(EINVAL);
    int err = green__owner_check(s->hub);
    if (err)
        return green__fail(err);
    /* As gevent's BoundedSemaphore: the check is on the value before the
     * release, so with waiters (value 0) only a bound of 0 refuses. */
    if (s->bounded ? s->value >= s->bound : s->value == UINT_MAX)
        return green__fail(EINVAL);
    if (!green__waitlist_empty(&s->waiters))
        green__trigger_first(s->hub, &s->waiters, 0);
    else
        s->value++;
    return 0;
}

unsigned green_sem_value(const green_sem_t *s)
{
    return s ? s->value : 0;
}

void green_sem_free(green_sem_t *s)
{
    if (!s || green__owner_check(s->hub))
        return;
    green__waitlist_wake_all(&s->waiters, EPIPE);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* RLock                                                                      */
/* ------------------------------------------------------------------------ */

/*
 * The owner is recorded by greenlet id, not by pointer: ids are never
 * reused, so a lock left held by a greenlet that has finished (and been
 * freed) can never be mistaken for a lock held by a new greenlet that
 * happens to get the same address.
 */
struct green_lock {
    struct green_hub      *hub;
    uint64_t               owner;  /* green_id of the holder, 0 when free */
    unsigned               depth;  /* re-entrant acquisitions by the holder */
    struct green__waitlist waiters;
};

green_lock_t *green_lock_new(void)
{
    struct green_hub *h = green__hub();
    if (!h)
        return NULL;
    green_lock_t *l = calloc(1, sizeof *l);
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    l->hub = h;
    return l;
}

int green_lock_acquire(green_lock_t *l, double timeout)
{
    if (!l)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(l->hub, &h);
    if (err)
        return green__fail(err);
    uint64_t me = h->current->id;
    if (l->owner == 0) {
        l->owner = me;
        l->depth = 1;
        return 0;
    }
    if (l->owner == me) {
        if (l->depth == UINT_MAX)
            return green__fail(EAGAIN); /* as a recursive mutex's EAGAIN */
        l->depth++;
        return 0;
    }
    if (timeout == 0)
        return green__fail(EAGAIN);
    struct green__waiter w;
    green__waiter_init(&w, "lock", l);
    green__waitlist_push(&l->waiters, &w);
    err = green__park(&w, timeout); /* 0: the releaser made us the owner */
    return err ? green__fail(err) : 0;
}

int green_lock_release(green_lock_t *l)
{
    if (!l)
        return green__fail(EINVAL);
    int err = green__owner_check(l->hub);
    if (err)
        return green__fail(err);
    if (l->owner == 0 || l->owner != l->hub->current->id)
        return green__fail(EPERM);
    if (--l->depth > 0)
        return 0;
    struct green__waiter *w = green__waitlist_first(&l->waiters);
    if (w) {
        l->owner = w->g->id;
        l->depth = 1;
        green__trigger(w, 0);
    } else {
        l->owner = 0;
    }
    return 0;
}

void green_lock_free(green_lock_t *l)
{
    if (!l || green__owner_check(l->hub))
        return;
    green__waitlist_wake_all(&l->waiters, EPIPE);
    free(l);
}
