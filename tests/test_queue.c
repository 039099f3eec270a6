/*
 * Queues (lib/queue.c): FIFO, LIFO, priority and channel order, direct
 * hand-off to blocked getters and putters, kills and timeouts at every wait
 * point (put, get, peek, join), timeout 0, task_done/join, close, and misuse
 * (NULL, foreign thread, task_done too often, put on a closed queue, free
 * while waited on).
 */
#include <pthread.h>
#include <stdint.h>

#include "testutil.h"

#define ITEM(n) ((void *)(uintptr_t)(n))
#define NUM(p) ((int)(uintptr_t)(p))

/* One blocking queue call made by a greenlet, and what came of it. */
enum op { OP_PUT, OP_GET, OP_PEEK, OP_JOIN };
struct actor {
    green_queue_t *q;
    enum op        op;
    void          *item;         /* put: the item; get/peek: what came back */
    double         timeout;
    bool           use_gtimeout; /* wait under a green_timeout instead */
    int            rc, err, turn;
    bool           done;
};
static int turns;

static void *actor_fn(void *arg)
{
    struct actor *a = arg;
    green_timeout_t gt;
    if (a->use_gtimeout)
        green_timeout_start(&gt, a->timeout);
    double timeout = a->use_gtimeout ? GREEN_FOREVER : a->timeout;
    errno = 0;
    switch (a->op) {
    case OP_PUT:
        a->rc = green_queue_put(a->q, a->item, timeout);
        break;
    case OP_GET:
        a->item = ITEM(-1);
        a->rc = green_queue_get(a->q, &a->item, timeout);
        break;
    case OP_PEEK:
        a->item = ITEM(-1);
        a->rc = green_queue_peek(a->q, &a->item, timeout);
        break;
    case OP_JOIN:
        a->rc = green_queue_join(a->q, timeout);
        break;
    }
    a->err = errno;
    if (a->use_gtimeout)
        green_timeout_cancel(&gt);
    a->turn = turns++;
    a->done = true;
    return NULL;
}

static struct actor actor(green_queue_t *q, enum op op, int item, double timeout)
{
    return (struct actor){.q = q, .op = op, .item = ITEM(item), .timeout = timeout};
}

static void get_expect(green_queue_t *q, int want)
{
    void *it = ITEM(-1);
    ck_assert_int_eq(green_queue_get(q, &it, 0), 0);
    ck_assert_int_eq(NUM(it), want);
}

/* ------------------------------------------------------------------------ */
/* Order                                                                      */
/* ------------------------------------------------------------------------ */

START_TEST(fifo_basics)
{
    green_queue_t *q = green_queue_new(0);
    ck_assert_ptr_nonnull(q);
    ck_assert(green_queue_empty(q));
    ck_assert(!green_queue_full(q));
    ck_assert_uint_eq(green_queue_size(q), 0);
    void *it;
    ck_assert_fails(green_queue_get(q, &it, 0), EAGAIN);
    ck_assert_fails(green_queue_peek(q, &it, 0), EAGAIN);
    double t0 = tu_now();
    ck_assert_fails(green_queue_get(q, &it, 0.05), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.04, 2.0);
    t0 = tu_now();
    ck_assert_fails(green_queue_peek(q, &it, 0.05), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.04, 2.0);
    ck_assert_int_eq(green_queue_put(q, NULL, 0), 0); /* NULL is an item */
    for (int i = 1; i <= 5; i++)
        ck_assert_int_eq(green_queue_put(q, ITEM(i), GREEN_FOREVER), 0);
    ck_assert_uint_eq(green_queue_size(q), 6);
    ck_assert(!green_queue_empty(q));
    ck_assert(!green_queue_full(q));
    it = ITEM(9);
    ck_assert_int_eq(green_queue_peek(q, &it, 0), 0);
    ck_assert_ptr_null(it);
    ck_assert_uint_eq(green_queue_size(q), 6);
    get_expect(q, 0);
    for (int i = 1; i <= 5; i++) {
        ck_assert_int_eq(green_queue_peek(q, &it, GREEN_FOREVER), 0);
        ck_assert_int_eq(NUM(it), i);
        get_expect(q, i);
    }
    ck_assert(green_queue_empty(q));
    green_queue_free(q);
}
END_TEST

START_TEST(fifo_bounded_and_wrapping)
{
    green_queue_t *q = green_queue_new(3);
    int next_put = 0, next_get = 0;
    /* Interleaved puts and gets wrap the ring many times. */
    for (int round = 0; round < 200; round++) {
        int n = 1 + round % 3;
        for (int i = 0; i < n; i++)
            ck_assert_int_eq(green_queue_put(q, ITEM(next_put++), 0), 0);
        ck_assert_int_eq(green_queue_full(q), n == 3);
        if (n == 3) {
            void *it;
            ck_assert_fails(green_queue_put(q, ITEM(-5), 0), EAGAIN);
            double t0 = tu_now();
            ck_assert_fails(green_queue_put(q, ITEM(-5), round == 2 ? 0.03 : 0), round == 2 ? ETIMEDOUT : EAGAIN);
            if (round == 2)
                ck_assert_elapsed(t0, 0.02, 2.0);
            ck_assert_int_eq(green_queue_peek(q, &it, 0), 0);
            ck_assert_int_eq(NUM(it), next_get);
        }
        for (int i = 0; i < n; i++)
            get_expect(q, next_get++);
    }
    green_queue_free(q);

    /* An unbounded queue grows (and wraps while growing). */
    q = green_queue_new(0);
    next_put = next_get = 0;
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < 150; i++)
            ck_assert_int_eq(green_queue_put(q, ITEM(next_put++), 0), 0);
        for (int i = 0; i < 100; i++)
            get_expect(q, next_get++);
    }
    ck_assert_uint_eq(green_queue_size(q), (size_t)(next_put - next_get));
    while (next_get < next_put)
        get_expect(q, next_get++);
    green_queue_free(q);
}
END_TEST

START_TEST(lifo_order)
{
    green_queue_t *q = green_queue_new_lifo(4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(green_queue_put(q, ITEM(i), 0), 0);
    ck_assert(green_queue_full(q));
    ck_assert_fails(green_queue_put(q, ITEM(9), 0), EAGAIN);
    void *it;
    ck_assert_int_eq(green_queue_peek(q, &it, 0), 0);
    ck_assert_int_eq(NUM(it), 3);
    get_expect(q, 3);
    get_expect(q, 2);
    ck_assert_int_eq(green_queue_put(q, ITEM(7), 0), 0);
    get_expect(q, 7);
    get_expect(q, 1);
    get_expect(q, 0);
    ck_assert_fails(green_queue_get(q, &it, 0), EAGAIN);
    green_queue_free(q);

    /* Unbounded, with growth. */
    q = green_queue_new_lifo(0);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(green_queue_put(q, ITEM(i), 0), 0);
    for (int i = 999; i >= 0; i--)
        get_expect(q, i);
    green_queue_free(q);
}
END_TEST

/* Priority items: rank in the high bits, a serial number in the low ones
 * that cmp ignores, so ties are visible. */
#define PITEM(rank, serial) ITEM((rank) * 10000 + (serial))
static int cmp_calls;
static int by_rank(const void *a, const void *b)
{
    cmp_calls++;
    int ra = NUM(a) / 10000, rb = NUM(b) / 10000;
    return ra < rb ? -1 : ra > rb;
}

START_TEST(priority_order_with_ties)
{
    ck_assert_null_errno(green_queue_new_priority(0, NULL), EINVAL);
    green_queue_t *q = green_queue_new_priority(0, by_rank);
    int ranks[] = {5, 1, 3, 1, 5, 0, 3, 1, 9, 0};
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(green_queue_put(q, PITEM(ranks[i], i), 0), 0);
    void *it;
    ck_assert_int_eq(green_queue_peek(q, &it, 0), 0);
    ck_assert_int_eq(NUM(it), NUM(PITEM(0, 5)));
    int want[] = {5, 9, 1, 3, 7, 2, 6, 0, 4, 8}; /* by rank, then by insertion */
    for (int i = 0; i < 10; i++)
        get_expect(q, NUM(PITEM(ranks[want[i]], want[i])));
    ck_assert(cmp_calls > 0);
    green_queue_free(q);

    /* Many items, random ranks, interleaved: sorted and stable. */
    q = green_queue_new_priority(0, by_rank);
    unsigned seed = 12345;
    int serial = 0, last_rank = -1, last_serial = -1;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 200; i++) {
            seed = seed * 1103515245 + 12345;
            ck_assert_int_eq(green_queue_put(q, PITEM((seed >> 16) % 20, serial), 0), 0);
            serial++;
        }
        last_rank = -1;
        last_serial = -1;
        for (int i = 0; i < 150; i++) {
            ck_assert_int_eq(green_queue_get(q, &it, 0), 0);
            int rank = NUM(it) / 10000, ser = NUM(it) % 10000;
            ck_assert_int_ge(rank, last_rank);
            if (rank == last_rank)
                ck_assert_int_gt(ser, last_serial);
            last_rank = rank;
            last_serial = ser;
        }
    }
    ck_assert_uint_eq(green_queue_size(q), 20 * 50);
    green_queue_free(q);
}
END_TEST

START_TEST(priority_bounded_putters_keep_insertion_order)
{
    green_queue_t *q = green_queue_new_priority(2, by_rank);
    ck_assert_int_eq(green_queue_put(q, PITEM(1, 0), 0), 0);
    ck_assert_int_eq(green_queue_put(q, PITEM(1, 1), 0), 0);
    ck_assert(green_queue_full(q));
    struct actor a = actor(q, OP_PUT, NUM(PITEM(1, 2)), GREEN_FOREVER);
    struct actor b = actor(q, OP_PUT, NUM(PITEM(0, 3)), GREEN_FOREVER);
    green_t *g[2] = {green_spawn(actor_fn, &a), green_spawn(actor_fn, &b)};
    green_yield();
    get_expect(q, NUM(PITEM(1, 0))); /* a's item moves in */
    get_expect(q, NUM(PITEM(1, 1))); /* b's item moves in */
    get_expect(q, NUM(PITEM(0, 3)));
    get_expect(q, NUM(PITEM(1, 2)));
    ck_assert_int_eq(green_joinall(g, 2, 5), 0);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(b.rc, 0);
    green_release(g[0]);
    green_release(g[1]);
    green_queue_free(q);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Misuse                                                                     */
/* ------------------------------------------------------------------------ */

START_TEST(null_handles)
{
    void *it;
    ck_assert_fails(green_queue_put(NULL, NULL, 0), EINVAL);
    ck_assert_fails(green_queue_put(NULL, NULL, 1), EINVAL);
    ck_assert_fails(green_queue_get(NULL, &it, 0), EINVAL);
    ck_assert_fails(green_queue_peek(NULL, &it, 1), EINVAL);
    ck_assert_fails(green_queue_task_done(NULL), EINVAL);
    ck_assert_fails(green_queue_join(NULL, 0), EINVAL);
    ck_assert_uint_eq(green_queue_size(NULL), 0);
    ck_assert(!green_queue_empty(NULL));
    ck_assert(!green_queue_full(NULL));
    green_queue_close(NULL);
    green_queue_free(NULL);
    /* A NULL out-pointer is EINVAL and takes nothing. */
    green_queue_t *q = green_queue_new(0);
    ck_assert_int_eq(green_queue_put(q, ITEM(1), 0), 0);
    ck_assert_fails(green_queue_get(q, NULL, 0), EINVAL);
    ck_assert_fails(green_queue_get(q, NULL, GREEN_FOREVER), EINVAL);
    ck_assert_fails(green_queue_peek(q, NULL, 0), EINVAL);
    ck_assert_uint_eq(green_queue_size(q), 1);
    get_expect(q, 1);
    green_queue_free(q);
}
END_TEST

START_TEST(task_done_and_join)
{
    green_queue_t *q = green_queue_new(0);
    ck_assert_int_eq(green_queue_join(q, 0), 0);
    ck_assert_fails(green_queue_task_done(q), EINVAL);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(green_queue_put(q, ITEM(i), 0), 0);
    ck_assert_fails(green_queue_join(q, 0), EAGAIN);
    double t0 = tu_now();
    ck_assert_fails(green_queue_join(q, 0.03), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.02, 2.0);
    struct actor j1 = actor(q, OP_JOIN, 0, GREEN_FOREVER), j2 = actor(q, OP_JOIN, 0, 10);
    green_t *g[2] = {green_spawn(actor_fn, &j1), green_spawn(actor_fn, &j2)};
    green_yield();
    for (int i = 0; i < 3; i++) {
        get_expect(q, i);
        ck_assert_int_eq(green_queue_task_done(q), 0);
        green_yield();
        ck_assert_int_eq(j1.done, i == 2);
    }
    ck_assert_fails(green_queue_task_done(q), EINVAL); /* too often */
    ck_assert_int_eq(green_joinall(g, 2, 5), 0);
    ck_assert_int_eq(j1.rc, 0);
    ck_assert_int_eq(j2.rc, 0);
    ck_assert_int_eq(green_queue_join(q, 0), 0);
    green_release(g[0]);
    green_release(g[1]);
    green_queue_free(q);
}
END_TEST

START_TEST(join_kill_and_timeout)
{
    green_queue_t *q = green_queue_new(0);
    ck_assert_int_eq(green_queue_put(q, ITEM(1), 0), 0);
    struct actor a = actor(q, OP_JOIN, 0, GREEN_FOREVER);
    struct actor b = actor(q, OP_JOIN, 0, 0.03);
    struct actor c = actor(q, OP_JOIN, 0, 0.03);
    c.use_gtimeout = true;
    struct actor d = actor(q, OP_JOIN, 0, GREEN_FOREVER);
    green_t *g[4] = {green_spawn(actor_fn, &a), green_spawn(actor_fn, &b),
                     green_spawn(actor_fn, &c), green_spawn(actor_fn, &d)};
    green_yield();
    ck_assert_int_eq(green_kill(g[0], 5), 0);
    ck_assert_int_eq(green_joinall(g + 1, 2, 5), 0);
    ck_assert_int_eq(a.err, ECANCELED);
    ck_assert_int_eq(b.err, ETIMEDOUT);
    ck_assert_int_eq(c.err, ETIMEDOUT);
    get_expect(q, 1);
    ck_assert_int_eq(green_queue_task_done(q), 0);
    ck_assert_int_eq(green_kill(g[3], 5), 0); /* woken before the kill */
    ck_assert_int_eq(d.rc, 0);
    for (int i = 0; i < 4; i++)
        green_release(g[i]);
    green_queue_free(q);
}
END_TEST

static void *queue_foreign(void *arg)
{
    green_queue_t *q = arg;
    void *it;
    ck_assert_fails(green_queue_put(q, ITEM(5), 0), EPERM);
    ck_assert_fails(green_queue_put(q, ITEM(5), 1), EPERM);
    ck_assert_fails(green_queue_get(q, &it, 0), EPERM);
    ck_assert_fails(green_queue_get(q, &it, 1), EPERM);
    ck_assert_fails(green_queue_peek(q, &it, 0), EPERM);
    ck_assert_fails(green_queue_task_done(q), EPERM);
    ck_assert_fails(green_queue_join(q, 0), EPERM);
    ck_assert_fails(green_queue_join(q, 1), EPERM);
    green_queue_close(q); /* does nothing */
    green_queue_free(q);  /* does nothing */
    return NULL;
}

START_TEST(foreign_thread)
{
    green_queue_t *q = green_queue_new(0);
    ck_assert_int_eq(green_queue_put(q, ITEM(1), 0), 0);
    tu_on_other_thread(queue_foreign, q);
    ck_assert_uint_eq(green_queue_size(q), 1);
    ck_assert_int_eq(green_queue_put(q, ITEM(2), 0), 0); /* not closed */
    get_expect(q, 1);
    get_expect(q, 2);
    ck_assert_int_eq(green_queue_task_done(q), 0);
    ck_assert_int_eq(green_queue_task_done(q), 0);
    green_queue_free(q);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Hand-off, FIFO wake-up, no barging                                         */
/* ------------------------------------------------------------------------ */

START_TEST(getters_fifo_handoff)
{
    green_queue_t *q = green_queue_new(0);
    struct actor a[4];
    green_t *g[4];
    turns = 0;
    for (int i = 0; i < 4; i++) {
        a[i] = actor(q, OP_GET, 0, i == 1 ? 10 : GREEN_FOREVER);
        g[i] = green_spawn(actor_fn, &a[i]);
    }
    green_yield();
    tu_flag = 0;
    green_t *f = green_spawn(tu_set_flag, NULL);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(green_queue_put(q, ITEM(100 + i), 0), 0);
    /* The items went to the getters, not into the queue: the putter cannot
     * take them back, and nothing has switched. */
    ck_assert_uint_eq(green_queue_size(q), 0);
    void *it;
    ck_assert_fails(green_queue_get(q, &it, 0), EAGAIN);
    ck_assert_int_eq(tu_flag, 0);
    for (int i = 0; i < 4; i++)
        ck_assert(!a[i].done);
    ck_assert_int_eq(green_joinall(g, 4, 5), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(a[i].rc, 0);
        ck_assert_int_eq(NUM(a[i].item), 100 + i);
        ck_assert_int_eq(a[i].turn, i);
        green_release(g[i]);
    }
    ck_assert_int_eq(green_join(f, 5), 0);
    green_release(f);
    green_queue_free(q);
}
END_TEST

START_TEST(putters_fifo_handoff)
{
    green_queue_t *q = green_queue_new(2);
    ck_assert_int_eq(green_queue_put(q, ITEM(0), 0), 0);
    ck_assert_int_eq(green_queue_put(q, ITEM(1), 0), 0);
    struct actor a[3];
    green_t *g[3];
    turns = 0;
    for (int i = 0; i < 3; i++) {
        a[i] = actor(q, OP_PUT, 10 + i, i == 2 ? 10 : GREEN_FOREVER);
        g[i] = green_spawn(actor_fn, &a[i]);
    }
    green_yield();
    tu_flag = 0;
    green_t *f = green_spawn(tu_set_flag, NULL);
    get_expect(q, 0);
    /* The first putter's item moved into the freed slot at once. */
    ck_assert_uint_eq(green_queue_size(q), 2);
    ck_assert(green_queue_full(q));
    ck_assert_fails(green_queue_put(q, ITEM(99), 0), EAGAIN); /* no barging */
    get_expect(q, 1);
    get_expect(q, 10);
    get_expect(q, 11);
    ck_assert_int_eq(tu_flag, 0); /* gets never switched */
    for (int i = 0; i < 3; i++)
        ck_assert(!a[i].done);
    get_expect(q, 12);
    ck_assert(green_queue_empty(q));
    ck_assert_int_eq(green_joinall(g, 3, 5), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(a[i].rc, 0);
        ck_assert_int_eq(a[i].turn, i);
        green_release(g[i]);
    }
    ck_assert_int_eq(green_join(f, 5), 0);
    green_release(f);
    green_queue_free(q);
}
END_TEST

START_TEST(timeout_zero_never_switches)
{
    green_queue_t *q = green_queue_new(1);
    green_queue_t *c = green_channel_new();
    tu_flag = 0;
    green_t *f = green_spawn(tu_set_flag, NULL);
    void *it;
    ck_assert_fails(green_queue_get(q, &it, 0), EAGAIN);
    ck_assert_fails(green_queue_peek(q, &it, 0), EAGAIN);
    ck_assert_int_eq(green_queue_put(q, ITEM(1), 0), 0);
    ck_assert_fails(green_queue_put(q, ITEM(2), 0), EAGAIN);
    ck_assert_int_eq(green_queue_peek(q, &it, 0), 0);
    ck_assert_fails(green_queue_join(q, 0), EAGAIN);
    get_expect(q, 1);
    ck_assert_int_eq(green_queue_task_done(q), 0);
    ck_assert_int_eq(green_queue_join(q, 0), 0);
    ck_assert_int_eq(green_queue_put(q, ITEM(3), GREEN_FOREVER), 0); /* room: no switch */
    ck_assert_int_eq(green_queue_get(q, &it, GREEN_FOREVER), 0);    /* item: no switch */
    ck_assert_fails(green_queue_put(c, ITEM(4), 0), EAGAIN);
    ck_assert_fails(green_queue_get(c, &it, 0), EAGAIN);
    ck_assert_fails(green_queue_peek(c, &it, 0), EAGAIN);
    green_queue_close(q);
    ck_assert_int_eq(tu_flag, 0);
    ck_assert_int_eq(green_join(f, 5), 0);
    ck_assert_int_eq(tu_flag, 1);
    green_release(f);
    green_queue_free(q);
    green_queue_free(c);
}
END_TEST

/* Kills and timeouts at each wait point (get, put, peek), before and after
 * the hand-off. */
static void kill_timeout_at(enum op op)
{
    green_queue_t *q = green_queue_new(1);
    if (op == OP_PUT)
        ck_assert_int_eq(green_queue_put(q, ITEM(0), 0), 0); /* full */
    /* Before the hand-off: a killed, b own timeout, c green_timeout; d gets it. */
    struct actor a = actor(q, op, 1, GREEN_FOREVER);
    struct actor b = actor(q, op, 2, 0.03);
    struct actor c = actor(q, op, 3, 0.03);
    c.use_gtimeout = true;
    struct actor d = actor(q, op, 4, GREEN_FOREVER);
    green_t *g[4] = {green_spawn(actor_fn, &a), green_spawn(actor_fn, &b),
                     green_spawn(actor_fn, &c), green_spawn(actor_fn, &d)};
    green_yield();
    ck_assert_int_eq(green_kill(g[0], 5), 0);
    ck_assert_int_eq(green_joinall(g + 1, 2, 5), 0);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_int_eq(a.err, ECANCELED);
    ck_assert_int_eq(b.err, ETIMEDOUT);
    ck_assert_int_eq(c.err, ETIMEDOUT);
    ck_assert(!d.done);
    if (op == OP_PUT) {
        get_expect(q, 0); /* d's item moves in, not a's, b's or c's */
        ck_assert_int_eq(green_join(g[3], 5), 0);
        get_expect(q, 4);
    } else {
        ck_assert_int_eq(green_queue_put(q, ITEM(7), 0), 0);
        ck_assert_int_eq(green_join(g[3], 5), 0);
        ck_assert_int_eq(NUM(d.item), 7);
        if (op == OP_GET)
            ck_assert(green_queue_empty(q));
        else
            get_expect(q, 7);
    }
    ck_assert_int_eq(d.rc, 0);
    for (int i = 0; i < 4; i++)
        green_release(g[i]);

    /* After the hand-off: e killed, f its own deadline passed, h its
     * green_timeout passed, all before they ran: each returns success. */
    if (op == OP_PUT) {
        green_queue_free(q);
        q = green_queue_new(3);
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(green_queue_put(q, ITEM(i), 0), 0);
    }
    struct actor e = actor(q, op, 11, GREEN_FOREVER);
    struct actor f = actor(q, op, 12, 0.3);
    struct actor h = actor(q, op, 13, 0.3);
    h.use_gtimeout = true;
    green_t *g2[3] = {green_spawn(actor_fn, &e), green_spawn(actor_fn, &f),
                      green_spawn(actor_fn, &h)};
    green_yield();
    if (op == OP_PUT) {
        for (int i = 0; i < 3; i++)
            get_expect(q, i);
    } else if (op == OP_GET) {
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(green_queue_put(q, ITEM(21 + i), 0), 0);
    } else {
        ck_assert_int_eq(green_queue_put(q, ITEM(21), 0), 0);
    }
    ck_assert_fails(green_kill(g2[0], 0), EAGAIN);
    tu_spin(0.6);
    ck_assert_int_eq(green_joinall(g2, 3, 5), 0);
    ck_assert_int_eq(e.rc, 0);
    ck_assert_int_eq(f.rc, 0);
    ck_assert_int_eq(h.rc, 0);
    if (op == OP_PUT) {
        get_expect(q, 11);
        get_expect(q, 12);
        get_expect(q, 13);
    } else if (op == OP_GET) {
        ck_assert_int_eq(NUM(e.item), 21);
        ck_assert_int_eq(NUM(f.item), 22);
        ck_assert_int_eq(NUM(h.item), 23);
    } else {
        ck_assert_int_eq(NUM(e.item), 21);
        ck_assert_int_eq(NUM(f.item), 21);
        ck_assert_int_eq(NUM(h.item), 21);
        get_expect(q, 21);
    }
    ck_assert(green_queue_empty(q));
    for (int i = 0; i < 3; i++)
        green_release(g2[i]);
    green_queue_free(q);
}

START_TEST(get_kill_and_timeout)
{
    kill_timeout_at(OP_GET);
}
END_TEST

START_TEST(put_kill_and_timeout)
{
    kill_timeout_at(OP_PUT);
}
END_TEST

START_TEST(peek_kill_and_timeout)
{
    kill_timeout_at(OP_PEEK);
}
END_TEST

START_TEST(peek_waiters_see_the_item)
{
    green_queue_t *q = green_queue_new(0);
    struct actor p1 = actor(q, OP_PEEK, 0, GREEN_FOREVER);
    struct actor g1 = actor(q, OP_GET, 0, GREEN_FOREVER);
    struct actor p2 = actor(q, OP_PEEK, 0, 10);
    green_t *g[3] = {green_spawn(actor_fn, &p1), green_spawn(actor_fn, &g1),
                     green_spawn(actor_fn, &p2)};
    green_yield();
    ck_assert_int_eq(green_queue_put(q, ITEM(5), 0), 0);
    ck_assert_int_eq(green_joinall(g, 3, 5), 0);
    ck_assert_int_eq(NUM(p1.item), 5);
    ck_assert_int_eq(NUM(g1.item), 5);
    ck_assert_int_eq(NUM(p2.item), 5);
    ck_assert(green_queue_empty(q)); /* the getter took it, once */
    for (int i = 0; i < 3; i++)
        green_release(g[i]);

    /* LIFO and priority peek show what get would take. */
    green_queue_free(q);
    q = green_queue_new_lifo(0);
    green_queue_put(q, ITEM(1), 0);
    green_queue_put(q, ITEM(2), 0);
    void *it;
    ck_assert_int_eq(green_queue_peek(q, &it, 0), 0);
    ck_assert_int_eq(NUM(it), 2);
    green_queue_free(q);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Channel                                                                    */
/* ------------------------------------------------------------------------ */

START_TEST(channel_handoff)
{
    green_queue_t *c = green_channel_new();
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(green_queue_size(c), 0);
    ck_assert(green_queue_empty(c));
    ck_assert(green_queue_full(c)); /* a put would wait */
    ck_assert_fails(green_queue_put(c, ITEM(1), 0), EAGAIN);
    double t0 = tu_now();
    ck_assert_fails(green_queue_put(c, ITEM(1), 0.03), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.02, 2.0);

    /* A put waits for a getter and returns once it took the item. */
    struct actor p[3];
    green_t *g[3];
    turns = 0;
    for (int i = 0; i < 3; i++) {
        p[i] = actor(c, OP_PUT, 10 + i, GREEN_FOREVER);
        g[i] = green_spawn(actor_fn, &p[i]);
    }
    green_yield();
    for (int i = 0; i < 3; i++)
        ck_assert(!p[i].done);
    ck_assert_uint_eq(green_queue_size(c), 0);
    void *it;
    ck_assert_int_eq(green_queue_peek(c, &it, 0), 0);
    ck_assert_int_eq(NUM(it), 10);
    for (int i = 0; i < 3; i++)
        get_expect(c, 10 + i); /* straight from the putters, in order */
    ck_assert_fails(green_queue_get(c, &it, 0), EAGAIN);
    for (int i = 0; i < 3; i++)
        ck_assert(!p[i].done); /* get never switches */
    ck_assert_int_eq(green_joinall(g, 3, 5), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(p[i].rc, 0);
        ck_assert_int_eq(p[i].turn, i);
        green_release(g[i]);
    }

    /* A put that finds a getter hands over without waiting or switching. */
    struct actor r = actor(c, OP_GET, 0, GREEN_FOREVER);
    green_t *gr = green_spawn(actor_fn, &r);
    green_yield();
    ck_assert(!green_queue_full(c));
    ck_assert_int_eq(green_queue_put(c, ITEM(42), 0), 0);
    ck_assert(!r.done);
    ck_assert(green_queue_full(c));
    ck_assert_int_eq(green_join(gr, 5), 0);
    ck_assert_int_eq(NUM(r.item), 42);
    green_release(gr);

    /* A waiting peeker sees the item a blocked putter offers; it stays on
     * offer for the next get. */
    struct actor pk = actor(c, OP_PEEK, 0, GREEN_FOREVER);
    struct actor pp = actor(c, OP_PUT, 77, GREEN_FOREVER);
    green_t *gpk = green_spawn(actor_fn, &pk), *gpp = green_spawn(actor_fn, &pp);
    green_yield();
    ck_assert_int_eq(green_join(gpk, 5), 0);
    ck_assert_int_eq(pk.rc, 0);
    ck_assert_int_eq(NUM(pk.item), 77);
    ck_assert(!pp.done);
    get_expect(c, 77);
    ck_assert_int_eq(green_join(gpp, 5), 0);
    ck_assert_int_eq(pp.rc, 0);
    green_release(gpk);
    green_release(gpp);

    /* task_done/join count what went through. */
    ck_assert_fails(green_queue_join(c, 0), EAGAIN);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(green_queue_task_done(c), 0);
    ck_assert_fails(green_queue_task_done(c), EINVAL);
    ck_assert_int_eq(green_queue_join(c, 0), 0);
    green_queue_free(c);
}
END_TEST

START_TEST(channel_kill_and_timeout)
{
    green_queue_t *c = green_channel_new();
    /* Putters: a killed, b timed out; c's item is the one a getter gets. */
    struct actor a = actor(c, OP_PUT, 1, GREEN_FOREVER);
    struct actor b = actor(c, OP_PUT, 2, 0.03);
    struct actor d = actor(c, OP_PUT, 3, GREEN_FOREVER);
    green_t *g[3] = {green_spawn(actor_fn, &a), green_spawn(actor_fn, &b),
                     green_spawn(actor_fn, &d)};
    green_yield();
    ck_assert_int_eq(green_kill(g[0], 5), 0);
    ck_assert_int_eq(green_join(g[1], 5), 0);
    ck_assert_int_eq(a.err, ECANCELED);
    ck_assert_int_eq(b.err, ETIMEDOUT);
    get_expect(c, 3);
    /* d was handed over before this kill: its put succeeded. */
    ck_assert_int_eq(green_kill(g[2], 5), 0);
    ck_assert_int_eq(d.rc, 0);
    for (int i = 0; i < 3; i++)
        green_release(g[i]);

    /* Getters: killed before a put never takes it. */
    struct actor x = actor(c, OP_GET, 0, GREEN_FOREVER), y = actor(c, OP_GET, 0, 10);
    green_t *gx = green_spawn(actor_fn, &x), *gy = green_spawn(actor_fn, &y);
    green_yield();
    ck_assert_int_eq(green_kill(gx, 5), 0);
    ck_assert_int_eq(green_queue_put(c, ITEM(8), 0), 0);
    ck_assert_int_eq(green_join(gy, 5), 0);
    ck_assert_int_eq(x.err, ECANCELED);
    ck_assert_int_eq(NUM(y.item), 8);
    green_release(gx);
    green_release(gy);
    green_queue_free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Close and free                                                             */
/* ------------------------------------------------------------------------ */

START_TEST(close_drains_then_epipe)
{
    green_queue_t *q = green_queue_new(0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(green_queue_put(q, ITEM(i), 0), 0);
    green_queue_close(q);
    green_queue_close(q); /* twice is fine */
    ck_assert_fails(green_queue_put(q, ITEM(9), 0), EPIPE);
    ck_assert_fails(green_queue_put(q, ITEM(9), GREEN_FOREVER), EPIPE);
    ck_assert_uint_eq(green_queue_size(q), 3);
    void *it;
    ck_assert_int_eq(green_queue_peek(q, &it, 0), 0);
    ck_assert_int_eq(NUM(it), 0);
    for (int i = 0; i < 3; i++) {
        it = ITEM(-1);
        ck_assert_int_eq(green_queue_get(q, &it, GREEN_FOREVER), 0);
        ck_assert_int_eq(NUM(it), i);
    }
    ck_assert_fails(green_queue_get(q, &it, 0), EPIPE);
    ck_assert_fails(green_queue_get(q, &it, GREEN_FOREVER), EPIPE);
    ck_assert_fails(green_queue_peek(q, &it, GREEN_FOREVER), EPIPE);
    /* join still counts the items got before and after the close */
    ck_assert_fails(green_queue_join(q, 0), EAGAIN);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(green_queue_task_done(q), 0);
    ck_assert_int_eq(green_queue_join(q, 0), 0);
    green_queue_free(q);
}
END_TEST

START_TEST(close_wakes_waiters)
{
    /* Blocked getters and peekers of an empty queue. */
    green_queue_t *q = green_queue_new(2);
    struct actor a = actor(q, OP_GET, 0, GREEN_FOREVER), b = actor(q, OP_PEEK, 0, 10);
    green_t *g[2] = {green_spawn(actor_fn, &a), green_spawn(actor_fn, &b)};
    green_yield();
    green_queue_close(q);
    ck_assert_int_eq(green_joinall(g, 2, 5), 0);
    ck_assert_int_eq(a.err, EPIPE);
    ck_assert_int_eq(b.err, EPIPE);
    green_release(g[0]);
    green_release(g[1]);
    green_queue_free(q);

    /* Blocked putters of a full queue: their items are refused, the queued
     * ones still come out, each once. */
    q = green_queue_new(2);
    green_queue_put(q, ITEM(0), 0);
    green_queue_put(q, ITEM(1), 0);
    struct actor p[2] = {actor(q, OP_PUT, 2, GREEN_FOREVER), actor(q, OP_PUT, 3, 10)};
    green_t *gp[2] = {green_spawn(actor_fn, &p[0]), green_spawn(actor_fn, &p[1])};
    green_yield();
    get_expect(q, 0); /* item 2 moves in */
    green_queue_close(q);
    ck_assert_int_eq(green_joinall(gp, 2, 5), 0);
    ck_assert_int_eq(p[0].rc, 0);
    ck_assert_int_eq(p[1].rc, -1);
    ck_assert_int_eq(p[1].err, EPIPE);
    get_expect(q, 1);
    get_expect(q, 2);
    void *it;
    ck_assert_fails(green_queue_get(q, &it, 0), EPIPE);
    green_release(gp[0]);
    green_release(gp[1]);
    green_queue_free(q);

    /* A channel's blocked putters. */
    q = green_channel_new();
    struct actor cp = actor(q, OP_PUT, 5, GREEN_FOREVER);
    green_t *gc = green_spawn(actor_fn, &cp);
    green_yield();
    green_queue_close(q);
    ck_assert_int_eq(green_join(gc, 5), 0);
    ck_assert_int_eq(cp.err, EPIPE);
    ck_assert_fails(green_queue_get(q, &it, 0), EPIPE);
    green_release(gc);
    green_queue_free(q);
}
END_TEST

START_TEST(free_while_waited)
{
    green_queue_t *empty = green_queue_new(1), *full = green_queue_new(1), *chan = green_channel_new();
    green_queue_put(full, ITEM(0), 0);
    struct actor a[6] = {
        actor(empty, OP_GET, 0, GREEN_FOREVER), actor(empty, OP_PEEK, 0, 10),
        actor(full, OP_PUT, 1, GREEN_FOREVER),  actor(full, OP_JOIN, 0, 10),
        actor(chan, OP_PUT, 2, GREEN_FOREVER),  actor(chan, OP_PUT, 3, 10),
    };
    green_t *g[6];
    for (int i = 0; i < 6; i++)
        g[i] = green_spawn(actor_fn, &a[i]);
    green_yield();
    green_queue_free(empty);
    green_queue_free(full);
    green_queue_free(chan);
    ck_assert_int_eq(green_joinall(g, 6, 5), 0);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(a[i].rc, -1);
        ck_assert_int_eq(a[i].err, EPIPE);
        green_release(g[i]);
    }
}
END_TEST

/* A getter handed an item, then the queue freed before it ran: it still
 * returns the item and never touches the freed queue. */
START_TEST(free_after_handoff)
{
    green_queue_t *q = green_queue_new(1);
    struct actor a = actor(q, OP_GET, 0, GREEN_FOREVER);
    green_t *g = green_spawn(actor_fn, &a);
    green_yield();
    ck_assert_int_eq(green_queue_put(q, ITEM(3), 0), 0);
    green_queue_free(q);
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(NUM(a.item), 3);
    green_release(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("queue");
    TCase *t = tcase_create("order");
    tcase_add_test(t, fifo_basics);
    tcase_add_test(t, fifo_bounded_and_wrapping);
    tcase_add_test(t, lifo_order);
    tcase_add_test(t, priority_order_with_ties);
    tcase_add_test(t, priority_bounded_putters_keep_insertion_order);
    suite_add_tcase(s, t);
    t = tcase_create("misuse");
    tcase_add_test(t, null_handles);
    tcase_add_test(t, task_done_and_join);
    tcase_add_test(t, join_kill_and_timeout);
    tcase_add_test(t, foreign_thread);
    suite_add_tcase(s, t);
    t = tcase_create("handoff");
    tcase_add_test(t, getters_fifo_handoff);
    tcase_add_test(t, putters_fifo_handoff);
    tcase_add_test(t, timeout_zero_never_switches);
    tcase_add_test(t, get_kill_and_timeout);
    tcase_add_test(t, put_kill_and_timeout);
    tcase_add_test(t, peek_kill_and_timeout);
    tcase_add_test(t, peek_waiters_see_the_item);
    suite_add_tcase(s, t);
    t = tcase_create("channel");
    tcase_add_test(t, channel_handoff);
    tcase_add_test(t, channel_kill_and_timeout);
    suite_add_tcase(s, t);
    t = tcase_create("close");
    tcase_add_test(t, close_drains_then_epipe);
    tcase_add_test(t, close_wakes_waiters);
    tcase_add_test(t, free_while_waited);
    tcase_add_test(t, free_after_handoff);
    suite_add_tcase(s, t);
    return tu_run(s);
}
