/*
 * Seeded model-based random tests of the toolbox: queues of every kind,
 * Semaphore, RLock, and Pool, under random kills and timeouts.
 *
 * Two layers:
 *
 *  1. Exact models ("exact_*"). The main greenlet (the driver) makes random
 *     calls itself and spawns one-shot agents that each make one blocking
 *     call, then lets each agent run up to its blocking point. Every step is
 *     deterministic (kills are the only interruptions), so a plain reference
 *     model -- an array of items plus FIFO lists of waiting agents -- says
 *     exactly what every call must return: which item, which errno, who is
 *     woken, in which order. That checks FIFO wake-up, direct hand-off (no
 *     barging), kills before and after a hand-off, close, free while waited
 *     on, task_done/join, and every size/empty/full in between.
 *
 *  2. Chaos ("chaos"). Producers, consumers, semaphore and lock users run
 *     concurrently with random small timeouts (their own and green_timeout),
 *     random kills, closes and pool spawns. Timers make the interleaving
 *     nondeterministic, so only invariants robust to it are checked: every
 *     item put successfully is got exactly once or is still queued at the
 *     end, an item whose put failed is never seen, FIFO and channel consumers
 *     see each producer's items in order, what is left drains in the kind's
 *     order, the semaphore never has more holders than units, the lock never
 *     two owners, the pool never more running members than its size.
 *
 * Each run prints "model seed: N". GREEN_TEST_SEED=N replays one seed; by
 * default a few fixed seeds and one time-based seed run. A seed replays the
 * exact layer step for step; in chaos it replays the same random choices,
 * but the timers that fire between them depend on the machine's speed. Every
 * loop is bounded by a count and the chaos driver also by wall time.
 */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Seeds and randomness                                                       */
/* ------------------------------------------------------------------------ */

#define MAX_SEEDS 8
static uint64_t seeds[MAX_SEEDS];
static int nseeds;

static uint64_t rng;

/* splitmix64: good enough, tiny, and the same on every platform. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static unsigned rnd(unsigned n)
{
    return (unsigned)(rng_next(&rng) % n);
}
static bool chance(unsigned percent)
{
    return rnd(100) < percent;
}

static void seed_start(int i, const char *what)
{
    rng = seeds[i];
    printf("model seed: %llu (%s)\n", (unsigned long long)seeds[i], what);
    fflush(stdout);
}

/* Fewer steps under valgrind, which runs the same code ~30x slower. */
static int scaled(int n)
{
    return RUNNING_ON_VALGRIND ? n / 5 : n;
}

/* ------------------------------------------------------------------------ */
/* Layer 1: agents and the exact reference model                              */
/* ------------------------------------------------------------------------ */

/* How often the interesting cases came up: a test that never reaches them
 * proves nothing, so the suite asserts that they did. */
static struct {
    long calls, agents, handoffs_to_getter, putter_moved_in, putters_queued2,
        channel_takes, peek_shows, kills_waiting, kills_after_handoff, sem_handoffs,
        lock_handoffs, lock_owner_kills, eperm_releases;
} cov;

enum agent_op { A_PUT, A_GET, A_PEEK, A_JOIN, A_SEM, A_LOCK };
enum agent_phase { PH_NEW, PH_WAITING, PH_HOLDING, PH_DONE };

/* One greenlet making one blocking call (a lock agent then holds the lock
 * until told to release it or killed). */
struct agent {
    enum agent_op op;
    green_t      *g;
    void         *obj;
    uintptr_t     item;     /* what a put puts */
    double        timeout;
    bool          gtimeout; /* under a (never firing) green_timeout instead */
    int           extra;    /* lock: re-entrant acquires to make */
    green_event_t *go;      /* lock: set to make it release */
    /* what happened, written by the agent */
    volatile int  phase;
    int           rc, err;
    uintptr_t     got;
    int           held, released;
    /* what the model says must happen */
    bool          decided;
    int           exp_rc, exp_err;
    uintptr_t     exp_item;
    bool          killed, releasing;
};

static void *agent_fn(void *arg)
{
    struct agent *a = arg;
    green_timeout_t t;
    double tmo = a->timeout;
    if (a->gtimeout) {
        green_timeout_start(&t, a->timeout);
        tmo = GREEN_FOREVER;
    }
    void *it = (void *)(uintptr_t)0xbad;
    a->phase = PH_WAITING;
    errno = 0;
    switch (a->op) {
    case A_PUT:
        a->rc = green_queue_put(a->obj, (void *)a->item, tmo);
        break;
    case A_GET:
        a->rc = green_queue_get(a->obj, &it, tmo);
        break;
    case A_PEEK:
        a->rc = green_queue_peek(a->obj, &it, tmo);
        break;
    case A_JOIN:
        a->rc = green_queue_join(a->obj, tmo);
        break;
    case A_SEM:
        a->rc = green_sem_acquire(a->obj, tmo);
        break;
    case A_LOCK:
        a->rc = green_lock_acquire(a->obj, tmo);
        break;
    }
    a->err = a->rc ? errno : 0;
    a->got = (uintptr_t)it;
    if (a->gtimeout)
        green_timeout_cancel(&t);
    if (a->op == A_LOCK && a->rc == 0) {
        /* Re-entrant acquires fail only once killed. */
        a->held = 1;
        for (int i = 0; i < a->extra; i++)
            if (green_lock_acquire(a->obj, 0) == 0)
                a->held++;
        a->phase = PH_HOLDING;
        green_event_wait(a->go, GREEN_FOREVER); /* set, or killed */
        for (int i = 0; i < a->held; i++)
            if (green_lock_release(a->obj) == 0)
                a->released++;
    }
    a->phase = PH_DONE;
    return NULL;
}

#define MAX_AGENTS 4096
struct agents {
    struct agent *a[MAX_AGENTS];
    int           n;
};

static struct agent *agent_new(struct agents *as, enum agent_op op, void *obj)
{
    ck_assert_int_lt(as->n, MAX_AGENTS);
    struct agent *a = calloc(1, sizeof *a);
    ck_assert_ptr_nonnull(a);
    a->op = op;
    a->obj = obj;
    /* Blocking calls wait forever, or under a timer that never fires within
     * the test, so that only kills interrupt them (determinism). */
    switch (rnd(3)) {
    case 0:
        a->timeout = GREEN_FOREVER;
        break;
    case 1:
        a->timeout = 600;
        break;
    default:
        a->timeout = 600;
        a->gtimeout = true;
        break;
    }
    as->a[as->n++] = a;
    return a;
}

static void agent_start(struct agent *a)
{
    a->g = green_spawn(agent_fn, a);
    ck_assert_ptr_nonnull(a->g);
    green_yield(); /* it runs up to its blocking point (or finishes) */
    ck_assert_int_ne(a->phase, PH_NEW);
}

static void decide(struct agent *a, int rc_err, uintptr_t item)
{
    ck_assert_msg(!a->decided, "agent decided twice");
    a->decided = true;
    a->exp_rc = rc_err ? -1 : 0;
    a->exp_err = rc_err;
    a->exp_item = item;
}

/* A FIFO list of agents: the model's waitlist. */
#define LIST_MAX 64
struct alist {
    struct agent *a[LIST_MAX];
    int           n;
};
static void list_push(struct alist *l, struct agent *a)
{
    ck_assert_int_lt(l->n, LIST_MAX);
    l->a[l->n++] = a;
}
static struct agent *list_shift(struct alist *l)
{
    struct agent *a = l->a[0];
    memmove(l->a, l->a + 1, (size_t)--l->n * sizeof *l->a);
    return a;
}
static bool list_remove(struct alist *l, struct agent *a)
{
    for (int i = 0; i < l->n; i++)
        if (l->a[i] == a) {
            memmove(l->a + i, l->a + i + 1, (size_t)(l->n - i - 1) * sizeof *l->a);
            l->n--;
            return true;
        }
    return false;
}
static void list_decide_all(struct alist *l, int err, uintptr_t item)
{
    while (l->n)
        decide(list_shift(l), err, item);
}

/* Waits until every agent is where the model says (bounded). */
static void settle(struct agents *as, int (*want)(struct agent *a))
{
    for (int round = 0; round < 1000; round++) {
        bool all = true;
        for (int i = 0; i < as->n && all; i++)
            if (as->a[i]->g && as->a[i]->phase != want(as->a[i]))
                all = false;
        if (all)
            return;
        green_yield();
    }
    ck_abort_msg("agents never settled where the model says");
}

/* Joins every agent and compares what happened with the model. */
static void agents_finish(struct agents *as)
{
    for (int i = 0; i < as->n; i++) {
        struct agent *a = as->a[i];
        if (!a->g)
            continue;
        ck_assert_int_eq(green_join(a->g, 10), 0);
        cov.agents++;
        ck_assert_msg(a->decided, "agent %d (op %d) left undecided by the model", i, a->op);
        ck_assert_msg(a->rc == a->exp_rc && a->err == a->exp_err,
                      "agent %d (op %d): got %d errno %d, model says %d errno %d", i, a->op,
                      a->rc, a->err, a->exp_rc, a->exp_err);
        if (a->rc == 0 && (a->op == A_GET || a->op == A_PEEK))
            ck_assert_msg(a->got == a->exp_item, "agent %d (op %d): got item %lu, model says %lu",
                          i, a->op, (unsigned long)a->got, (unsigned long)a->exp_item);
        if (a->op == A_LOCK && a->rc == 0) {
            ck_assert_int_eq(a->released, a->held);
            if (!a->killed)
                ck_assert_int_eq(a->held, 1 + a->extra);
        }
        green_release(a->g);
        if (a->go)
            green_event_free(a->go);
        free(a);
    }
    as->n = 0;
}

/* Kills agent a (or nothing if it finished): green_kill with timeout 0
 * only marks it and triggers its wait. */
static void agent_kill(struct agent *a)
{
    int rc = green_kill(a->g, 0);
    ck_assert(rc == 0 || errno == EAGAIN);
    a->killed = true;
}

/* ------------------------------------------------------------------------ */
/* The queue model                                                            */
/* ------------------------------------------------------------------------ */

enum qkind { Q_FIFO, Q_LIFO, Q_PRIO, Q_CHAN };
static const char *const qkind_name[] = {"fifo", "lifo", "priority", "channel"};

/* Priority: rank of an item value; many ties on purpose. */
static unsigned rank_of(uintptr_t v)
{
    return (unsigned)((v * 2654435761u) >> 7) % 5;
}
static int cmp_rank(const void *a, const void *b)
{
    unsigned ra = rank_of((uintptr_t)a), rb = rank_of((uintptr_t)b);
    return ra < rb ? -1 : ra > rb;
}

struct mq {
    enum qkind   kind;
    size_t       maxsize;
    bool         closed;
    uintptr_t    items[256];
    size_t       n;
    size_t       unfinished;
    struct alist getters, peekers, putters, joiners;
};

static bool mq_room(const struct mq *m)
{
    return m->kind != Q_CHAN && (m->maxsize == 0 || m->n < m->maxsize);
}

/* Index of the item a get takes (ties: the one inserted first). */
static size_t mq_front(const struct mq *m)
{
    if (m->kind == Q_LIFO)
        return m->n - 1;
    size_t best = 0;
    if (m->kind == Q_PRIO)
        for (size_t i = 1; i < m->n; i++)
            if (rank_of(m->items[i]) < rank_of(m->items[best]))
                best = i;
    return best;
}

static uintptr_t mq_take(struct mq *m)
{
    size_t i = mq_front(m);
    uintptr_t v = m->items[i];
    memmove(m->items + i, m->items + i + 1, (m->n - i - 1) * sizeof *m->items);
    m->n--;
    return v;
}

static void mq_push(struct mq *m, uintptr_t v)
{
    ck_assert_uint_lt(m->n, 256);
    m->items[m->n++] = v;
}

#define BLOCKS (-2)

/* A put of v: 0, an errno, or BLOCKS (then `a` waits on the putters). */
static int mq_put(struct mq *m, uintptr_t v, struct agent *a)
{
    if (m->closed)
        return EPIPE;
    if (m->getters.n) {
        cov.handoffs_to_getter++;
        cov.peek_shows += m->peekers.n;
        list_decide_all(&m->peekers, 0, v);
        decide(list_shift(&m->getters), 0, v);
        m->unfinished++;
        return 0;
    }
    if (mq_room(m)) {
        mq_push(m, v);
        list_decide_all(&m->peekers, 0, v);
        m->unfinished++;
        return 0;
    }
    if (!a)
        return EAGAIN;
    list_decide_all(&m->peekers, 0, v); /* a channel's offer */
    list_push(&m->putters, a);
    return BLOCKS;
}

/* A get: 0 and *v, an errno, or BLOCKS. */
static int mq_get(struct mq *m, uintptr_t *v, struct agent *a)
{
    if (m->putters.n >= 2)
        cov.putters_queued2++;
    if (m->n) {
        *v = mq_take(m);
        if (m->putters.n) {
            struct agent *p = list_shift(&m->putters);
            cov.putter_moved_in++;
            mq_push(m, p->item);
            m->unfinished++;
            decide(p, 0, 0);
        }
        return 0;
    }
    if (m->putters.n) {
        struct agent *p = list_shift(&m->putters);
        cov.channel_takes++;
        *v = p->item;
        m->unfinished++;
        decide(p, 0, 0);
        return 0;
    }
    if (m->closed)
        return EPIPE;
    if (!a)
        return EAGAIN;
    list_push(&m->getters, a);
    return BLOCKS;
}

static int mq_peek(struct mq *m, uintptr_t *v, struct agent *a)
{
    if (m->n) {
        *v = m->items[mq_front(m)];
        return 0;
    }
    if (m->putters.n) {
        *v = m->putters.a[0]->item;
        return 0;
    }
    if (m->closed)
        return EPIPE;
    if (!a)
        return EAGAIN;
    list_push(&m->peekers, a);
    return BLOCKS;
}

static int mq_join(struct mq *m, struct agent *a)
{
    if (m->unfinished == 0)
        return 0;
    if (!a)
        return EAGAIN;
    list_push(&m->joiners, a);
    return BLOCKS;
}

static int mq_task_done(struct mq *m)
{
    if (m->unfinished == 0)
        return EINVAL;
    if (--m->unfinished == 0)
        list_decide_all(&m->joiners, 0, 0);
    return 0;
}

static void mq_kill(struct mq *m, struct agent *a)
{
    if (a->decided) {
        cov.kills_after_handoff += a->phase != PH_DONE;
        return; /* handed its outcome before: the kill changes nothing */
    }
    cov.kills_waiting++;
    bool found = list_remove(&m->getters, a) || list_remove(&m->peekers, a) ||
                 list_remove(&m->putters, a) || list_remove(&m->joiners, a);
    ck_assert(found);
    decide(a, ECANCELED, 0);
}

static void mq_check_state(green_queue_t *q, const struct mq *m)
{
    ck_assert_uint_eq(green_queue_size(q), m->n);
    ck_assert_int_eq(green_queue_empty(q), m->n == 0);
    bool full = m->kind == Q_CHAN ? m->getters.n == 0 : (m->maxsize && m->n >= m->maxsize);
    ck_assert_int_eq(green_queue_full(q), full);
}

/* Compares a call's return with the model's: rc 0 or the errno. */
static void expect_call(int rc, int err, int model, const char *what)
{
    cov.calls++;
    if (model == 0)
        ck_assert_msg(rc == 0, "%s: got -1 errno %d (%s), model says 0", what, err, strerror(err));
    else
        ck_assert_msg(rc == -1 && err == model, "%s: got %d errno %d, model says -1 errno %d (%s)",
                      what, rc, err, model, strerror(model));
}

static struct agent *random_live_agent(struct agents *as)
{
    if (as->n == 0)
        return NULL;
    for (int tries = 0; tries < 8; tries++) {
        struct agent *a = as->a[rnd((unsigned)as->n)];
        if (a->phase != PH_DONE || !a->decided)
            return a;
    }
    return NULL;
}

static int undecided(const struct agents *as)
{
    int n = 0;
    for (int i = 0; i < as->n; i++)
        n += !as->a[i]->decided;
    return n;
}

static void exact_queue_run(enum qkind kind, size_t maxsize, int nops)
{
    green_queue_t *q = kind == Q_FIFO   ? green_queue_new(maxsize)
                       : kind == Q_LIFO ? green_queue_new_lifo(maxsize)
                       : kind == Q_PRIO ? green_queue_new_priority(maxsize, cmp_rank)
                                        : green_channel_new();
    ck_assert_ptr_nonnull(q);
    static struct mq m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    m.maxsize = kind == Q_CHAN ? 0 : maxsize;
    static struct agents as;
    as.n = 0;
    uintptr_t next_item = 0; /* the first item is NULL, a valid item */
    bool closed_once = false;
    /* An unbounded queue would grow without limit: keep it under 200 items
     * (a bounded one bounds itself, and its putters must get to wait). */
    size_t cap = maxsize || kind == Q_CHAN ? SIZE_MAX : 200;

    for (int step = 0; step < nops; step++) {
        unsigned r = rnd(100);
        bool may_spawn = undecided(&as) < 12 && as.n < MAX_AGENTS - 8;
        int rc, err, model;
        uintptr_t v = 0, mv = 0;
        char what[64];
        if (r < 22 && m.n < cap) { /* driver put */
            v = next_item++;
            model = mq_put(&m, v, NULL);
            /* A put the model says succeeds at once may use any timeout. */
            double tmo = model == 0 && chance(50) ? GREEN_FOREVER : 0;
            errno = 0;
            rc = green_queue_put(q, (void *)v, tmo);
            err = errno;
            snprintf(what, sizeof what, "step %d put %lu", step, (unsigned long)v);
            expect_call(rc, err, model, what);
        } else if (r < 44) { /* driver get */
            model = mq_get(&m, &mv, NULL);
            double tmo = model == 0 && chance(50) ? GREEN_FOREVER : 0;
            void *it = (void *)(uintptr_t)0xbad;
            errno = 0;
            rc = green_queue_get(q, &it, tmo);
            err = errno;
            snprintf(what, sizeof what, "step %d get", step);
            expect_call(rc, err, model, what);
            if (rc == 0)
                ck_assert_msg((uintptr_t)it == mv, "step %d get: got %lu, model says %lu", step,
                              (unsigned long)(uintptr_t)it, (unsigned long)mv);
        } else if (r < 50) { /* driver peek */
            model = mq_peek(&m, &mv, NULL);
            void *it = (void *)(uintptr_t)0xbad;
            errno = 0;
            rc = green_queue_peek(q, &it, 0);
            err = errno;
            snprintf(what, sizeof what, "step %d peek", step);
            expect_call(rc, err, model, what);
            if (rc == 0)
                ck_assert_uint_eq((uintptr_t)it, mv);
        } else if (r < 76 && may_spawn && (r >= 62 || m.n < cap)) { /* agents */
            enum agent_op op = r < 62 ? A_PUT : r < 71 ? A_GET : r < 74 ? A_PEEK : A_JOIN;
            struct agent *a = agent_new(&as, op, q);
            switch (op) {
            case A_PUT:
                a->item = next_item++;
                model = mq_put(&m, a->item, a);
                break;
            case A_GET:
                model = mq_get(&m, &mv, a);
                break;
            case A_PEEK:
                model = mq_peek(&m, &mv, a);
                break;
            default:
                model = mq_join(&m, a);
                break;
            }
            if (model != BLOCKS)
                decide(a, model, mv);
            agent_start(a);
        } else if (r < 84) { /* task_done */
            model = mq_task_done(&m);
            errno = 0;
            rc = green_queue_task_done(q);
            snprintf(what, sizeof what, "step %d task_done", step);
            expect_call(rc, errno, model, what);
        } else if (r < 86) { /* driver join, never waiting */
            model = mq_join(&m, NULL);
            errno = 0;
            rc = green_queue_join(q, 0);
            snprintf(what, sizeof what, "step %d join", step);
            expect_call(rc, errno, model, what);
        } else if (r < 93) { /* kill an agent */
            struct agent *a = random_live_agent(&as);
            if (a) {
                mq_kill(&m, a);
                agent_kill(a);
            }
        } else if (r < 99) {
            green_yield(); /* agents handed their outcome finish */
        } else if (!closed_once && step > nops * 3 / 4) {
            closed_once = true;
            m.closed = true;
            list_decide_all(&m.putters, EPIPE, 0);
            list_decide_all(&m.getters, EPIPE, 0);
            list_decide_all(&m.peekers, EPIPE, 0);
            green_queue_close(q);
        }
        mq_check_state(q, &m);
    }

    /* The end: close and drain, or free with waiters still there. */
    if (chance(50)) {
        m.closed = true;
        list_decide_all(&m.putters, EPIPE, 0);
        list_decide_all(&m.getters, EPIPE, 0);
        list_decide_all(&m.peekers, EPIPE, 0);
        green_queue_close(q);
        for (int i = 0; i < 300; i++) {
            uintptr_t mv = 0;
            int model = mq_get(&m, &mv, NULL);
            void *it;
            errno = 0;
            int rc = green_queue_get(q, &it, chance(50) ? 0 : GREEN_FOREVER);
            expect_call(rc, errno, model, "drain");
            if (rc != 0)
                break;
            ck_assert_uint_eq((uintptr_t)it, mv);
        }
        mq_check_state(q, &m);
    }
    list_decide_all(&m.putters, EPIPE, 0);
    list_decide_all(&m.getters, EPIPE, 0);
    list_decide_all(&m.peekers, EPIPE, 0);
    list_decide_all(&m.joiners, EPIPE, 0);
    green_queue_free(q);
    agents_finish(&as);
}

START_TEST(exact_queues)
{
    seed_start(_i, "exact queues");
    int nops = scaled(1500);
    for (int round = 0; round < 2; round++) {
        exact_queue_run(Q_FIFO, 1 + rnd(4), nops);
        exact_queue_run(Q_FIFO, 0, nops);
        exact_queue_run(Q_LIFO, 1 + rnd(4), nops);
        exact_queue_run(Q_LIFO, 0, nops);
        exact_queue_run(Q_PRIO, 1 + rnd(4), nops);
        exact_queue_run(Q_PRIO, 0, nops);
        exact_queue_run(Q_CHAN, 0, nops);
    }
    ck_assert_int_eq(green_wait(5), 0);
    printf("model exact queues: %ld calls and %ld agents checked; %ld hand-offs to getters, "
           "%ld putters moved in (%ld gets with 2+ putters), %ld channel takes, %ld peeks shown, "
           "%ld kills while waiting, %ld after a hand-off\n",
           cov.calls, cov.agents, cov.handoffs_to_getter, cov.putter_moved_in, cov.putters_queued2,
           cov.channel_takes, cov.peek_shows, cov.kills_waiting, cov.kills_after_handoff);
    fflush(stdout);
    ck_assert(cov.calls > scaled(5000) && cov.agents > scaled(2000));
    ck_assert(cov.handoffs_to_getter >= 3 && cov.putter_moved_in >= 3 && cov.putters_queued2 >= 3);
    ck_assert(cov.channel_takes >= 3 && cov.peek_shows >= 1);
    ck_assert(cov.kills_waiting >= 3 && cov.kills_after_handoff >= 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The semaphore and lock models                                              */
/* ------------------------------------------------------------------------ */

static void exact_sem_run(bool bounded, unsigned start, int nops)
{
    green_sem_t *s = bounded ? green_sem_new_bounded(start) : green_sem_new(start);
    static struct agents as;
    as.n = 0;
    unsigned value = start;
    struct alist waiters = {.n = 0};
    for (int step = 0; step < nops; step++) {
        unsigned r = rnd(100);
        int rc, model;
        char what[64];
        if (r < 25) { /* driver acquire */
            model = value > 0 ? 0 : EAGAIN;
            if (model == 0)
                value--;
            errno = 0;
            rc = green_sem_acquire(s, model == 0 && chance(50) ? GREEN_FOREVER : 0);
            snprintf(what, sizeof what, "step %d acquire", step);
            expect_call(rc, errno, model, what);
        } else if (r < 55) { /* driver release: over the bound is EINVAL */
            if (bounded && value >= start) {
                model = EINVAL;
            } else {
                model = 0;
                if (waiters.n) {
                    cov.sem_handoffs++;
                    decide(list_shift(&waiters), 0, 0);
                }
                else
                    value++;
            }
            errno = 0;
            rc = green_sem_release(s);
            snprintf(what, sizeof what, "step %d release", step);
            expect_call(rc, errno, model, what);
        } else if (r < 80 && undecided(&as) < 12 && as.n < MAX_AGENTS - 8) {
            struct agent *a = agent_new(&as, A_SEM, s);
            if (value > 0) {
                value--;
                decide(a, 0, 0);
            } else {
                list_push(&waiters, a);
            }
            agent_start(a);
        } else if (r < 90) {
            struct agent *a = random_live_agent(&as);
            if (a) {
                if (!a->decided) {
                    ck_assert(list_remove(&waiters, a));
                    decide(a, ECANCELED, 0);
                }
                agent_kill(a);
            }
        } else {
            green_yield();
        }
        ck_assert_uint_eq(green_sem_value(s), value);
    }
    list_decide_all(&waiters, EPIPE, 0);
    green_sem_free(s);
    agents_finish(&as);
}

/* The lock model: owner is NULL (free), &driver, or an agent. */
static struct agent lock_driver;
struct mlock {
    struct agent *owner;
    unsigned      depth; /* the driver's, when it owns it */
    struct alist  waiters;
};

/* The owner gave the lock up: the first waiter gets it. */
static void ml_pass_on(struct mlock *m)
{
    m->owner = NULL;
    if (m->waiters.n) {
        cov.lock_handoffs++;
        m->owner = list_shift(&m->waiters);
        decide(m->owner, 0, 0);
    }
}

/* An agent that owns the lock and was killed or told to go releases it when
 * it runs; the next owner may in turn... not: it was neither killed nor
 * told yet. */
static void ml_releases(struct mlock *m)
{
    for (int i = 0; i < LIST_MAX && m->owner && m->owner != &lock_driver && m->owner->releasing; i++)
        ml_pass_on(m);
}

static const struct mlock *lock_model_for_settle;
static int lock_agent_phase(struct agent *a)
{
    if (!a->decided)
        return PH_WAITING;
    if (a == lock_model_for_settle->owner)
        return PH_HOLDING;
    return PH_DONE;
}

static void exact_lock_run(int nops)
{
    green_lock_t *l = green_lock_new();
    static struct agents as;
    as.n = 0;
    static struct mlock m;
    memset(&m, 0, sizeof m);
    lock_model_for_settle = &m;
    for (int step = 0; step < nops; step++) {
        unsigned r = rnd(100);
        int rc, model;
        char what[64];
        if (r < 20) { /* driver acquire */
            if (!m.owner || m.owner == &lock_driver) {
                model = 0;
                m.owner = &lock_driver;
                m.depth++;
            } else {
                model = EAGAIN;
            }
            errno = 0;
            rc = green_lock_acquire(l, model == 0 && chance(50) ? GREEN_FOREVER : 0);
            snprintf(what, sizeof what, "step %d acquire", step);
            expect_call(rc, errno, model, what);
        } else if (r < 40) { /* driver release: EPERM unless it owns it */
            model = m.owner == &lock_driver ? 0 : EPERM;
            cov.eperm_releases += model == EPERM;
            if (model == 0 && --m.depth == 0)
                ml_pass_on(&m);
            errno = 0;
            rc = green_lock_release(l);
            snprintf(what, sizeof what, "step %d release", step);
            expect_call(rc, errno, model, what);
        } else if (r < 65 && undecided(&as) < 12 && as.n < MAX_AGENTS - 8) {
            struct agent *a = agent_new(&as, A_LOCK, l);
            a->extra = (int)rnd(3);
            a->go = green_event_new();
            if (!m.owner) {
                m.owner = a;
                decide(a, 0, 0);
            } else {
                list_push(&m.waiters, a);
            }
            agent_start(a);
        } else if (r < 80) { /* tell the owning agent to release */
            if (m.owner && m.owner != &lock_driver && !m.owner->releasing) {
                m.owner->releasing = true;
                green_event_set(m.owner->go);
                ml_releases(&m);
            }
        } else if (r < 92) { /* kill an agent: a waiter leaves, an owner releases */
            struct agent *a = random_live_agent(&as);
            if (a && a->phase != PH_DONE) {
                if (!a->decided) {
                    ck_assert(list_remove(&m.waiters, a));
                    decide(a, ECANCELED, 0);
                } else if (a == m.owner) {
                    cov.lock_owner_kills++;
                    a->releasing = true;
                    ml_releases(&m);
                }
                agent_kill(a);
            }
        } else {
            green_yield();
        }
        settle(&as, lock_agent_phase);
    }
    /* The end: waiters leave, the owner lets go, then a free with waiters. */
    for (int i = 0; i < as.n; i++) {
        struct agent *a = as.a[i];
        if (!a->decided) {
            ck_assert(list_remove(&m.waiters, a));
            decide(a, ECANCELED, 0);
            agent_kill(a);
        }
    }
    if (m.owner && m.owner != &lock_driver) {
        m.owner->releasing = true;
        green_event_set(m.owner->go);
        ml_releases(&m);
    }
    settle(&as, lock_agent_phase);
    while (m.owner == &lock_driver && m.depth) {
        ck_assert_int_eq(green_lock_release(l), 0);
        m.depth--;
    }
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    for (int i = 0, n = (int)rnd(3); i < n; i++) {
        struct agent *a = agent_new(&as, A_LOCK, l);
        a->go = green_event_new();
        decide(a, EPIPE, 0);
        agent_start(a);
    }
    green_lock_free(l);
    agents_finish(&as);
}

START_TEST(exact_sem_lock)
{
    seed_start(_i, "exact semaphore and lock");
    int nops = scaled(2000);
    exact_sem_run(false, rnd(3), nops);
    exact_sem_run(true, rnd(3), nops);
    exact_sem_run(true, 1 + rnd(3), nops);
    exact_lock_run(nops);
    exact_lock_run(nops);
    ck_assert_int_eq(green_wait(5), 0);
    printf("model exact semaphore and lock: %ld calls and %ld agents checked; %ld semaphore "
           "hand-offs, %ld lock hand-offs, %ld owners killed, %ld releases by a non-owner\n",
           cov.calls, cov.agents, cov.sem_handoffs, cov.lock_handoffs, cov.lock_owner_kills,
           cov.eperm_releases);
    fflush(stdout);
    ck_assert(cov.calls > scaled(2500) && cov.agents > scaled(1000));
    ck_assert(cov.sem_handoffs >= 3 && cov.lock_handoffs >= 3);
    ck_assert(cov.lock_owner_kills >= 1 && cov.eperm_releases >= 3);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Layer 2: chaos                                                             */
/* ------------------------------------------------------------------------ */

#define NQ 5
#define MAX_ITEMS 200000
#define MAX_WORKERS 4000
#define POOL_SIZE 3

struct item_info {
    uint8_t  q;
    uint8_t  rank;
    uint8_t  accepted, failed; /* the put's outcome */
    uint16_t consumed;         /* times a get returned it */
    uint8_t  remaining;        /* drained at the end */
    int      producer;
    int      seq;              /* the producer's n-th put */
};

enum role { R_PRODUCER, R_CONSUMER, R_SEM, R_LOCK, NROLES };

/* Ids: 0 is the driver as a consumer; 1..NQ the driver as a producer, one
 * per queue (each producer id puts into one queue only, so that the order
 * checks compare items of one queue); workers come after. */
struct worker {
    int       id;
    enum role role;
    int       qi;
    int       nops;
    bool      in_pool;
    uint64_t  rng;
    green_t  *g;
};

struct consumption {
    int consumer;
    int item;
};

static struct chaos {
    green_queue_t     *q[NQ];
    enum qkind         kind[NQ];
    green_sem_t       *sem;
    green_lock_t      *lock;
    green_pool_t      *pool;
    struct item_info  *items;
    int                nitems;
    struct consumption *log;
    int                nlog;
    int                next_worker;
    int                driver_seq[NQ];
    int                sem_holders;
    int                lock_owner, lock_depth;
    int                pool_running, pool_running_max;
    int                ops;
} C;

static unsigned wrnd(struct worker *w, unsigned n)
{
    return (unsigned)(rng_next(&w->rng) % n);
}

/* A random wait: 0, a few hundred microseconds, a few milliseconds, or
 * forever (close and kill end those). */
static double wtimeout(struct worker *w)
{
    switch (wrnd(w, 6)) {
    case 0:
        return 0;
    case 1:
    case 2:
        return 0.0001 * (1 + wrnd(w, 5));
    case 3:
    case 4:
        return 0.001 * (1 + wrnd(w, 4));
    default:
        return GREEN_FOREVER;
    }
}

static void wpause(struct worker *w)
{
    switch (wrnd(w, 4)) {
    case 0:
        green_yield();
        break;
    case 1:
        green_sleep(0.0002 * wrnd(w, 4));
        break;
    default:
        break;
    }
}

static int chaos_cmp(const void *a, const void *b)
{
    unsigned ra = C.items[(uintptr_t)a].rank, rb = C.items[(uintptr_t)b].rank;
    return ra < rb ? -1 : ra > rb;
}

static int new_item(int qi, int producer, int seq)
{
    ck_assert_int_lt(C.nitems, MAX_ITEMS);
    int id = C.nitems++;
    C.items[id] = (struct item_info){.q = (uint8_t)qi, .rank = (uint8_t)rnd(4),
                                     .producer = producer, .seq = seq};
    return id;
}

/* Puts one item, through the worker's own timeout or a green_timeout. */
static int chaos_put(struct worker *w, int qi, int id, double tmo, bool gtmo)
{
    green_timeout_t t;
    if (gtmo)
        green_timeout_start(&t, tmo);
    int rc = green_queue_put(C.q[qi], (void *)(uintptr_t)id, gtmo ? GREEN_FOREVER : tmo);
    int err = errno;
    if (gtmo)
        green_timeout_cancel(&t);
    C.ops++;
    struct item_info *it = &C.items[id];
    if (rc == 0) {
        it->accepted = 1;
    } else {
        ck_assert_msg(err == EAGAIN || err == ETIMEDOUT || err == ECANCELED || err == EPIPE,
                      "worker %d put: errno %d", w ? w->id : 0, err);
        it->failed = 1;
    }
    errno = err;
    return rc;
}

static void record_get(int consumer, int qi, uintptr_t v)
{
    ck_assert_msg(v < (uintptr_t)C.nitems, "got an item never made: %lu", (unsigned long)v);
    struct item_info *it = &C.items[v];
    ck_assert_msg(it->q == qi, "item %lu of queue %d came out of queue %d", (unsigned long)v,
                  it->q, qi);
    ck_assert_msg(!it->failed, "item %lu came out, but its put failed", (unsigned long)v);
    it->consumed++;
    ck_assert_msg(it->consumed == 1, "item %lu returned twice", (unsigned long)v);
    C.log[C.nlog++] = (struct consumption){consumer, (int)v};
}

static void producer(struct worker *w)
{
    for (int i = 0; i < w->nops; i++) {
        int id = new_item(w->qi, w->id, i);
        if (chaos_put(w, w->qi, id, wtimeout(w), wrnd(w, 4) == 0) != 0 &&
            (errno == ECANCELED || errno == EPIPE))
            return;
        wpause(w);
    }
}

static void consumer(struct worker *w)
{
    for (int i = 0; i < w->nops; i++) {
        bool peek = wrnd(w, 7) == 0, gtmo = wrnd(w, 4) == 0;
        double tmo = wtimeout(w);
        green_timeout_t t;
        if (gtmo)
            green_timeout_start(&t, tmo);
        void *v = (void *)(uintptr_t)0xbadbad;
        int rc = peek ? green_queue_peek(C.q[w->qi], &v, gtmo ? GREEN_FOREVER : tmo)
                      : green_queue_get(C.q[w->qi], &v, gtmo ? GREEN_FOREVER : tmo);
        int err = errno;
        if (gtmo)
            green_timeout_cancel(&t);
        C.ops++;
        if (rc == 0) {
            if (peek) {
                ck_assert((uintptr_t)v < (uintptr_t)C.nitems);
                ck_assert_int_eq(C.items[(uintptr_t)v].q, w->qi);
            } else {
                record_get(w->id, w->qi, (uintptr_t)v);
                if (wrnd(w, 2))
                    ck_assert_int_eq(green_queue_task_done(C.q[w->qi]), 0);
            }
        } else {
            ck_assert_msg(err == EAGAIN || err == ETIMEDOUT || err == ECANCELED || err == EPIPE,
                          "worker %d get: errno %d", w->id, err);
            if (err == ECANCELED || err == EPIPE)
                return;
        }
        wpause(w);
    }
}

static void sem_user(struct worker *w)
{
    for (int i = 0; i < w->nops; i++) {
        int rc = green_sem_acquire(C.sem, wtimeout(w));
        C.ops++;
        if (rc != 0) {
            if (errno == ECANCELED)
                return;
            continue;
        }
        C.sem_holders++;
        ck_assert_int_le(C.sem_holders, 2);
        wpause(w); /* a kill here must still lead to the release */
        C.sem_holders--;
        ck_assert_int_eq(green_sem_release(C.sem), 0);
    }
}

static void lock_user(struct worker *w)
{
    for (int i = 0; i < w->nops; i++) {
        if (green_lock_acquire(C.lock, wtimeout(w)) != 0) {
            C.ops++;
            if (errno == ECANCELED)
                return;
            continue;
        }
        C.ops++;
        ck_assert_msg(C.lock_owner == 0, "lock owned by %d and %d", C.lock_owner, w->id);
        C.lock_owner = w->id;
        int depth = 1;
        for (int k = (int)wrnd(w, 3); k > 0; k--)
            if (green_lock_acquire(C.lock, wrnd(w, 2) ? 0 : GREEN_FOREVER) == 0)
                depth++;
        wpause(w);
        ck_assert_int_eq(C.lock_owner, w->id);
        C.lock_owner = 0; /* before the last release hands it on */
        for (; depth > 0; depth--)
            ck_assert_int_eq(green_lock_release(C.lock), 0);
        ck_assert_fails(green_lock_release(C.lock), EPERM);
    }
}

static void *worker_fn(void *arg)
{
    struct worker *w = arg;
    if (w->in_pool) {
        C.pool_running++;
        if (C.pool_running > C.pool_running_max)
            C.pool_running_max = C.pool_running;
        ck_assert_int_le(C.pool_running, POOL_SIZE);
    }
    switch (w->role) {
    case R_PRODUCER:
        producer(w);
        break;
    case R_CONSUMER:
        consumer(w);
        break;
    case R_SEM:
        sem_user(w);
        break;
    default:
        lock_user(w);
        break;
    }
    if (w->in_pool)
        C.pool_running--;
    return NULL;
}

/* Spawns a random worker, directly or through the pool (which may make the
 * driver wait: bounded by a green_timeout). */
static struct worker *spawn_worker(void)
{
    struct worker *w = calloc(1, sizeof *w);
    ck_assert_ptr_nonnull(w);
    w->id = ++C.next_worker;
    w->role = (enum role)rnd(NROLES);
    w->qi = (int)rnd(NQ);
    w->nops = 1 + (int)rnd(25);
    w->rng = rng_next(&rng);
    w->in_pool = chance(25);
    if (w->in_pool) {
        green_timeout_t t;
        green_timeout_start(&t, 0.002);
        w->g = green_pool_spawn(C.pool, worker_fn, w);
        int err = errno;
        green_timeout_cancel(&t);
        if (!w->g) {
            ck_assert_int_eq(err, ETIMEDOUT);
            free(w);
            return NULL;
        }
    } else {
        w->g = green_spawn(worker_fn, w);
    }
    ck_assert_ptr_nonnull(w->g);
    return w;
}

static void check_items(void)
{
    /* Conservation: accepted == consumed + remaining, each exactly once; a
     * failed put never shows up. */
    for (int id = 0; id < C.nitems; id++) {
        struct item_info *it = &C.items[id];
        ck_assert_msg(it->accepted + it->failed == 1, "item %d: put neither succeeded nor failed",
                      id);
        if (it->accepted)
            ck_assert_msg(it->consumed + it->remaining == 1,
                          "item %d (queue %s): accepted, consumed %d, remaining %d", id,
                          qkind_name[C.kind[it->q]], it->consumed, it->remaining);
        else
            ck_assert_msg(it->consumed + it->remaining == 0, "item %d: failed put, yet seen", id);
    }
    /* FIFO and channel: each consumer sees each producer's items in order. */
    int nw = C.next_worker + 1;
    int *last = malloc((size_t)nw * (size_t)nw * sizeof *last);
    ck_assert_ptr_nonnull(last);
    for (size_t i = 0; i < (size_t)nw * (size_t)nw; i++)
        last[i] = -1;
    for (int i = 0; i < C.nlog; i++) {
        struct item_info *it = &C.items[C.log[i].item];
        enum qkind k = C.kind[it->q];
        if (k != Q_FIFO && k != Q_CHAN)
            continue;
        int *l = &last[(size_t)C.log[i].consumer * (size_t)nw + (size_t)it->producer];
        ck_assert_msg(it->seq > *l, "%s: consumer %d got producer %d's item %d after %d",
                      qkind_name[k], C.log[i].consumer, it->producer, it->seq, *l);
        *l = it->seq;
    }
    free(last);
}

/* Drains a closed queue and checks the order of what was left. */
static void drain(int qi)
{
    int nw = C.next_worker + 1;
    int *lastseq = malloc((size_t)nw * sizeof *lastseq);
    ck_assert_ptr_nonnull(lastseq);
    for (int i = 0; i < nw; i++)
        lastseq[i] = C.kind[qi] == Q_LIFO ? INT32_MAX : -1;
    /* The highest seq consumed per producer: for FIFO, what is left comes
     * after all of it. */
    if (C.kind[qi] == Q_FIFO)
        for (int id = 0; id < C.nitems; id++)
            if (C.items[id].q == qi && C.items[id].consumed && C.items[id].seq > lastseq[C.items[id].producer])
                lastseq[C.items[id].producer] = C.items[id].seq;
    int last_rank = -1;
    for (int n = 0; n < MAX_ITEMS; n++) {
        void *v;
        int rc = green_queue_get(C.q[qi], &v, 0);
        if (rc != 0) {
            ck_assert_int_eq(errno, EPIPE);
            break;
        }
        uintptr_t id = (uintptr_t)v;
        ck_assert(id < (uintptr_t)C.nitems);
        struct item_info *it = &C.items[id];
        ck_assert_int_eq(it->q, qi);
        ck_assert_msg(!it->remaining && !it->consumed, "item %lu drained twice", (unsigned long)id);
        it->remaining = 1;
        int *l = &lastseq[it->producer];
        switch (C.kind[qi]) {
        case Q_FIFO:
            ck_assert_msg(it->seq > *l, "fifo drain: producer %d item %d after %d", it->producer,
                          it->seq, *l);
            break;
        case Q_LIFO:
            ck_assert_msg(it->seq < *l, "lifo drain: producer %d item %d after %d", it->producer,
                          it->seq, *l);
            break;
        case Q_PRIO:
            ck_assert_int_ge(it->rank, last_rank);
            if (it->rank != last_rank)
                for (int i = 0; i < nw; i++)
                    lastseq[i] = -1;
            last_rank = it->rank;
            ck_assert_msg(it->seq > *l, "priority drain: producer %d item %d after %d (same rank)",
                          it->producer, it->seq, *l);
            break;
        case Q_CHAN:
            ck_abort_msg("a channel holds nothing");
        }
        *l = it->seq;
    }
    free(lastseq);
}

START_TEST(chaos)
{
    seed_start(_i, "chaos");
    memset(&C, 0, sizeof C);
    C.next_worker = NQ;
    C.items = calloc(MAX_ITEMS, sizeof *C.items);
    C.log = calloc(MAX_ITEMS, sizeof *C.log);
    ck_assert(C.items && C.log);
    for (int i = 0; i < NQ; i++) {
        C.kind[i] = i == 0 || i == 1 ? Q_FIFO : i == 2 ? Q_LIFO : i == 3 ? Q_PRIO : Q_CHAN;
        size_t maxsize = i == 1 ? 0 : 1 + rnd(4);
        C.q[i] = C.kind[i] == Q_FIFO   ? green_queue_new(maxsize)
                 : C.kind[i] == Q_LIFO ? green_queue_new_lifo(maxsize)
                 : C.kind[i] == Q_PRIO ? green_queue_new_priority(maxsize, chaos_cmp)
                                       : green_channel_new();
        ck_assert_ptr_nonnull(C.q[i]);
    }
    C.sem = green_sem_new_bounded(2);
    C.lock = green_lock_new();
    C.pool = green_pool_new(POOL_SIZE);
    ck_assert(C.sem && C.lock && C.pool);

    static struct worker *ws[MAX_WORKERS];
    int nws = 0, steps = scaled(2500), closed = 0;
    double t0 = tu_now(), budget = RUNNING_ON_VALGRIND ? 20 : 6;
    for (int step = 0; step < steps && tu_now() - t0 < budget; step++) {
        unsigned r = rnd(100);
        int alive = (int)green_count();
        if (r < 40 && alive < 40 && nws < MAX_WORKERS) {
            struct worker *w = spawn_worker();
            if (w)
                ws[nws++] = w;
        } else if (r < 52 && nws) {
            struct worker *w = ws[rnd((unsigned)nws)];
            if (chance(70))
                green_kill(w->g, 0);
            else
                green_kill(w->g, 0.001 * rnd(3)); /* may time out: fine */
        } else if (r < 62) {
            /* The driver's own calls, never waiting. */
            int qi = (int)rnd(NQ);
            if (chance(50)) {
                chaos_put(NULL, qi, new_item(qi, 1 + qi, C.driver_seq[qi]++), 0, false);
            } else {
                void *v;
                if (green_queue_get(C.q[qi], &v, 0) == 0)
                    record_get(0, qi, (uintptr_t)v);
                else
                    ck_assert(errno == EAGAIN || errno == EPIPE);
            }
        } else if (r < 63 && step > steps * 4 / 5 && closed < NQ) {
            green_queue_close(C.q[closed++]);
        } else if (r < 80) {
            green_yield();
        } else {
            green_sleep(0.0002 * rnd(5));
        }
    }

    /* The end: close every queue (blocked producers and consumers wake
     * with EPIPE), kill what is left, wait for everyone. */
    for (int i = 0; i < NQ; i++)
        green_queue_close(C.q[i]);
    for (int i = 0; i < nws; i++)
        green_kill(ws[i]->g, 0);
    for (int i = 0; i < nws; i++) {
        ck_assert_int_eq(green_join(ws[i]->g, 10), 0);
        green_release(ws[i]->g);
        free(ws[i]);
    }
    ck_assert_int_eq(green_pool_join(C.pool, 5), 0);
    ck_assert_uint_eq(green_pool_free_count(C.pool), POOL_SIZE);
    ck_assert_int_le(C.pool_running_max, POOL_SIZE);
    ck_assert_int_eq(C.pool_running, 0);
    for (int i = 0; i < NQ; i++)
        drain(i);
    check_items();
    ck_assert_uint_eq(green_sem_value(C.sem), 2);
    ck_assert_int_eq(C.sem_holders, 0);
    ck_assert_int_eq(green_lock_acquire(C.lock, 0), 0);
    ck_assert_int_eq(green_lock_release(C.lock), 0);
    ck_assert_int_eq(green_wait(5), 0);
    printf("model chaos: %d steps' workers made %d calls, %d items, %d got, %d workers\n",
           steps, C.ops, C.nitems, C.nlog, C.next_worker - NQ);
    fflush(stdout);
    /* It did run: calls made, items through, pool members ran. */
    ck_assert_int_gt(C.ops, scaled(2500));
    ck_assert_int_gt(C.nlog, scaled(500));
    ck_assert_int_ge(C.pool_running_max, 1);
    for (int i = 0; i < NQ; i++)
        green_queue_free(C.q[i]);
    green_sem_free(C.sem);
    green_lock_free(C.lock);
    green_pool_free(C.pool);
    free(C.items);
    free(C.log);
}
END_TEST

int main(void)
{
    const char *env = getenv("GREEN_TEST_SEED");
    if (env && *env) {
        seeds[nseeds++] = strtoull(env, NULL, 0);
    } else {
        static const uint64_t fixed[] = {1, 42, 12345, 987654321};
        for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
            seeds[nseeds++] = fixed[i];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seeds[nseeds++] = (uint64_t)ts.tv_sec * 1000003u + (uint64_t)ts.tv_nsec;
    }
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("exact");
    tcase_set_timeout(tc, RUNNING_ON_VALGRIND ? 300 : 60);
    tcase_add_loop_test(tc, exact_queues, 0, nseeds);
    tcase_add_loop_test(tc, exact_sem_lock, 0, nseeds);
    suite_add_tcase(s, tc);
    TCase *tch = tcase_create("chaos");
    tcase_set_timeout(tch, RUNNING_ON_VALGRIND ? 300 : 60);
    tcase_add_loop_test(tch, chaos, 0, nseeds);
    suite_add_tcase(s, tch);
    return tu_run(s);
}
