/*
 * libgreen internals: the greenlet, the hub, and the one suspension
 * primitive every blocking call is built on.
 *
 * Names here are green__*: visible across the library's files, never
 * exported (the library is built with -fvisibility=hidden).
 *
 * THE MODEL IN ONE PARAGRAPH
 *
 * Each OS thread has a hub (struct green_hub): a libev loop, a FIFO ready
 * queue of greenlets, the thread's own stack as its main greenlet, and a hub
 * greenlet with a stack of its own that runs the loop. A greenlet that blocks
 * parks on a waiter (below) and calls the scheduler, which switches straight
 * to the next ready greenlet; only when nothing is ready, or a pass over the
 * ready queue has ended while watchers are active, does it switch to the hub
 * greenlet, which polls libev and switches on. Callbacks of libev watchers
 * therefore always run on the hub greenlet's stack, where blocking is
 * forbidden (EDEADLK).
 *
 * WAITING AND WAKING (how to build a blocking call)
 *
 *     int green_thing_get(thing_t *t, void **out, double timeout)
 *     {
 *         int err = green__enter(t->hub);          // EPERM / EDEADLK / ECANCELED
 *         if (err) return green__fail(err);
 *         if (thing_has_item(t)) { *out = take(t); return 0; }   // never waits
 *         if (timeout == 0) return green__fail(EAGAIN);
 *         struct green__waiter w;
 *         green__waiter_init(&w, "thing get", t);
 *         green__waitlist_push(&t->getters, &w);
 *         err = green__park(&w, timeout);           // ETIMEDOUT / ECANCELED / yours
 *         if (err) return green__fail(err);
 *         *out = w.value;                           // handed over by the waker
 *         return 0;
 *     }
 *
 * and the waker hands the item over and triggers the first waiter:
 *
 *     struct green__waiter *w = green__waitlist_first(&t->getters);
 *     if (w) { w->value = item; green__trigger(w, 0); }
 *
 * green__trigger removes the waiter from its list and queues its greenlet; it
 * never switches and acts once: the first cause (a hand-over, the deadline,
 * a kill, a free that triggers with EPIPE) wins and later triggers are
 * ignored. green__park returns the cause. Because a triggered waiter has
 * already left its list, a killed or timed-out waiter can never take a
 * wake-up meant for the one behind it, and one that was handed something
 * before the kill still returns success (the kill shows at its next call).
 *
 * The waiter lives on the parked greenlet's stack, so it must not be touched
 * after green__park returns; a waitlist owner that is freed triggers every
 * waiter still listed (green__waitlist_wake_all(list, EPIPE)).
 */
#ifndef GREEN_INTERNAL_H
#define GREEN_INTERNAL_H

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/switch.h"
#include "green.h"

#if defined(__SANITIZE_ADDRESS__)
#define GREEN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GREEN_ASAN 1
#endif
#endif

#define GREEN__LIKELY(x) __builtin_expect(!!(x), 1)
#define GREEN__UNLIKELY(x) __builtin_expect(!!(x), 0)

struct green_hub;
struct green__slot;

/* ------------------------------------------------------------------------ */
/* Waiters and waitlists                                                      */
/* ------------------------------------------------------------------------ */

/* An intrusive FIFO of waiters. Zero-initialised is empty. */
struct green__waitlist {
    struct green__waiter *head, *tail;
};

struct green__waiter {
    green_t                 *g;          /* the parked greenlet */
    struct green__waiter    *next, *prev;
    struct green__waitlist  *list;       /* the list it is on, or NULL */
    int                      err;        /* the result of the wait */
    bool                     done;       /* triggered */
    void                    *value;      /* what a waker handed over */
    uintptr_t                aux;        /* free for the wait's owner */
    double                   deadline;   /* the call's own deadline (set by a park with a timeout) */
    const char              *what;       /* "sleep", "join"…: shown by green_dump */
    const void              *obj;        /* what it waits on: shown by green_dump */
};

/*
 * The calls of the primitive, defined inline further down (they need the
 * greenlet and hub structs):
 *
 *   void green__waiter_init(struct green__waiter *w, const char *what, const void *obj);
 *       Starts a waiter for the current greenlet.
 *   void green__waitlist_push(struct green__waitlist *l, struct green__waiter *w);
 *       Appends w to a list (waiters are woken in FIFO order).
 *   void green__waitlist_remove(struct green__waiter *w);
 *       Removes w from its list, if on one.
 *   int green__park(struct green__waiter *w, double timeout);
 *       Suspends the current greenlet until w is triggered, the timeout (or
 *       an enclosing green_timeout) runs out, or the greenlet is killed.
 *       Returns the trigger's err: 0, ETIMEDOUT, ECANCELED, or whatever the
 *       waker chose. w must have been initialised and may already be on a
 *       list; on return it is on none. timeout 0 is the caller's business
 *       (EAGAIN before parking): here it means "already expired". Must be
 *       called after green__enter succeeded.
 *   void green__trigger(struct green__waiter *w, int err);
 *       Wakes w's greenlet with err unless it was woken already. Never
 *       switches.
 *   struct green__waiter *green__trigger_first(struct green_hub *h,
 *                                              struct green__waitlist *l, int err);
 *       The same for the first waiter of a list that is not empty, on hub
 *       h; returns it (the hand-off path of locks).
 *
 * They are inline because every hand-off runs them (a semaphore hand-off
 * is a trigger and a park); only a park with a deadline goes out of line.
 */
static inline struct green__waiter *green__waitlist_first(const struct green__waitlist *l)
{
    return l->head;
}
static inline bool green__waitlist_empty(const struct green__waitlist *l)
{
    return l->head == NULL;
}
/* Triggers every waiter on the list with err. Returns how many. */
size_t green__waitlist_wake_all(struct green__waitlist *l, int err);

/* ------------------------------------------------------------------------ */
/* Greenlets                                                                  */
/* ------------------------------------------------------------------------ */

enum green__state {
    GREEN_NEW,       /* spawned, not yet run */
    GREEN_RUNNING,   /* started: running, ready or parked */
    GREEN_DONE,      /* finished */
};

/* Something to call when a greenlet finishes (gevent's rawlink). */
struct green__link {
    struct green__link *next, *prev;
    void (*fn)(struct green__link *link, green_t *g);
};

/* create() in green.c sets every field one by one (no memset on the warm
 * spawn path): a field added here must be set there too. */
struct green {
    green__ctx_t           ctx;
    struct green_hub      *hub;
    green_t               *rq_next;      /* ready queue */
    struct green__waiter  *waiter;       /* set while parked */
    uint8_t                state;
    bool                   killed;
    bool                   is_main, is_hub;
    int                    refs;
    uint64_t               id;
    green_fn               fn;
    void                  *arg;
    void                  *result;
    char                  *name;         /* NULL means "" */
    struct green__slot    *stack;        /* NULL for main, and once finished */
    char                  *low_water;    /* deepest sp seen at a suspension */
    double                 tmo_deadline; /* earliest green_timeout deadline */
    green_timeout_t       *tmo_top;
    struct green__waitlist joiners;
    struct green__link    *links;
    green_t               *all_next, *all_prev; /* the hub's list of live greenlets */
    void                 **locals;
    unsigned               nlocals;
    ev_timer              *later;        /* spawn_later's pending start */
#ifdef GREEN_ASAN
    void                  *asan_fake;
    const void            *asan_bottom;
    size_t                 asan_size;
#endif
};

/* Frees a greenlet whose last reference is gone (keeps the struct for reuse). */
void green__greenlet_free(green_t *g);

/* Links: fn(link, g) runs in the finishing greenlet; it must not block. */
void green__link_add(green_t *g, struct green__link *link);
void green__link_remove(green_t *g, struct green__link *link);

/* ------------------------------------------------------------------------ */
/* The hub                                                                    */
/* ------------------------------------------------------------------------ */

struct green__stack_pool;
struct green__fdw;
struct green__pool_inbox;

struct green_hub {
    struct ev_loop       *loop;
    green_t              *current;
    /* nready and pass_left are not neighbours on purpose: GCC's -O2 would
     * otherwise pair their updates into one 16-byte vector load and store,
     * and that load, of two fields just stored one by one, stalls the
     * store-to-load forwarding (~5 ns on every spawn+join here). */
    size_t                pass_left;     /* ready greenlets left in this pass */
    green_t              *rq_head, *rq_tail;
    size_t                nready;
    unsigned              nactive;       /* watchers the library keeps active */
    bool                  user_loop;     /* green_loop() was called: always poll */
    green__ctx_t          dead_ctx;      /* scratch for an ended context's last switch */
    green_t              *prev;          /* greenlet that switched last (ASan) */
    size_t                count;         /* live greenlets, main excluded */
    green_t              *all;           /* live greenlets, for green_dump */
    struct green__stack_pool *pools;     /* stack pools, one per size */
    struct green__slot   *hot_stack;     /* the stack given back last (stack.c) */
    unsigned              colour;        /* the next spawn's stack colour (stack.c) */
    struct green__fdw   **fdw;           /* io.c: fd -> watcher, while waited on */
    int                   nfdw;
    struct green__pool_inbox *inbox;     /* threadpool.c: finished jobs */
    uint64_t              id_cur, id_end; /* the block of ids this hub hands out */
    green_t              *spare;         /* freed greenlet structs, for reuse */
    unsigned              nspare;
    pthread_t             thread;
    _Atomic unsigned long nswitch;       /* for the monitor */
    _Atomic bool          polling;       /* blocked in the poller: idle, not busy */
    void                 *monitor;
    void                 *altstack;
    green_t               main;          /* the thread's own stack */
    green_t               hubg;          /* runs the libev loop */
};

extern __thread struct green_hub *green__tls_hub __attribute__((tls_model("initial-exec")));

/* This thread's hub, created on first use; NULL with errno ENOMEM. */
struct green_hub *green__hub_create(void);
static inline struct green_hub *green__hub(void)
{
    struct green_hub *h = green__tls_hub;
    return GREEN__LIKELY(h != NULL) ? h : green__hub_create();
}

/*
 * The checks every blocking call starts with, in this order: the object
 * belongs to another thread's hub (EPERM), the caller is the hub (EDEADLK),
 * the caller has been killed (ECANCELED). `owner` may be NULL (no object).
 * Returns 0 or the errno; *hubp gets the caller's hub (created if need be:
 * ENOMEM).
 */
static inline int green__enter(struct green_hub *owner, struct green_hub **hubp);

/* For calls that never block: EPERM from a foreign thread, else 0. */
static inline int green__owner_check(struct green_hub *owner)
{
    return owner && owner != green__tls_hub ? EPERM : 0;
}

/* Sets errno and returns -1. */
static inline int green__fail(int err)
{
    errno = err;
    return -1;
}

/* Monotonic now, in the hub loop's time base. */
double green__now(struct green_hub *h);

/* Queues g at the tail of the ready queue. Never switches. */
static inline void green__make_ready(struct green_hub *h, green_t *g)
{
    g->rq_next = NULL;
    if (h->rq_tail)
        h->rq_tail->rq_next = g;
    else
        h->rq_head = g;
    h->rq_tail = g;
    h->nready++;
}

/*
 * Switches away from the current greenlet, which has either queued itself
 * or parked on a waiter, to the next one to run. Returns when the current
 * greenlet is resumed.
 */
void green__schedule(struct green_hub *h);

/*
 * Yields so that the `woken` greenlets the caller has just made ready, and
 * then the caller, run in the current pass over the ready queue rather than
 * after the next poll (lib/curl.c: a performer woken with its result adds
 * its next transfer before the driver's next call into curl).
 */
void green__yield_behind(struct green_hub *h, size_t woken);

/* A finished greenlet's last switch (arg: the greenlet); never returns. It
 * is the `leave` of every greenlet's context (see green__ctx_make). */
void green__leave(void *arg) __attribute__((noreturn));

/* What every resumed context does under ASan: finish the fiber switch. */
#if defined(GREEN_ASAN)
void green__resumed(struct green_hub *h);
#else
static inline void green__resumed(struct green_hub *h) { (void)h; }
#endif

/*
 * Library watchers counted for the pass-end poll decision. While none is
 * active (and green_loop was not called) nothing can be polled and passes
 * are not counted; when the first starts, the pass in progress ends at the
 * next switch.
 */
static inline bool green__polls(const struct green_hub *h)
{
    return h->nactive || h->user_loop;
}
static inline void green__active_add(struct green_hub *h, unsigned n)
{
    if (!green__polls(h))
        h->pass_left = 0;
    h->nactive += n;
}
static inline void green__active_inc(struct green_hub *h) { green__active_add(h, 1); }
static inline void green__active_dec(struct green_hub *h) { h->nactive--; }


/* ------------------------------------------------------------------------ */
/* The scheduler's switch path, inline (hub.c has the rest)                   */
/* ------------------------------------------------------------------------ */

#if defined(GREEN_ASAN)
#include <sanitizer/asan_interface.h>
#define GREEN_ASAN_ON 1
#else
#define GREEN_ASAN_ON 0
#endif

/* Tells the monitor (if any) that the hub made progress. */
static inline void green__monitor_tick(struct green_hub *h)
{
    if (GREEN__UNLIKELY(h->monitor != NULL))
        atomic_store_explicit(&h->nswitch,
                              atomic_load_explicit(&h->nswitch, memory_order_relaxed) + 1,
                              memory_order_relaxed);
}

static inline __attribute__((always_inline)) void green__switch_to(struct green_hub *h, green_t *self, green_t *next)
{
    h->current = next;
    green__monitor_tick(h);
#if defined(GREEN_ASAN)
    h->prev = self;
    __sanitizer_start_switch_fiber(&self->asan_fake, next->asan_bottom, next->asan_size);
#endif
    green__ctx_switch(&self->ctx, &next->ctx);
    green__resumed(h);
}

/* green__switch_to as the caller's last statement, where the caller returns
 * nothing and does nothing after it: a sibling call (see
 * green__ctx_switch_tail). AddressSanitizer's fiber hooks need the return. */
static inline __attribute__((always_inline)) void green__switch_to_tail(struct green_hub *h,
                                                                       green_t *self, green_t *next)
{
#if defined(GREEN_ASAN)
    green__switch_to(h, self, next);
#else
    h->current = next;
    green__monitor_tick(h);
    green__ctx_switch_tail(&self->ctx, &next->ctx);
#endif
}

static inline green_t *green__rq_pop(struct green_hub *h)
{
    green_t *g = h->rq_head;
    h->rq_head = g->rq_next;
    if (!h->rq_head)
        h->rq_tail = NULL;
    h->nready--;
    return g;
}

/* The stack pointer (no frame pointer forced, unlike __builtin_frame_address). */
static inline __attribute__((always_inline)) char *green__sp(void)
{
    char *sp;
#if defined(__x86_64__)
    __asm__ volatile("movq %%rsp, %0" : "=r"(sp));
#elif defined(__aarch64__)
    __asm__ volatile("mov %0, sp" : "=r"(sp));
#else
    sp = __builtin_frame_address(0);
#endif
    return sp;
}

/* Notes how deep the current greenlet's stack has been (stack.c gives the
 * pages of deep stacks back before reuse). */
static inline void green__note_depth(green_t *self)
{
    char *sp = green__sp();
    if (GREEN__UNLIKELY(sp < self->low_water))
        self->low_water = sp;
}

/*
 * The context to run when the current one parks or ends, popped from the
 * ready queue: its head, or the hub greenlet when nothing is ready (it
 * sleeps in the poller, or reports the deadlock) or when a pass over the
 * queue has ended while something could be polled (it polls, then starts
 * the next pass). pass_left counts only while green__polls().
 */
static inline green_t *green__next(struct green_hub *h)
{
    if (GREEN__LIKELY(!green__polls(h))) {
        if (!h->rq_head)
            return &h->hubg;
    } else if (h->pass_left == 0) {
        return &h->hubg;
    } else {
        h->pass_left--;
    }
    return green__rq_pop(h);
}

static inline __attribute__((always_inline)) void green__schedule_inline(struct green_hub *h)
{
    green_t *self = h->current;
    green__note_depth(self);
    green_t *next = green__next(h);
    if (next != self)
        green__switch_to(h, self, next);
}

/* ------------------------------------------------------------------------ */
/* The primitive, inline (see the top of this file)                           */
/* ------------------------------------------------------------------------ */

static inline int green__enter(struct green_hub *owner, struct green_hub **hubp)
{
    struct green_hub *h = green__tls_hub;
    if (owner && owner != h)
        return EPERM;
    if (GREEN__UNLIKELY(!h) && !(h = green__hub_create()))
        return ENOMEM;
    *hubp = h;
    if (GREEN__UNLIKELY(h->current == &h->hubg))
        return EDEADLK;
    if (GREEN__UNLIKELY(h->current->killed))
        return ECANCELED;
    return 0;
}

static inline void green__waiter_init(struct green__waiter *w, const char *what, const void *obj)
{
    w->g = green__tls_hub->current;
    w->list = NULL;
    w->err = 0;
    w->done = false;
    w->value = NULL;
    w->aux = 0;
    w->what = what;
    w->obj = obj;
}

static inline void green__waitlist_push(struct green__waitlist *l, struct green__waiter *w)
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

static inline void green__waitlist_remove(struct green__waiter *w)
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
    w->list = NULL;
}

static inline void green__trigger(struct green__waiter *w, int err)
{
    if (w->done)
        return;
    w->done = true;
    w->err = err;
    green__waitlist_remove(w);
    green__make_ready(w->g->hub, w->g);
}

/* green__trigger for the first waiter of a list that is not empty, whose
 * greenlets belong to hub h: the same, minus the checks a listed head never
 * needs (it cannot have been triggered, and it has no predecessor), and
 * with the hub from the caller rather than from the waiter's greenlet, so
 * that the hand-off is not a chain of dependent loads. Every hand-off of a
 * lock runs it. */
static inline struct green__waiter *green__trigger_first(struct green_hub *h,
                                                         struct green__waitlist *l, int err)
{
    struct green__waiter *w = l->head;
    l->head = w->next;
    if (w->next)
        w->next->prev = NULL;
    else
        l->tail = NULL;
    w->list = NULL;
    w->done = true;
    w->err = err;
    green__make_ready(h, w->g);
    return w;
}

/* green__park with a deadline (its own timeout or a green_timeout's). */
int green__park_deadline(struct green__waiter *w, double timeout);

static inline int green__park(struct green__waiter *w, double timeout)
{
    green_t *g = w->g;
    if (timeout >= 0 || g->tmo_deadline < __builtin_inf())
        return green__park_deadline(w, timeout);
    struct green_hub *h = g->hub;
    g->waiter = w;
    do
        green__schedule_inline(h);
    while (!w->done);
    g->waiter = NULL;
    return w->err;
}

/* ------------------------------------------------------------------------ */
/* Stacks (stack.c)                                                           */
/* ------------------------------------------------------------------------ */

/* A stack slot: the usable range is [lo, top); the guard lies under lo. */
struct green__slot {
    struct green__slot  *next;   /* the pool's free list */
    struct green__chunk *chunk;
    char                *lo, *top;
    unsigned             vg_id;  /* valgrind's stack id */
};

/* The default stack size: GREEN_STACK_SIZE, else 256 KiB. The first call
 * settles it (and the page size, guard mode and map limit). */
extern size_t green__stack_default_size;
size_t green__stack_default_init(void);
static inline size_t green__stack_default(void)
{
    size_t size = __atomic_load_n(&green__stack_default_size, __ATOMIC_ACQUIRE);
    return GREEN__LIKELY(size != 0) ? size : green__stack_default_init();
}
/* Rounds a requested size; 0 if it is out of range. */
size_t green__stack_round(size_t size);
/* A stack of `size` bytes (already rounded) from the hub's pools; NULL ENOMEM. */
struct green__slot *green__stack_get(struct green_hub *h, size_t size);
/* Gives the stack back; low_water is the deepest sp seen on it (or NULL);
 * live, if not NULL, is the sp of a caller still running on it: pages from
 * there up are kept. */
void green__stack_put(struct green_hub *h, struct green__slot *s, const char *low_water,
                      const char *live);
/* Guard range under a stack, for the overflow handler. */
void green__stack_guard(const struct green__slot *s, const char **lo, const char **hi);
/*
 * The warm path: each hub keeps the stack given back last in a slot of its
 * own (hot_stack), so that a spawn after a join takes it with no pool
 * work. It still counts as used in its chunk: green__stack_trim puts it
 * back in the pool first (green__stack_pools_free frees it with its chunk).
 * A stack that went deep takes the pool's path, which gives its deep pages
 * back.
 */
#define GREEN__DEEP_KEEP ((size_t)64 * 1024) /* pages kept below a stack's top */
static inline struct green__slot *green__stack_take(struct green_hub *h, size_t size)
{
    struct green__slot *s = h->hot_stack;
    if (GREEN__LIKELY(s != NULL) && (size_t)(s->top - s->lo) == size) {
        h->hot_stack = NULL;
        return s;
    }
    return green__stack_get(h, size);
}

static inline void green__stack_give(struct green_hub *h, struct green__slot *s,
                                     const char *low_water, const char *live)
{
    if (!h->hot_stack && low_water >= s->top - GREEN__DEEP_KEEP)
        h->hot_stack = s;
    else
        green__stack_put(h, s, low_water, live);
}

/*
 * Stack colouring: where a new greenlet's frames start below its stack's
 * top. Every stack's top lies on a page boundary, so without it the hot
 * frames of all greenlets share their address bits 0-11, hence their L1
 * cache sets, and then also alias in the L1 way predictor's hashed tags
 * (AMD's utags) whenever the address bits above happen to collide: a
 * semaphore hand-off between two greenlets measured 11.6 ns in some runs
 * and 13.1-15.7 ns in others, depending on where ASLR put the stacks.
 * Successive spawns take GREEN__COLOURS offsets GREEN__COLOUR_STEP apart
 * (the hot part of a parked greenlet's frames is smaller), which made it
 * 10.4-11.9 ns in every run. It costs no memory for a greenlet that stays
 * within its first page: the offset is at most 1,344 bytes of it.
 */
#define GREEN__COLOURS 4u
#define GREEN__COLOUR_STEP 448u
/* The deepest start, with the first frame below it, stays in the top page:
 * green__stack_renew marks just that page for valgrind. */
_Static_assert((GREEN__COLOURS - 1) * GREEN__COLOUR_STEP <= 2048, "colours leave the top page");
extern bool green__stack_on_valgrind;
/* Under valgrind: marks the top page of a reused stack as fresh memory. */
void green__stack_renew(const struct green__slot *s);
static inline char *green__stack_top_for(const struct green__slot *s, unsigned colour)
{
    return s->top - (colour % GREEN__COLOURS) * GREEN__COLOUR_STEP;
}
/* Starts fetching, for writing, the line a spawn of that colour on s will
 * write its first frame to (the word just below its start). */
static inline void green__stack_prefetch(const struct green__slot *s, unsigned colour)
{
    __builtin_prefetch(green__stack_top_for(s, colour) - sizeof(void *), 1);
}
static inline char *green__stack_start(struct green_hub *h, const struct green__slot *s)
{
    if (GREEN__UNLIKELY(green__stack_on_valgrind))
        green__stack_renew(s);
    return green__stack_top_for(s, h->colour++);
}

/* Frees memory of stacks idle since the last call (the hub is about to sleep). */
void green__stack_trim(struct green_hub *h);
/* Frees every pool (thread exit). */
void green__stack_pools_free(struct green_hub *h);

/* Installs the SIGSEGV overflow reporter for this thread (stack.c). */
int green__overflow_init(struct green_hub *h);
void green__overflow_fini(struct green_hub *h);

/* ------------------------------------------------------------------------ */
/* I/O and the thread pool                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Waits until fd is ready for events (GREEN_READ|GREEN_WRITE) through the
 * hub's shared watcher for fd. The caller has passed green__enter. Returns
 * the ready events, or -errno (EAGAIN for timeout 0, ETIMEDOUT, ECANCELED,
 * EBADF when the fd is closed with green_close or fails in the poller).
 */
int green__wait_fd(struct green_hub *h, int fd, int events, double timeout);
void green__io_free(struct green_hub *h);
/* Wakes every waiter on fd with EBADF and drops its watcher (before a close). */
void green__fd_forget(int fd);
/* Marks fd as one whose life the library owns until green_close (io.c:
 * "Kept fds"): its watcher stays registered between waits. 0 or ENOMEM. */
int green__fd_keep(struct green_hub *h, int fd);

/*
 * Runs fn(arg) on the thread pool and waits for it cooperatively. 0 and
 * *result, or an errno (EAGAIN for timeout 0, ETIMEDOUT, ECANCELED, ENOMEM).
 * When the wait fails, fn still runs to its end; drop(arg, result), if not
 * NULL, is then called on the hub's thread to dispose of what it made.
 */
int green__threadpool_run(struct green_hub *h, void *(*fn)(void *), void *arg, void **result,
                          double timeout, void (*drop)(void *arg, void *result));
void green__threadpool_hub_free(struct green_hub *h);
/* Gives back the signals (and SIGCHLD) this hub watches (proc.c). */
void green__proc_hub_free(struct green_hub *h);

/* ------------------------------------------------------------------------ */
/* Greenlet-local storage and the monitor                                     */
/* ------------------------------------------------------------------------ */

void green__locals_destroy(green_t *g);
void green__spares_free(struct green_hub *h);
void green__monitor_attach(struct green_hub *h);
void green__monitor_detach(struct green_hub *h);
/* In a child forked while the monitor ran, starts its thread again: called
 * at each spawn, hub loop iteration and new hub (monitor.c). */
extern _Atomic bool green__monitor_fork_pending;
void green__monitor_after_fork(void);
static inline void green__monitor_check_fork(void)
{
    if (GREEN__UNLIKELY(atomic_load_explicit(&green__monitor_fork_pending, memory_order_relaxed)))
        green__monitor_after_fork();
}

#endif
