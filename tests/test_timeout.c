/*
 * green_timeout (gevent.Timeout), lib/wait.c: a deadline for every blocking
 * call of the current greenlet between start and cancel. They nest (the
 * earliest deadline wins), are cancelled in LIFO order, fire only inside a
 * blocking call, and once expired make every call that would have to wait
 * fail at once while calls that can complete without waiting still do.
 */
#include <stdint.h>

#include "testutil.h"

/* Sleeps arg milliseconds. */
static void *fn_sleep_ms(void *arg)
{
    green_sleep((double)(intptr_t)arg / 1000.0);
    return NULL;
}

static void *fn_return_arg(void *arg)
{
    return arg;
}

/* Spins on the CPU, never blocking, for `seconds`. */
static void busy(double seconds)
{
    double t0 = tu_now();
    while (tu_now() - t0 < seconds)
        ;
}

START_TEST(sleep_times_out)
{
    green_timeout_t t;
    double t0 = tu_now();
    green_timeout_start(&t, 0.05);
    ck_assert_fails(green_sleep(5.0), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.045, 1.0);
    /* Expired: every later call that would wait fails at once. */
    double t1 = tu_now();
    ck_assert_fails(green_sleep(5.0), ETIMEDOUT);
    ck_assert_fails(green_sleep(0.001), ETIMEDOUT);
    ck_assert_elapsed(t1, 0, 0.5);
    ck_assert(green_timeout_cancel(&t));
    /* Cancelled: sleeping works again. */
    ck_assert_int_eq(green_sleep(0.01), 0);
}
END_TEST

START_TEST(cancel_before_expiry)
{
    green_timeout_t t;
    green_timeout_start(&t, 1.0);
    double t0 = tu_now();
    ck_assert_int_eq(green_sleep(0.02), 0); /* the sleep's own end is no timeout */
    ck_assert_elapsed(t0, 0.018, 0.5);
    ck_assert(!green_timeout_cancel(&t));
    /* The cancelled deadline never fires later. */
    t0 = tu_now();
    ck_assert_int_eq(green_sleep(0.02), 0);
    ck_assert_elapsed(t0, 0.018, 0.5);
}
END_TEST

START_TEST(nonpositive_expires_at_once)
{
    static const double secs[3] = {0, -1.0, -1e9};
    for (int i = 0; i < 3; i++) {
        green_timeout_t t;
        green_timeout_start(&t, secs[i]);
        double t0 = tu_now();
        ck_assert_fails(green_sleep(1.0), ETIMEDOUT);
        ck_assert_elapsed(t0, 0, 0.5);
        ck_assert(green_timeout_cancel(&t));
    }
}
END_TEST

START_TEST(cancel_true_iff_expired_even_without_blocking)
{
    /* A timeout never fires while the greenlet runs, but cancel still says
     * whether its deadline passed. */
    green_timeout_t t;
    green_timeout_start(&t, 0.02);
    busy(0.05);
    ck_assert(green_timeout_cancel(&t));

    green_timeout_start(&t, 2.0);
    busy(0.01);
    ck_assert(!green_timeout_cancel(&t));
}
END_TEST

START_TEST(never_fires_while_running)
{
    green_t *g = green_spawn(fn_return_arg, (void *)(intptr_t)3);
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    green_timeout_t t;
    green_timeout_start(&t, 0.01);
    busy(0.05); /* the deadline passes while we run: nothing happens */
    /* Calls that can complete without waiting still succeed after expiry. */
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    ck_assert_int_eq(green_join(g, 1.0), 0);
    void *r = NULL;
    ck_assert_int_eq(green_get(g, &r, GREEN_FOREVER), 0);
    ck_assert_ptr_eq(r, (void *)(intptr_t)3);
    ck_assert_int_eq(green_joinall(&g, 1, GREEN_FOREVER), 0);
    ck_assert_int_eq(green_kill(g, GREEN_FOREVER), 0); /* finished: no-op */
    green_iwait_t *it = green_iwait_new(&g, 1);
    ck_assert_ptr_eq(green_iwait_next(it, GREEN_FOREVER), g);
    ck_assert_null_errno(green_iwait_next(it, GREEN_FOREVER), ENOENT);
    green_iwait_free(it);
    /* A call that would have to wait fails at once. */
    double t0 = tu_now();
    ck_assert_fails(green_sleep(1.0), ETIMEDOUT);
    ck_assert_elapsed(t0, 0, 0.5);
    ck_assert(green_timeout_cancel(&t));
    green_release(g);
}
END_TEST

START_TEST(wait_with_nothing_left_after_expiry)
{
    /* green_wait with nothing left to run completes without waiting, so an
     * expired timeout does not fail it. */
    green_t *g = green_spawn(fn_return_arg, NULL);
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    green_release(g);
    green_timeout_t t;
    green_timeout_start(&t, 0);
    ck_assert_int_eq(green_wait(0), 0);
    errno = 0;
    int rc = green_wait(GREEN_FOREVER);
    ck_assert_msg(rc == 0, "green_wait(FOREVER) with nothing left, timeout expired: %d errno %d",
                  rc, errno);
    errno = 0;
    rc = green_wait(1.0);
    ck_assert_msg(rc == 0, "green_wait(1.0) with nothing left, timeout expired: %d errno %d", rc,
                  errno);
    ck_assert(green_timeout_cancel(&t));
}
END_TEST

START_TEST(nested_earliest_wins)
{
    /* Outer earlier than inner. */
    green_timeout_t outer, inner;
    double t0 = tu_now();
    green_timeout_start(&outer, 0.05);
    green_timeout_start(&inner, 2.0);
    ck_assert_fails(green_sleep(5.0), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.045, 1.0);
    ck_assert(!green_timeout_cancel(&inner));
    ck_assert(green_timeout_cancel(&outer));

    /* Inner earlier than outer: after the inner one is cancelled, the outer
     * one still lets calls through until its own deadline. */
    t0 = tu_now();
    green_timeout_start(&outer, 2.0);
    green_timeout_start(&inner, 0.03);
    ck_assert_fails(green_sleep(5.0), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.025, 1.0);
    ck_assert(green_timeout_cancel(&inner));
    double t1 = tu_now();
    ck_assert_int_eq(green_sleep(0.02), 0);
    ck_assert_elapsed(t1, 0.018, 0.5);
    ck_assert(!green_timeout_cancel(&outer));
}
END_TEST

START_TEST(lifo_cancel_restores_outer)
{
    /* Cancelling the inner timeout leaves the outer one in force. */
    green_timeout_t outer, inner;
    double t0 = tu_now();
    green_timeout_start(&outer, 0.08);
    green_timeout_start(&inner, 3.0);
    ck_assert_int_eq(green_sleep(0.01), 0);
    ck_assert(!green_timeout_cancel(&inner));
    ck_assert_fails(green_sleep(5.0), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.075, 1.0);
    ck_assert(green_timeout_cancel(&outer));

    /* Three levels, cancelled in order: only the expired ones say so. */
    green_timeout_t a, b, c;
    green_timeout_start(&a, 3.0);
    green_timeout_start(&b, 0.0);
    green_timeout_start(&c, 3.0);
    ck_assert_fails(green_sleep(1.0), ETIMEDOUT);
    ck_assert(!green_timeout_cancel(&c));
    ck_assert(green_timeout_cancel(&b));
    ck_assert_int_eq(green_sleep(0.005), 0);
    ck_assert(!green_timeout_cancel(&a));
}
END_TEST

START_TEST(blocked_join_fails_when_it_fires)
{
    green_t *g = green_spawn(fn_sleep_ms, (void *)(intptr_t)3000);
    green_timeout_t t;
    double t0 = tu_now();
    green_timeout_start(&t, 0.05);
    ck_assert_fails(green_join(g, GREEN_FOREVER), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.045, 1.0);
    ck_assert(!green_ready(g));
    ck_assert_fails(green_join(g, 1.0), ETIMEDOUT); /* at once now */
    ck_assert_elapsed(t0, 0.045, 1.0);
    ck_assert(green_timeout_cancel(&t));
    /* The per-call timeout stays its own: ETIMEDOUT too, timeout not expired. */
    green_timeout_start(&t, 3.0);
    ck_assert_fails(green_join(g, 0.01), ETIMEDOUT);
    ck_assert(!green_timeout_cancel(&t));
    ck_assert_int_eq(green_kill(g, 5.0), 0);
    green_release(g);
}
END_TEST

START_TEST(across_sleeps_and_joins)
{
    green_t *quick = green_spawn(fn_sleep_ms, (void *)(intptr_t)20);
    green_t *slow = green_spawn(fn_sleep_ms, (void *)(intptr_t)5000);
    green_timeout_t t;
    double t0 = tu_now();
    green_timeout_start(&t, 0.12);
    ck_assert_int_eq(green_sleep(0.03), 0);
    ck_assert_int_eq(green_join(quick, GREEN_FOREVER), 0);
    ck_assert_int_eq(green_sleep(0.03), 0);
    ck_assert_fails(green_join(slow, GREEN_FOREVER), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.115, 1.0);
    ck_assert(green_timeout_cancel(&t));
    ck_assert_int_eq(green_kill(slow, 5.0), 0);
    green_release(quick);
    green_release(slow);
}
END_TEST

START_TEST(other_waits_time_out)
{
    green_t *slow = green_spawn(fn_sleep_ms, (void *)(intptr_t)5000);
    green_t *list[1] = {slow};
    green_timeout_t t;

    green_timeout_start(&t, 0.02);
    ck_assert_fails(green_joinall(list, 1, GREEN_FOREVER), ETIMEDOUT);
    ck_assert(green_timeout_cancel(&t));

    green_iwait_t *it = green_iwait_new(list, 1);
    green_timeout_start(&t, 0.02);
    ck_assert_null_errno(green_iwait_next(it, GREEN_FOREVER), ETIMEDOUT);
    ck_assert(green_timeout_cancel(&t));
    green_iwait_free(it);

    green_timeout_start(&t, 0.02);
    ck_assert_fails(green_wait(GREEN_FOREVER), ETIMEDOUT);
    ck_assert(green_timeout_cancel(&t));

    green_timeout_start(&t, 0.02);
    void *r = (void *)1;
    ck_assert_fails(green_get(slow, &r, GREEN_FOREVER), ETIMEDOUT);
    ck_assert_ptr_eq(r, (void *)1);
    ck_assert(green_timeout_cancel(&t));

    ck_assert_int_eq(green_kill(slow, 5.0), 0);
    green_release(slow);
}
END_TEST

/* Ignores a kill for `arg` ms, yielding (a yield is never a timeout). */
static void *fn_ignore_kill(void *arg)
{
    double seconds = (double)(intptr_t)arg / 1000.0;
    double t0 = tu_now();
    while (tu_now() - t0 < seconds)
        green_yield();
    return NULL;
}

START_TEST(kill_wait_times_out)
{
    green_t *g = green_spawn(fn_ignore_kill, (void *)(intptr_t)1000);
    green_yield();
    green_timeout_t t;
    double t0 = tu_now();
    green_timeout_start(&t, 0.03);
    green_yield(); /* yields are never cut short */
    ck_assert_fails(green_kill(g, GREEN_FOREVER), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.025, 0.9);
    ck_assert(green_killed(g));
    ck_assert(green_timeout_cancel(&t));
    ck_assert_int_eq(green_join(g, 5.0), 0);
    green_release(g);
}
END_TEST

/* Each greenlet has its own timeouts. */
struct per_greenlet {
    double timeout;     /* <= 0: none */
    double sleep;
    int    rc, err;
    double elapsed;
    bool   expired;
};

static void *fn_timed_sleep(void *arg)
{
    struct per_greenlet *p = arg;
    green_timeout_t t;
    if (p->timeout > 0)
        green_timeout_start(&t, p->timeout);
    double t0 = tu_now();
    errno = 0;
    p->rc = green_sleep(p->sleep);
    p->err = errno;
    p->elapsed = tu_now() - t0;
    if (p->timeout > 0)
        p->expired = green_timeout_cancel(&t);
    return NULL;
}

START_TEST(timeouts_are_per_greenlet)
{
    struct per_greenlet p[3] = {
        {.timeout = 0.03, .sleep = 2.0},
        {.timeout = 0, .sleep = 0.08},
        {.timeout = 2.0, .sleep = 0.05},
    };
    green_t *gs[3];
    for (int i = 0; i < 3; i++)
        gs[i] = green_spawn(fn_timed_sleep, &p[i]);
    /* The main greenlet's own timeout does not touch them either. */
    green_timeout_t t;
    green_timeout_start(&t, 0.01);
    ck_assert_fails(green_joinall(gs, 3, GREEN_FOREVER), ETIMEDOUT);
    ck_assert(green_timeout_cancel(&t));
    ck_assert_int_eq(green_joinall(gs, 3, 5.0), 0);
    ck_assert_int_eq(p[0].rc, -1);
    ck_assert_int_eq(p[0].err, ETIMEDOUT);
    ck_assert(p[0].elapsed >= 0.025 && p[0].elapsed < 1.0);
    ck_assert(p[0].expired);
    ck_assert_int_eq(p[1].rc, 0);
    ck_assert(p[1].elapsed >= 0.075);
    ck_assert_int_eq(p[2].rc, 0);
    ck_assert(!p[2].expired);
    for (int i = 0; i < 3; i++)
        green_release(gs[i]);
}
END_TEST

START_TEST(kill_beats_pending_timeout)
{
    /* A greenlet killed inside a timed section gets ECANCELED, not
     * ETIMEDOUT; its timeout had not expired. */
    struct per_greenlet p = {.timeout = 3.0, .sleep = 10.0};
    green_t *g = green_spawn(fn_timed_sleep, &p);
    green_yield();
    ck_assert_int_eq(green_kill(g, 5.0), 0);
    ck_assert_int_eq(p.rc, -1);
    ck_assert_int_eq(p.err, ECANCELED);
    ck_assert(!p.expired);
    green_release(g);
}
END_TEST

START_TEST(misuse)
{
    green_timeout_start(NULL, 1.0);
    ck_assert(!green_timeout_cancel(NULL));
    /* Nothing was started: sleeping is unaffected. */
    ck_assert_int_eq(green_sleep(0.005), 0);
}
END_TEST

static Suite *timeout_suite(void)
{
    Suite *s = suite_create("timeout");
    TCase *tc = tcase_create("basics");
    tcase_add_test(tc, sleep_times_out);
    tcase_add_test(tc, cancel_before_expiry);
    tcase_add_test(tc, nonpositive_expires_at_once);
    tcase_add_test(tc, cancel_true_iff_expired_even_without_blocking);
    tcase_add_test(tc, never_fires_while_running);
    tcase_add_test(tc, wait_with_nothing_left_after_expiry);
    tcase_add_test(tc, misuse);
    suite_add_tcase(s, tc);

    tc = tcase_create("nesting");
    tcase_add_test(tc, nested_earliest_wins);
    tcase_add_test(tc, lifo_cancel_restores_outer);
    suite_add_tcase(s, tc);

    tc = tcase_create("blocking_calls");
    tcase_add_test(tc, blocked_join_fails_when_it_fires);
    tcase_add_test(tc, across_sleeps_and_joins);
    tcase_add_test(tc, other_waits_time_out);
    tcase_add_test(tc, kill_wait_times_out);
    tcase_add_test(tc, timeouts_are_per_greenlet);
    tcase_add_test(tc, kill_beats_pending_timeout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(timeout_suite());
}
