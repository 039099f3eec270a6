/*
 * The hub: one per OS thread, created on first use.
 *
 * Scheduling. The ready queue is an intrusive FIFO. A greenlet that blocks or
 * yields calls green__schedule, which switches straight to the next ready
 * greenlet: no system call, no malloc, no libev call, only a queue pop and
 * the assembly switch. The ready queue is served in passes: a pass is the
 * greenlets that were ready when it began. When a pass ends the scheduler
 * switches to the hub greenlet, which polls libev without blocking (timers,
 * I/O, signals) before the next pass, so a greenlet that keeps yielding never
 * starves I/O. The poll is skipped when the library has no watcher active
 * (nothing could be pending), which is what keeps a pure yield ping-pong at
 * the cost of the switch itself. When nothing is ready the hub greenlet
 * blocks in ev_run(EVRUN_ONCE) until a watcher fires.
 *
 * Deadlock. If nothing is ready and libev has no active watcher, nothing can
 * ever wake anyone: the main greenlet, which must be parked, is woken with
 * EDEADLK (gevent raises LoopExit in the same situation).
 *
 * A finished greenlet gives its stack back itself, just before its last
 * switch (green__leave).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "internal.h"


__thread struct green_hub *green__tls_hub __attribute__((tls_model("initial-exec")));

static pthread_key_t hub_key;
static pthread_once_t hub_key_once = PTHREAD_ONCE_INIT;

uint64_t green__next_id(struct green_hub *h);

/* ------------------------------------------------------------------------ */
/* Switching                                                                  */
/* ------------------------------------------------------------------------ */

#if defined(GREEN_ASAN)
void green__resumed(struct green_hub *h)
{
    green_t *prev = h->prev; /* NULL after a finished greenlet's last switch */
    __sanitizer_finish_switch_fiber(h->current->asan_fake, prev ? &prev->asan_bottom : NULL,
                                    prev ? &prev->asan_size : NULL);
}
#endif

void green_yield(void)
{
    struct green_hub *h = green__tls_hub;
    if (!h)
        return; /* no hub: nothing else can be ready */
    green_t *self = h->current;
    if (self == &h->hubg)
        return;
    green_t *next = h->rq_head;
    if (GREEN__LIKELY(!green__polls(h))) {
        if (!next) {
            green__monitor_tick(h); /* it did yield: nothing else wanted to run */
            return;
        }
    } else if (h->pass_left == 0) {
        /* The pass is over: behind the others, after the hub has polled. */
        green__make_ready(h, self);
        green__note_depth(self);
        green__switch_to_tail(h, self, &h->hubg);
        return;
    } else {
        h->pass_left--;
    }
    /* The common case, in place: the head of the ready queue runs, and the
     * caller goes to the tail. The queue's length does not change. The
     * link after next is read before anything is stored (with two
     * greenlets, next is the tail), and the head and tail are stored one by
     * one: as a pair GCC makes them one 16-byte store, which the next
     * yield's 8-byte loads of them wait on (core_green yield, A/B on one
     * CPU: 6.44 -> 6.30 ns). */
    green__note_depth(self);
    green_t *after = next->rq_next;
    self->rq_next = NULL;
    if (after) {
        h->rq_tail->rq_next = self;
        h->rq_head = after;
    } else {
        h->rq_head = self; /* next was the only one */
    }
    __asm__ volatile("" ::: "memory"); /* not paired with the head's store */
    h->rq_tail = self;
    green__switch_to_tail(h, self, next);
}

void green__schedule(struct green_hub *h)
{
    green__schedule_inline(h);
}

void green__yield_behind(struct green_hub *h, size_t woken)
{
    green__make_ready(h, h->current);
    /* While passes are counted, pass_left never exceeds the ready greenlets:
     * the woken ones are in the queue, each counted once by the caller, and
     * the caller is behind them. */
    h->pass_left += woken + 1;
    green__schedule_inline(h);
}

/*
 * A finished greenlet's last switch, entered by a jump when its function has
 * returned (see green__ctx_make) or from green_exit. Its stack goes back to
 * the pool and the library's reference is dropped before it leaves, while it
 * still runs on that stack: nothing can take the stack before the switch
 * below (this thread spawns nothing in between, and the pool keeps the pages
 * from this frame up), and the switch is a one-way jump that saves
 * nothing in the greenlet, which may be freed by then.
 */
void green__leave(void *arg)
{
    green_t *self = arg, *next;
    struct green_hub *h = self->hub;
    char *sp = green__sp(); /* deep, if green_exit was called deep */
    if (sp < self->low_water)
        self->low_water = sp;
    green__stack_give(h, self->stack, self->low_water, sp);
    self->stack = NULL;
    next = green__next(h);
    h->current = next;
    green__monitor_tick(h);
    /* When many greenlets end one after another (a batch joined), each
     * one's stack and struct are cold by the time it runs: start fetching
     * the stack of the one after next and the struct of the one after
     * that (spawn 100,000 then join all, `core_green batch 100000 7`:
     * 342-367 -> 271-322 ns per greenlet). */
    green_t *after = h->rq_head;
    if (after) {
        green__ctx_prefetch(&after->ctx);
        __builtin_prefetch(after->rq_next);
    }
#if defined(GREEN_ASAN)
    h->prev = NULL;
    __sanitizer_start_switch_fiber(NULL, next->asan_bottom, next->asan_size);
#endif
    if (--self->refs == 0) /* the library's reference; the caller's went first */
        green__greenlet_free(self);
    green__ctx_jump(&h->dead_ctx, &next->ctx);
}

static void deadlock(struct green_hub *h)
{
    if (h->main.waiter) {
        green__trigger(h->main.waiter, EDEADLK);
        return;
    }
    fprintf(stderr, "libgreen: the hub has nothing to run and nothing to wait for\n");
    abort();
}

static void hub_main(void *arg)
{
    struct green_hub *h = arg;
    green__resumed(h);
    for (;;) {
        green__monitor_check_fork();
        if (h->rq_head) {
            if (green__polls(h))
                ev_run(h->loop, EVRUN_NOWAIT);
        } else {
            green__stack_trim(h);
            atomic_store_explicit(&h->polling, true, memory_order_relaxed);
            int more = ev_run(h->loop, EVRUN_ONCE);
            atomic_store_explicit(&h->polling, false, memory_order_relaxed);
            if (!h->rq_head) {
                if (!more)
                    deadlock(h);
                continue;
            }
        }
        h->pass_left = h->nready - 1; /* this pass: the ready ones, the first popped */
        green__switch_to(h, &h->hubg, green__rq_pop(h));
    }
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                 */
/* ------------------------------------------------------------------------ */

static void hub_destroy(void *arg)
{
    struct green_hub *h = arg;
    green__monitor_detach(h);
    green__overflow_fini(h);
    green__proc_hub_free(h); /* signals are process-wide: give them back in any case */
    green__tls_hub = NULL;
    if (h->count || h->rq_head)
        return; /* greenlets left behind on an ending thread: leaked, not freed under them */
    green__locals_destroy(&h->main);
    green__io_free(h);
    green__threadpool_hub_free(h);
    green__stack_put(h, h->hubg.stack, NULL, NULL);
    green__stack_pools_free(h);
    green__spares_free(h);
    ev_loop_destroy(h->loop);
    free(h->hubg.name);
    free(h);
}

static void atfork_child(void)
{
    struct green_hub *h = green__tls_hub;
    if (h)
        ev_loop_fork(h->loop);
}

static void hub_key_init(void)
{
    pthread_key_create(&hub_key, hub_destroy);
    pthread_atfork(NULL, NULL, atfork_child);
    green__ctx_init(); /* before the first switch of any thread */
}

static void greenlet_init_fixed(struct green_hub *h, green_t *g)
{
    g->hub = h;
    g->state = GREEN_RUNNING;
    g->refs = 1; /* never released */
    g->id = green__next_id(h);
    g->tmo_deadline = INFINITY;
}

struct green_hub *green__hub_create(void)
{
    pthread_once(&hub_key_once, hub_key_init);
    struct green_hub *h = calloc(1, sizeof *h);
    if (!h) {
        errno = ENOMEM;
        return NULL;
    }
    h->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!h->loop) {
        free(h);
        errno = ENOMEM;
        return NULL;
    }
    h->thread = pthread_self();
    greenlet_init_fixed(h, &h->main);
    h->main.is_main = true;
    greenlet_init_fixed(h, &h->hubg);
    h->hubg.is_hub = true;
    h->hubg.name = strdup("hub");
    h->hubg.stack = green__stack_get(h, green__stack_default());
    if (!h->hubg.stack || !h->hubg.name || green__overflow_init(h) != 0) {
        if (h->hubg.stack)
            green__stack_put(h, h->hubg.stack, NULL, NULL);
        green__stack_pools_free(h);
        free(h->hubg.name);
        ev_loop_destroy(h->loop);
        free(h);
        errno = ENOMEM;
        return NULL;
    }
    char *lo = h->hubg.stack->lo, *top = h->hubg.stack->top;
    green__ctx_make(&h->hubg.ctx, lo, top, hub_main, NULL, h);
    h->hubg.low_water = top;
#if defined(GREEN_ASAN)
    h->hubg.asan_bottom = lo;
    h->hubg.asan_size = (size_t)((char *)top - (char *)lo);
#endif
    h->current = &h->main;
    green__tls_hub = h;
    pthread_setspecific(hub_key, h);
    green__monitor_attach(h);
    return h;
}

/* ------------------------------------------------------------------------ */
/* Checks, time                                                               */
/* ------------------------------------------------------------------------ */

double green__now(struct green_hub *h)
{
    ev_now_update(h->loop);
    return ev_now(h->loop);
}

/* ------------------------------------------------------------------------ */
/* Public                                                                     */
/* ------------------------------------------------------------------------ */

static void wait_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    green__trigger(t->data, ETIMEDOUT);
}

/*
 * green_wait parks the main greenlet with no deadline of its own: it is woken
 * by the hub's deadlock detection, which fires exactly when nothing is ready
 * and libev has no active watcher left, that is when nothing is left to run.
 * Its own timeout is a timer that is unref'd, so that it does not count as
 * something left to run.
 */
int green_wait(double timeout)
{
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return green__fail(err);
    if (h->current != &h->main)
        return green__fail(EDEADLK); /* it would wait for itself to finish */
    if (h->count == 0 && h->nactive == 0 && !h->user_loop && !h->rq_head)
        return 0; /* nothing left: done without waiting */
    if (timeout == 0)
        return green__fail(EAGAIN);
    struct green__waiter w;
    green__waiter_init(&w, "green_wait", NULL);
    ev_timer timer;
    if (timeout > 0) {
        ev_timer_init(&timer, wait_timer_cb, timeout, 0.);
        timer.data = &w;
        ev_now_update(h->loop);
        ev_timer_start(h->loop, &timer);
        ev_unref(h->loop);
        green__active_inc(h);
    }
    err = green__park(&w, GREEN_FOREVER);
    if (timeout > 0) {
        ev_ref(h->loop); /* libev: ref again before stopping an unref'd watcher */
        ev_timer_stop(h->loop, &timer);
        green__active_dec(h);
    }
    if (err == EDEADLK)
        return 0; /* what is left, if anything, can never run */
    return err ? green__fail(err) : 0;
}

struct ev_loop *green_loop(void)
{
    struct green_hub *h = green__hub();
    if (!h)
        return NULL;
    h->pass_left = 0; /* passes count from now on */
    h->user_loop = true;
    return h->loop;
}

size_t green_count(void)
{
    struct green_hub *h = green__tls_hub;
    return h ? h->count : 0;
}


static void dump_one(FILE *out, struct green_hub *h, green_t *g)
{
    const char *state;
    char buf[160];
    if (g == h->current)
        state = "running";
    else if (g->waiter) {
        snprintf(buf, sizeof buf, "waiting on %s %p", g->waiter->what, g->waiter->obj);
        state = buf;
    } else if (g->later)
        state = "new, starts later";
    else
        state = "suspended";
    fprintf(out, "%llu '%s' %s%s\n", (unsigned long long)g->id, green_name(g),
            g->is_main ? "main, " : "", state);
}

void green_dump(FILE *out)
{
    struct green_hub *h = green__hub();
    if (!h || !out)
        return;
    dump_one(out, h, &h->main);
    for (green_t *g = h->all; g; g = g->all_next)
        dump_one(out, h, g);
}
