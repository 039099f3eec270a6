/*
 * The greenlet life cycle (lib/green.c, lib/hub.c, lib/local.c): spawn,
 * join, get, kill, exit, references, names and ids, sleep and yield,
 * joinall/killall/iwait, spawn_later, green_wait, introspection,
 * greenlet-local storage, and the misuse every public call must survive
 * (SPEC "Conventions"): NULL handles, joining oneself, blocking in a killed
 * greenlet or from the hub, and calls from a foreign OS thread.
 *
 * Each test runs in its own forked process, so a test may leave its process
 * in a state no program would keep (a killed main greenlet, say); every test
 * still joins the greenlets it spawned and releases its handles, so that
 * ASan and valgrind see nothing.
 */
#include <ev.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "testutil.h"

/* A blocking call "at once" returns well within this (noisy machine). */
#define AT_ONCE 0.5

/* ------------------------------------------------------------------------ */
/* Greenlet bodies shared by the tests                                        */
/* ------------------------------------------------------------------------ */

/* Returns its argument. */
static void *fn_return_arg(void *arg)
{
    return arg;
}

/* Sleeps arg milliseconds; returns the errno of a failed sleep (0 if none). */
static void *fn_sleep_ms(void *arg)
{
    errno = 0;
    int rc = green_sleep((double)(intptr_t)arg / 1000.0);
    return (void *)(intptr_t)(rc == 0 ? 0 : errno);
}

/* Sleeps (almost) forever; returns the errno the sleep failed with. */
static void *fn_sleep_forever(void *arg)
{
    (void)arg;
    errno = 0;
    int rc = green_sleep(3600);
    return (void *)(intptr_t)(rc == 0 ? 0 : errno);
}

/* Appends its argument to a log, so tests can check who ran when. */
static int run_log[64];
static int run_log_len;
static void *fn_log(void *arg)
{
    if (run_log_len < 64)
        run_log[run_log_len++] = (int)(intptr_t)arg;
    return arg;
}

/* Sets the int it points to. */
static void *fn_set_flag(void *arg)
{
    *(int *)arg = 1;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Spawn, join, get, value, ready                                             */
/* ------------------------------------------------------------------------ */

START_TEST(spawn_runs_later_and_join_returns_value)
{
    int flag = 0;
    green_t *g = green_spawn(fn_set_flag, &flag);
    ck_assert_ptr_nonnull(g);
    /* Spawning never switches: the greenlet waits for the caller to block. */
    ck_assert_int_eq(flag, 0);
    ck_assert(!green_ready(g));
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    ck_assert_int_eq(flag, 1);
    ck_assert(green_ready(g));
    ck_assert(!green_killed(g));
    green_release(g);

    green_t *h = green_spawn(fn_return_arg, (void *)(intptr_t)1234);
    void *result = NULL;
    ck_assert_int_eq(green_get(h, &result, GREEN_FOREVER), 0);
    ck_assert_ptr_eq(result, (void *)(intptr_t)1234);
    ck_assert_ptr_eq(green_value(h), (void *)(intptr_t)1234);
    /* Joining a finished greenlet again succeeds at once, even with timeout 0. */
    ck_assert_int_eq(green_join(h, 0), 0);
    ck_assert_int_eq(green_get(h, &result, 0), 0);
    green_release(h);
}
END_TEST

/* Yields a few times before returning its argument. */
static void *fn_yield_then_return(void *arg)
{
    for (int i = 0; i < 3; i++)
        green_yield();
    return arg;
}

START_TEST(value_is_null_until_finished)
{
    green_t *g = green_spawn(fn_yield_then_return, (void *)(intptr_t)7);
    ck_assert_ptr_null(green_value(g));
    green_yield(); /* g runs once and yields */
    ck_assert(!green_ready(g));
    ck_assert_ptr_null(green_value(g));
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    ck_assert_ptr_eq(green_value(g), (void *)(intptr_t)7);
    green_release(g);
}
END_TEST

START_TEST(join_timeouts)
{
    green_t *g = green_spawn(fn_sleep_ms, (void *)(intptr_t)300);
    /* Timeout 0 never waits and never switches: g has not even started. */
    ck_assert_fails(green_join(g, 0), EAGAIN);
    void *result = (void *)1;
    ck_assert_fails(green_get(g, &result, 0), EAGAIN);
    ck_assert_ptr_eq(result, (void *)1);
    double t0 = tu_now();
    ck_assert_fails(green_join(g, 0.03), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.025, 1.0);
    ck_assert_fails(green_get(g, &result, 0.01), ETIMEDOUT);
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    ck_assert_elapsed(t0, 0.28, 2.0);
    ck_assert_ptr_null(green_value(g)); /* it slept well: errno 0 */
    green_release(g);
}
END_TEST

START_TEST(join_self_is_edeadlk)
{
    green_t *me = green_current();
    ck_assert_ptr_nonnull(me);
    ck_assert_fails(green_join(me, GREEN_FOREVER), EDEADLK);
    ck_assert_fails(green_join(me, 0), EDEADLK);
    ck_assert_fails(green_get(me, NULL, 1.0), EDEADLK);
    green_t *g = green_spawn(fn_sleep_ms, (void *)(intptr_t)10);
    green_t *list[2] = {g, me};
    ck_assert_fails(green_joinall(list, 2, GREEN_FOREVER), EDEADLK);
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    green_release(g);
}
END_TEST

/* A spawned greenlet that tries to join itself, alone and in a list. */
static void *fn_join_self(void *arg)
{
    int *errs = arg;
    green_t *me = green_current();
    errno = 0;
    if (green_join(me, 1.0) == -1)
        errs[0] = errno;
    green_t *list[1] = {me};
    errno = 0;
    if (green_joinall(list, 1, 1.0) == -1)
        errs[1] = errno;
    errno = 0;
    if (green_get(me, NULL, GREEN_FOREVER) == -1)
        errs[2] = errno;
    return NULL;
}

START_TEST(join_self_in_greenlet_is_edeadlk)
{
    int errs[3] = {0, 0, 0};
    green_t *g = green_spawn(fn_join_self, errs);
    double t0 = tu_now();
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    ck_assert_int_eq(errs[0], EDEADLK);
    ck_assert_int_eq(errs[1], EDEADLK);
    ck_assert_int_eq(errs[2], EDEADLK);
    green_release(g);
}
END_TEST

/* Joins the greenlet it is given and records whether it had finished. */
struct joiner_arg {
    green_t *target;
    int      rc, err;
    bool     target_ready;
};

static void *fn_joiner(void *arg)
{
    struct joiner_arg *j = arg;
    errno = 0;
    j->rc = green_join(j->target, GREEN_FOREVER);
    j->err = errno;
    j->target_ready = green_ready(j->target);
    return NULL;
}

START_TEST(many_joiners_all_wake)
{
    green_t *target = green_spawn(fn_sleep_ms, (void *)(intptr_t)20);
    struct joiner_arg ja[5];
    green_t *js[5];
    for (int i = 0; i < 5; i++) {
        ja[i] = (struct joiner_arg){.target = target, .rc = 99};
        js[i] = green_spawn(fn_joiner, &ja[i]);
    }
    ck_assert_int_eq(green_joinall(js, 5, 5.0), 0);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(ja[i].rc, 0);
        ck_assert(ja[i].target_ready);
        green_release(js[i]);
    }
    green_release(target);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Exit                                                                       */
/* ------------------------------------------------------------------------ */

static int after_exit_ran;

static void exit_deep(int depth)
{
    if (depth < 0)
        return;
    if (depth > 0)
        exit_deep(depth - 1);
    else
        green_exit((void *)(intptr_t)42);
    after_exit_ran = 1;
}

static void *fn_exit(void *arg)
{
    (void)arg;
    exit_deep(5);
    after_exit_ran = 1;
    return (void *)(intptr_t)1;
}

START_TEST(exit_ends_greenlet_with_value)
{
    green_t *g = green_spawn(fn_exit, NULL);
    void *result = NULL;
    ck_assert_int_eq(green_get(g, &result, GREEN_FOREVER), 0);
    ck_assert_ptr_eq(result, (void *)(intptr_t)42);
    ck_assert_ptr_eq(green_value(g), (void *)(intptr_t)42);
    ck_assert_int_eq(after_exit_ran, 0);
    ck_assert(green_ready(g));
    ck_assert(!green_killed(g));
    green_release(g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* References                                                                 */
/* ------------------------------------------------------------------------ */

START_TEST(release_never_stops_greenlet)
{
    int flag = 0;
    green_t *g = green_spawn(fn_set_flag, &flag);
    green_release(g); /* fire and forget: it still runs */
    ck_assert_int_eq(green_count(), 1);
    ck_assert_int_eq(green_wait(5.0), 0);
    ck_assert_int_eq(flag, 1);
    ck_assert_int_eq(green_count(), 0);

    /* A released sleeping greenlet still finishes its sleep. */
    flag = 0;
    green_t *s = green_spawn(fn_sleep_ms, (void *)(intptr_t)20);
    green_yield();
    green_release(s);
    ck_assert_int_eq(green_wait(5.0), 0);
    ck_assert_int_eq(green_count(), 0);
}
END_TEST

START_TEST(extra_references_keep_handle)
{
    green_t *g = green_spawn(fn_return_arg, (void *)(intptr_t)5);
    green_ref(g);
    green_ref(g);
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    green_release(g);
    green_release(g);
    /* One reference is left: the handle is still valid (ASan would say). */
    ck_assert(green_ready(g));
    ck_assert_ptr_eq(green_value(g), (void *)(intptr_t)5);
    ck_assert_uint_ne(green_id(g), 0);
    green_release(g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Current, ids, names                                                        */
/* ------------------------------------------------------------------------ */

static void *fn_current(void *arg)
{
    *(green_t **)arg = green_current();
    return NULL;
}

START_TEST(current_is_the_running_greenlet)
{
    green_t *main_g = green_current();
    ck_assert_ptr_nonnull(main_g);
    ck_assert_ptr_eq(green_current(), main_g);
    ck_assert(!green_ready(main_g));
    ck_assert(!green_killed(main_g));
    green_t *seen = NULL;
    green_t *g = green_spawn(fn_current, &seen);
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    ck_assert_ptr_eq(seen, g);
    ck_assert_ptr_eq(green_current(), main_g);
    green_release(g);
}
END_TEST

START_TEST(ids_unique_and_increasing)
{
    enum { N = 200 };
    green_t *gs[N];
    uint64_t main_id = green_id(green_current());
    ck_assert_uint_ne(main_id, 0);
    uint64_t last = 0;
    for (int i = 0; i < N; i++) {
        gs[i] = green_spawn(fn_return_arg, NULL);
        ck_assert_ptr_nonnull(gs[i]);
        uint64_t id = green_id(gs[i]);
        ck_assert_uint_ne(id, 0);
        ck_assert_uint_ne(id, main_id);
        ck_assert_uint_gt(id, last);
        last = id;
    }
    ck_assert_int_eq(green_joinall(gs, N, GREEN_FOREVER), 0);
    /* An id stays with its handle after the greenlet finished; a later spawn
     * never reuses one, even once the old handles are gone. */
    uint64_t first = green_id(gs[0]);
    for (int i = 0; i < N; i++)
        green_release(gs[i]);
    for (int i = 0; i < N; i++) {
        green_t *g = green_spawn(fn_return_arg, NULL);
        uint64_t id = green_id(g);
        ck_assert_uint_gt(id, last);
        ck_assert_uint_ne(id, first);
        last = id;
        ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
        green_release(g);
    }
}
END_TEST

START_TEST(names)
{
    green_t *g = green_spawn(fn_sleep_ms, (void *)(intptr_t)1);
    ck_assert_ptr_nonnull(green_name(g));
    ck_assert_str_eq(green_name(g), "");
    char buf[32];
    strcpy(buf, "worker-1");
    green_set_name(g, buf);
    strcpy(buf, "changed!");
    ck_assert_str_eq(green_name(g), "worker-1"); /* copied */
    green_set_name(g, "second");
    ck_assert_str_eq(green_name(g), "second");
    green_set_name(g, NULL);
    ck_assert_ptr_nonnull(green_name(g));
    ck_assert_str_eq(green_name(g), "");

    /* Names through attributes are copied too. */
    strcpy(buf, "attr-name");
    green_attr_t attr = {.stack_size = 0, .name = buf};
    green_t *h = green_spawn_attr(&attr, fn_return_arg, NULL);
    ck_assert_ptr_nonnull(h);
    strcpy(buf, "XXXXXXXXX");
    ck_assert_str_eq(green_name(h), "attr-name");
    green_attr_t noname = {.stack_size = 0, .name = NULL};
    green_t *k = green_spawn_attr(&noname, fn_return_arg, NULL);
    ck_assert_str_eq(green_name(k), "");

    /* The main greenlet has a name too, settable. */
    ck_assert_ptr_nonnull(green_name(green_current()));
    green_set_name(green_current(), "main-greenlet");
    ck_assert_str_eq(green_name(green_current()), "main-greenlet");

    green_t *all[3] = {g, h, k};
    ck_assert_int_eq(green_joinall(all, 3, GREEN_FOREVER), 0);
    /* A finished greenlet keeps its name. */
    ck_assert_str_eq(green_name(h), "attr-name");
    for (int i = 0; i < 3; i++)
        green_release(all[i]);
}
END_TEST

START_TEST(spawn_attr_defaults)
{
    green_t *g = green_spawn_attr(NULL, fn_return_arg, (void *)(intptr_t)3);
    ck_assert_ptr_nonnull(g);
    ck_assert_str_eq(green_name(g), "");
    void *r = NULL;
    ck_assert_int_eq(green_get(g, &r, GREEN_FOREVER), 0);
    ck_assert_ptr_eq(r, (void *)(intptr_t)3);
    green_release(g);

    green_attr_t attr = {.stack_size = 64 * 1024, .name = "sized"};
    green_t *h = green_spawn_attr(&attr, fn_sleep_ms, (void *)(intptr_t)1);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(green_join(h, GREEN_FOREVER), 0);
    ck_assert_ptr_null(green_value(h));
    green_release(h);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Scheduling: FIFO, sleep(0), yield, timers                                  */
/* ------------------------------------------------------------------------ */

START_TEST(fifo_start_order)
{
    enum { N = 20 };
    green_t *gs[N];
    for (int i = 0; i < N; i++)
        gs[i] = green_spawn(fn_log, (void *)(intptr_t)i);
    ck_assert_int_eq(run_log_len, 0);
    ck_assert_int_eq(green_joinall(gs, N, GREEN_FOREVER), 0);
    ck_assert_int_eq(run_log_len, N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(run_log[i], i);
        green_release(gs[i]);
    }
}
END_TEST

/* Counts how many times it got to run, yielding between turns. */
static int turns[4];
static void *fn_count_turns(void *arg)
{
    int idx = (int)(intptr_t)arg;
    for (int i = 0; i < 5; i++) {
        turns[idx]++;
        green_yield();
    }
    return NULL;
}

START_TEST(sleep0_and_yield_run_each_ready_once)
{
    green_t *gs[3];
    for (int i = 0; i < 3; i++)
        gs[i] = green_spawn(fn_count_turns, (void *)(intptr_t)i);
    ck_assert_int_eq(green_sleep(0), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(turns[i], 1);
    green_yield();
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(turns[i], 2);
    /* A negative sleep is a zero sleep. */
    ck_assert_int_eq(green_sleep(-1.0), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(turns[i], 3);
    ck_assert_int_eq(green_joinall(gs, 3, GREEN_FOREVER), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(turns[i], 5);
        green_release(gs[i]);
    }
    /* Yielding with nothing else ready just returns. */
    green_yield();
    ck_assert_int_eq(green_sleep(0), 0);
}
END_TEST

START_TEST(sleep_durations)
{
    double t0 = tu_now();
    ck_assert_int_eq(green_sleep(0.05), 0);
    ck_assert_elapsed(t0, 0.045, 0.5);
    /* Sleepers wake in deadline order, not spawn order. */
    green_t *gs[3];
    static const int ms[3] = {150, 50, 100};
    for (int i = 0; i < 3; i++)
        gs[i] = green_spawn(fn_sleep_ms, (void *)(intptr_t)ms[i]);
    green_iwait_t *it = green_iwait_new(gs, 3);
    ck_assert_ptr_eq(green_iwait_next(it, 5.0), gs[1]);
    ck_assert_ptr_eq(green_iwait_next(it, 5.0), gs[2]);
    ck_assert_ptr_eq(green_iwait_next(it, 5.0), gs[0]);
    green_iwait_free(it);
    for (int i = 0; i < 3; i++)
        green_release(gs[i]);
}
END_TEST

static volatile int sleeper_done;
static double sleeper_late;
static long yielder_turns;

static void *fn_sleep_10ms_timed(void *arg)
{
    (void)arg;
    double t0 = tu_now();
    green_sleep(0.01);
    sleeper_late = tu_now() - t0;
    sleeper_done = 1;
    return NULL;
}

static void *fn_yield_loop(void *arg)
{
    (void)arg;
    double t0 = tu_now();
    while (!sleeper_done && tu_now() - t0 < 5.0) {
        green_yield();
        yielder_turns++;
    }
    return NULL;
}

START_TEST(yield_loop_does_not_starve_timer)
{
    green_t *s = green_spawn(fn_sleep_10ms_timed, NULL);
    green_t *y = green_spawn(fn_yield_loop, NULL);
    green_t *both[2] = {s, y};
    ck_assert_int_eq(green_joinall(both, 2, 10.0), 0);
    ck_assert(sleeper_done);
    ck_assert_msg(sleeper_late >= 0.009 && sleeper_late < 1.0, "10 ms sleeper woke after %.3f s",
                  sleeper_late);
    ck_assert_int_gt(yielder_turns, 0);
    green_release(s);
    green_release(y);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Kill                                                                       */
/* ------------------------------------------------------------------------ */

START_TEST(kill_sleeping_greenlet)
{
    green_t *g = green_spawn(fn_sleep_forever, NULL);
    green_yield(); /* let it start and park in its sleep */
    ck_assert(!green_killed(g));
    double t0 = tu_now();
    ck_assert_int_eq(green_kill(g, GREEN_FOREVER), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    ck_assert(green_killed(g));
    ck_assert(green_ready(g));
    /* The sleep failed with ECANCELED; get returns what fn returned. */
    void *r = NULL;
    ck_assert_int_eq(green_get(g, &r, 0), 0);
    ck_assert_int_eq((int)(intptr_t)r, ECANCELED);
    green_release(g);
}
END_TEST

START_TEST(kill_timeout_zero_marks_but_does_not_switch)
{
    green_t *g = green_spawn(fn_sleep_forever, NULL);
    green_yield();
    ck_assert_fails(green_kill(g, 0), EAGAIN);
    /* Marked at once, but it runs only when we next block. */
    ck_assert(green_killed(g));
    ck_assert(!green_ready(g));
    ck_assert_int_eq(green_join(g, 5.0), 0);
    ck_assert_int_eq((int)(intptr_t)green_value(g), ECANCELED);
    green_release(g);
}
END_TEST

START_TEST(kill_before_start_never_runs)
{
    int flag = 0;
    green_t *g = green_spawn(fn_set_flag, &flag);
    ck_assert_int_eq(green_count(), 1);
    ck_assert_int_eq(green_kill(g, GREEN_FOREVER), 0);
    ck_assert(green_killed(g));
    ck_assert(green_ready(g));
    ck_assert_int_eq(flag, 0);
    void *r = (void *)1;
    ck_assert_int_eq(green_get(g, &r, 0), 0);
    ck_assert_ptr_null(r); /* it never ran */
    ck_assert_int_eq(green_count(), 0);
    green_release(g);

    /* With timeout 0 the mark shows at once; the function still never runs. */
    green_t *h = green_spawn(fn_set_flag, &flag);
    errno = 0;
    int rc = green_kill(h, 0);
    ck_assert_msg(rc == 0 || errno == EAGAIN, "kill(h, 0): %d errno %d", rc, errno);
    ck_assert(green_killed(h));
    ck_assert_int_eq(green_join(h, GREEN_FOREVER), 0);
    ck_assert_int_eq(flag, 0);
    ck_assert_ptr_null(green_value(h));
    green_release(h);
}
END_TEST

START_TEST(kill_finished_is_noop)
{
    green_t *g = green_spawn(fn_return_arg, (void *)(intptr_t)9);
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    ck_assert_int_eq(green_kill(g, GREEN_FOREVER), 0);
    ck_assert_int_eq(green_kill(g, 0), 0);
    ck_assert(!green_killed(g));
    ck_assert_ptr_eq(green_value(g), (void *)(intptr_t)9);
    green_t *list[1] = {g};
    ck_assert_int_eq(green_killall(list, 1, 0), 0);
    ck_assert(!green_killed(g));
    green_release(g);
}
END_TEST

/* Yields for a while, ignoring a kill (green_yield still yields). */
static void *fn_ignore_kill(void *arg)
{
    double seconds = (double)(intptr_t)arg / 1000.0;
    double t0 = tu_now();
    while (tu_now() - t0 < seconds)
        green_yield();
    return (void *)(intptr_t)(green_cancelled() ? 1 : 2);
}

START_TEST(kill_waits_up_to_timeout)
{
    green_t *g = green_spawn(fn_ignore_kill, (void *)(intptr_t)1000);
    green_yield();
    double t0 = tu_now();
    ck_assert_fails(green_kill(g, 0.05), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.045, 0.9);
    ck_assert(green_killed(g));
    ck_assert(!green_ready(g));
    ck_assert_int_eq(green_join(g, 5.0), 0);
    ck_assert_ptr_eq(green_value(g), (void *)(intptr_t)1);
    green_release(g);
}
END_TEST

/* What a greenlet that kills itself sees. */
struct self_kill {
    int      kill_rc;
    bool     cancelled_before, cancelled_after, killed_flag;
    int      sleep_rc, sleep_err;
    int      turns_seen_across_yield;
    double   sleep_elapsed;
};
static int partner_turns;

static void *fn_partner(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        partner_turns++;
        green_yield();
    }
    return NULL;
}

static void *fn_kill_self(void *arg)
{
    struct self_kill *s = arg;
    s->cancelled_before = green_cancelled();
    s->kill_rc = green_kill(green_current(), GREEN_FOREVER);
    s->cancelled_after = green_cancelled();
    s->killed_flag = green_killed(green_current());
    int before = partner_turns;
    green_yield(); /* still yields: the partner gets its turn */
    s->turns_seen_across_yield = partner_turns - before;
    double t0 = tu_now();
    errno = 0;
    s->sleep_rc = green_sleep(1.0);
    s->sleep_err = errno;
    s->sleep_elapsed = tu_now() - t0;
    return (void *)(intptr_t)77;
}

START_TEST(kill_current_greenlet)
{
    struct self_kill s;
    memset(&s, 0, sizeof s);
    green_t *p = green_spawn(fn_partner, NULL);
    green_t *g = green_spawn(fn_kill_self, &s);
    green_t *both[2] = {p, g};
    ck_assert_int_eq(green_joinall(both, 2, 5.0), 0);
    ck_assert(!s.cancelled_before);
    ck_assert_int_eq(s.kill_rc, 0);
    ck_assert(s.cancelled_after);
    ck_assert(s.killed_flag);
    ck_assert_int_eq(s.turns_seen_across_yield, 1);
    ck_assert_int_eq(s.sleep_rc, -1);
    ck_assert_int_eq(s.sleep_err, ECANCELED);
    ck_assert(s.sleep_elapsed < AT_ONCE);
    ck_assert(green_killed(g));
    ck_assert_ptr_eq(green_value(g), (void *)(intptr_t)77);
    green_release(p);
    green_release(g);
}
END_TEST

START_TEST(kill_main_greenlet)
{
    /* Nothing else lives in this process: a killed main greenlet only has
     * to show that every blocking call fails and green_yield returns. */
    green_t *me = green_current();
    ck_assert(!green_cancelled());
    ck_assert_int_eq(green_kill(me, GREEN_FOREVER), 0);
    ck_assert(green_cancelled());
    ck_assert(green_killed(me));
    double t0 = tu_now();
    ck_assert_fails(green_sleep(1.0), ECANCELED);
    ck_assert_fails(green_sleep(0), ECANCELED);
    ck_assert_fails(green_wait(GREEN_FOREVER), ECANCELED);
    ck_assert_fails(green_wait(0), ECANCELED);
    green_yield();
    ck_assert_elapsed(t0, 0, AT_ONCE);
    /* Killing it again is still "the current greenlet": 0. */
    ck_assert_int_eq(green_kill(me, 0), 0);
}
END_TEST

/* Every blocking call, made after the greenlet has been killed. */
struct killed_calls {
    green_t *done;      /* finished already */
    green_t *running;   /* sleeping forever */
    int      errs[12];
    int      rcs[12];
    bool     got_item;
    double   elapsed;
    green_t *spawned;   /* spawn still works */
};

static void *fn_blocking_after_kill(void *arg)
{
    struct killed_calls *k = arg;
    errno = 0;
    int first = green_sleep(3600); /* killed while in here */
    k->rcs[0] = first;
    k->errs[0] = errno;
    double t0 = tu_now();
    int i = 1;
#define RECORD(expr)                                                                 \
    do {                                                                             \
        errno = 0;                                                                   \
        k->rcs[i] = (expr);                                                          \
        k->errs[i] = errno;                                                          \
        i++;                                                                         \
    } while (0)
    RECORD(green_sleep(0.5));
    RECORD(green_sleep(0));
    RECORD(green_join(k->done, GREEN_FOREVER));   /* would not have waited */
    RECORD(green_join(k->running, 0));
    RECORD(green_get(k->done, NULL, 0));
    green_t *list[2] = {k->done, k->running};
    RECORD(green_joinall(list, 2, 1.0));
    RECORD(green_joinall(list, 1, GREEN_FOREVER));  /* only the finished one */
    RECORD(green_killall(list + 1, 1, 1.0));
    green_iwait_t *it = green_iwait_new(list, 1); /* never waits: works */
    k->got_item = it != NULL;
    errno = 0;
    k->rcs[i] = green_iwait_next(it, 0) == NULL ? -1 : 0;
    k->errs[i++] = errno;
    green_iwait_free(it);
    RECORD(green_kill(k->running, 1.0));
#undef RECORD
    k->elapsed = tu_now() - t0;
    /* Calls that never wait still work. */
    k->spawned = green_spawn(fn_return_arg, NULL);
    return NULL;
}

START_TEST(blocking_calls_in_killed_greenlet_fail_at_once)
{
    struct killed_calls k;
    memset(&k, 0, sizeof k);
    k.done = green_spawn(fn_return_arg, NULL);
    ck_assert_int_eq(green_join(k.done, GREEN_FOREVER), 0);
    k.running = green_spawn(fn_sleep_forever, NULL);
    green_t *g = green_spawn(fn_blocking_after_kill, &k);
    green_yield();
    ck_assert_int_eq(green_kill(g, 5.0), 0);
    ck_assert_int_eq(k.rcs[0], -1);
    ck_assert_int_eq(k.errs[0], ECANCELED);
    for (int i = 1; i <= 10; i++)
        ck_assert_msg(k.rcs[i] == -1 && k.errs[i] == ECANCELED, "call %d: rc %d errno %d", i,
                      k.rcs[i], k.errs[i]);
    ck_assert(k.got_item);
    ck_assert(k.elapsed < AT_ONCE);
    ck_assert_ptr_nonnull(k.spawned);
    ck_assert_int_eq(green_join(k.spawned, GREEN_FOREVER), 0);
    green_release(k.spawned);
    ck_assert_int_eq(green_kill(k.running, 5.0), 0);
    green_release(k.running);
    green_release(k.done);
    green_release(g);
}
END_TEST

/* Joins its target; the kill must interrupt the join. */
START_TEST(kill_interrupts_join)
{
    green_t *target = green_spawn(fn_sleep_forever, NULL);
    struct joiner_arg ja = {.target = target, .rc = 99};
    green_t *j = green_spawn(fn_joiner, &ja);
    green_yield();
    ck_assert_int_eq(green_kill(j, 5.0), 0);
    ck_assert_int_eq(ja.rc, -1);
    ck_assert_int_eq(ja.err, ECANCELED);
    ck_assert(!ja.target_ready);
    ck_assert(!green_killed(target));
    ck_assert_int_eq(green_kill(target, 5.0), 0);
    green_release(j);
    green_release(target);
}
END_TEST

/* Joins its target, then tries to sleep: records both results. */
struct join_then_sleep {
    green_t *target;
    int      join_rc, join_err, sleep_rc, sleep_err;
};

static void *fn_join_then_sleep(void *arg)
{
    struct join_then_sleep *j = arg;
    errno = 0;
    j->join_rc = green_join(j->target, GREEN_FOREVER);
    j->join_err = errno;
    errno = 0;
    j->sleep_rc = green_sleep(0.5);
    j->sleep_err = errno;
    return NULL;
}

START_TEST(kill_after_wakeup_keeps_success)
{
    /* g yields twice, then finishes; j joins it. When main kills j, j has
     * already been woken by g's end but has not run yet: its join still
     * succeeds, and the kill shows at its next blocking call. */
    green_t *g = green_spawn(fn_yield_then_return, NULL);
    struct join_then_sleep js = {.target = g, .join_rc = 99, .sleep_rc = 99};
    green_t *j = green_spawn(fn_join_then_sleep, &js);
    while (!green_ready(g))
        green_yield(); /* bounded: g ends after three yields */
    ck_assert(!green_ready(j));
    ck_assert_fails(green_kill(j, 0), EAGAIN);
    ck_assert_int_eq(green_join(j, 5.0), 0);
    ck_assert_msg(js.join_rc == 0, "join woken before the kill: %d errno %d", js.join_rc,
                  js.join_err);
    ck_assert_int_eq(js.sleep_rc, -1);
    ck_assert_int_eq(js.sleep_err, ECANCELED);
    green_release(g);
    green_release(j);
}
END_TEST

START_TEST(killall_kills_every_greenlet)
{
    enum { N = 8 };
    green_t *gs[N];
    for (int i = 0; i < N; i++)
        gs[i] = green_spawn(fn_sleep_forever, NULL);
    green_yield();
    ck_assert_fails(green_killall(gs, N, 0), EAGAIN);
    for (int i = 0; i < N; i++)
        ck_assert(green_killed(gs[i]));
    ck_assert_int_eq(green_killall(gs, N, 5.0), 0);
    for (int i = 0; i < N; i++) {
        ck_assert(green_ready(gs[i]));
        ck_assert_int_eq((int)(intptr_t)green_value(gs[i]), ECANCELED);
        green_release(gs[i]);
    }
    ck_assert_int_eq(green_count(), 0);
    /* An empty list is fine. */
    ck_assert_int_eq(green_killall(NULL, 0, GREEN_FOREVER), 0);
    ck_assert_int_eq(green_joinall(NULL, 0, GREEN_FOREVER), 0);
}
END_TEST

START_TEST(killall_with_bad_entry_kills_nothing)
{
    green_t *g = green_spawn(fn_sleep_ms, (void *)(intptr_t)20);
    green_t *list[3] = {g, NULL, g};
    ck_assert_fails(green_killall(list, 3, GREEN_FOREVER), EINVAL);
    ck_assert(!green_killed(g));
    ck_assert_fails(green_joinall(list, 3, GREEN_FOREVER), EINVAL);
    ck_assert_fails(green_killall(NULL, 2, 1.0), EINVAL);
    ck_assert_fails(green_joinall(NULL, 2, 1.0), EINVAL);
    ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
    ck_assert(!green_killed(g));
    ck_assert_ptr_null(green_value(g));
    green_release(g);
}
END_TEST

/* killall that includes the caller: it is marked, the others are waited for. */
struct killall_self {
    green_t *others[2];
    int      rc, err;
    bool     cancelled;
};

static void *fn_killall_self(void *arg)
{
    struct killall_self *k = arg;
    green_t *list[3] = {k->others[0], green_current(), k->others[1]};
    errno = 0;
    k->rc = green_killall(list, 3, 5.0);
    k->err = errno;
    k->cancelled = green_cancelled();
    return NULL;
}

START_TEST(killall_including_self)
{
    struct killall_self k;
    memset(&k, 0, sizeof k);
    k.others[0] = green_spawn(fn_sleep_forever, NULL);
    k.others[1] = green_spawn(fn_sleep_forever, NULL);
    green_t *g = green_spawn(fn_killall_self, &k);
    ck_assert_int_eq(green_join(g, 5.0), 0);
    /* The SPEC leaves open whether the waiting part of a killall that has
     * just killed its caller waits (0) or fails like every blocking call of
     * a killed greenlet (ECANCELED); either way all were killed. */
    ck_assert_msg(k.rc == 0 || (k.rc == -1 && k.err == ECANCELED), "killall: %d errno %d", k.rc,
                  k.err);
    ck_assert(k.cancelled);
    ck_assert_int_eq(green_joinall(k.others, 2, 5.0), 0);
    ck_assert(green_killed(g));
    for (int i = 0; i < 2; i++) {
        ck_assert(green_ready(k.others[i]));
        ck_assert(green_killed(k.others[i]));
        green_release(k.others[i]);
    }
    green_release(g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* joinall                                                                    */
/* ------------------------------------------------------------------------ */

START_TEST(joinall_waits_for_all)
{
    green_t *gs[4];
    static const int ms[4] = {30, 10, 40, 0};
    for (int i = 0; i < 4; i++)
        gs[i] = green_spawn(fn_sleep_ms, (void *)(intptr_t)ms[i]);
    ck_assert_fails(green_joinall(gs, 4, 0), EAGAIN);
    double t0 = tu_now();
    ck_assert_fails(green_joinall(gs, 4, 0.015), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.01, 1.0);
    ck_assert_int_eq(green_joinall(gs, 4, 5.0), 0);
    ck_assert_elapsed(t0, 0.035, 2.0);
    for (int i = 0; i < 4; i++) {
        ck_assert(green_ready(gs[i]));
        green_release(gs[i]);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* iwait                                                                      */
/* ------------------------------------------------------------------------ */

START_TEST(iwait_in_finish_order)
{
    green_t *gs[4];
    gs[1] = green_spawn(fn_return_arg, NULL);
    ck_assert_int_eq(green_join(gs[1], GREEN_FOREVER), 0); /* finished before the iterator */
    /* The sleepers all start in the same pass; the gaps between their ends
     * are wide enough for valgrind. */
    gs[0] = green_spawn(fn_sleep_ms, (void *)(intptr_t)300);
    gs[2] = green_spawn(fn_sleep_ms, (void *)(intptr_t)100);
    gs[3] = green_spawn(fn_sleep_ms, (void *)(intptr_t)200);
    green_iwait_t *it = green_iwait_new(gs, 4);
    ck_assert_ptr_nonnull(it);
    /* The iterator holds references of its own. */
    green_t *ids_order[4] = {gs[1], gs[2], gs[3], gs[0]};
    uint64_t want[4];
    for (int i = 0; i < 4; i++)
        want[i] = green_id(ids_order[i]);
    for (int i = 0; i < 4; i++)
        green_release(gs[i]);
    green_t *first = green_iwait_next(it, 0); /* already finished: no wait */
    ck_assert_ptr_nonnull(first);
    ck_assert_uint_eq(green_id(first), want[0]);
    ck_assert_null_errno(green_iwait_next(it, 0), EAGAIN);
    double t0 = tu_now();
    ck_assert_null_errno(green_iwait_next(it, 0.005), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.004, 1.0);
    for (int i = 1; i < 4; i++) {
        green_t *g = green_iwait_next(it, 5.0);
        ck_assert_ptr_nonnull(g);
        ck_assert_uint_eq(green_id(g), want[i]);
        ck_assert(green_ready(g));
    }
    ck_assert_null_errno(green_iwait_next(it, GREEN_FOREVER), ENOENT);
    ck_assert_null_errno(green_iwait_next(it, 0), ENOENT);
    green_iwait_free(it);
}
END_TEST

START_TEST(iwait_empty_and_misuse)
{
    green_t *dummy[1] = {NULL};
    green_iwait_t *it = green_iwait_new(dummy, 0);
    ck_assert_ptr_nonnull(it);
    ck_assert_null_errno(green_iwait_next(it, GREEN_FOREVER), ENOENT);
    green_iwait_free(it);
    it = green_iwait_new(NULL, 0);
    ck_assert_ptr_nonnull(it);
    ck_assert_null_errno(green_iwait_next(it, 0), ENOENT);
    green_iwait_free(it);

    ck_assert_null_errno(green_iwait_new(NULL, 2), EINVAL);
    ck_assert_null_errno(green_iwait_new(dummy, 1), EINVAL);
    ck_assert_null_errno(green_iwait_next(NULL, GREEN_FOREVER), EINVAL);
    ck_assert_null_errno(green_iwait_next(NULL, 0), EINVAL);
    green_iwait_free(NULL);

    /* Several nexts of several greenlets, with a killed one among them. */
    green_t *gs[2];
    gs[0] = green_spawn(fn_sleep_forever, NULL);
    gs[1] = green_spawn(fn_sleep_ms, (void *)(intptr_t)10);
    it = green_iwait_new(gs, 2);
    ck_assert_ptr_eq(green_iwait_next(it, 5.0), gs[1]);
    ck_assert_fails(green_kill(gs[0], 0), EAGAIN);
    ck_assert_ptr_eq(green_iwait_next(it, 5.0), gs[0]);
    ck_assert_null_errno(green_iwait_next(it, 1.0), ENOENT);
    green_iwait_free(it);
    green_release(gs[0]);
    green_release(gs[1]);
}
END_TEST

START_TEST(iwait_free_before_the_end)
{
    green_t *gs[2];
    gs[0] = green_spawn(fn_sleep_ms, (void *)(intptr_t)10);
    gs[1] = green_spawn(fn_sleep_ms, (void *)(intptr_t)30);
    green_iwait_t *it = green_iwait_new(gs, 2);
    ck_assert_ptr_eq(green_iwait_next(it, 5.0), gs[0]);
    green_iwait_free(it); /* gs[1] still runs; its link is gone */
    ck_assert_int_eq(green_joinall(gs, 2, 5.0), 0);
    green_release(gs[0]);
    green_release(gs[1]);
}
END_TEST

struct iwait_waiter {
    green_iwait_t *it;
    bool           got_null;
    int            err;
};

static void *fn_iwait_waiter(void *arg)
{
    struct iwait_waiter *w = arg;
    errno = 0;
    w->got_null = green_iwait_next(w->it, GREEN_FOREVER) == NULL;
    w->err = errno;
    return NULL;
}

START_TEST(iwait_free_wakes_waiter_with_epipe)
{
    green_t *sleeper = green_spawn(fn_sleep_forever, NULL);
    struct iwait_waiter w = {.it = green_iwait_new(&sleeper, 1)};
    ck_assert_ptr_nonnull(w.it);
    green_t *g = green_spawn(fn_iwait_waiter, &w);
    green_yield(); /* g blocks in green_iwait_next */
    ck_assert(!green_ready(g));
    green_iwait_free(w.it);
    ck_assert_int_eq(green_join(g, 5.0), 0);
    ck_assert(w.got_null);
    ck_assert_int_eq(w.err, EPIPE);
    ck_assert_int_eq(green_kill(sleeper, 5.0), 0);
    green_release(sleeper);
    green_release(g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* spawn_later                                                                */
/* ------------------------------------------------------------------------ */

static double later_t0;
static double later_started[8];

static void *fn_log_time(void *arg)
{
    int idx = (int)(intptr_t)arg;
    later_started[idx] = tu_now() - later_t0;
    return fn_log(arg);
}

START_TEST(spawn_later_order)
{
    later_t0 = tu_now();
    green_t *gs[4];
    gs[3] = green_spawn_later(0.15, fn_log_time, (void *)(intptr_t)3);
    gs[1] = green_spawn_later(0.05, fn_log_time, (void *)(intptr_t)1);
    gs[2] = green_spawn_later(0.10, fn_log_time, (void *)(intptr_t)2);
    gs[0] = green_spawn(fn_log_time, (void *)(intptr_t)0);
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_nonnull(gs[i]);
    ck_assert_int_eq(green_count(), 4);
    ck_assert_int_eq(green_joinall(gs, 4, 5.0), 0);
    ck_assert_int_eq(run_log_len, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(run_log[i], i);
    static const double delay[4] = {0, 0.05, 0.10, 0.15};
    for (int i = 1; i < 4; i++)
        ck_assert_msg(later_started[i] >= delay[i] - 0.002 && later_started[i] < delay[i] + 1.0,
                      "greenlet %d started after %.3f s, want %.3f", i, later_started[i],
                      delay[i]);
    for (int i = 0; i < 4; i++)
        green_release(gs[i]);
}
END_TEST

START_TEST(spawn_later_nonpositive_is_spawn)
{
    green_t *gs[4];
    gs[0] = green_spawn(fn_log, (void *)(intptr_t)0);
    gs[1] = green_spawn_later(0, fn_log, (void *)(intptr_t)1);
    gs[2] = green_spawn_later(-1.0, fn_log, (void *)(intptr_t)2);
    gs[3] = green_spawn(fn_log, (void *)(intptr_t)3);
    ck_assert_int_eq(run_log_len, 0);
    green_yield();
    ck_assert_int_eq(run_log_len, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(run_log[i], i);
    ck_assert_int_eq(green_joinall(gs, 4, 0), 0);
    for (int i = 0; i < 4; i++)
        green_release(gs[i]);
}
END_TEST

START_TEST(kill_pending_spawn_later)
{
    int flag = 0;
    green_t *g = green_spawn_later(5.0, fn_set_flag, &flag);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(green_count(), 1);
    ck_assert_fails(green_join(g, 0), EAGAIN);
    ck_assert_fails(green_join(g, 0.01), ETIMEDOUT);
    double t0 = tu_now();
    ck_assert_int_eq(green_kill(g, GREEN_FOREVER), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE); /* not after the 5 s delay */
    ck_assert(green_killed(g));
    ck_assert(green_ready(g));
    ck_assert_int_eq(flag, 0);
    ck_assert_ptr_null(green_value(g));
    ck_assert_int_eq(green_count(), 0);
    green_release(g);

    /* With timeout 0: marked at once, finished without running soon after,
     * and the pending timer is gone (green_wait does not wait 5 s for it). */
    green_t *h = green_spawn_later(5.0, fn_set_flag, &flag);
    errno = 0;
    int rc = green_kill(h, 0);
    ck_assert_msg(rc == 0 || errno == EAGAIN, "kill(h, 0): %d errno %d", rc, errno);
    ck_assert(green_killed(h));
    t0 = tu_now();
    ck_assert_int_eq(green_wait(GREEN_FOREVER), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    ck_assert(green_ready(h));
    ck_assert_int_eq(flag, 0);
    green_release(h);
}
END_TEST

START_TEST(release_pending_spawn_later_still_runs)
{
    int flag = 0;
    green_t *g = green_spawn_later(0.02, fn_set_flag, &flag);
    green_release(g);
    ck_assert_int_eq(green_count(), 1);
    ck_assert_int_eq(green_wait(5.0), 0);
    ck_assert_int_eq(flag, 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* green_wait                                                                 */
/* ------------------------------------------------------------------------ */

START_TEST(wait_for_everything)
{
    ck_assert_int_eq(green_wait(GREEN_FOREVER), 0); /* nothing at all */
    ck_assert_int_eq(green_wait(0), 0);
    green_t *a = green_spawn(fn_sleep_ms, (void *)(intptr_t)30);
    green_t *b = green_spawn_later(0.01, fn_sleep_ms, (void *)(intptr_t)30);
    ck_assert_fails(green_wait(0), EAGAIN);
    double t0 = tu_now();
    ck_assert_fails(green_wait(0.01), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.008, 1.0);
    ck_assert_int_eq(green_wait(GREEN_FOREVER), 0);
    ck_assert(green_ready(a));
    ck_assert(green_ready(b));
    ck_assert_elapsed(t0, 0.025, 2.0);
    ck_assert_int_eq(green_count(), 0);
    ck_assert_int_eq(green_wait(0), 0);
    green_release(a);
    green_release(b);
}
END_TEST

/* A one-shot timer of the program's own: runs, then spawns a greenlet. */
struct user_timer {
    ev_timer  timer;
    double    t0, fired_at;
    int       spawn_flag;
    green_t  *spawned;
};

static void *fn_sleep_then_flag(void *arg)
{
    green_sleep(0.03);
    *(int *)arg = 1;
    return NULL;
}

static void user_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct user_timer *u = (struct user_timer *)w; /* timer is the first member */
    u->fired_at = tu_now() - u->t0;
    u->spawned = green_spawn(fn_sleep_then_flag, &u->spawn_flag);
}

START_TEST(wait_runs_user_watchers)
{
    /* SPEC: green_wait runs the hub until no greenlet and no watcher is
     * left. A timer of the program's own, added through green_loop, keeps it
     * running; so does the greenlet its callback spawns. */
    struct ev_loop *loop = green_loop();
    struct user_timer u;
    memset(&u, 0, sizeof u);
    ev_timer_init(&u.timer, user_timer_cb, 0.05, 0.);
    ev_now_update(loop); /* libev times a timer from the loop's cached now */
    u.t0 = tu_now();
    ev_timer_start(loop, &u.timer);
    ck_assert_int_eq(green_count(), 0);
    ck_assert_int_eq(green_wait(5.0), 0);
    ck_assert_msg(u.fired_at > 0, "green_wait returned after %.3f s, before the timer fired",
                  tu_now() - u.t0);
    ck_assert_ptr_nonnull(u.spawned);
    ck_assert_int_eq(u.spawn_flag, 1);
    ck_assert(green_ready(u.spawned));
    ck_assert_elapsed(u.t0, 0.07, 2.0);
    ck_assert(!ev_is_active(&u.timer));
    green_release(u.spawned);
}
END_TEST

static void *fn_wait_in_greenlet(void *arg)
{
    int *err = arg;
    errno = 0;
    if (green_wait(GREEN_FOREVER) == -1)
        *err = errno;
    return NULL;
}

START_TEST(wait_from_greenlet_is_edeadlk)
{
    int err = 0;
    green_t *g = green_spawn(fn_wait_in_greenlet, &err);
    ck_assert_int_eq(green_join(g, 5.0), 0);
    ck_assert_int_eq(err, EDEADLK);
    green_release(g);
}
END_TEST

START_TEST(wait_returns_when_nothing_can_run)
{
    /* g joins the main greenlet, which never finishes: once main waits too,
     * nothing can ever wake anyone, and green_wait returns 0. */
    struct joiner_arg ja = {.target = green_current(), .rc = 99};
    green_t *g = green_spawn(fn_joiner, &ja);
    double t0 = tu_now();
    ck_assert_int_eq(green_wait(GREEN_FOREVER), 0);
    ck_assert_elapsed(t0, 0, 2.0);
    ck_assert(!green_ready(g));
    ck_assert_int_eq(green_kill(g, 5.0), 0);
    ck_assert_int_eq(ja.rc, -1);
    ck_assert_int_eq(ja.err, ECANCELED);
    green_release(g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Introspection                                                              */
/* ------------------------------------------------------------------------ */

START_TEST(count_counts_pending_and_excludes_main)
{
    ck_assert_int_eq(green_count(), 0);
    green_t *a = green_spawn(fn_sleep_ms, (void *)(intptr_t)10);
    ck_assert_int_eq(green_count(), 1); /* not yet started */
    green_t *b = green_spawn_later(0.02, fn_return_arg, NULL);
    ck_assert_int_eq(green_count(), 2); /* pending spawn_later */
    green_t *c = green_spawn(fn_return_arg, NULL);
    ck_assert_int_eq(green_count(), 3);
    green_yield(); /* a sleeps, c finishes */
    ck_assert_int_eq(green_count(), 2);
    ck_assert_int_eq(green_join(a, GREEN_FOREVER), 0);
    ck_assert_int_eq(green_join(b, GREEN_FOREVER), 0);
    ck_assert_int_eq(green_count(), 0);
    /* Handles still held do not count. */
    green_release(a);
    green_release(b);
    green_release(c);
    ck_assert_int_eq(green_count(), 0);
}
END_TEST

/* Reads a dump into a string. */
static char *dump_to_string(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    green_dump(f);
    fclose(f);
    return buf;
}

/* Finds the dump line of an id; checks "<id> '<name>'" at its start. */
static bool dump_has(const char *dump, uint64_t id, const char *name)
{
    char want[300];
    snprintf(want, sizeof want, "%llu '%s'", (unsigned long long)id, name);
    size_t n = strlen(want);
    for (const char *line = dump; *line;) {
        if (strncmp(line, want, n) == 0 && (line[n] == ' ' || line[n] == '\n' || !line[n]))
            return true;
        const char *nl = strchr(line, '\n');
        if (!nl)
            break;
        line = nl + 1;
    }
    return false;
}

START_TEST(dump_lines)
{
    green_attr_t named = {.name = "the worker"};
    green_t *a = green_spawn_attr(&named, fn_sleep_forever, NULL);
    green_t *b = green_spawn(fn_sleep_ms, (void *)(intptr_t)5);
    green_t *c = green_spawn_later(10.0, fn_return_arg, NULL);
    green_set_name(c, "later");
    green_yield();
    char *dump = dump_to_string();
    ck_assert_ptr_nonnull(dump);
    /* Every line: a decimal id, a space, the name in single quotes. */
    int lines = 0;
    for (char *line = dump; *line; lines++) {
        char *nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "unterminated line: %s", line);
        *nl = '\0';
        char *p = line;
        ck_assert_msg(*p >= '1' && *p <= '9', "line does not start with an id: %s", line);
        while (*p >= '0' && *p <= '9')
            p++;
        ck_assert_msg(p[0] == ' ' && p[1] == '\'', "no quoted name after the id: %s", line);
        ck_assert_msg(strchr(p + 2, '\'') != NULL, "unterminated name: %s", line);
        *nl = '\n';
        line = nl + 1;
    }
    ck_assert_int_ge(lines, 3);
    ck_assert_msg(dump_has(dump, green_id(a), "the worker"), "%s", dump);
    ck_assert_msg(dump_has(dump, green_id(b), ""), "%s", dump);
    ck_assert_msg(dump_has(dump, green_id(c), "later"), "%s", dump);
    ck_assert_msg(dump_has(dump, green_id(green_current()), green_name(green_current())), "%s",
                  dump);
    free(dump);

    /* A finished greenlet is no longer listed. */
    ck_assert_int_eq(green_join(b, GREEN_FOREVER), 0);
    dump = dump_to_string();
    ck_assert_msg(!dump_has(dump, green_id(b), ""), "%s", dump);
    free(dump);
    green_dump(NULL); /* ignored */

    green_t *all[3] = {a, b, c};
    ck_assert_int_eq(green_killall(all, 3, 5.0), 0);
    for (int i = 0; i < 3; i++)
        green_release(all[i]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Greenlet-local storage                                                     */
/* ------------------------------------------------------------------------ */

static green_key_t key_a, key_b;
static green_t *destructor_ran_in[8];
static void *destructor_value[8];
static int ndestructed;

static void record_destructor(void *value)
{
    if (ndestructed < 8) {
        destructor_ran_in[ndestructed] = green_current();
        destructor_value[ndestructed] = value;
    }
    ndestructed++;
}

struct local_arg {
    intptr_t value;
    intptr_t seen_a, seen_b_before;
    bool     ok;
};

static void *fn_locals(void *arg)
{
    struct local_arg *l = arg;
    l->seen_b_before = (intptr_t)green_getspecific(key_b);
    l->ok = green_setspecific(key_a, (void *)l->value) == 0;
    green_yield(); /* the other greenlet sets its own value meanwhile */
    green_sleep(0.005);
    l->seen_a = (intptr_t)green_getspecific(key_a);
    return NULL;
}

START_TEST(locals_are_per_greenlet)
{
    ck_assert_int_eq(green_key_create(&key_a, NULL), 0);
    ck_assert_int_eq(green_key_create(&key_b, NULL), 0);
    ck_assert_uint_ne(key_a, key_b);
    ck_assert_ptr_null(green_getspecific(key_a));
    ck_assert_int_eq(green_setspecific(key_b, (void *)(intptr_t)5), 0); /* main's own */
    struct local_arg la[2] = {{.value = 100}, {.value = 200}};
    green_t *gs[2];
    for (int i = 0; i < 2; i++)
        gs[i] = green_spawn(fn_locals, &la[i]);
    ck_assert_int_eq(green_joinall(gs, 2, 5.0), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert(la[i].ok);
        ck_assert_int_eq(la[i].seen_a, la[i].value);
        ck_assert_int_eq(la[i].seen_b_before, 0); /* not inherited */
        green_release(gs[i]);
    }
    ck_assert_ptr_null(green_getspecific(key_a));
    ck_assert_ptr_eq(green_getspecific(key_b), (void *)(intptr_t)5);
    ck_assert_int_eq(green_setspecific(key_b, NULL), 0);
    ck_assert_ptr_null(green_getspecific(key_b));
}
END_TEST

START_TEST(locals_misuse)
{
    ck_assert_fails(green_key_create(NULL, NULL), EINVAL);
    green_key_t k;
    ck_assert_int_eq(green_key_create(&k, NULL), 0);
    green_key_t unknown = k + 1000;
    ck_assert_fails(green_setspecific(unknown, (void *)1), EINVAL);
    ck_assert_ptr_null(green_getspecific(unknown));
    ck_assert_ptr_null(green_getspecific((green_key_t)-1));
}
END_TEST

/* Sets a local, then finishes in the way arg says: 0 return, 1 exit, 2 is
 * killed while sleeping. */
static bool joiner_saw_destructor;

static void *fn_with_local(void *arg)
{
    int how = (int)(intptr_t)arg;
    green_setspecific(key_a, (void *)(intptr_t)(1000 + how));
    green_setspecific(key_b, NULL); /* NULL values get no destructor call */
    /* Block, so that the joiner is waiting before this greenlet ends. */
    green_sleep(how == 2 ? 3600 : 0.01);
    if (how == 1)
        green_exit(NULL);
    return NULL;
}

static void *fn_check_destructed(void *arg)
{
    green_t *target = arg;
    int before = ndestructed;
    green_join(target, GREEN_FOREVER);
    joiner_saw_destructor = before == 0 && ndestructed == 1;
    return NULL;
}

START_TEST(local_destructors_run_in_ending_greenlet)
{
    ck_assert_int_eq(green_key_create(&key_a, record_destructor), 0);
    ck_assert_int_eq(green_key_create(&key_b, record_destructor), 0);
    for (int how = 0; how < 3; how++) {
        ndestructed = 0;
        joiner_saw_destructor = false;
        green_t *g = green_spawn(fn_with_local, (void *)(intptr_t)how);
        green_t *j = green_spawn(fn_check_destructed, g);
        green_yield();
        if (how == 2)
            ck_assert_int_eq(green_kill(g, 5.0), 0);
        ck_assert_int_eq(green_join(j, 5.0), 0);
        ck_assert_int_eq(ndestructed, 1);
        ck_assert_ptr_eq(destructor_ran_in[0], g);
        ck_assert_ptr_eq(destructor_value[0], (void *)(intptr_t)(1000 + how));
        ck_assert_msg(joiner_saw_destructor, "joiner resumed before the destructor ran (how %d)",
                      how);
        green_release(g);
        green_release(j);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Misuse: NULL handles and functions                                         */
/* ------------------------------------------------------------------------ */

START_TEST(null_handles)
{
    ck_assert_null_errno(green_spawn(NULL, NULL), EINVAL);
    ck_assert_null_errno(green_spawn_attr(NULL, NULL, NULL), EINVAL);
    green_attr_t attr = {.name = "x"};
    ck_assert_null_errno(green_spawn_attr(&attr, NULL, NULL), EINVAL);
    ck_assert_null_errno(green_spawn_later(0.5, NULL, NULL), EINVAL);
    ck_assert_null_errno(green_spawn_later(0, NULL, NULL), EINVAL);
    ck_assert_int_eq(green_count(), 0); /* a failed spawn left nothing behind */

    ck_assert_fails(green_join(NULL, GREEN_FOREVER), EINVAL);
    ck_assert_fails(green_join(NULL, 0), EINVAL);
    void *r = (void *)1;
    ck_assert_fails(green_get(NULL, &r, 1.0), EINVAL);
    ck_assert_ptr_eq(r, (void *)1);
    ck_assert_fails(green_kill(NULL, GREEN_FOREVER), EINVAL);
    ck_assert_fails(green_kill(NULL, 0), EINVAL);
    ck_assert_ptr_null(green_value(NULL));
    ck_assert(!green_ready(NULL));
    ck_assert(!green_killed(NULL));
    ck_assert_uint_eq(green_id(NULL), 0);
    ck_assert_ptr_nonnull(green_name(NULL));
    ck_assert_str_eq(green_name(NULL), "");
    green_set_name(NULL, "x");
    green_ref(NULL);
    green_release(NULL);
    green_dump(NULL);
    green_iwait_free(NULL);
    ck_assert_null_errno(green_iwait_next(NULL, 1.0), EINVAL);
    ck_assert(!green_cancelled());
    ck_assert_int_eq(green_count(), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Blocking from the hub                                                      */
/* ------------------------------------------------------------------------ */

struct hub_calls {
    green_t *target;      /* sleeping greenlet */
    green_t *kill_target; /* another one, for the kill */
    bool     ran;
    int      errs[10];
    int      rcs[10];
    bool     spawned_ok;
    green_t *spawned;
};

static void hub_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct hub_calls *c = w->data;
    int i = 0;
#define RECORD(expr)                                                                 \
    do {                                                                             \
        errno = 0;                                                                   \
        c->rcs[i] = (expr);                                                          \
        c->errs[i] = errno;                                                          \
        i++;                                                                         \
    } while (0)
    RECORD(green_sleep(0.01));
    RECORD(green_sleep(0));
    RECORD(green_join(c->target, GREEN_FOREVER));
    RECORD(green_join(c->target, 1.0));
    RECORD(green_get(c->target, NULL, GREEN_FOREVER));
    RECORD(green_joinall(&c->target, 1, 1.0));
    RECORD(green_wait(GREEN_FOREVER));
    RECORD(green_kill(c->kill_target, GREEN_FOREVER));
    green_iwait_t *it = green_iwait_new(&c->target, 1);
    errno = 0;
    c->rcs[i] = green_iwait_next(it, GREEN_FOREVER) == NULL ? -1 : 0;
    c->errs[i++] = errno;
    green_iwait_free(it);
#undef RECORD
    green_yield(); /* from the hub: returns without switching */
    /* Calls that never wait work from the hub. */
    c->spawned = green_spawn(fn_return_arg, NULL);
    c->ran = true;
}

START_TEST(blocking_from_hub_is_edeadlk)
{
    struct ev_loop *loop = green_loop();
    ck_assert_ptr_nonnull(loop);
    ck_assert_ptr_eq(green_loop(), loop);
    struct hub_calls c;
    memset(&c, 0, sizeof c);
    c.target = green_spawn(fn_sleep_ms, (void *)(intptr_t)100);
    c.kill_target = green_spawn(fn_sleep_forever, NULL);
    ev_timer t;
    ev_timer_init(&t, hub_timer_cb, 0.01, 0.);
    t.data = &c;
    ev_timer_start(loop, &t);
    double t0 = tu_now();
    ck_assert_int_eq(green_sleep(0.05), 0);
    ck_assert(c.ran);
    ck_assert_elapsed(t0, 0.045, 1.0);
    for (int i = 0; i < 9; i++)
        ck_assert_msg(c.rcs[i] == -1 && c.errs[i] == EDEADLK, "hub call %d: rc %d errno %d", i,
                      c.rcs[i], c.errs[i]);
    ev_timer_stop(loop, &t);
    /* The target was left alone by the failed calls. */
    ck_assert_int_eq(green_join(c.target, 5.0), 0);
    ck_assert_ptr_null(green_value(c.target));
    ck_assert_ptr_nonnull(c.spawned);
    ck_assert_int_eq(green_join(c.spawned, 5.0), 0);
    ck_assert_int_eq(green_kill(c.kill_target, 5.0), 0);
    green_release(c.spawned);
    green_release(c.target);
    green_release(c.kill_target);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Another OS thread                                                          */
/* ------------------------------------------------------------------------ */

struct foreign {
    green_t       *g;    /* belongs to the main thread's hub */
    green_iwait_t *it;   /* so does this */
    int            errs[10];
    int            rcs[10];
    const char    *name_after;
    uint64_t       own_ids[4];
    size_t         own_count_before;
    bool           own_ok;
};

static void *foreign_thread(void *arg)
{
    struct foreign *f = arg;
    int i = 0;
#define RECORD(expr)                                                                 \
    do {                                                                             \
        errno = 0;                                                                   \
        f->rcs[i] = (expr);                                                          \
        f->errs[i] = errno;                                                          \
        i++;                                                                         \
    } while (0)
    RECORD(green_join(f->g, GREEN_FOREVER));
    RECORD(green_join(f->g, 0));
    RECORD(green_get(f->g, NULL, 1.0));
    RECORD(green_kill(f->g, GREEN_FOREVER));
    RECORD(green_kill(f->g, 0));
    RECORD(green_joinall(&f->g, 1, 1.0));
    RECORD(green_killall(&f->g, 1, 0));
    errno = 0;
    f->rcs[i] = green_iwait_next(f->it, 0) == NULL ? -1 : 0;
    f->errs[i++] = errno;
    errno = 0;
    f->rcs[i] = green_iwait_new(&f->g, 1) == NULL ? -1 : 0;
    f->errs[i++] = errno;
#undef RECORD
    /* void calls from a foreign thread do nothing. */
    green_set_name(f->g, "renamed by a thread");
    green_set_name(f->g, NULL);
    for (int k = 0; k < 5; k++)
        green_release(f->g);
    green_ref(f->g);
    green_iwait_free(f->it);
    f->name_after = green_name(f->g);

    /* This thread gets a hub of its own, with ids of its own. */
    f->own_count_before = green_count();
    green_t *mine[4];
    f->own_ok = true;
    for (int k = 0; k < 4; k++) {
        mine[k] = green_spawn(fn_return_arg, NULL);
        f->own_ok = f->own_ok && mine[k] != NULL;
        f->own_ids[k] = green_id(mine[k]);
    }
    f->own_ok = f->own_ok && green_joinall(mine, 4, 5.0) == 0 && green_count() == 0;
    for (int k = 0; k < 4; k++)
        green_release(mine[k]);
    return NULL;
}

START_TEST(foreign_thread_gets_eperm)
{
    struct foreign f;
    memset(&f, 0, sizeof f);
    green_attr_t attr = {.name = "owned by main"};
    f.g = green_spawn_attr(&attr, fn_sleep_ms, (void *)(intptr_t)30);
    f.it = green_iwait_new(&f.g, 1);
    ck_assert_ptr_nonnull(f.it);
    green_yield(); /* f.g sleeps */
    uint64_t main_ids[4];
    green_t *others[4];
    for (int k = 0; k < 4; k++) {
        others[k] = green_spawn(fn_return_arg, NULL);
        main_ids[k] = green_id(others[k]);
    }
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, foreign_thread, &f), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    for (int i = 0; i < 9; i++)
        ck_assert_msg(f.rcs[i] == -1 && f.errs[i] == EPERM, "foreign call %d: rc %d errno %d", i,
                      f.rcs[i], f.errs[i]);
    /* Nothing happened to g: not killed, not renamed, references intact. */
    ck_assert(!green_killed(f.g));
    ck_assert_str_eq(f.name_after, "owned by main");
    ck_assert_str_eq(green_name(f.g), "owned by main");
    ck_assert_ptr_eq(green_iwait_next(f.it, 5.0), f.g); /* the iterator still works */
    ck_assert_ptr_null(green_value(f.g));
    ck_assert(!green_killed(f.g));
    green_iwait_free(f.it);
    /* The thread had its own hub, and ids are unique in the process. */
    ck_assert(f.own_ok);
    ck_assert_int_eq(f.own_count_before, 0);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            ck_assert_uint_ne(f.own_ids[a], main_ids[b]);
    ck_assert_int_eq(green_joinall(others, 4, 5.0), 0);
    for (int k = 0; k < 4; k++)
        green_release(others[k]);
    ck_assert(green_ready(f.g));
    green_release(f.g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The suite                                                                  */
/* ------------------------------------------------------------------------ */

static Suite *green_suite(void)
{
    Suite *s = suite_create("green");
    TCase *tc = tcase_create("lifecycle");
    tcase_add_test(tc, spawn_runs_later_and_join_returns_value);
    tcase_add_test(tc, value_is_null_until_finished);
    tcase_add_test(tc, join_timeouts);
    tcase_add_test(tc, join_self_is_edeadlk);
    tcase_add_test(tc, join_self_in_greenlet_is_edeadlk);
    tcase_add_test(tc, many_joiners_all_wake);
    tcase_add_test(tc, exit_ends_greenlet_with_value);
    tcase_add_test(tc, release_never_stops_greenlet);
    tcase_add_test(tc, extra_references_keep_handle);
    tcase_add_test(tc, current_is_the_running_greenlet);
    tcase_add_test(tc, ids_unique_and_increasing);
    tcase_add_test(tc, names);
    tcase_add_test(tc, spawn_attr_defaults);
    suite_add_tcase(s, tc);

    tc = tcase_create("scheduling");
    tcase_add_test(tc, fifo_start_order);
    tcase_add_test(tc, sleep0_and_yield_run_each_ready_once);
    tcase_add_test(tc, sleep_durations);
    tcase_add_test(tc, yield_loop_does_not_starve_timer);
    suite_add_tcase(s, tc);

    tc = tcase_create("kill");
    tcase_add_test(tc, kill_sleeping_greenlet);
    tcase_add_test(tc, kill_timeout_zero_marks_but_does_not_switch);
    tcase_add_test(tc, kill_before_start_never_runs);
    tcase_add_test(tc, kill_finished_is_noop);
    tcase_add_test(tc, kill_waits_up_to_timeout);
    tcase_add_test(tc, kill_current_greenlet);
    tcase_add_test(tc, kill_main_greenlet);
    tcase_add_test(tc, blocking_calls_in_killed_greenlet_fail_at_once);
    tcase_add_test(tc, kill_interrupts_join);
    tcase_add_test(tc, kill_after_wakeup_keeps_success);
    tcase_add_test(tc, killall_kills_every_greenlet);
    tcase_add_test(tc, killall_with_bad_entry_kills_nothing);
    tcase_add_test(tc, killall_including_self);
    suite_add_tcase(s, tc);

    tc = tcase_create("joinall_iwait");
    tcase_add_test(tc, joinall_waits_for_all);
    tcase_add_test(tc, iwait_in_finish_order);
    tcase_add_test(tc, iwait_empty_and_misuse);
    tcase_add_test(tc, iwait_free_before_the_end);
    tcase_add_test(tc, iwait_free_wakes_waiter_with_epipe);
    suite_add_tcase(s, tc);

    tc = tcase_create("spawn_later");
    tcase_add_test(tc, spawn_later_order);
    tcase_add_test(tc, spawn_later_nonpositive_is_spawn);
    tcase_add_test(tc, kill_pending_spawn_later);
    tcase_add_test(tc, release_pending_spawn_later_still_runs);
    suite_add_tcase(s, tc);

    tc = tcase_create("wait_introspection");
    tcase_add_test(tc, wait_for_everything);
    tcase_add_test(tc, wait_runs_user_watchers);
    tcase_add_test(tc, wait_from_greenlet_is_edeadlk);
    tcase_add_test(tc, wait_returns_when_nothing_can_run);
    tcase_add_test(tc, count_counts_pending_and_excludes_main);
    tcase_add_test(tc, dump_lines);
    suite_add_tcase(s, tc);

    tc = tcase_create("locals");
    tcase_add_test(tc, locals_are_per_greenlet);
    tcase_add_test(tc, locals_misuse);
    tcase_add_test(tc, local_destructors_run_in_ending_greenlet);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_add_test(tc, null_handles);
    tcase_add_test(tc, blocking_from_hub_is_edeadlk);
    tcase_add_test(tc, foreign_thread_gets_eperm);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(green_suite());
}
