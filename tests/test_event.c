/*
 * Event and AsyncResult (lib/event.c): wake-ups, FIFO order, kills and
 * timeouts at the wait point, timeout 0, misuse (NULL, foreign thread,
 * setting twice, free while waited on).
 */
#include <ev.h>
#include <pthread.h>

#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Event                                                                      */
/* ------------------------------------------------------------------------ */

/* A waiter: waits on an event, records its result and its turn. */
struct ev_waiter {
    green_event_t *e;
    double         timeout;
    int            rc, err;
    int            turn;
    bool           done;
};
static int turns;

static void *event_waiter(void *arg)
{
    struct ev_waiter *w = arg;
    errno = 0;
    w->rc = green_event_wait(w->e, w->timeout);
    w->err = errno;
    w->turn = turns++;
    w->done = true;
    return NULL;
}

START_TEST(event_basics)
{
    green_event_t *e = green_event_new();
    ck_assert_ptr_nonnull(e);
    ck_assert(!green_event_is_set(e));
    ck_assert_fails(green_event_wait(e, 0), EAGAIN);
    double t0 = tu_now();
    ck_assert_fails(green_event_wait(e, 0.05), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.04, 2.0);
    green_event_set(e);
    ck_assert(green_event_is_set(e));
    ck_assert_int_eq(green_event_wait(e, 0), 0);
    ck_assert_int_eq(green_event_wait(e, GREEN_FOREVER), 0);
    green_event_set(e); /* twice is fine */
    green_event_clear(e);
    ck_assert(!green_event_is_set(e));
    ck_assert_fails(green_event_wait(e, 0), EAGAIN);
    green_event_free(e);
}
END_TEST

START_TEST(event_null)
{
    green_event_set(NULL);
    green_event_clear(NULL);
    green_event_free(NULL);
    ck_assert(!green_event_is_set(NULL));
    ck_assert_fails(green_event_wait(NULL, 0), EINVAL);
    ck_assert_fails(green_event_wait(NULL, 1), EINVAL);
}
END_TEST

START_TEST(event_wakes_all_fifo)
{
    green_event_t *e = green_event_new();
    struct ev_waiter w[6];
    green_t *g[6];
    turns = 0;
    for (int i = 0; i < 6; i++) {
        w[i] = (struct ev_waiter){.e = e, .timeout = GREEN_FOREVER};
        g[i] = green_spawn(event_waiter, &w[i]);
    }
    green_yield(); /* all park */
    for (int i = 0; i < 6; i++)
        ck_assert(!w[i].done);
    green_event_set(e);
    /* set never switches: nobody has run yet */
    for (int i = 0; i < 6; i++)
        ck_assert(!w[i].done);
    ck_assert_int_eq(green_joinall(g, 6, 5), 0);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(w[i].rc, 0);
        ck_assert_int_eq(w[i].turn, i);
        green_release(g[i]);
    }
    green_event_free(e);
}
END_TEST

START_TEST(event_set_then_clear_still_wakes)
{
    green_event_t *e = green_event_new();
    struct ev_waiter w = {.e = e, .timeout = 5};
    green_t *g = green_spawn(event_waiter, &w);
    green_yield();
    green_event_set(e);
    green_event_clear(e); /* before the waiter runs */
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(w.rc, 0);
    ck_assert(!green_event_is_set(e));
    green_release(g);
    green_event_free(e);
}
END_TEST

START_TEST(event_timeout_zero_never_switches)
{
    green_event_t *e = green_event_new();
    tu_flag = 0;
    green_t *g = green_spawn(tu_set_flag, NULL);
    ck_assert_fails(green_event_wait(e, 0), EAGAIN);
    ck_assert_int_eq(tu_flag, 0);
    green_event_set(e);
    ck_assert_int_eq(green_event_wait(e, 0), 0);
    ck_assert_int_eq(tu_flag, 0);
    green_event_set(e); /* set does not switch either */
    green_event_clear(e);
    ck_assert_int_eq(tu_flag, 0);
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(tu_flag, 1);
    green_release(g);
    green_event_free(e);
}
END_TEST

START_TEST(event_kill_while_waiting)
{
    green_event_t *e = green_event_new();
    struct ev_waiter a = {.e = e, .timeout = GREEN_FOREVER}, b = a;
    green_t *ga = green_spawn(event_waiter, &a), *gb = green_spawn(event_waiter, &b);
    green_yield();
    ck_assert_int_eq(green_kill(ga, 5), 0);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_int_eq(a.err, ECANCELED);
    ck_assert(!b.done);
    green_event_set(e);
    ck_assert_int_eq(green_join(gb, 5), 0);
    ck_assert_int_eq(b.rc, 0);
    green_release(ga);
    green_release(gb);
    green_event_free(e);
}
END_TEST

/* A killed greenlet's wait fails even on a set event. */
static void *self_kill_then_wait(void *arg)
{
    struct ev_waiter *w = arg;
    green_kill(green_current(), 0);
    return event_waiter(w);
}

START_TEST(event_wait_after_kill_fails)
{
    green_event_t *e = green_event_new();
    green_event_set(e);
    struct ev_waiter w = {.e = e, .timeout = 0};
    green_t *g = green_spawn(self_kill_then_wait, &w);
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(w.rc, -1);
    ck_assert_int_eq(w.err, ECANCELED);
    green_release(g);
    green_event_free(e);
}
END_TEST

START_TEST(event_set_then_kill_returns_success)
{
    green_event_t *e = green_event_new();
    struct ev_waiter w = {.e = e, .timeout = GREEN_FOREVER};
    green_t *g = green_spawn(event_waiter, &w);
    green_yield();
    green_event_set(e);
    ck_assert_int_eq(green_kill(g, 5), 0); /* woken before the kill */
    ck_assert_int_eq(w.rc, 0);
    ck_assert(green_killed(g));
    green_release(g);
    green_event_free(e);
}
END_TEST

START_TEST(event_set_then_timer_returns_success)
{
    green_event_t *e = green_event_new();
    struct ev_waiter w = {.e = e, .timeout = 0.3};
    green_t *g = green_spawn(event_waiter, &w);
    green_yield();
    green_event_set(e);
    tu_spin(0.6); /* the waiter's deadline passes before it runs */
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(w.rc, 0);
    green_release(g);
    green_event_free(e);
}
END_TEST

/* Waits under a green_timeout instead of its own timeout. */
static void *event_waiter_gtimeout(void *arg)
{
    struct ev_waiter *w = arg;
    green_timeout_t t;
    green_timeout_start(&t, w->timeout);
    errno = 0;
    w->rc = green_event_wait(w->e, GREEN_FOREVER);
    w->err = errno;
    green_timeout_cancel(&t);
    w->done = true;
    return NULL;
}

START_TEST(event_timeouts)
{
    green_event_t *e = green_event_new();
    struct ev_waiter a = {.e = e, .timeout = 0.05}, b = {.e = e, .timeout = 0.05};
    struct ev_waiter c = {.e = e, .timeout = GREEN_FOREVER};
    double t0 = tu_now();
    green_t *g[3] = {green_spawn(event_waiter, &a), green_spawn(event_waiter_gtimeout, &b),
                     green_spawn(event_waiter, &c)};
    ck_assert_int_eq(green_joinall(g, 2, 5), 0);
    ck_assert_elapsed(t0, 0.04, 3.0);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_int_eq(a.err, ETIMEDOUT);
    ck_assert_int_eq(b.rc, -1);
    ck_assert_int_eq(b.err, ETIMEDOUT);
    ck_assert(!c.done); /* the others' timeouts did not touch it */
    green_event_set(e);
    ck_assert_int_eq(green_join(g[2], 5), 0);
    ck_assert_int_eq(c.rc, 0);
    for (int i = 0; i < 3; i++)
        green_release(g[i]);
    /* An expired green_timeout still lets a wait that needs no waiting succeed. */
    green_timeout_t t;
    green_timeout_start(&t, 0);
    ck_assert_int_eq(green_event_wait(e, GREEN_FOREVER), 0);
    green_event_clear(e);
    ck_assert_fails(green_event_wait(e, GREEN_FOREVER), ETIMEDOUT);
    ck_assert(green_timeout_cancel(&t));
    green_event_free(e);
}
END_TEST

START_TEST(event_free_while_waited)
{
    green_event_t *e = green_event_new();
    struct ev_waiter w[3];
    green_t *g[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (struct ev_waiter){.e = e, .timeout = i == 1 ? 10 : GREEN_FOREVER};
        g[i] = green_spawn(event_waiter, &w[i]);
    }
    green_yield();
    green_event_free(e);
    ck_assert_int_eq(green_joinall(g, 3, 5), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(w[i].rc, -1);
        ck_assert_int_eq(w[i].err, EPIPE);
        green_release(g[i]);
    }
}
END_TEST

static void *event_foreign(void *arg)
{
    green_event_t *e = arg;
    ck_assert_fails(green_event_wait(e, 0), EPERM);
    ck_assert_fails(green_event_wait(e, 1), EPERM);
    green_event_set(e);   /* does nothing */
    green_event_clear(e); /* does nothing */
    green_event_free(e);  /* does nothing */
    return NULL;
}

START_TEST(event_foreign_thread)
{
    green_event_t *e = green_event_new();
    tu_on_other_thread(event_foreign, e);
    ck_assert(!green_event_is_set(e));
    green_event_set(e);
    tu_on_other_thread(event_foreign, e);
    ck_assert(green_event_is_set(e)); /* the foreign clear did nothing */
    ck_assert_int_eq(green_event_wait(e, 0), 0);
    green_event_free(e);
}
END_TEST

/* A blocking call from a libev callback (the hub) is EDEADLK. */
static int hub_rc, hub_err;
static void hub_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    errno = 0;
    hub_rc = green_event_wait(t->data, 1);
    hub_err = errno;
}

START_TEST(event_wait_from_hub)
{
    green_event_t *e = green_event_new();
    struct ev_loop *loop = green_loop();
    ev_timer t;
    ev_timer_init(&t, hub_timer_cb, 0.001, 0);
    t.data = e;
    ev_timer_start(loop, &t);
    green_sleep(0.05);
    ev_timer_stop(loop, &t);
    ck_assert_int_eq(hub_rc, -1);
    ck_assert_int_eq(hub_err, EDEADLK);
    green_event_free(e);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* AsyncResult                                                                */
/* ------------------------------------------------------------------------ */

struct res_waiter {
    green_result_t *r;
    double          timeout;
    int             rc, err, turn;
    void           *value;
    bool            done;
};

static void *result_waiter(void *arg)
{
    struct res_waiter *w = arg;
    errno = 0;
    w->value = (void *)0xdead;
    w->rc = green_result_get(w->r, &w->value, w->timeout);
    w->err = errno;
    w->turn = turns++;
    w->done = true;
    return NULL;
}

START_TEST(result_basics)
{
    green_result_t *r = green_result_new();
    ck_assert_ptr_nonnull(r);
    ck_assert(!green_result_ready(r));
    void *v = (void *)1;
    ck_assert_fails(green_result_get(r, &v, 0), EAGAIN);
    double t0 = tu_now();
    ck_assert_fails(green_result_get(r, &v, 0.05), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.04, 2.0);
    ck_assert_ptr_eq(v, (void *)1); /* a failed get stores nothing */
    ck_assert_int_eq(green_result_set(r, &v), 0);
    ck_assert(green_result_ready(r));
    ck_assert_int_eq(green_result_get(r, &v, 0), 0);
    ck_assert_ptr_eq(v, &v);
    ck_assert_int_eq(green_result_get(r, NULL, 0), 0); /* wait only */
    ck_assert_fails(green_result_set(r, NULL), EINVAL);
    ck_assert_fails(green_result_fail(r, EIO), EINVAL);
    ck_assert_int_eq(green_result_get(r, &v, GREEN_FOREVER), 0);
    ck_assert_ptr_eq(v, &v); /* the failed set changed nothing */
    green_result_free(r);

    /* NULL is a valid value. */
    r = green_result_new();
    ck_assert_int_eq(green_result_set(r, NULL), 0);
    ck_assert_int_eq(green_result_get(r, &v, 0), 0);
    ck_assert_ptr_null(v);
    green_result_free(r);
}
END_TEST

START_TEST(result_fail)
{
    green_result_t *r = green_result_new();
    ck_assert_fails(green_result_fail(r, 0), EINVAL);
    ck_assert_fails(green_result_fail(r, -5), EINVAL);
    ck_assert(!green_result_ready(r));
    ck_assert_int_eq(green_result_fail(r, ECONNRESET), 0);
    ck_assert(green_result_ready(r));
    void *v = (void *)7;
    ck_assert_fails(green_result_get(r, &v, 0), ECONNRESET);
    ck_assert_fails(green_result_get(r, &v, GREEN_FOREVER), ECONNRESET);
    ck_assert_fails(green_result_get(r, NULL, 1), ECONNRESET);
    ck_assert_ptr_eq(v, (void *)7);
    ck_assert_fails(green_result_fail(r, EIO), EINVAL);
    ck_assert_fails(green_result_set(r, NULL), EINVAL);
    ck_assert_fails(green_result_get(r, &v, 0), ECONNRESET);
    green_result_free(r);
}
END_TEST

START_TEST(result_null)
{
    void *v;
    ck_assert_fails(green_result_set(NULL, NULL), EINVAL);
    ck_assert_fails(green_result_fail(NULL, EIO), EINVAL);
    ck_assert_fails(green_result_get(NULL, &v, 0), EINVAL);
    ck_assert_fails(green_result_get(NULL, &v, 1), EINVAL);
    ck_assert(!green_result_ready(NULL));
    green_result_free(NULL);
}
END_TEST

START_TEST(result_wakes_all_fifo)
{
    green_result_t *r = green_result_new();
    struct res_waiter w[5];
    green_t *g[5];
    turns = 0;
    for (int i = 0; i < 5; i++) {
        w[i] = (struct res_waiter){.r = r, .timeout = i == 2 ? 10 : GREEN_FOREVER};
        g[i] = green_spawn(result_waiter, &w[i]);
    }
    green_yield();
    int x;
    ck_assert_int_eq(green_result_set(r, &x), 0);
    for (int i = 0; i < 5; i++)
        ck_assert(!w[i].done); /* set does not switch */
    ck_assert_int_eq(green_joinall(g, 5, 5), 0);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(w[i].rc, 0);
        ck_assert_ptr_eq(w[i].value, &x);
        ck_assert_int_eq(w[i].turn, i);
        green_release(g[i]);
    }
    green_result_free(r);
}
END_TEST

START_TEST(result_fail_wakes_all)
{
    green_result_t *r = green_result_new();
    struct res_waiter w[3];
    green_t *g[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (struct res_waiter){.r = r, .timeout = GREEN_FOREVER};
        g[i] = green_spawn(result_waiter, &w[i]);
    }
    green_yield();
    ck_assert_int_eq(green_result_fail(r, ENOENT), 0);
    /* Freeing right after failing: the waiters were handed their outcome. */
    green_result_free(r);
    ck_assert_int_eq(green_joinall(g, 3, 5), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(w[i].rc, -1);
        ck_assert_int_eq(w[i].err, ENOENT);
        ck_assert_ptr_eq(w[i].value, (void *)0xdead);
        green_release(g[i]);
    }
}
END_TEST

START_TEST(result_timeout_zero_never_switches)
{
    green_result_t *r = green_result_new();
    tu_flag = 0;
    green_t *g = green_spawn(tu_set_flag, NULL);
    void *v;
    ck_assert_fails(green_result_get(r, &v, 0), EAGAIN);
    ck_assert_int_eq(tu_flag, 0);
    ck_assert_int_eq(green_result_set(r, NULL), 0);
    ck_assert_int_eq(tu_flag, 0);
    ck_assert_int_eq(green_result_get(r, &v, 0), 0);
    ck_assert_int_eq(tu_flag, 0);
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(tu_flag, 1);
    green_release(g);
    green_result_free(r);
}
END_TEST

START_TEST(result_kill_and_timeout_at_wait)
{
    green_result_t *r = green_result_new();
    /* killed while waiting */
    struct res_waiter a = {.r = r, .timeout = GREEN_FOREVER};
    /* own timeout */
    struct res_waiter b = {.r = r, .timeout = 0.03};
    /* woken, then killed before it ran */
    struct res_waiter c = {.r = r, .timeout = GREEN_FOREVER};
    /* woken, then its deadline passed before it ran */
    struct res_waiter d = {.r = r, .timeout = 0.3};
    green_t *ga = green_spawn(result_waiter, &a), *gb = green_spawn(result_waiter, &b);
    green_yield();
    ck_assert_int_eq(green_kill(ga, 5), 0);
    ck_assert_int_eq(a.rc, -1);
    ck_assert_int_eq(a.err, ECANCELED);
    ck_assert_int_eq(green_join(gb, 5), 0);
    ck_assert_int_eq(b.rc, -1);
    ck_assert_int_eq(b.err, ETIMEDOUT);
    green_t *gc = green_spawn(result_waiter, &c), *gd = green_spawn(result_waiter, &d);
    green_yield();
    int x;
    ck_assert_int_eq(green_result_set(r, &x), 0);
    ck_assert_int_eq(green_kill(gc, 0), -1); /* queued, not yet finished: EAGAIN */
    tu_spin(0.6);
    ck_assert_int_eq(green_join(gc, 5), 0);
    ck_assert_int_eq(green_join(gd, 5), 0);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_ptr_eq(c.value, &x);
    ck_assert_int_eq(d.rc, 0);
    ck_assert_ptr_eq(d.value, &x);
    green_release(ga);
    green_release(gb);
    green_release(gc);
    green_release(gd);
    green_result_free(r);
}
END_TEST

START_TEST(result_free_while_waited)
{
    green_result_t *r = green_result_new();
    struct res_waiter w[2] = {{.r = r, .timeout = GREEN_FOREVER}, {.r = r, .timeout = 10}};
    green_t *g[2] = {green_spawn(result_waiter, &w[0]), green_spawn(result_waiter, &w[1])};
    green_yield();
    green_result_free(r);
    ck_assert_int_eq(green_joinall(g, 2, 5), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(w[i].rc, -1);
        ck_assert_int_eq(w[i].err, EPIPE);
        green_release(g[i]);
    }
}
END_TEST

static void *result_foreign(void *arg)
{
    green_result_t *r = arg;
    void *v;
    ck_assert_fails(green_result_get(r, &v, 0), EPERM);
    ck_assert_fails(green_result_get(r, &v, 1), EPERM);
    ck_assert_fails(green_result_set(r, NULL), EPERM);
    ck_assert_fails(green_result_fail(r, EIO), EPERM);
    green_result_free(r); /* does nothing */
    return NULL;
}

START_TEST(result_foreign_thread)
{
    green_result_t *r = green_result_new();
    tu_on_other_thread(result_foreign, r);
    ck_assert(!green_result_ready(r));
    ck_assert_int_eq(green_result_set(r, r), 0);
    void *v;
    ck_assert_int_eq(green_result_get(r, &v, 0), 0);
    ck_assert_ptr_eq(v, r);
    green_result_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("event");
    tcase_add_test(tc, event_basics);
    tcase_add_test(tc, event_null);
    tcase_add_test(tc, event_wakes_all_fifo);
    tcase_add_test(tc, event_set_then_clear_still_wakes);
    tcase_add_test(tc, event_timeout_zero_never_switches);
    tcase_add_test(tc, event_kill_while_waiting);
    tcase_add_test(tc, event_wait_after_kill_fails);
    tcase_add_test(tc, event_set_then_kill_returns_success);
    tcase_add_test(tc, event_set_then_timer_returns_success);
    tcase_add_test(tc, event_timeouts);
    tcase_add_test(tc, event_free_while_waited);
    tcase_add_test(tc, event_foreign_thread);
    tcase_add_test(tc, event_wait_from_hub);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("result");
    tcase_add_test(tr, result_basics);
    tcase_add_test(tr, result_fail);
    tcase_add_test(tr, result_null);
    tcase_add_test(tr, result_wakes_all_fifo);
    tcase_add_test(tr, result_fail_wakes_all);
    tcase_add_test(tr, result_timeout_zero_never_switches);
    tcase_add_test(tr, result_kill_and_timeout_at_wait);
    tcase_add_test(tr, result_free_while_waited);
    tcase_add_test(tr, result_foreign_thread);
    suite_add_tcase(s, tr);
    return tu_run(s);
}
