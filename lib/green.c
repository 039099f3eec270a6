/*
 * Greenlet life cycle: spawn, run, finish, join, kill, iwait.
 *
 * Ownership: green_spawn returns a handle with two references, the caller's
 * and the library's. The library drops its own when the greenlet has
 * finished, in its last switch (green__leave, hub.c), which also
 * gives its stack back; the struct is freed when the last reference goes. The
 * stack is given back as soon as the greenlet finishes, so a finished
 * greenlet whose handle is kept costs only its struct.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Ids: each hub takes blocks of ids from a global counter, so spawning makes
 * no atomic read-modify-write in the common case. */
#define ID_BLOCK 1024
/* Freed greenlet structs kept per hub, so a warm spawn does not malloc. */
#define SPARE_MAX 1024
static _Atomic uint64_t id_next = 1;

uint64_t green__next_id(struct green_hub *h)
{
    if (GREEN__UNLIKELY(h->id_cur == h->id_end)) {
        h->id_cur = atomic_fetch_add(&id_next, ID_BLOCK);
        h->id_end = h->id_cur + ID_BLOCK;
    }
    return h->id_cur++;
}

static void finish(green_t *g, void *result);

/* Runs the greenlet and returns; green__leave then switches away for good. */
static void entry(void *arg)
{
    green_t *g = arg;
    green__resumed(g->hub);
    void *result = NULL;
    if (!g->killed) { /* a greenlet killed before it started never runs */
        g->state = GREEN_RUNNING;
        result = g->fn(g->arg);
    }
    finish(g, result);
}

/* What a finished greenlet does before it leaves its stack. */
static void finish(green_t *g, void *result)
{
    struct green_hub *h = g->hub;
    g->result = result;
    g->tmo_top = NULL;
    g->tmo_deadline = INFINITY;
    if (g->nlocals)
        green__locals_destroy(g); /* before the joiners resume */
    g->state = GREEN_DONE;
    while (!green__waitlist_empty(&g->joiners))
        green__trigger_first(h, &g->joiners, 0);
    struct green__link *l;
    while ((l = g->links) != NULL) {
        g->links = l->next;
        if (l->next)
            l->next->prev = NULL;
        l->next = l->prev = NULL;
        l->fn(l, g);
    }
    /* Off the hub's list of live greenlets (green_dump, green_count). */
    if (g->all_prev)
        g->all_prev->all_next = g->all_next;
    else
        h->all = g->all_next;
    if (g->all_next)
        g->all_next->all_prev = g->all_prev;
    g->all_next = g->all_prev = NULL;
    h->count--;
}

void green__link_add(green_t *g, struct green__link *l)
{
    l->prev = NULL;
    l->next = g->links;
    if (g->links)
        g->links->prev = l;
    g->links = l;
}

void green__link_remove(green_t *g, struct green__link *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else if (g->links == l)
        g->links = l->next;
    else
        return; /* not linked (it fired already) */
    if (l->next)
        l->next->prev = l->prev;
    l->next = l->prev = NULL;
}

/* ------------------------------------------------------------------------ */
/* Spawn                                                                      */
/* ------------------------------------------------------------------------ */

static green_t *create(const green_attr_t *attr, green_fn fn, void *arg, struct green_hub **hp)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    struct green_hub *h = green__hub();
    if (!h)
        return NULL;
    green__monitor_check_fork();
    size_t size = green__stack_default();
    char *name = NULL;
    if (attr) {
        if (attr->stack_size && !(size = green__stack_round(attr->stack_size))) {
            errno = EINVAL;
            return NULL;
        }
        if (attr->name && !(name = strdup(attr->name))) {
            errno = ENOMEM;
            return NULL;
        }
    }
    struct green__slot *stack = green__stack_take(h, size);
    green_t *g = h->spare;
    if (GREEN__LIKELY(g != NULL)) {
        h->spare = g->rq_next;
        h->nspare--;
    } else {
        g = malloc(sizeof *g);
    }
    if (!g || !stack) {
        if (stack)
            green__stack_put(h, stack, NULL, NULL);
        free(g);
        free(name);
        errno = ENOMEM;
        return NULL;
    }
    /* Every field, without a memset: this is the warm spawn's hot path. */
    green__ctx_make(&g->ctx, stack->lo, green__stack_start(h, stack), entry, green__leave, g);
    g->hub = h;
    g->rq_next = NULL;
    g->waiter = NULL;
    g->state = GREEN_NEW;
    g->killed = g->is_main = g->is_hub = false;
    g->refs = 2; /* the caller's and the library's */
    g->id = green__next_id(h);
    g->fn = fn;
    g->arg = arg;
    g->result = NULL;
    g->name = name;
    g->stack = stack;
    g->low_water = stack->top;
    g->tmo_deadline = INFINITY;
    g->tmo_top = NULL;
    g->joiners.head = g->joiners.tail = NULL;
    g->links = NULL;
    g->all_prev = NULL;
    g->all_next = h->all;
    if (h->all)
        h->all->all_prev = g;
    h->all = g;
    g->locals = NULL;
    g->nlocals = 0;
    g->later = NULL;
#if defined(GREEN_ASAN)
    g->asan_fake = NULL;
    g->asan_bottom = stack->lo;
    g->asan_size = (size_t)(stack->top - stack->lo);
#endif
    h->count++;
    *hp = h;
    return g;
}

green_t *green_spawn_attr(const green_attr_t *attr, green_fn fn, void *arg)
{
    struct green_hub *h;
    green_t *g = create(attr, fn, arg, &h);
    if (g)
        green__make_ready(h, g);
    return g;
}

green_t *green_spawn(green_fn fn, void *arg)
{
    return green_spawn_attr(NULL, fn, arg);
}

static void later_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    green_t *g = t->data;
    ev_timer_stop(loop, t);
    free(t);
    g->later = NULL;
    green__active_dec(g->hub);
    green__make_ready(g->hub, g);
}

green_t *green_spawn_later(double seconds, green_fn fn, void *arg)
{
    if (!(seconds > 0))
        return green_spawn(fn, arg);
    ev_timer *t = malloc(sizeof *t);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    struct green_hub *h;
    green_t *g = create(NULL, fn, arg, &h);
    if (!g) {
        free(t);
        return NULL;
    }
    ev_now_update(h->loop);
    ev_timer_init(t, later_cb, seconds, 0.);
    t->data = g;
    g->later = t;
    ev_timer_start(h->loop, t);
    green__active_inc(h);
    return g;
}

/* ------------------------------------------------------------------------ */
/* Handles                                                                    */
/* ------------------------------------------------------------------------ */

void green_ref(green_t *g)
{
    if (g && g->hub == green__tls_hub)
        g->refs++;
}

void green_release(green_t *g)
{
    if (!g || g->hub != green__tls_hub || g->is_main || g->is_hub)
        return;
    if (--g->refs == 0)
        green__greenlet_free(g);
}

void green__greenlet_free(green_t *g)
{
    if (g->name)
        free(g->name);
    if (g->locals)
        free(g->locals);
    struct green_hub *h = g->hub;
    if (h->nspare < SPARE_MAX) {
        g->rq_next = h->spare;
        h->spare = g;
        h->nspare++;
    } else {
        free(g);
    }
}

void green__spares_free(struct green_hub *h)
{
    while (h->spare) {
        green_t *g = h->spare;
        h->spare = g->rq_next;
        free(g);
    }
    h->nspare = 0;
}

green_t *green_current(void)
{
    struct green_hub *h = green__hub();
    return h ? h->current : NULL;
}

uint64_t green_id(const green_t *g)
{
    return g ? g->id : 0;
}

const char *green_name(const green_t *g)
{
    return g && g->name ? g->name : "";
}

void green_set_name(green_t *g, const char *name)
{
    if (!g || g->hub != green__tls_hub || g->is_hub)
        return;
    char *copy = name && *name ? strdup(name) : NULL;
    if (name && *name && !copy)
        return; /* out of memory: keep the old name */
    free(g->name);
    g->name = copy;
}

void *green_value(const green_t *g)
{
    return g && g->state == GREEN_DONE ? g->result : NULL;
}

bool green_ready(const green_t *g)
{
    return g && g->state == GREEN_DONE;
}

bool green_killed(const green_t *g)
{
    return g && g->killed;
}

bool green_cancelled(void)
{
    struct green_hub *h = green__tls_hub;
    return h && h->current->killed;
}

/* ------------------------------------------------------------------------ */
/* Sleep, exit                                                                */
/* ------------------------------------------------------------------------ */

int green_sleep(double seconds)
{
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return green__fail(err);
    if (!(seconds > 0)) {
        green_yield();
        return 0;
    }
    struct green__waiter w;
    green__waiter_init(&w, "sleep", NULL);
    err = green__park(&w, seconds);
    /* Its own deadline is the sleep ending well; an earlier green_timeout
     * deadline is a timeout. */
    if (err == ETIMEDOUT && h->current->tmo_deadline >= w.deadline)
        err = 0;
    return err ? green__fail(err) : 0;
}

void green_exit(void *result)
{
    struct green_hub *h = green__hub();
    if (!h || h->current == &h->main)
        pthread_exit(result);
    if (h->current == &h->hubg) {
        fprintf(stderr, "libgreen: green_exit called from the hub\n");
        abort();
    }
    green_t *g = h->current;
    finish(g, result);
    green__leave(g);
}

/* ------------------------------------------------------------------------ */
/* Join, kill                                                                 */
/* ------------------------------------------------------------------------ */

/* Waits for g until the absolute deadline (INFINITY: forever). */
static int join_until(struct green_hub *h, green_t *g, double deadline)
{
    while (g->state != GREEN_DONE) {
        double left = -1;
        if (deadline < INFINITY) {
            left = deadline - green__now(h);
            if (left <= 0)
                return ETIMEDOUT;
        }
        struct green__waiter w;
        green__waiter_init(&w, "join", g);
        green__waitlist_push(&g->joiners, &w);
        int err = green__park(&w, left);
        if (err)
            return err;
    }
    return 0;
}

static double deadline_of(struct green_hub *h, double timeout)
{
    return timeout < 0 ? INFINITY : green__now(h) + timeout;
}

/* Validates a list for joinall/killall: EINVAL, EPERM, EDEADLK (self). */
static int check_list(green_t *const *gs, size_t n, bool self_ok)
{
    if (!gs && n)
        return EINVAL;
    struct green_hub *h = green__tls_hub;
    for (size_t i = 0; i < n; i++) {
        if (!gs[i] || gs[i]->is_hub)
            return EINVAL;
        if (gs[i]->hub != h)
            return EPERM;
        if (!self_ok && gs[i] == h->current)
            return EDEADLK;
    }
    return 0;
}

int green_joinall(green_t *const *gs, size_t n, double timeout)
{
    int err = check_list(gs, n, false);
    struct green_hub *h;
    if (err || (err = green__enter(NULL, &h)))
        return green__fail(err);
    size_t i;
    for (i = 0; i < n && gs[i]->state == GREEN_DONE; i++)
        ;
    if (i == n)
        return 0;
    if (timeout == 0)
        return green__fail(EAGAIN);
    double deadline = deadline_of(h, timeout);
    for (; i < n; i++)
        if ((err = join_until(h, gs[i], deadline)))
            return green__fail(err);
    return 0;
}

int green_join(green_t *g, double timeout)
{
    if (!g || g->is_hub)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(g->hub, &h);
    if (!err && g == h->current)
        err = EDEADLK;
    if (err)
        return green__fail(err);
    if (g->state == GREEN_DONE)
        return 0;
    if (timeout == 0)
        return green__fail(EAGAIN);
    if ((err = join_until(h, g, deadline_of(h, timeout))))
        return green__fail(err);
    return 0;
}

int green_get(green_t *g, void **result, double timeout)
{
    if (green_join(g, timeout) != 0)
        return -1;
    if (result)
        *result = g->result;
    return 0;
}

/* Marks g killed and interrupts what it waits on. */
static void kill_mark(struct green_hub *h, green_t *g)
{
    if (g->state == GREEN_DONE || g->is_hub)
        return;
    g->killed = true;
    if (g == h->current)
        return;
    if (g->waiter) {
        green__trigger(g->waiter, ECANCELED);
    } else if (g->later) {
        /* Not started yet: start it now, so that it finishes without running. */
        ev_timer_stop(h->loop, g->later);
        free(g->later);
        g->later = NULL;
        green__active_dec(h);
        green__make_ready(h, g);
    }
}

int green_killall(green_t *const *gs, size_t n, double timeout)
{
    int err = check_list(gs, n, true);
    if (err)
        return green__fail(err);
    struct green_hub *h = green__hub();
    if (!h)
        return -1;
    for (size_t i = 0; i < n; i++)
        kill_mark(h, gs[i]);
    size_t i;
    for (i = 0; i < n && (gs[i]->state == GREEN_DONE || gs[i] == h->current); i++)
        ;
    if (i == n)
        return 0;
    if (timeout == 0)
        return green__fail(EAGAIN);
    if ((err = green__enter(NULL, &h)))
        return green__fail(err);
    double deadline = deadline_of(h, timeout);
    for (; i < n; i++)
        if (gs[i] != h->current && (err = join_until(h, gs[i], deadline)))
            return green__fail(err);
    return 0;
}

int green_kill(green_t *g, double timeout)
{
    return green_killall(g ? &g : NULL, 1, timeout);
}

/* ------------------------------------------------------------------------ */
/* iwait                                                                      */
/* ------------------------------------------------------------------------ */

struct iwait_link {
    struct green__link link;
    struct green_iwait *it;
};

struct green_iwait {
    struct green_hub      *hub;
    size_t                 n, nreturned;
    green_t              **gs;         /* referenced */
    struct iwait_link     *links;
    green_t              **done;       /* finished, not yet returned (FIFO) */
    size_t                 dhead, dtail;
    struct green__waitlist waiters;
};

static void iwait_fired(struct green__link *l, green_t *g)
{
    struct green_iwait *it = ((struct iwait_link *)l)->it;
    it->done[it->dtail++] = g;
    struct green__waiter *w = green__waitlist_first(&it->waiters);
    if (w)
        green__trigger(w, 0);
}

green_iwait_t *green_iwait_new(green_t *const *gs, size_t n)
{
    int err = check_list(gs, n, true);
    if (err) {
        errno = err;
        return NULL;
    }
    struct green_hub *h = green__hub();
    if (!h)
        return NULL;
    struct green_iwait *it = calloc(1, sizeof *it);
    size_t m = n ? n : 1;
    if (it) {
        it->gs = malloc(m * sizeof *it->gs);
        it->done = malloc(m * sizeof *it->done);
        it->links = calloc(m, sizeof *it->links);
    }
    if (!it || !it->gs || !it->done || !it->links) {
        if (it) {
            free(it->gs);
            free(it->done);
            free(it->links);
            free(it);
        }
        errno = ENOMEM;
        return NULL;
    }
    it->hub = h;
    it->n = n;
    for (size_t i = 0; i < n; i++) {
        green_t *g = it->gs[i] = gs[i];
        g->refs++;
        it->links[i].it = it;
        it->links[i].link.fn = iwait_fired;
        if (g->state == GREEN_DONE)
            it->done[it->dtail++] = g;
        else
            green__link_add(g, &it->links[i].link);
    }
    return it;
}

green_t *green_iwait_next(green_iwait_t *it, double timeout)
{
    if (!it) {
        errno = EINVAL;
        return NULL;
    }
    struct green_hub *h;
    int err = green__enter(it->hub, &h);
    double deadline = INFINITY;
    while (!err) {
        if (it->dhead < it->dtail) {
            it->nreturned++;
            return it->done[it->dhead++];
        }
        if (it->nreturned == it->n) {
            err = ENOENT;
            break;
        }
        if (timeout == 0) {
            err = EAGAIN;
            break;
        }
        if (timeout > 0 && deadline == INFINITY)
            deadline = deadline_of(h, timeout);
        double left = deadline == INFINITY ? -1 : deadline - green__now(h);
        if (deadline < INFINITY && left <= 0) {
            err = ETIMEDOUT;
            break;
        }
        struct green__waiter w;
        green__waiter_init(&w, "iwait", it);
        green__waitlist_push(&it->waiters, &w);
        err = green__park(&w, left);
    }
    errno = err;
    return NULL;
}

void green_iwait_free(green_iwait_t *it)
{
    if (!it || green__owner_check(it->hub))
        return;
    green__waitlist_wake_all(&it->waiters, EPIPE);
    for (size_t i = 0; i < it->n; i++) {
        green__link_remove(it->gs[i], &it->links[i].link);
        green_release(it->gs[i]);
    }
    free(it->gs);
    free(it->done);
    free(it->links);
    free(it);
}
