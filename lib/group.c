/*
 * Group and Pool (gevent.pool).
 *
 * A group is a set of greenlets that have not finished yet. Each member
 * carries a link (struct member) that runs in the member's own greenlet when
 * it finishes and drops it from the group: the group never polls. A pool is
 * a group with a capacity; the slots it has free are
 *
 *     free = capacity - size - reserved
 *
 * where `reserved` counts slots already handed to parked spawners that have
 * not run yet. A slot that frees up while spawners wait is handed straight
 * to the first of them (no barging, as a semaphore's unit): a spawn that
 * finds room never waits and never yields, one that finds none parks on
 * `slots` and is woken with a slot of its own.
 *
 * Every wait is one green__park on one of the group's two waitlists (or, for
 * map, on a waiter of its own that the workers' links trigger).
 *
 * Ownership. The group holds one reference to each member and gives it up
 * when the member finishes or is discarded. A map holds its own reference to
 * each worker until it returns. Freeing a group kills nothing: it removes
 * its links from the members (so no callback ever touches the freed group),
 * drops its references and wakes the waiters not woken yet with EPIPE (one
 * woken before keeps its result). Calls still parked on the group at that
 * moment count in `busy`; the memory is released by whichever of them
 * leaves last, so no greenlet ever resumes into a freed group.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

/* What a waiter on `slots` wants (its aux). */
enum {
    SLOT_AVAILABLE = 1, /* green_pool_wait_available: to know that one is free */
    SLOT_TAKE = 2,      /* a spawner: one of its own */
};

/* Put in a SLOT_TAKE waiter's value when a slot is handed to it. */
#define SLOT_HANDED ((void *)&slot_handed_tag)
static const char slot_handed_tag;

struct member {
    struct green__link  link; /* first: the callback finds the member from it */
    struct member      *next, *prev;
    struct green_group *grp;
    green_t            *g; /* the group's reference */
};

struct green_group {
    struct green_hub      *hub;
    struct member         *head, *tail; /* members, in the order they joined */
    size_t                 size;        /* members (none of them has finished) */
    size_t                 capacity;    /* SIZE_MAX for a plain group */
    size_t                 reserved;    /* slots handed to parked spawners */
    unsigned               killing;     /* kills in progress: a newcomer is killed too */
    unsigned               busy;        /* calls parked on the group */
    bool                   freed;
    struct green__waitlist joiners;     /* aux: wake once size <= aux */
    struct green__waitlist slots;       /* SLOT_AVAILABLE and SLOT_TAKE, FIFO */
};

struct green_pool {
    struct green_group grp;
};
/* A pool is allocated as a group: the two must stay the same size. */
_Static_assert(sizeof(struct green_pool) == sizeof(struct green_group), "pool is a group");

/* ------------------------------------------------------------------------ */
/* Members                                                                    */
/* ------------------------------------------------------------------------ */

static void member_done(struct green__link *l, green_t *g);

static size_t free_slots(const struct green_group *grp)
{
    size_t used = grp->size + grp->reserved;
    return used < grp->capacity ? grp->capacity - used : 0;
}

/* The member record of g in grp, found through g's links (few, usually one). */
static struct member *find_member(const struct green_group *grp, const green_t *g)
{
    for (struct green__link *l = g->links; l; l = l->next)
        if (l->fn == member_done && ((struct member *)l)->grp == grp)
            return (struct member *)l;
    return NULL;
}

/* Wakes the joiners waiting for the size to drop to what they wait for. */
static void wake_joiners(struct green_group *grp)
{
    struct green__waiter *w = green__waitlist_first(&grp->joiners), *next;
    for (; w; w = next) {
        next = w->next;
        if (grp->size <= w->aux)
            green__trigger(w, 0);
    }
}

/*
 * Hands free slots to the waiters on `slots`, in FIFO order: a spawner gets
 * a slot reserved for it, a wait_available waiter is only told. Called
 * whenever a slot may have freed up, so that a free slot and a waiting
 * spawner never coexist.
 */
static void hand_slots(struct green_group *grp)
{
    struct green__waiter *w = green__waitlist_first(&grp->slots), *next;
    for (; w && free_slots(grp) > 0; w = next) {
        next = w->next;
        if (w->aux == SLOT_TAKE) {
            grp->reserved++;
            w->value = SLOT_HANDED;
        }
        green__trigger(w, 0);
    }
}

/* Unlinks m from the group's list and frees it (its link is off g already). */
static void member_drop(struct green_group *grp, struct member *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        grp->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        grp->tail = m->prev;
    grp->size--;
    green_t *g = m->g;
    free(m);
    green_release(g);
    wake_joiners(grp);
    hand_slots(grp);
}

/* The link: runs in the finishing member, never blocks. */
static void member_done(struct green__link *l, green_t *g)
{
    (void)g;
    struct member *m = (struct member *)l;
    member_drop(m->grp, m);
}

/* Kills g without waiting, keeping the caller's errno. */
static void kill_nowait(green_t *g)
{
    int saved = errno;
    green_kill(g, 0);
    errno = saved;
}

/* Makes g (unfinished, not a member) a member, with the preallocated m. */
static void member_add(struct green_group *grp, struct member *m, green_t *g)
{
    m->link.fn = member_done;
    m->grp = grp;
    m->g = g;
    m->next = NULL;
    m->prev = grp->tail;
    if (grp->tail)
        grp->tail->next = m;
    else
        grp->head = m;
    grp->tail = m;
    grp->size++;
    green_ref(g);
    green__link_add(g, &m->link);
    if (grp->killing)
        kill_nowait(g); /* a group kill in progress takes newcomers too, as gevent's */
}

/* Gives back a slot reserved for a spawner that did not use it. */
static void unreserve(struct green_group *grp)
{
    grp->reserved--;
    hand_slots(grp);
}

/*
 * Spawns fn(arg) as a member. `reserved`: the spawn fills a slot handed to
 * the caller, which is used or given back here. Never yields.
 */
static green_t *spawn_member(struct green_group *grp, green_fn fn, void *arg, bool reserved)
{
    struct member *m = malloc(sizeof *m);
    green_t *g = m ? green_spawn(fn, arg) : NULL;
    if (!g) {
        int err = m ? errno : ENOMEM;
        free(m);
        if (reserved)
            unreserve(grp);
        errno = err;
        return NULL;
    }
    if (reserved)
        grp->reserved--;
    member_add(grp, m, g);
    return g;
}

static bool is_member(const struct green_group *grp, const green_t *g)
{
    return g->state != GREEN_DONE && find_member(grp, g) != NULL;
}

/*
 * True when the caller would wait for a slot that only it can free: it is
 * the pool's only member and no slot is reserved for anyone.
 */
static bool slot_wait_on_self(const struct green_group *grp, struct green_hub *h)
{
    return grp->size == 1 && grp->reserved == 0 && is_member(grp, h->current);
}

/* ------------------------------------------------------------------------ */
/* Parking on a group                                                         */
/* ------------------------------------------------------------------------ */

/*
 * Drops the caller's busy count after a park. True when the group was freed
 * meanwhile: then grp must not be touched again (the memory is gone, or
 * belongs to another call still parked, whichever leaves last frees it).
 */
static bool leave(struct green_group *grp)
{
    grp->busy--;
    if (!grp->freed)
        return false;
    if (grp->busy == 0)
        free(grp);
    return true;
}

/*
 * Parks on a waiter of the group's. A waiter still listed when the group is
 * freed is woken with EPIPE; one woken before keeps its result.
 */
static int park_on(struct green_group *grp, struct green__waiter *w, double timeout, bool *freed)
{
    grp->busy++;
    int err = green__park(w, timeout);
    bool gone = leave(grp);
    if (freed)
        *freed = gone;
    return err;
}

/*
 * Parks with the caller's green_timeouts suspended and kills ignored: used
 * only to wait for workers that have been killed, which a map or imap must
 * see finish before it returns even though its caller was killed or timed
 * out. Returns 0, or EDEADLK if the hub found that nothing can ever wake it.
 */
static int park_shielded(struct green__waiter *w)
{
    green_t *self = w->g;
    double saved = self->tmo_deadline;
    self->tmo_deadline = INFINITY;
    int err = green__park(w, -1);
    self->tmo_deadline = saved;
    return err == EDEADLK ? EDEADLK : 0;
}

/* ------------------------------------------------------------------------ */
/* Group                                                                      */
/* ------------------------------------------------------------------------ */

static struct green_group *group_create(size_t capacity)
{
    struct green_hub *h = green__hub();
    if (!h)
        return NULL;
    struct green_group *grp = calloc(1, sizeof *grp);
    if (!grp) {
        errno = ENOMEM;
        return NULL;
    }
    grp->hub = h;
    grp->capacity = capacity;
    return grp;
}

green_group_t *green_group_new(void)
{
    return group_create(SIZE_MAX);
}

green_t *green_group_spawn(green_group_t *grp, green_fn fn, void *arg)
{
    if (!grp || !fn) {
        errno = EINVAL;
        return NULL;
    }
    int err = green__owner_check(grp->hub);
    if (err) {
        errno = err;
        return NULL;
    }
    return spawn_member(grp, fn, arg, false);
}

int green_group_add(green_group_t *grp, green_t *g)
{
    if (!grp || !g || g->is_hub)
        return green__fail(EINVAL);
    int err = green__owner_check(grp->hub);
    if (err)
        return green__fail(err);
    if (g->hub != grp->hub)
        return green__fail(EPERM);
    if (g->state == GREEN_DONE || find_member(grp, g))
        return 0;
    struct member *m = malloc(sizeof *m);
    if (!m)
        return green__fail(ENOMEM);
    member_add(grp, m, g);
    return 0;
}

int green_group_discard(green_group_t *grp, green_t *g)
{
    if (!grp || !g)
        return green__fail(EINVAL);
    int err = green__owner_check(grp->hub);
    if (err)
        return green__fail(err);
    if (g->hub != grp->hub)
        return 0; /* cannot be a member */
    struct member *m = find_member(grp, g);
    if (m) {
        green__link_remove(g, &m->link);
        member_drop(grp, m);
    }
    return 0;
}

size_t green_group_size(const green_group_t *grp)
{
    return grp ? grp->size : 0;
}

int green_group_join(green_group_t *grp, double timeout)
{
    if (!grp)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(grp->hub, &h);
    if (err)
        return green__fail(err);
    if (grp->size == 0)
        return 0;
    if (is_member(grp, h->current))
        return green__fail(EDEADLK); /* it would wait for itself to finish */
    if (timeout == 0)
        return green__fail(EAGAIN);
    struct green__waiter w;
    green__waiter_init(&w, "group join", grp);
    w.aux = 0;
    green__waitlist_push(&grp->joiners, &w);
    err = park_on(grp, &w, timeout, NULL);
    return err ? green__fail(err) : 0;
}

int green_group_kill(green_group_t *grp, double timeout)
{
    if (!grp)
        return green__fail(EINVAL);
    int err = green__owner_check(grp->hub);
    if (err)
        return green__fail(err);
    struct green_hub *h = green__hub();
    if (!h)
        return -1;
    /* Mark every member first (as green_killall): killing never switches, so
     * no member can finish and leave the list under this loop. */
    bool self = false;
    for (struct member *m = grp->head; m; m = m->next) {
        if (m->g == h->current)
            self = true;
        kill_nowait(m->g);
    }
    if (grp->size <= (size_t)self)
        return 0;
    if (timeout == 0)
        return green__fail(EAGAIN);
    if ((err = green__enter(grp->hub, &h)))
        return green__fail(err);
    struct green__waiter w;
    green__waiter_init(&w, "group kill", grp);
    w.aux = self; /* the caller, if a member, only marked itself */
    green__waitlist_push(&grp->joiners, &w);
    grp->killing++;
    grp->busy++;
    err = green__park(&w, timeout);
    grp->killing--;
    leave(grp);
    return err ? green__fail(err) : 0;
}

/* Detaches every member; see the ownership note at the top. */
static void group_free(struct green_group *grp)
{
    if (!grp || green__owner_check(grp->hub) || grp->freed)
        return;
    struct member *m = grp->head, *next;
    for (; m; m = next) {
        next = m->next;
        green__link_remove(m->g, &m->link);
        green_release(m->g);
        free(m);
    }
    grp->head = grp->tail = NULL;
    grp->size = 0;
    grp->freed = true;
    green__waitlist_wake_all(&grp->joiners, EPIPE);
    green__waitlist_wake_all(&grp->slots, EPIPE);
    if (grp->busy == 0)
        free(grp);
}

void green_group_free(green_group_t *grp)
{
    group_free(grp);
}

/* ------------------------------------------------------------------------ */
/* map and imap_unordered                                                     */
/* ------------------------------------------------------------------------ */

struct map_link {
    struct green__link link; /* first */
    struct map_run    *run;
    size_t             index;
};

/* One map call's state; it lives until every worker it started has finished. */
struct map_run {
    size_t                n, started, finished;
    green_t             **workers;  /* referenced */
    struct map_link      *links;
    size_t               *done;     /* indices of finished workers, FIFO */
    size_t                dhead, dtail;
    struct green__waiter *parked;   /* the caller, while it waits */
};

/* A worker's link: records the result's arrival and wakes the caller. */
static void map_worker_done(struct green__link *l, green_t *g)
{
    (void)g;
    struct map_link *ml = (struct map_link *)l;
    struct map_run *run = ml->run;
    run->done[run->dtail++] = ml->index;
    run->finished++;
    if (run->parked)
        green__trigger(run->parked, 0); /* value NULL: a result, not a slot */
}

static int start_worker(struct green_group *grp, struct map_run *run, green_fn fn,
                        void *const *args, bool reserved)
{
    size_t i = run->started;
    green_t *g = spawn_member(grp, fn, args[i], reserved);
    if (!g)
        return errno;
    run->links[i].run = run;
    run->links[i].index = i;
    run->links[i].link.fn = map_worker_done;
    green__link_add(g, &run->links[i].link);
    run->workers[i] = g;
    run->started++;
    return 0;
}

/* Kills the workers still running and waits until they have all finished. */
static void map_abort(struct map_run *run)
{
    for (size_t i = 0; i < run->started; i++)
        kill_nowait(run->workers[i]);
    while (run->finished < run->started) {
        struct green__waiter w;
        green__waiter_init(&w, "map cleanup", run);
        run->parked = &w;
        int err = park_shielded(&w);
        run->parked = NULL;
        if (err == EDEADLK)
            break; /* a worker ignores its kill and nothing can wake it */
    }
    /* Only reached with workers left in the EDEADLK case: their links point
     * into this call's memory. */
    for (size_t i = 0; i < run->started; i++)
        if (run->workers[i]->state != GREEN_DONE)
            green__link_remove(run->workers[i], &run->links[i].link);
}

/*
 * The engine of map and imap_unordered: starts a worker per item as slots
 * allow, hands each result to `each` (imap) as it arrives, and parks in
 * between on a single waiter that both a worker's link (a result) and the
 * pool (a slot) can trigger.
 */
static int map_engine(struct green_group *grp, green_fn fn, void *const *args, size_t n,
                      void **results, void (*each)(size_t, void *, void *), void *ud)
{
    struct green_hub *h;
    int err = green__enter(grp->hub, &h);
    if (err)
        return green__fail(err);
    if (n == 0)
        return 0;
    struct map_run run = {.n = n};
    run.workers = calloc(n, sizeof *run.workers);
    run.links = calloc(n, sizeof *run.links);
    run.done = calloc(n, sizeof *run.done);
    if (!run.workers || !run.links || !run.done) {
        free(run.workers);
        free(run.links);
        free(run.done);
        return green__fail(ENOMEM);
    }
    grp->busy++; /* a free meanwhile leaves the memory to this call */
    size_t reported = 0;
    while (reported < n) {
        if (run.dhead < run.dtail) {
            size_t i = run.done[run.dhead++];
            reported++;
            if (each) {
                green_t *wk = run.workers[i];
                each(i, wk->killed ? NULL : wk->result, ud);
            }
            continue;
        }
        while (!err && !grp->freed && run.started < n && free_slots(grp) > 0)
            err = start_worker(grp, &run, fn, args, false);
        if (err)
            break;
        if (h->current->killed) {
            err = ECANCELED; /* killed inside `each`: the kill shows here */
            break;
        }
        struct green__waiter w;
        green__waiter_init(&w, each ? "imap" : "map", grp);
        if (run.started < n) {
            if (grp->freed) {
                err = EPIPE;
                break;
            }
            if (slot_wait_on_self(grp, h)) {
                err = EDEADLK;
                break;
            }
            w.aux = SLOT_TAKE;
            green__waitlist_push(&grp->slots, &w);
        }
        run.parked = &w;
        err = green__park(&w, -1);
        run.parked = NULL;
        if (err)
            break;
        if (w.value == SLOT_HANDED && (err = start_worker(grp, &run, fn, args, true)))
            break;
    }
    if (err)
        map_abort(&run);
    for (size_t i = 0; i < run.started; i++) {
        green_t *wk = run.workers[i];
        if (results)
            results[i] = wk->killed ? NULL : green_value(wk);
        green_release(wk);
    }
    if (results)
        for (size_t i = run.started; i < n; i++)
            results[i] = NULL;
    free(run.workers);
    free(run.links);
    free(run.done);
    leave(grp);
    return err ? green__fail(err) : 0;
}

int green_group_map(green_group_t *grp, green_fn fn, void *const *args, void **results, size_t n)
{
    if (!grp || !fn || (n && (!args || !results)))
        return green__fail(EINVAL);
    return map_engine(grp, fn, args, n, results, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Pool                                                                       */
/* ------------------------------------------------------------------------ */

green_pool_t *green_pool_new(size_t size)
{
    if (size == 0 || size == SIZE_MAX) {
        errno = EINVAL;
        return NULL;
    }
    return (green_pool_t *)group_create(size);
}

green_t *green_pool_spawn(green_pool_t *p, green_fn fn, void *arg)
{
    if (!p || !fn) {
        errno = EINVAL;
        return NULL;
    }
    struct green_group *grp = &p->grp;
    int err = green__owner_check(grp->hub);
    if (err) {
        errno = err;
        return NULL;
    }
    if (free_slots(grp) > 0)
        return spawn_member(grp, fn, arg, false); /* room: no yield */
    struct green_hub *h;
    if ((err = green__enter(grp->hub, &h)) == 0 && slot_wait_on_self(grp, h))
        err = EDEADLK;
    if (err) {
        errno = err;
        return NULL;
    }
    struct green__waiter w;
    green__waiter_init(&w, "pool spawn", grp);
    w.aux = SLOT_TAKE;
    green__waitlist_push(&grp->slots, &w);
    bool freed;
    err = park_on(grp, &w, -1, &freed);
    if (!err && freed)
        err = EPIPE; /* a slot handed over before the free went with the pool */
    if (err) {
        errno = err;
        return NULL;
    }
    return spawn_member(grp, fn, arg, true);
}

size_t green_pool_free_count(const green_pool_t *p)
{
    return p ? free_slots(&p->grp) : 0;
}

int green_pool_wait_available(green_pool_t *p, double timeout)
{
    if (!p)
        return green__fail(EINVAL);
    struct green_group *grp = &p->grp;
    struct green_hub *h;
    int err = green__enter(grp->hub, &h);
    if (err)
        return green__fail(err);
    if (free_slots(grp) > 0)
        return 0;
    if (slot_wait_on_self(grp, h))
        return green__fail(EDEADLK);
    if (timeout == 0)
        return green__fail(EAGAIN);
    struct green__waiter w;
    green__waiter_init(&w, "pool wait_available", grp);
    w.aux = SLOT_AVAILABLE;
    green__waitlist_push(&grp->slots, &w);
    err = park_on(grp, &w, timeout, NULL);
    return err ? green__fail(err) : 0;
}

int green_pool_join(green_pool_t *p, double timeout)
{
    return green_group_join(p ? &p->grp : NULL, timeout);
}

int green_pool_kill(green_pool_t *p, double timeout)
{
    return green_group_kill(p ? &p->grp : NULL, timeout);
}

int green_pool_map(green_pool_t *p, green_fn fn, void *const *args, void **results, size_t n)
{
    if (!p || !fn || (n && (!args || !results)))
        return green__fail(EINVAL);
    return map_engine(&p->grp, fn, args, n, results, NULL, NULL);
}

int green_pool_imap_unordered(green_pool_t *p, green_fn fn, void *const *args, size_t n,
                              void (*each)(size_t index, void *result, void *ud), void *ud)
{
    if (!p || !fn || !each || (n && !args))
        return green__fail(EINVAL);
    return map_engine(&p->grp, fn, args, n, NULL, each, ud);
}

void green_pool_free(green_pool_t *p)
{
    group_free(p ? &p->grp : NULL);
}
