/*
 * Semaphore, BoundedSemaphore and RLock (lib/sem.c): direct hand-off (no
 * barging), FIFO order, kills and timeouts at the wait point, timeout 0,
 * re-entrancy, misuse (NULL, over-release, non-owner release, foreign
 * thread, free while waited on).
 */
#include <limits.h>
#include <pthread.h>

#include "testutil.h"

/* A greenlet that acquires (a semaphore or a lock), records, and maybe
 * holds on until told to release. */
struct taker {
    green_sem_t  *s;
    green_lock_t *l;
    double        timeout;
    bool          use_gtimeout; /* wait under a green_timeout instead */
    bool          release;      /* release right after acquiring */
    int           rc, err, turn;
    bool          done;
};
static int turns;

static void *taker_fn(void *arg)
{
    struct taker *t = arg;
    green_timeout_t gt;
    if (t->use_gtimeout)
        green_timeout_start(&gt, t->timeout);
    double timeout = t->use_gtimeout ? GREEN_FOREVER : t->timeout;
    errno = 0;
    t->rc = t->s ? green_sem_acquire(t->s, timeout) : green_lock_acquire(t->l, timeout);
    t->err = errno;
    if (t->use_gtimeout)
        green_timeout_cancel(&gt);
    t->turn = turns++;
    t->done = true;
    if (t->rc == 0 && t->release) {
        if (t->s)
            ck_assert_int_eq(green_sem_release(t->s), 0);
        else
            ck_assert_int_eq(green_lock_release(t->l), 0);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Semaphore                                                                  */
/* ------------------------------------------------------------------------ */

START_TEST(sem_basics)
{
    green_sem_t *s = green_sem_new(2);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(green_sem_value(s), 2);
    ck_assert_int_eq(green_sem_acquire(s, 0), 0);
    ck_assert_int_eq(green_sem_acquire(s, GREEN_FOREVER), 0);
    ck_assert_uint_eq(green_sem_value(s), 0);
    ck_assert_fails(green_sem_acquire(s, 0), EAGAIN);
    double t0 = tu_now();
    ck_assert_fails(green_sem_acquire(s, 0.05), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.04, 2.0);
    ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_int_eq(green_sem_release(s), 0); /* unbounded: above the start is fine */
    ck_assert_uint_eq(green_sem_value(s), 3);
    green_sem_free(s);

    s = green_sem_new(UINT_MAX);
    ck_assert_fails(green_sem_release(s), EINVAL); /* would overflow */
    ck_assert_uint_eq(green_sem_value(s), UINT_MAX);
    green_sem_free(s);
}
END_TEST

START_TEST(sem_bounded)
{
    green_sem_t *s = green_sem_new_bounded(2);
    ck_assert_fails(green_sem_release(s), EINVAL);
    ck_assert_uint_eq(green_sem_value(s), 2);
    ck_assert_int_eq(green_sem_acquire(s, 0), 0);
    ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_fails(green_sem_release(s), EINVAL);
    ck_assert_uint_eq(green_sem_value(s), 2);
    green_sem_free(s);

    /* Bound 0: every release is over the bound, waiters or not. */
    s = green_sem_new_bounded(0);
    struct taker t = {.s = s, .timeout = GREEN_FOREVER};
    green_t *g = green_spawn(taker_fn, &t);
    green_yield();
    ck_assert_fails(green_sem_release(s), EINVAL);
    ck_assert(!t.done);
    ck_assert_int_eq(green_kill(g, 5), 0);
    ck_assert_int_eq(t.err, ECANCELED);
    green_release(g);
    green_sem_free(s);

    /* A bounded release with waiters hands the unit over. */
    s = green_sem_new_bounded(1);
    ck_assert_int_eq(green_sem_acquire(s, 0), 0);
    t = (struct taker){.s = s, .timeout = GREEN_FOREVER};
    g = green_spawn(taker_fn, &t);
    green_yield();
    ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(t.rc, 0);
    ck_assert_uint_eq(green_sem_value(s), 0);
    ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_fails(green_sem_release(s), EINVAL);
    green_release(g);
    green_sem_free(s);
}
END_TEST

START_TEST(sem_null)
{
    ck_assert_fails(green_sem_acquire(NULL, 0), EINVAL);
    ck_assert_fails(green_sem_acquire(NULL, GREEN_FOREVER), EINVAL);
    ck_assert_fails(green_sem_release(NULL), EINVAL);
    ck_assert_uint_eq(green_sem_value(NULL), 0);
    green_sem_free(NULL);
}
END_TEST

START_TEST(sem_fifo_handoff_no_barging)
{
    green_sem_t *s = green_sem_new(0);
    struct taker t[5];
    green_t *g[5];
    turns = 0;
    for (int i = 0; i < 5; i++) {
        t[i] = (struct taker){.s = s, .timeout = GREEN_FOREVER};
        g[i] = green_spawn(taker_fn, &t[i]);
    }
    green_yield();
    /* Each release goes to the next waiter, not back into the semaphore: the
     * releaser cannot take it back before the waiter runs. */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(green_sem_release(s), 0);
        ck_assert_uint_eq(green_sem_value(s), 0);
        ck_assert_fails(green_sem_acquire(s, 0), EAGAIN);
    }
    for (int i = 0; i < 5; i++)
        ck_assert(!t[i].done); /* release does not switch */
    green_yield();
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(t[i].done, i < 3);
    ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_int_eq(green_joinall(g, 5, 5), 0);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(t[i].rc, 0);
        ck_assert_int_eq(t[i].turn, i);
        green_release(g[i]);
    }
    ck_assert_uint_eq(green_sem_value(s), 0);
    green_sem_free(s);
}
END_TEST

START_TEST(sem_timeout_zero_never_switches)
{
    green_sem_t *s = green_sem_new(1);
    tu_flag = 0;
    green_t *g = green_spawn(tu_set_flag, NULL);
    ck_assert_int_eq(green_sem_acquire(s, 0), 0);
    ck_assert_fails(green_sem_acquire(s, 0), EAGAIN);
    ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_int_eq(green_sem_acquire(s, GREEN_FOREVER), 0); /* finds a unit: no wait */
    ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_int_eq(tu_flag, 0);
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(tu_flag, 1);
    green_release(g);
    green_sem_free(s);
}
END_TEST

/* A waiter killed or timed out before the release never takes the unit
 * meant for the waiter behind it. */
START_TEST(sem_kill_and_timeout_before_handoff)
{
    green_sem_t *s = green_sem_new(0);
    struct taker a = {.s = s, .timeout = GREEN_FOREVER};          /* killed */
    struct taker b = {.s = s, .timeout = 0.03};                   /* own timeout */
    struct taker c = {.s = s, .timeout = 0.03, .use_gtimeout = true}; /* green_timeout */
    struct taker d = {.s = s, .timeout = GREEN_FOREVER};          /* gets the unit */
    green_t *g[4] = {green_spawn(taker_fn, &a), green_spawn(taker_fn, &b),
                     green_spawn(taker_fn, &c), green_spawn(taker_fn, &d)};
    green_yield();
    ck_assert_int_eq(green_kill(g[0], 5), 0);
    ck_assert_int_eq(green_joinall(g + 1, 2, 5), 0);
    ck_assert_int_eq(a.err, ECANCELED);
    ck_assert_int_eq(b.err, ETIMEDOUT);
    ck_assert_int_eq(c.err, ETIMEDOUT);
    ck_assert(!d.done);
    ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_int_eq(green_join(g[3], 5), 0);
    ck_assert_int_eq(d.rc, 0);
    ck_assert_uint_eq(green_sem_value(s), 0); /* d holds it */
    for (int i = 0; i < 4; i++)
        green_release(g[i]);
    green_sem_free(s);
}
END_TEST

/* A waiter handed the unit, then killed or timed out before it ran,
 * returns 0 holding the unit. */
START_TEST(sem_kill_and_timeout_after_handoff)
{
    green_sem_t *s = green_sem_new(0);
    struct taker a = {.s = s, .timeout = GREEN_FOREVER};
    struct taker b = {.s = s, .timeout = 0.3};
    struct taker c = {.s = s, .timeout = 0.3, .use_gtimeout = true};
    struct taker d = {.s = s, .timeout = GREEN_FOREVER};
    green_t *g[4] = {green_spawn(taker_fn, &a), green_spawn(taker_fn, &b),
                     green_spawn(taker_fn, &c), green_spawn(taker_fn, &d)};
    green_yield();
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_fails(green_kill(g[0], 0), EAGAIN);
    tu_spin(0.6);
    ck_assert_int_eq(green_joinall(g, 3, 5), 0);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_int_eq(c.rc, 0);
    ck_assert(!d.done);
    ck_assert_uint_eq(green_sem_value(s), 0);
    ck_assert_int_eq(green_sem_release(s), 0);
    ck_assert_int_eq(green_join(g[3], 5), 0);
    ck_assert_int_eq(d.rc, 0);
    for (int i = 0; i < 4; i++)
        green_release(g[i]);
    green_sem_free(s);
}
END_TEST

START_TEST(sem_free_while_waited)
{
    green_sem_t *s = green_sem_new_bounded(0);
    struct taker t[3];
    green_t *g[3];
    for (int i = 0; i < 3; i++) {
        t[i] = (struct taker){.s = s, .timeout = i ? 10 : GREEN_FOREVER};
        g[i] = green_spawn(taker_fn, &t[i]);
    }
    green_yield();
    green_sem_free(s);
    ck_assert_int_eq(green_joinall(g, 3, 5), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(t[i].rc, -1);
        ck_assert_int_eq(t[i].err, EPIPE);
        green_release(g[i]);
    }
}
END_TEST

static void *sem_foreign(void *arg)
{
    green_sem_t *s = arg;
    ck_assert_fails(green_sem_acquire(s, 0), EPERM);
    ck_assert_fails(green_sem_acquire(s, 1), EPERM);
    ck_assert_fails(green_sem_release(s), EPERM);
    green_sem_free(s); /* does nothing */
    return NULL;
}

START_TEST(sem_foreign_thread)
{
    green_sem_t *s = green_sem_new(1);
    tu_on_other_thread(sem_foreign, s);
    ck_assert_uint_eq(green_sem_value(s), 1);
    ck_assert_int_eq(green_sem_acquire(s, 0), 0);
    green_sem_free(s);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* RLock                                                                      */
/* ------------------------------------------------------------------------ */

START_TEST(lock_reentrant)
{
    green_lock_t *l = green_lock_new();
    ck_assert_ptr_nonnull(l);
    ck_assert_fails(green_lock_release(l), EPERM); /* not held */
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    ck_assert_int_eq(green_lock_acquire(l, GREEN_FOREVER), 0);
    ck_assert_int_eq(green_lock_release(l), 0);
    ck_assert_int_eq(green_lock_release(l), 0);
    /* Still held once: another greenlet cannot take it. */
    struct taker t = {.l = l, .timeout = 0, .release = true};
    green_t *g = green_spawn(taker_fn, &t);
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(t.err, EAGAIN);
    green_release(g);
    ck_assert_int_eq(green_lock_release(l), 0);
    ck_assert_fails(green_lock_release(l), EPERM); /* released too often */
    t = (struct taker){.l = l, .timeout = 0, .release = true};
    g = green_spawn(taker_fn, &t);
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(t.rc, 0);
    green_release(g);
    green_lock_free(l);
}
END_TEST

/* Holds the lock and tries a release from another greenlet. */
static void *release_not_mine(void *arg)
{
    green_lock_t *l = arg;
    ck_assert_fails(green_lock_release(l), EPERM);
    return NULL;
}

START_TEST(lock_release_by_non_owner)
{
    green_lock_t *l = green_lock_new();
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    green_t *g = green_spawn(release_not_mine, l);
    ck_assert_int_eq(green_join(g, 5), 0);
    green_release(g);
    ck_assert_int_eq(green_lock_release(l), 0); /* still ours */
    ck_assert_fails(green_lock_release(l), EPERM);
    green_lock_free(l);
}
END_TEST

START_TEST(lock_null)
{
    ck_assert_fails(green_lock_acquire(NULL, 0), EINVAL);
    ck_assert_fails(green_lock_acquire(NULL, 1), EINVAL);
    ck_assert_fails(green_lock_release(NULL), EINVAL);
    green_lock_free(NULL);
}
END_TEST

START_TEST(lock_fifo_handoff)
{
    green_lock_t *l = green_lock_new();
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    struct taker t[4];
    green_t *g[4];
    turns = 0;
    for (int i = 0; i < 4; i++) {
        t[i] = (struct taker){.l = l, .timeout = GREEN_FOREVER, .release = true};
        g[i] = green_spawn(taker_fn, &t[i]);
    }
    green_yield();
    ck_assert_int_eq(green_lock_release(l), 0);
    /* The lock went to the first waiter: we cannot take it back. */
    ck_assert_fails(green_lock_acquire(l, 0), EAGAIN);
    ck_assert(!t[0].done);
    ck_assert_int_eq(green_joinall(g, 4, 5), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(t[i].rc, 0);
        ck_assert_int_eq(t[i].turn, i);
        green_release(g[i]);
    }
    ck_assert_int_eq(green_lock_acquire(l, 0), 0); /* the last one released it */
    ck_assert_int_eq(green_lock_release(l), 0);
    green_lock_free(l);
}
END_TEST

START_TEST(lock_timeout_zero_never_switches)
{
    green_lock_t *l = green_lock_new();
    tu_flag = 0;
    green_t *g = green_spawn(tu_set_flag, NULL);
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    ck_assert_int_eq(green_lock_release(l), 0);
    ck_assert_int_eq(green_lock_release(l), 0);
    ck_assert_int_eq(tu_flag, 0);
    ck_assert_int_eq(green_join(g, 5), 0);
    green_release(g);
    /* Held by another greenlet: timeout 0 fails without switching. */
    struct taker holder = {.l = l, .timeout = 0};
    g = green_spawn(taker_fn, &holder);
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(holder.rc, 0); /* it finished holding the lock */
    green_release(g);
    tu_flag = 0;
    g = green_spawn(tu_set_flag, NULL);
    ck_assert_fails(green_lock_acquire(l, 0), EAGAIN);
    ck_assert_int_eq(tu_flag, 0);
    ck_assert_int_eq(green_join(g, 5), 0);
    green_release(g);
    /* The finished holder still owns it; a new greenlet is not mistaken for it. */
    struct taker t = {.l = l, .timeout = 0};
    g = green_spawn(taker_fn, &t);
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(t.err, EAGAIN);
    green_release(g);
    green_lock_free(l);
}
END_TEST

START_TEST(lock_kill_and_timeout)
{
    green_lock_t *l = green_lock_new();
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    /* Before the hand-off: a killed, b own timeout, c green_timeout; d gets it. */
    struct taker a = {.l = l, .timeout = GREEN_FOREVER};
    struct taker b = {.l = l, .timeout = 0.03};
    struct taker c = {.l = l, .timeout = 0.03, .use_gtimeout = true};
    struct taker d = {.l = l, .timeout = GREEN_FOREVER};
    green_t *g[4] = {green_spawn(taker_fn, &a), green_spawn(taker_fn, &b),
                     green_spawn(taker_fn, &c), green_spawn(taker_fn, &d)};
    green_yield();
    ck_assert_int_eq(green_kill(g[0], 5), 0);
    ck_assert_int_eq(green_joinall(g + 1, 2, 5), 0);
    ck_assert_int_eq(a.err, ECANCELED);
    ck_assert_int_eq(b.err, ETIMEDOUT);
    ck_assert_int_eq(c.err, ETIMEDOUT);
    /* After the hand-off: d was made the owner, then killed before it ran. */
    ck_assert_int_eq(green_lock_release(l), 0);
    ck_assert_int_eq(green_kill(g[3], 5), 0);
    ck_assert_int_eq(d.rc, 0);
    ck_assert_fails(green_lock_acquire(l, 0), EAGAIN); /* d (finished) holds it */
    for (int i = 0; i < 4; i++)
        green_release(g[i]);
    green_lock_free(l);
}
END_TEST

/* A killed owner can still release (release never blocks) and the lock
 * passes on. */
static void *hold_until_killed(void *arg)
{
    green_lock_t *l = arg;
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    ck_assert_fails(green_sleep(10), ECANCELED);
    ck_assert_fails(green_lock_acquire(l, 0), ECANCELED); /* even re-entrant */
    ck_assert_int_eq(green_lock_release(l), 0);
    ck_assert_int_eq(green_lock_release(l), 0);
    return NULL;
}

START_TEST(lock_killed_owner_releases)
{
    green_lock_t *l = green_lock_new();
    green_t *h = green_spawn(hold_until_killed, l);
    green_yield();
    struct taker t = {.l = l, .timeout = GREEN_FOREVER, .release = true};
    green_t *g = green_spawn(taker_fn, &t);
    green_yield();
    ck_assert(!t.done);
    ck_assert_int_eq(green_kill(h, 5), 0);
    ck_assert_int_eq(green_join(g, 5), 0);
    ck_assert_int_eq(t.rc, 0);
    green_release(h);
    green_release(g);
    green_lock_free(l);
}
END_TEST

START_TEST(lock_free_while_waited)
{
    green_lock_t *l = green_lock_new();
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    struct taker t[2] = {{.l = l, .timeout = GREEN_FOREVER}, {.l = l, .timeout = 10}};
    green_t *g[2] = {green_spawn(taker_fn, &t[0]), green_spawn(taker_fn, &t[1])};
    green_yield();
    green_lock_free(l);
    ck_assert_int_eq(green_joinall(g, 2, 5), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(t[i].rc, -1);
        ck_assert_int_eq(t[i].err, EPIPE);
        green_release(g[i]);
    }
}
END_TEST

static void *lock_foreign(void *arg)
{
    green_lock_t *l = arg;
    ck_assert_fails(green_lock_acquire(l, 0), EPERM);
    ck_assert_fails(green_lock_acquire(l, 1), EPERM);
    ck_assert_fails(green_lock_release(l), EPERM);
    green_lock_free(l); /* does nothing */
    return NULL;
}

START_TEST(lock_foreign_thread)
{
    green_lock_t *l = green_lock_new();
    ck_assert_int_eq(green_lock_acquire(l, 0), 0);
    tu_on_other_thread(lock_foreign, l);
    ck_assert_int_eq(green_lock_release(l), 0); /* the foreign release did nothing */
    ck_assert_fails(green_lock_release(l), EPERM);
    green_lock_free(l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sem");
    TCase *ts = tcase_create("semaphore");
    tcase_add_test(ts, sem_basics);
    tcase_add_test(ts, sem_bounded);
    tcase_add_test(ts, sem_null);
    tcase_add_test(ts, sem_fifo_handoff_no_barging);
    tcase_add_test(ts, sem_timeout_zero_never_switches);
    tcase_add_test(ts, sem_kill_and_timeout_before_handoff);
    tcase_add_test(ts, sem_kill_and_timeout_after_handoff);
    tcase_add_test(ts, sem_free_while_waited);
    tcase_add_test(ts, sem_foreign_thread);
    suite_add_tcase(s, ts);
    TCase *tl = tcase_create("lock");
    tcase_add_test(tl, lock_reentrant);
    tcase_add_test(tl, lock_release_by_non_owner);
    tcase_add_test(tl, lock_null);
    tcase_add_test(tl, lock_fifo_handoff);
    tcase_add_test(tl, lock_timeout_zero_never_switches);
    tcase_add_test(tl, lock_kill_and_timeout);
    tcase_add_test(tl, lock_killed_owner_releases);
    tcase_add_test(tl, lock_free_while_waited);
    tcase_add_test(tl, lock_foreign_thread);
    suite_add_tcase(s, tl);
    return tu_run(s);
}
