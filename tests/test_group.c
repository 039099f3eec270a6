/*
 * Group and Pool (lib/group.c): membership (spawn, add, discard, size),
 * join and kill, the pool's capacity (a spawn that finds room never yields,
 * one that finds none waits for a slot handed to it in FIFO order), map and
 * imap_unordered (order of results, concurrency, `each` in the caller), a
 * kill and a green_timeout at every wait point, freeing with members still
 * running, and the misuse every public call must survive: NULL handles,
 * blocking from the hub, calls from a foreign OS thread.
 *
 * Each test runs in its own forked process. Workers record how many of
 * them run at once (so the pool's cap is checked from inside), and how many
 * started and ended (so a map that returns early is caught leaving workers
 * behind). Every test joins what it spawned and frees what it made.
 */
#include <ev.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "testutil.h"

/* A blocking call "at once" returns well within this (noisy machine). */
#define AT_ONCE 0.3

/* ------------------------------------------------------------------------ */
/* Workers                                                                    */
/* ------------------------------------------------------------------------ */

static int running_now, running_max, started, ended;

static void track_begin(void)
{
    started++;
    if (++running_now > running_max)
        running_max = running_now;
}

static void track_end(void)
{
    running_now--;
    ended++;
}

/* Sleeps arg milliseconds; returns arg * 10 + 1 (never NULL), killed or not. */
static void *fn_work_ms(void *arg)
{
    track_begin();
    green_sleep((double)(intptr_t)arg / 1000.0);
    track_end();
    return (void *)((intptr_t)arg * 10 + 1);
}

/* Sleeps (almost) forever; returns the errno its sleep failed with. */
static void *fn_sleep_forever(void *arg)
{
    (void)arg;
    track_begin();
    errno = 0;
    int rc = green_sleep(3600);
    track_end();
    return (void *)(intptr_t)(rc == 0 ? 0 : errno);
}

/* Returns its argument at once. */
static void *fn_return_arg(void *arg)
{
    return arg;
}

/* Sets the int it points to. */
static void *fn_set_flag(void *arg)
{
    *(int *)arg = 1;
    return NULL;
}

/* An imap `each` that does nothing. */
static void each_nothing(size_t index, void *result, void *ud)
{
    (void)index;
    (void)result;
    (void)ud;
}

/* Ignores its kill: yields (which a kill does not stop) until told to stop. */
static bool stubborn_stop;
static void *fn_stubborn(void *arg)
{
    (void)arg;
    track_begin();
    double t0 = tu_now();
    while (!stubborn_stop && tu_now() - t0 < 10)
        green_yield();
    track_end();
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Group membership                                                           */
/* ------------------------------------------------------------------------ */

START_TEST(group_spawn_does_not_switch_and_join_waits)
{
    green_group_t *grp = green_group_new();
    ck_assert_ptr_nonnull(grp);
    ck_assert_uint_eq(green_group_size(grp), 0);
    int flag = 0;
    green_t *a = green_group_spawn(grp, fn_set_flag, &flag);
    green_t *b = green_group_spawn(grp, fn_work_ms, (void *)(intptr_t)30);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(flag, 0); /* spawning never switches */
    ck_assert_uint_eq(green_group_size(grp), 2);
    double t0 = tu_now();
    ck_assert_int_eq(green_group_join(grp, GREEN_FOREVER), 0);
    ck_assert_elapsed(t0, 0.025, 2.0);
    ck_assert_int_eq(flag, 1);
    ck_assert_uint_eq(green_group_size(grp), 0);
    /* The handles are the caller's: still valid after the group let go. */
    ck_assert(green_ready(a) && green_ready(b));
    ck_assert_ptr_eq(green_value(b), (void *)(intptr_t)301);
    /* Join on an empty group: 0 at once, even with timeout 0. */
    ck_assert_int_eq(green_group_join(grp, 0), 0);
    green_release(a);
    green_release(b);
    green_group_free(grp);
}
END_TEST

START_TEST(finished_members_are_dropped_as_they_finish)
{
    green_group_t *grp = green_group_new();
    green_t *fast = green_group_spawn(grp, fn_work_ms, (void *)(intptr_t)1);
    green_t *slow = green_group_spawn(grp, fn_work_ms, (void *)(intptr_t)200);
    /* Releasing the caller's handle at once is how to ignore it. */
    green_release(fast);
    ck_assert_uint_eq(green_group_size(grp), 2);
    ck_assert_int_eq(green_sleep(0.05), 0);
    ck_assert_uint_eq(green_group_size(grp), 1); /* no join needed */
    ck_assert_int_eq(green_group_join(grp, 5.0), 0);
    ck_assert_uint_eq(green_group_size(grp), 0);
    green_release(slow);
    green_group_free(grp);
}
END_TEST

START_TEST(add_and_discard)
{
    green_group_t *grp = green_group_new();
    green_t *g = green_spawn(fn_work_ms, (void *)(intptr_t)30);
    ck_assert_int_eq(green_group_add(grp, g), 0);
    ck_assert_uint_eq(green_group_size(grp), 1);
    ck_assert_int_eq(green_group_add(grp, g), 0); /* twice: no-op */
    ck_assert_uint_eq(green_group_size(grp), 1);

    /* The group holds its own reference: the caller may let go. */
    green_t *h = green_spawn(fn_work_ms, (void *)(intptr_t)20);
    ck_assert_int_eq(green_group_add(grp, h), 0);
    green_release(h);
    ck_assert_uint_eq(green_group_size(grp), 2);

    /* Discarding a non-member: no-op returning 0. */
    green_t *other = green_spawn(fn_return_arg, NULL);
    ck_assert_int_eq(green_group_discard(grp, other), 0);
    ck_assert_uint_eq(green_group_size(grp), 2);

    /* Discarding a member: it leaves the group but goes on running. */
    ck_assert_int_eq(green_group_discard(grp, g), 0);
    ck_assert_uint_eq(green_group_size(grp), 1);
    ck_assert_int_eq(green_group_discard(grp, g), 0);
    ck_assert_uint_eq(green_group_size(grp), 1);
    ck_assert_int_eq(green_group_join(grp, 5.0), 0);
    ck_assert_int_eq(green_join(g, 5.0), 0);
    ck_assert(!green_killed(g));
    ck_assert_ptr_eq(green_value(g), (void *)(intptr_t)301);

    /* A finished greenlet: add is a no-op. */
    ck_assert_int_eq(green_join(other, 5.0), 0);
    ck_assert_int_eq(green_group_add(grp, other), 0);
    ck_assert_uint_eq(green_group_size(grp), 0);
    ck_assert_int_eq(green_group_add(grp, g), 0);
    ck_assert_uint_eq(green_group_size(grp), 0);

    /* A greenlet may belong to two groups. */
    green_group_t *grp2 = green_group_new();
    green_t *both = green_spawn(fn_work_ms, (void *)(intptr_t)10);
    ck_assert_int_eq(green_group_add(grp, both), 0);
    ck_assert_int_eq(green_group_add(grp2, both), 0);
    ck_assert_int_eq(green_group_discard(grp, both), 0);
    ck_assert_uint_eq(green_group_size(grp), 0);
    ck_assert_uint_eq(green_group_size(grp2), 1);
    ck_assert_int_eq(green_group_join(grp2, 5.0), 0);
    ck_assert_uint_eq(green_group_size(grp2), 0);

    green_release(g);
    green_release(other);
    green_release(both);
    green_group_free(grp);
    green_group_free(grp2);
}
END_TEST

START_TEST(add_current_and_main)
{
    /* The current (main) greenlet can be a member; joining the group from it
     * would wait on itself. */
    green_group_t *grp = green_group_new();
    green_t *me = green_current();
    ck_assert_int_eq(green_group_add(grp, me), 0);
    ck_assert_uint_eq(green_group_size(grp), 1);
    ck_assert_fails(green_group_join(grp, 1.0), EDEADLK);
    ck_assert_fails(green_group_join(grp, 0), EDEADLK);
    ck_assert_int_eq(green_group_discard(grp, me), 0);
    ck_assert_uint_eq(green_group_size(grp), 0);
    ck_assert_int_eq(green_group_join(grp, 0), 0);
    green_group_free(grp);
}
END_TEST

START_TEST(many_members)
{
    /* Under valgrind a process's exit costs about half a second per stack
     * it ever used (the leak check scans them), hence the smaller N. */
    const int N = RUNNING_ON_VALGRIND ? 20 : 1000;
    green_group_t *grp = green_group_new();
    for (int i = 0; i < N; i++) {
        green_t *g = green_group_spawn(grp, fn_work_ms, (void *)(intptr_t)(i % 3));
        ck_assert_ptr_nonnull(g);
        green_release(g);
    }
    ck_assert_uint_eq(green_group_size(grp), (size_t)N);
    ck_assert_int_eq(green_group_join(grp, 30.0), 0);
    ck_assert_uint_eq(green_group_size(grp), 0);
    ck_assert_int_eq(started, N);
    ck_assert_int_eq(ended, N);
    ck_assert_int_eq(running_max, N); /* a group has no cap */
    green_group_free(grp);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Join and kill                                                              */
/* ------------------------------------------------------------------------ */

START_TEST(group_join_timeouts)
{
    green_group_t *grp = green_group_new();
    green_t *g = green_group_spawn(grp, fn_work_ms, (void *)(intptr_t)300);
    ck_assert_fails(green_group_join(grp, 0), EAGAIN);
    double t0 = tu_now();
    ck_assert_fails(green_group_join(grp, 0.05), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.03, 1.0);
    /* A green_timeout bounds it too. */
    green_timeout_t t;
    green_timeout_start(&t, 0.05);
    t0 = tu_now();
    ck_assert_fails(green_group_join(grp, GREEN_FOREVER), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.03, 1.0);
    ck_assert(green_timeout_cancel(&t));
    ck_assert_int_eq(green_group_join(grp, GREEN_FOREVER), 0);
    ck_assert(!green_killed(g));
    green_release(g);
    green_group_free(grp);
}
END_TEST

/* A member that joins its own group. */
static void *fn_join_own_group(void *arg)
{
    errno = 0;
    int rc = green_group_join(arg, 1.0);
    return (void *)(intptr_t)(rc == 0 ? 0 : errno);
}

START_TEST(join_from_member_is_edeadlk)
{
    green_group_t *grp = green_group_new();
    green_t *other = green_group_spawn(grp, fn_work_ms, (void *)(intptr_t)20);
    green_t *g = green_group_spawn(grp, fn_join_own_group, grp);
    double t0 = tu_now();
    ck_assert_int_eq(green_join(g, 5.0), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    ck_assert_ptr_eq(green_value(g), (void *)(intptr_t)EDEADLK);
    ck_assert_int_eq(green_group_join(grp, 5.0), 0);
    green_release(g);
    green_release(other);
    green_group_free(grp);
}
END_TEST

START_TEST(group_kill_kills_every_member)
{
    green_group_t *grp = green_group_new();
    green_t *gs[5];
    for (int i = 0; i < 5; i++)
        gs[i] = green_group_spawn(grp, fn_sleep_forever, NULL);
    green_yield(); /* they all sleep */
    ck_assert_int_eq(started, 5);
    double t0 = tu_now();
    ck_assert_int_eq(green_group_kill(grp, GREEN_FOREVER), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    ck_assert_uint_eq(green_group_size(grp), 0);
    for (int i = 0; i < 5; i++) {
        ck_assert(green_ready(gs[i]));
        ck_assert(green_killed(gs[i]));
        ck_assert_ptr_eq(green_value(gs[i]), (void *)(intptr_t)ECANCELED);
        green_release(gs[i]);
    }
    /* Killing an empty group: 0, even with timeout 0. */
    ck_assert_int_eq(green_group_kill(grp, 0), 0);
    green_group_free(grp);
}
END_TEST

START_TEST(group_kill_timeout_zero_marks_without_switching)
{
    green_group_t *grp = green_group_new();
    green_t *a = green_group_spawn(grp, fn_sleep_forever, NULL);
    green_t *b = green_group_spawn(grp, fn_sleep_forever, NULL);
    green_yield();
    ck_assert_fails(green_group_kill(grp, 0), EAGAIN);
    ck_assert(green_killed(a) && green_killed(b));
    ck_assert(!green_ready(a) && !green_ready(b)); /* they have not run yet */
    ck_assert_uint_eq(green_group_size(grp), 2);
    ck_assert_int_eq(green_group_join(grp, 5.0), 0);
    ck_assert_int_eq(ended, 2);
    green_release(a);
    green_release(b);
    green_group_free(grp);
}
END_TEST

START_TEST(group_kill_waits_up_to_timeout)
{
    green_group_t *grp = green_group_new();
    green_t *g = green_group_spawn(grp, fn_stubborn, NULL);
    green_yield();
    double t0 = tu_now();
    ck_assert_fails(green_group_kill(grp, 0.05), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.03, 1.0);
    ck_assert(green_killed(g));
    ck_assert_uint_eq(green_group_size(grp), 1);
    stubborn_stop = true;
    ck_assert_int_eq(green_group_kill(grp, 5.0), 0);
    ck_assert_uint_eq(green_group_size(grp), 0);
    green_release(g);
    green_group_free(grp);
}
END_TEST

/* As it is killed, spawns a new member into its group (gevent's kill loops
 * until the group is empty, killing newcomers too). */
static void *fn_spawn_on_kill(void *arg)
{
    green_sleep(3600);
    green_t *g = green_group_spawn(arg, fn_sleep_forever, NULL);
    green_release(g);
    return NULL;
}

START_TEST(group_kill_kills_newcomers)
{
    green_group_t *grp = green_group_new();
    green_t *g = green_group_spawn(grp, fn_spawn_on_kill, grp);
    green_yield();
    double t0 = tu_now();
    ck_assert_int_eq(green_group_kill(grp, 5.0), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    ck_assert_uint_eq(green_group_size(grp), 0);
    ck_assert_int_eq(green_wait(5.0), 0); /* the newcomer has finished too */
    ck_assert_int_eq(started, ended);
    green_release(g);
    green_group_free(grp);
}
END_TEST

/* The only member kills its group: it marks itself and returns 0. */
static void *fn_kill_own_group(void *arg)
{
    int rc = green_group_kill(arg, 1.0);
    bool cancelled = green_cancelled();
    return (void *)(intptr_t)(rc == 0 && cancelled ? 1 : 2);
}

START_TEST(group_kill_from_only_member)
{
    green_group_t *grp = green_group_new();
    green_t *g = green_group_spawn(grp, fn_kill_own_group, grp);
    ck_assert_int_eq(green_join(g, 5.0), 0);
    ck_assert_ptr_eq(green_value(g), (void *)(intptr_t)1);
    ck_assert(green_killed(g));
    ck_assert_uint_eq(green_group_size(grp), 0);
    green_release(g);
    green_group_free(grp);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Group map                                                                  */
/* ------------------------------------------------------------------------ */

START_TEST(group_map_results_in_order_all_at_once)
{
    green_group_t *grp = green_group_new();
    enum { N = 8 };
    void *args[N], *results[N];
    /* Later items finish first: the results still come back in order. */
    for (int i = 0; i < N; i++)
        args[i] = (void *)(intptr_t)((N - i) * 5);
    double t0 = tu_now();
    ck_assert_int_eq(green_group_map(grp, fn_work_ms, args, results, N), 0);
    ck_assert_elapsed(t0, 0.03, 1.0);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_eq(results[i], (void *)((intptr_t)args[i] * 10 + 1));
    ck_assert_int_eq(running_max, N); /* all at once */
    ck_assert_int_eq(started, N);
    ck_assert_int_eq(ended, N);
    ck_assert_uint_eq(green_group_size(grp), 0);
    /* n == 0: nothing to do, NULL arrays allowed. */
    ck_assert_int_eq(green_group_map(grp, fn_work_ms, NULL, NULL, 0), 0);
    green_group_free(grp);
}
END_TEST

/* Reports the size of the group it was given while it runs. */
static green_group_t *size_probe_group;
static void *fn_probe_group_size(void *arg)
{
    (void)arg;
    size_t n = green_group_size(size_probe_group);
    green_sleep(0.01);
    return (void *)(uintptr_t)n;
}

START_TEST(group_map_workers_are_members)
{
    green_group_t *grp = size_probe_group = green_group_new();
    green_t *other = green_group_spawn(grp, fn_work_ms, (void *)(intptr_t)100);
    void *args[3] = {0}, *results[3];
    ck_assert_int_eq(green_group_map(grp, fn_probe_group_size, args, results, 3), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_eq(results[i], (void *)(uintptr_t)4);
    /* map waits for its own workers only, not for the other member. */
    ck_assert(!green_ready(other));
    ck_assert_uint_eq(green_group_size(grp), 1);
    ck_assert_int_eq(green_group_join(grp, 5.0), 0);
    green_release(other);
    green_group_free(grp);
}
END_TEST

START_TEST(map_results_null_for_killed_workers)
{
    green_group_t *grp = green_group_new();
    void *args[4] = {(void *)(intptr_t)0, (void *)(intptr_t)10, (void *)(intptr_t)3000,
                     (void *)(intptr_t)3000};
    void *results[4] = {(void *)1, (void *)1, (void *)1, (void *)1};
    green_timeout_t t;
    green_timeout_start(&t, 0.2);
    double t0 = tu_now();
    ck_assert_fails(green_group_map(grp, fn_work_ms, args, results, 4), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.15, 1.0);
    ck_assert(green_timeout_cancel(&t));
    ck_assert_int_eq(started, 4);
    ck_assert_int_eq(ended, 4); /* every worker finished before map returned */
    ck_assert_ptr_eq(results[0], (void *)(intptr_t)1);
    ck_assert_ptr_eq(results[1], (void *)(intptr_t)101);
    ck_assert_ptr_null(results[2]); /* killed: NULL, whatever fn returned */
    ck_assert_ptr_null(results[3]);
    ck_assert_uint_eq(green_group_size(grp), 0);
    green_group_free(grp);
}
END_TEST

START_TEST(map_in_killed_greenlet_runs_nothing)
{
    green_group_t *grp = green_group_new();
    green_pool_t *p = green_pool_new(2);
    void *args[2] = {0}, *results[2];
    ck_assert_int_eq(green_kill(green_current(), 0), 0);
    ck_assert_fails(green_group_map(grp, fn_work_ms, args, results, 2), ECANCELED);
    ck_assert_fails(green_pool_map(p, fn_work_ms, args, results, 2), ECANCELED);
    ck_assert_fails(green_pool_imap_unordered(p, fn_work_ms, args, 2, each_nothing, NULL),
                    ECANCELED);
    ck_assert_int_eq(started, 0);
    ck_assert_uint_eq(green_group_size(grp), 0);
    ck_assert_uint_eq(green_pool_free_count(p), 2);
    green_group_free(grp);
    green_pool_free(p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Pool                                                                       */
/* ------------------------------------------------------------------------ */

START_TEST(pool_spawn_with_room_counts_at_once)
{
    ck_assert_null_errno(green_pool_new(0), EINVAL);
    green_pool_t *p = green_pool_new(3);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(green_pool_free_count(p), 3);
    int flag = 0;
    green_t *a = green_pool_spawn(p, fn_set_flag, &flag);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(green_pool_free_count(p), 2);
    green_t *b = green_pool_spawn(p, fn_work_ms, (void *)(intptr_t)20);
    ck_assert_uint_eq(green_pool_free_count(p), 1);
    ck_assert_int_eq(flag, 0); /* no yield */
    ck_assert_int_eq(green_pool_wait_available(p, 0), 0);
    ck_assert_int_eq(green_pool_join(p, 5.0), 0);
    ck_assert_int_eq(flag, 1);
    ck_assert_uint_eq(green_pool_free_count(p), 3);
    green_release(a);
    green_release(b);
    green_pool_free(p);
}
END_TEST

/* Spawns jobs into a pool, each waiting while the pool is full. */
struct spawner {
    green_pool_t *p;
    int           jobs, ms;
    int           spawned;
    int           err;
};

static void *fn_spawner(void *arg)
{
    struct spawner *s = arg;
    for (int i = 0; i < s->jobs; i++) {
        errno = 0;
        green_t *g = green_pool_spawn(s->p, fn_work_ms, (void *)(intptr_t)s->ms);
        if (!g) {
            s->err = errno;
            break;
        }
        s->spawned++;
        green_release(g);
    }
    return NULL;
}

START_TEST(pool_spawn_waits_while_full_and_caps_concurrency)
{
    green_pool_t *p = green_pool_new(2);
    double t0 = tu_now();
    /* The main greenlet spawns 6 jobs of 30 ms: 3 rounds of 2. */
    for (int i = 0; i < 6; i++) {
        green_t *g = green_pool_spawn(p, fn_work_ms, (void *)(intptr_t)30);
        ck_assert_ptr_nonnull(g);
        green_release(g);
    }
    ck_assert_elapsed(t0, 0.05, 2.0); /* it waited two rounds */
    /* Two more spawners compete with each other. */
    struct spawner s1 = {.p = p, .jobs = 5, .ms = 5}, s2 = {.p = p, .jobs = 5, .ms = 5};
    green_t *g1 = green_spawn(fn_spawner, &s1), *g2 = green_spawn(fn_spawner, &s2);
    ck_assert_int_eq(green_join(g1, 10.0), 0);
    ck_assert_int_eq(green_join(g2, 10.0), 0);
    ck_assert_int_eq(green_pool_join(p, 10.0), 0);
    ck_assert_int_eq(s1.spawned + s2.spawned, 10);
    ck_assert_int_eq(started, 16);
    ck_assert_int_eq(ended, 16);
    ck_assert_int_eq(running_max, 2); /* never above the cap, and it was reached */
    ck_assert_uint_eq(green_pool_free_count(p), 2);
    green_release(g1);
    green_release(g2);
    green_pool_free(p);
}
END_TEST

/* Spawns one job into a pool and records the result. */
struct one_spawn {
    green_pool_t *p;
    green_t      *got;
    int           err;
    int           order;
};
static int spawn_order;

static void *fn_spawn_one(void *arg)
{
    struct one_spawn *s = arg;
    errno = 0;
    s->got = green_pool_spawn(s->p, fn_work_ms, (void *)(intptr_t)1);
    s->err = errno;
    s->order = ++spawn_order;
    return NULL;
}

START_TEST(pool_slots_are_handed_over_in_fifo_order)
{
    green_pool_t *p = green_pool_new(1);
    green_t *m = green_pool_spawn(p, fn_work_ms, (void *)(intptr_t)20);
    struct one_spawn s[3];
    green_t *gs[3];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 3; i++) {
        s[i].p = p;
        gs[i] = green_spawn(fn_spawn_one, &s[i]);
    }
    green_yield(); /* all three wait for the slot */
    ck_assert_ptr_null(s[0].got);
    /* The member's joiners are woken before its slot is handed over, so the
     * main greenlet runs before the first spawner: the freed slot is
     * already that spawner's, not anybody's who asks (no barging). */
    ck_assert_int_eq(green_join(m, 5.0), 0);
    ck_assert_uint_eq(green_pool_free_count(p), 0);
    ck_assert_fails(green_pool_wait_available(p, 0), EAGAIN);
    /* Killed after it was handed the slot: its spawn still succeeds. */
    ck_assert_fails(green_kill(gs[0], 0), EAGAIN);
    ck_assert_int_eq(green_joinall(gs, 3, 5.0), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(s[i].got != NULL, "spawner %d: errno %d", i, s[i].err);
        ck_assert_int_eq(s[i].order, i + 1);
        green_release(s[i].got);
        green_release(gs[i]);
    }
    ck_assert_int_eq(green_pool_join(p, 5.0), 0);
    ck_assert_int_eq(running_max, 1);
    green_release(m);
    green_pool_free(p);
}
END_TEST

START_TEST(pool_wait_available)
{
    green_pool_t *p = green_pool_new(1);
    ck_assert_int_eq(green_pool_wait_available(p, 0), 0);
    green_t *g = green_pool_spawn(p, fn_work_ms, (void *)(intptr_t)80);
    ck_assert_fails(green_pool_wait_available(p, 0), EAGAIN);
    double t0 = tu_now();
    ck_assert_fails(green_pool_wait_available(p, 0.03), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.02, 1.0);
    green_timeout_t t;
    green_timeout_start(&t, 0.01);
    ck_assert_fails(green_pool_wait_available(p, GREEN_FOREVER), ETIMEDOUT);
    ck_assert(green_timeout_cancel(&t));
    ck_assert_int_eq(green_pool_wait_available(p, 5.0), 0);
    ck_assert_elapsed(t0, 0.06, 2.0);
    ck_assert(green_ready(g));
    /* It only waits: the slot is still free for whoever spawns. */
    ck_assert_uint_eq(green_pool_free_count(p), 1);
    green_release(g);
    green_pool_free(p);
}
END_TEST

/* A member of a pool of one spawning into it would wait for itself. */
static void *fn_spawn_into_own_pool(void *arg)
{
    int *errs = malloc(2 * sizeof *errs);
    errno = 0;
    green_t *g = green_pool_spawn(arg, fn_return_arg, NULL);
    errs[0] = g ? 0 : errno;
    errno = 0;
    errs[1] = green_pool_wait_available(arg, 1.0) == 0 ? 0 : errno;
    return errs;
}

START_TEST(pool_wait_on_self_is_edeadlk)
{
    green_pool_t *p = green_pool_new(1);
    green_t *g = green_pool_spawn(p, fn_spawn_into_own_pool, p);
    double t0 = tu_now();
    ck_assert_int_eq(green_join(g, 5.0), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    int *errs = green_value(g);
    ck_assert_int_eq(errs[0], EDEADLK);
    ck_assert_int_eq(errs[1], EDEADLK);
    free(errs);
    green_release(g);
    green_pool_free(p);
}
END_TEST

START_TEST(pool_kill_and_join)
{
    green_pool_t *p = green_pool_new(3);
    green_t *gs[3];
    for (int i = 0; i < 3; i++)
        gs[i] = green_pool_spawn(p, fn_sleep_forever, NULL);
    ck_assert_fails(green_pool_join(p, 0), EAGAIN);
    ck_assert_fails(green_pool_join(p, 0.02), ETIMEDOUT);
    ck_assert_fails(green_pool_kill(p, 0), EAGAIN);
    ck_assert(green_killed(gs[0]));
    ck_assert_int_eq(green_pool_kill(p, 5.0), 0);
    ck_assert_uint_eq(green_pool_free_count(p), 3);
    ck_assert_int_eq(green_pool_join(p, 0), 0);
    ck_assert_int_eq(green_pool_kill(p, 0), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert(green_ready(gs[i]));
        green_release(gs[i]);
    }
    green_t *s = green_pool_spawn(p, fn_stubborn, NULL);
    green_yield();
    ck_assert_fails(green_pool_kill(p, 0.03), ETIMEDOUT);
    stubborn_stop = true;
    ck_assert_int_eq(green_pool_kill(p, 5.0), 0);
    green_release(s);
    green_pool_free(p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Pool map and imap_unordered                                                */
/* ------------------------------------------------------------------------ */

/* The slots in use, seen from inside each worker, never above the cap. */
static green_pool_t *probe_pool;
static size_t probe_cap;
static bool probe_full_seen;
static void *fn_probe_pool(void *arg)
{
    track_begin();
    if (green_pool_free_count(probe_pool) == 0)
        probe_full_seen = true;
    green_sleep((double)(intptr_t)arg / 1000.0);
    track_end();
    return (void *)((intptr_t)arg * 10 + 1);
}

START_TEST(pool_map_fills_free_slots_results_in_order)
{
    probe_cap = 3;
    green_pool_t *p = probe_pool = green_pool_new(probe_cap);
    enum { N = 10 };
    void *args[N], *results[N];
    for (int i = 0; i < N; i++)
        args[i] = (void *)(intptr_t)(5 + (i * 7) % 20);
    ck_assert_int_eq(green_pool_map(p, fn_probe_pool, args, results, N), 0);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_eq(results[i], (void *)((intptr_t)args[i] * 10 + 1));
    ck_assert_int_eq(started, N);
    ck_assert_int_eq(ended, N);
    ck_assert_int_eq(running_max, 3);
    ck_assert(probe_full_seen); /* it did fill every free slot */
    ck_assert_uint_eq(green_pool_free_count(p), 3);
    ck_assert_int_eq(green_pool_map(p, fn_probe_pool, NULL, NULL, 0), 0);
    green_pool_free(p);
}
END_TEST

START_TEST(pool_map_shares_the_pool_with_other_spawns)
{
    probe_cap = 2;
    green_pool_t *p = probe_pool = green_pool_new(probe_cap);
    /* Another spawner competes for the slots while map runs. */
    struct spawner s = {.p = p, .jobs = 6, .ms = 3};
    green_t *sg = green_spawn(fn_spawner, &s);
    void *args[6] = {(void *)4, (void *)4, (void *)4, (void *)4, (void *)4, (void *)4};
    void *results[6];
    ck_assert_int_eq(green_pool_map(p, fn_probe_pool, args, results, 6), 0);
    for (int i = 0; i < 6; i++)
        ck_assert_ptr_eq(results[i], (void *)41);
    ck_assert_int_eq(green_join(sg, 5.0), 0);
    ck_assert_int_eq(green_pool_join(p, 5.0), 0);
    ck_assert_int_eq(s.spawned, 6);
    ck_assert_int_eq(running_max, 2);
    green_release(sg);
    green_pool_free(p);
}
END_TEST

/* imap's `each`: records the order, checks it runs in the caller, blocks. */
struct each_log {
    green_t *caller;
    size_t   order[16];
    void    *results[16];
    size_t   n;
    bool     in_caller;
    double   block;   /* seconds each call sleeps */
};

static void each_record(size_t index, void *result, void *ud)
{
    struct each_log *log = ud;
    if (green_current() != log->caller)
        log->in_caller = false;
    if (log->n < 16) {
        log->order[log->n] = index;
        log->results[log->n] = result;
        log->n++;
    }
    if (log->block > 0)
        green_sleep(log->block);
}

START_TEST(imap_unordered_in_arrival_order)
{
    probe_cap = 2;
    green_pool_t *p = probe_pool = green_pool_new(probe_cap);
    /* Pool of 2: items 0 (270 ms) and 1 (90 ms) start; 1 ends at 90 ms, 2
     * (60 ms) starts and ends at 150 ms, 3 (30 ms) at 180 ms, 0 at 270 ms:
     * 30 ms apart at least, for slow runs (valgrind). */
    void *args[4] = {(void *)270, (void *)90, (void *)60, (void *)30};
    struct each_log log = {.caller = green_current(), .in_caller = true};
    ck_assert_int_eq(green_pool_imap_unordered(p, fn_probe_pool, args, 4, each_record, &log), 0);
    ck_assert(log.in_caller);
    ck_assert_uint_eq(log.n, 4);
    size_t want[4] = {1, 2, 3, 0};
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(log.order[i], want[i]);
        ck_assert_ptr_eq(log.results[i], (void *)((intptr_t)args[want[i]] * 10 + 1));
    }
    ck_assert_int_eq(running_max, 2);
    ck_assert_int_eq(ended, 4);
    green_pool_free(p);
}
END_TEST

START_TEST(imap_each_may_block)
{
    probe_cap = 2;
    green_pool_t *p = probe_pool = green_pool_new(probe_cap);
    enum { N = 8 };
    void *args[N];
    for (int i = 0; i < N; i++)
        args[i] = (void *)(intptr_t)(1 + i % 3);
    struct each_log log = {.caller = green_current(), .in_caller = true, .block = 0.005};
    ck_assert_int_eq(green_pool_imap_unordered(p, fn_probe_pool, args, N, each_record, &log), 0);
    ck_assert(log.in_caller);
    ck_assert_uint_eq(log.n, N);
    /* Every index exactly once. */
    int seen[N] = {0};
    for (size_t i = 0; i < log.n; i++)
        seen[log.order[i]]++;
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert_int_le(running_max, 2);
    ck_assert_int_eq(started, N);
    ck_assert_int_eq(ended, N);
    ck_assert_int_eq(green_pool_imap_unordered(p, fn_probe_pool, NULL, 0, each_record, &log), 0);
    green_pool_free(p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A kill and a timeout at every wait point                                   */
/* ------------------------------------------------------------------------ */

enum wait_point {
    WP_GROUP_JOIN,
    WP_GROUP_KILL,
    WP_POOL_SPAWN,
    WP_POOL_WAIT_AVAILABLE,
    WP_POOL_JOIN,
    WP_POOL_KILL,
    WP_GROUP_MAP,
    WP_POOL_MAP_RESULTS, /* waiting for results, all slots its own */
    WP_POOL_MAP_SLOT,    /* waiting for a slot, none started */
    WP_IMAP_RESULTS,
    WP_IMAP_EACH,        /* blocked inside `each` */
    WP_COUNT
};

struct wp_run {
    enum wait_point wp;
    double          timeout;   /* > 0: under a green_timeout of this */
    green_group_t  *grp;
    green_pool_t   *pool;
    int             rc, err;
    double          elapsed;
    int             started_at_return, ended_at_return;
    void           *results[4];
    bool            returned;
};

static void each_sleep_forever(size_t index, void *result, void *ud)
{
    (void)index;
    (void)result;
    (void)ud;
    green_sleep(3600);
}

static void *fn_wait_point(void *arg)
{
    struct wp_run *r = arg;
    green_timeout_t t;
    if (r->timeout > 0)
        green_timeout_start(&t, r->timeout);
    void *args[4] = {(void *)3600000, (void *)3600000, (void *)3600000, (void *)3600000};
    void *quick[4] = {0};
    double t0 = tu_now();
    errno = 0;
    switch (r->wp) {
    case WP_GROUP_JOIN:
        r->rc = green_group_join(r->grp, GREEN_FOREVER);
        break;
    case WP_GROUP_KILL:
        r->rc = green_group_kill(r->grp, GREEN_FOREVER);
        break;
    case WP_POOL_SPAWN: {
        green_t *g = green_pool_spawn(r->pool, fn_return_arg, NULL);
        r->rc = g ? 0 : -1;
        break;
    }
    case WP_POOL_WAIT_AVAILABLE:
        r->rc = green_pool_wait_available(r->pool, GREEN_FOREVER);
        break;
    case WP_POOL_JOIN:
        r->rc = green_pool_join(r->pool, GREEN_FOREVER);
        break;
    case WP_POOL_KILL:
        r->rc = green_pool_kill(r->pool, GREEN_FOREVER);
        break;
    case WP_GROUP_MAP:
        r->rc = green_group_map(r->grp, fn_work_ms, args, r->results, 4);
        break;
    case WP_POOL_MAP_RESULTS:
    case WP_POOL_MAP_SLOT:
        r->rc = green_pool_map(r->pool, fn_work_ms, args, r->results, 4);
        break;
    case WP_IMAP_RESULTS:
        r->rc = green_pool_imap_unordered(r->pool, fn_work_ms, args, 4, each_nothing, NULL);
        break;
    case WP_IMAP_EACH:
        r->rc = green_pool_imap_unordered(r->pool, fn_work_ms, quick, 4, each_sleep_forever,
                                          NULL);
        break;
    default:
        break;
    }
    r->err = errno;
    r->elapsed = tu_now() - t0;
    r->started_at_return = started;
    r->ended_at_return = ended;
    r->returned = true;
    if (r->timeout > 0)
        green_timeout_cancel(&t);
    return NULL;
}

/* Runs wait point _i / 2, killed (even) or timed out (odd). */
START_TEST(kill_and_timeout_at_every_wait_point)
{
    struct wp_run r;
    memset(&r, 0, sizeof r);
    r.wp = (enum wait_point)(_i / 2);
    bool by_timeout = _i % 2;
    r.timeout = by_timeout ? 0.05 : 0;
    r.grp = green_group_new();
    r.pool = green_pool_new(2);
    green_t *blockers[2] = {NULL, NULL};
    switch (r.wp) {
    case WP_GROUP_JOIN:
        blockers[0] = green_group_spawn(r.grp, fn_sleep_forever, NULL);
        break;
    case WP_GROUP_KILL:
        blockers[0] = green_group_spawn(r.grp, fn_stubborn, NULL);
        break;
    case WP_POOL_SPAWN:
    case WP_POOL_WAIT_AVAILABLE:
    case WP_POOL_JOIN:
    case WP_POOL_MAP_SLOT:
        blockers[0] = green_pool_spawn(r.pool, fn_sleep_forever, NULL);
        blockers[1] = green_pool_spawn(r.pool, fn_sleep_forever, NULL);
        break;
    case WP_POOL_KILL:
        blockers[0] = green_pool_spawn(r.pool, fn_stubborn, NULL);
        break;
    default:
        break;
    }
    green_t *runner = green_spawn(fn_wait_point, &r);
    int blockers_started = (blockers[0] != NULL) + (blockers[1] != NULL);
    if (by_timeout) {
        ck_assert_int_eq(green_join(runner, 5.0), 0);
    } else {
        ck_assert_int_eq(green_sleep(0.05), 0);
        ck_assert(!r.returned);
        ck_assert_int_eq(green_kill(runner, 5.0), 0);
    }
    ck_assert(r.returned);
    ck_assert_msg(r.rc == -1 && r.err == (by_timeout ? ETIMEDOUT : ECANCELED),
                  "wait point %d: rc %d errno %d", (int)r.wp, r.rc, r.err);
    /* It waited (the kill comes 50 ms after the runner was spawned, a little
     * less after it started) and returned at once when interrupted. */
    ck_assert_msg(r.elapsed >= 0.02 && r.elapsed < 1.0, "wait point %d: elapsed %.3f",
                  (int)r.wp, r.elapsed);
    /* A map returns only once every worker it started has finished. */
    ck_assert_int_eq(r.started_at_return - r.ended_at_return, blockers_started);
    switch (r.wp) {
    case WP_GROUP_MAP:
        ck_assert_int_eq(r.started_at_return, 4);
        for (int i = 0; i < 4; i++)
            ck_assert_ptr_null(r.results[i]);
        break;
    case WP_POOL_MAP_RESULTS:
    case WP_IMAP_RESULTS:
        ck_assert_int_eq(r.started_at_return, 2); /* the cap */
        break;
    case WP_POOL_MAP_SLOT:
        ck_assert_int_eq(r.started_at_return, 2); /* the blockers only */
        for (int i = 0; i < 4; i++)
            ck_assert_ptr_null(r.results[i]);
        break;
    default:
        break;
    }
    /* Nothing was lost: the slots the call waited for are still usable. */
    stubborn_stop = true;
    ck_assert_int_eq(green_group_kill(r.grp, 5.0), 0);
    ck_assert_int_eq(green_pool_kill(r.pool, 5.0), 0);
    ck_assert_uint_eq(green_pool_free_count(r.pool), 2);
    green_t *g = green_pool_spawn(r.pool, fn_return_arg, NULL);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(green_pool_join(r.pool, 5.0), 0);
    ck_assert_int_eq(green_wait(5.0), 0);
    ck_assert_int_eq(started, ended);
    green_release(g);
    for (int i = 0; i < 2; i++)
        green_release(blockers[i]);
    green_release(runner);
    green_group_free(r.grp);
    green_pool_free(r.pool);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Freeing with members running                                               */
/* ------------------------------------------------------------------------ */

START_TEST(free_group_with_members_running)
{
    green_group_t *grp = green_group_new();
    green_t *a = green_group_spawn(grp, fn_work_ms, (void *)(intptr_t)30);
    green_t *b = green_group_spawn(grp, fn_work_ms, (void *)(intptr_t)10);
    green_release(b); /* now only the library and the group hold b */
    green_yield();
    green_group_free(grp); /* kills nothing */
    ck_assert_int_eq(green_join(a, 5.0), 0);
    ck_assert(!green_killed(a));
    ck_assert_ptr_eq(green_value(a), (void *)(intptr_t)301);
    ck_assert_int_eq(green_wait(5.0), 0);
    ck_assert_int_eq(ended, 2);
    green_release(a);

    /* Freed before its members even started. */
    green_pool_t *p = green_pool_new(2);
    green_t *c = green_pool_spawn(p, fn_work_ms, (void *)(intptr_t)5);
    green_release(c);
    green_pool_free(p);
    ck_assert_int_eq(green_wait(5.0), 0);
    ck_assert_int_eq(ended, 3);
}
END_TEST

/* Records what a blocked call on a pool got when the pool was freed. */
struct freed_wait {
    green_pool_t *p;
    int           which; /* 0 spawn, 1 wait_available, 2 join, 3 imap */
    int           rc, err;
};

static void *fn_wait_on_pool(void *arg)
{
    struct freed_wait *f = arg;
    void *args[3] = {(void *)3600000, (void *)3600000, (void *)3600000};
    errno = 0;
    switch (f->which) {
    case 0:
        f->rc = green_pool_spawn(f->p, fn_return_arg, NULL) ? 0 : -1;
        break;
    case 1:
        f->rc = green_pool_wait_available(f->p, GREEN_FOREVER);
        break;
    case 2:
        f->rc = green_pool_join(f->p, GREEN_FOREVER);
        break;
    default:
        f->rc = green_pool_imap_unordered(f->p, fn_work_ms, args, 3, each_nothing, NULL);
        break;
    }
    f->err = errno;
    return NULL;
}

START_TEST(free_pool_wakes_its_waiters_with_epipe)
{
    green_pool_t *p = green_pool_new(1);
    green_t *blocker = green_pool_spawn(p, fn_work_ms, (void *)(intptr_t)100);
    struct freed_wait f[4];
    green_t *gs[4];
    for (int i = 0; i < 4; i++) {
        f[i] = (struct freed_wait){.p = p, .which = i};
        gs[i] = green_spawn(fn_wait_on_pool, &f[i]);
    }
    green_yield(); /* all four wait */
    double t0 = tu_now();
    green_pool_free(p);
    ck_assert_int_eq(green_joinall(gs, 4, 5.0), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(f[i].rc == -1 && f[i].err == EPIPE, "waiter %d: rc %d errno %d", i,
                      f[i].rc, f[i].err);
        green_release(gs[i]);
    }
    /* The member was not killed. */
    ck_assert_int_eq(green_join(blocker, 5.0), 0);
    ck_assert(!green_killed(blocker));
    ck_assert_int_eq(green_wait(5.0), 0);
    ck_assert_int_eq(started, ended);
    green_release(blocker);
}
END_TEST

/* Waits for the event arg. */
static void *fn_wait_go(void *arg)
{
    started++;
    return (void *)(intptr_t)green_event_wait(arg, 5.0);
}

/* Joins a group; records the result. */
static void *fn_join_group(void *arg)
{
    errno = 0;
    int rc = green_group_join(arg, GREEN_FOREVER);
    return (void *)(intptr_t)(rc == 0 ? 0 : errno);
}

START_TEST(free_after_the_wake_keeps_its_result)
{
    /* The member's own joiners (main) are woken before its group link runs,
     * so main frees the group and the pool after their waiters were woken
     * and before those run. */
    green_event_t *go = green_event_new();
    green_group_t *grp = green_group_new();
    green_t *m = green_group_spawn(grp, fn_wait_go, go);
    green_t *joiner = green_spawn(fn_join_group, grp);
    green_pool_t *p = green_pool_new(1);
    green_t *pm = green_pool_spawn(p, fn_wait_go, go);
    struct one_spawn s = {.p = p};
    green_t *spawner = green_spawn(fn_spawn_one, &s);
    green_yield();
    /* Both members finish in the same pass, whatever the machine's speed. */
    green_event_set(go);
    ck_assert_int_eq(green_join(m, 5.0), 0);
    ck_assert_int_eq(green_join(pm, 5.0), 0);
    ck_assert(!green_ready(joiner) && !green_ready(spawner));
    green_group_free(grp);
    green_pool_free(p);
    ck_assert_int_eq(green_join(joiner, 5.0), 0);
    ck_assert_int_eq(green_join(spawner, 5.0), 0);
    /* The join had succeeded: 0. The spawn had its slot, but the pool is
     * gone: it failed, and nothing was spawned. */
    ck_assert_ptr_eq(green_value(joiner), (void *)0);
    ck_assert_ptr_null(s.got);
    ck_assert_int_eq(s.err, EPIPE);
    ck_assert_int_eq(green_wait(5.0), 0);
    ck_assert_int_eq(started, 2);
    green_release(m);
    green_release(pm);
    green_release(joiner);
    green_release(spawner);
    green_event_free(go);
}
END_TEST

/* The first worker frees the group its map is running on. */
static green_group_t *free_me;
static void *fn_free_group(void *arg)
{
    if (arg == (void *)1)
        green_group_free(free_me);
    green_yield();
    return arg;
}

START_TEST(free_group_during_map)
{
    free_me = green_group_new();
    void *args[3] = {(void *)1, (void *)2, (void *)3}, *results[3];
    /* The map was running when its group was freed: its workers finish and
     * it returns their results; the memory goes when it returns. */
    ck_assert_int_eq(green_group_map(free_me, fn_free_group, args, results, 3), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_eq(results[i], args[i]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Misuse: NULL handles, the hub, a foreign thread                            */
/* ------------------------------------------------------------------------ */

START_TEST(null_handles_and_arguments)
{
    green_group_t *grp = green_group_new();
    green_pool_t *p = green_pool_new(1);
    green_t *g = green_spawn(fn_return_arg, NULL);
    void *args[1] = {0}, *results[1];

    ck_assert_null_errno(green_group_spawn(NULL, fn_return_arg, NULL), EINVAL);
    ck_assert_null_errno(green_group_spawn(grp, NULL, NULL), EINVAL);
    ck_assert_fails(green_group_add(NULL, g), EINVAL);
    ck_assert_fails(green_group_add(grp, NULL), EINVAL);
    ck_assert_fails(green_group_discard(NULL, g), EINVAL);
    ck_assert_fails(green_group_discard(grp, NULL), EINVAL);
    ck_assert_uint_eq(green_group_size(NULL), 0);
    ck_assert_fails(green_group_join(NULL, 1.0), EINVAL);
    ck_assert_fails(green_group_kill(NULL, 1.0), EINVAL);
    ck_assert_fails(green_group_map(NULL, fn_return_arg, args, results, 1), EINVAL);
    ck_assert_fails(green_group_map(grp, NULL, args, results, 1), EINVAL);
    ck_assert_fails(green_group_map(grp, fn_return_arg, NULL, results, 1), EINVAL);
    ck_assert_fails(green_group_map(grp, fn_return_arg, args, NULL, 1), EINVAL);
    green_group_free(NULL);

    ck_assert_null_errno(green_pool_spawn(NULL, fn_return_arg, NULL), EINVAL);
    ck_assert_null_errno(green_pool_spawn(p, NULL, NULL), EINVAL);
    ck_assert_uint_eq(green_pool_free_count(NULL), 0);
    ck_assert_fails(green_pool_wait_available(NULL, 1.0), EINVAL);
    ck_assert_fails(green_pool_join(NULL, 1.0), EINVAL);
    ck_assert_fails(green_pool_kill(NULL, 1.0), EINVAL);
    ck_assert_fails(green_pool_map(NULL, fn_return_arg, args, results, 1), EINVAL);
    ck_assert_fails(green_pool_map(p, NULL, args, results, 1), EINVAL);
    ck_assert_fails(green_pool_map(p, fn_return_arg, NULL, results, 1), EINVAL);
    ck_assert_fails(green_pool_map(p, fn_return_arg, args, NULL, 1), EINVAL);
    ck_assert_fails(green_pool_imap_unordered(NULL, fn_return_arg, args, 1, each_nothing, NULL),
                    EINVAL);
    ck_assert_fails(green_pool_imap_unordered(p, NULL, args, 1, each_nothing, NULL), EINVAL);
    ck_assert_fails(green_pool_imap_unordered(p, fn_return_arg, NULL, 1, each_nothing, NULL),
                    EINVAL);
    ck_assert_fails(green_pool_imap_unordered(p, fn_return_arg, args, 1, NULL, NULL), EINVAL);
    green_pool_free(NULL);

    /* Nothing happened: no worker ran, nothing joined. */
    ck_assert_uint_eq(green_group_size(grp), 0);
    ck_assert_uint_eq(green_pool_free_count(p), 1);
    ck_assert_int_eq(green_join(g, 5.0), 0);
    green_release(g);
    green_group_free(grp);
    green_pool_free(p);
}
END_TEST

/* Calls every blocking function from a libev callback, i.e. the hub. */
struct hub_calls {
    green_group_t *grp;
    green_pool_t  *pool;
    int            rcs[8], errs[8];
    size_t         size_after_kill0;
    green_t       *spawned[2];
    bool           ran;
};

static void hub_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct hub_calls *c = t->data;
    void *args[1] = {(void *)1}, *results[1];
    int i = 0;
#define RECORD(expr)                                                                 \
    do {                                                                             \
        errno = 0;                                                                   \
        c->rcs[i] = (expr);                                                          \
        c->errs[i] = errno;                                                          \
        i++;                                                                         \
    } while (0)
    RECORD(green_group_join(c->grp, GREEN_FOREVER));
    RECORD(green_group_kill(c->grp, 1.0));
    RECORD(green_group_map(c->grp, fn_return_arg, args, results, 1));
    RECORD(green_pool_wait_available(c->pool, 1.0));
    RECORD(green_pool_join(c->pool, 1.0));
    RECORD(green_pool_map(c->pool, fn_return_arg, args, results, 1));
    RECORD(green_pool_imap_unordered(c->pool, fn_return_arg, args, 1, each_nothing, NULL));
    RECORD(green_pool_spawn(c->pool, fn_return_arg, NULL) == NULL ? -1 : 0);
#undef RECORD
    /* Calls that never wait work from the hub. */
    c->spawned[0] = green_group_spawn(c->grp, fn_return_arg, NULL);
    c->ran = true;
}

START_TEST(blocking_from_hub_is_edeadlk)
{
    struct ev_loop *loop = green_loop();
    struct hub_calls c;
    memset(&c, 0, sizeof c);
    c.grp = green_group_new();
    c.pool = green_pool_new(1);
    green_t *gm = green_group_spawn(c.grp, fn_work_ms, (void *)(intptr_t)100);
    green_t *pm = green_pool_spawn(c.pool, fn_work_ms, (void *)(intptr_t)100);
    green_yield(); /* both members are sleeping before the timer starts */
    ev_now_update(loop);
    ev_timer t;
    ev_timer_init(&t, hub_timer_cb, 0.01, 0.);
    t.data = &c;
    ev_timer_start(loop, &t);
    ck_assert_int_eq(green_sleep(0.05), 0);
    ck_assert(c.ran);
    for (int i = 0; i < 8; i++)
        ck_assert_msg(c.rcs[i] == -1 && c.errs[i] == EDEADLK, "hub call %d: rc %d errno %d", i,
                      c.rcs[i], c.errs[i]);
    ev_timer_stop(loop, &t);
    ck_assert_ptr_nonnull(c.spawned[0]);
    ck_assert_int_eq(green_group_join(c.grp, 5.0), 0);
    ck_assert_int_eq(green_pool_join(c.pool, 5.0), 0);
    /* The group's member was marked by the hub's kill (it marks before it
     * finds it cannot wait). */
    ck_assert(green_killed(gm));
    ck_assert(!green_killed(pm));
    ck_assert_int_eq(started, 2);
    green_release(c.spawned[0]);
    green_release(gm);
    green_release(pm);
    green_group_free(c.grp);
    green_pool_free(c.pool);
}
END_TEST

struct foreign {
    green_group_t *grp;
    green_pool_t  *pool;
    green_t       *g;
    int            rcs[14], errs[14];
    size_t         size, free_count;
};

static void *foreign_thread(void *arg)
{
    struct foreign *f = arg;
    void *args[1] = {(void *)1}, *results[1];
    int i = 0;
#define RECORD(expr)                                                                 \
    do {                                                                             \
        errno = 0;                                                                   \
        f->rcs[i] = (expr);                                                          \
        f->errs[i] = errno;                                                          \
        i++;                                                                         \
    } while (0)
    RECORD(green_group_spawn(f->grp, fn_return_arg, NULL) == NULL ? -1 : 0);
    RECORD(green_group_add(f->grp, f->g));
    RECORD(green_group_discard(f->grp, f->g));
    RECORD(green_group_join(f->grp, 0));
    RECORD(green_group_kill(f->grp, 0));
    RECORD(green_group_map(f->grp, fn_return_arg, args, results, 1));
    RECORD(green_pool_spawn(f->pool, fn_return_arg, NULL) == NULL ? -1 : 0);
    RECORD(green_pool_wait_available(f->pool, 0));
    RECORD(green_pool_join(f->pool, 1.0));
    RECORD(green_pool_kill(f->pool, 1.0));
    RECORD(green_pool_map(f->pool, fn_return_arg, args, results, 1));
    RECORD(green_pool_imap_unordered(f->pool, fn_return_arg, args, 1, each_nothing, NULL));
#undef RECORD
    /* void calls from a foreign thread do nothing. */
    green_group_free(f->grp);
    green_pool_free(f->pool);
    f->size = green_group_size(f->grp);
    f->free_count = green_pool_free_count(f->pool);
    return NULL;
}

START_TEST(foreign_thread_gets_eperm)
{
    struct foreign f;
    memset(&f, 0, sizeof f);
    f.grp = green_group_new();
    f.pool = green_pool_new(2);
    f.g = green_group_spawn(f.grp, fn_work_ms, (void *)(intptr_t)30);
    green_t *pm = green_pool_spawn(f.pool, fn_work_ms, (void *)(intptr_t)30);
    green_yield();
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, foreign_thread, &f), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    for (int i = 0; i < 12; i++)
        ck_assert_msg(f.rcs[i] == -1 && f.errs[i] == EPERM, "foreign call %d: rc %d errno %d", i,
                      f.rcs[i], f.errs[i]);
    /* Nothing happened to either. */
    ck_assert_uint_eq(f.size, 1);
    ck_assert_uint_eq(f.free_count, 1);
    ck_assert_uint_eq(green_group_size(f.grp), 1);
    ck_assert(!green_killed(f.g) && !green_killed(pm));
    ck_assert_int_eq(green_group_join(f.grp, 5.0), 0);
    ck_assert_int_eq(green_pool_join(f.pool, 5.0), 0);
    ck_assert_int_eq(started, 2);
    green_release(f.g);
    green_release(pm);
    green_group_free(f.grp);
    green_pool_free(f.pool);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *group_suite(void)
{
    Suite *s = suite_create("group");
    TCase *tc = tcase_create("group");
    tcase_add_test(tc, group_spawn_does_not_switch_and_join_waits);
    tcase_add_test(tc, finished_members_are_dropped_as_they_finish);
    tcase_add_test(tc, add_and_discard);
    tcase_add_test(tc, add_current_and_main);
    tcase_add_test(tc, many_members);
    suite_add_tcase(s, tc);

    tc = tcase_create("join_kill");
    tcase_add_test(tc, group_join_timeouts);
    tcase_add_test(tc, join_from_member_is_edeadlk);
    tcase_add_test(tc, group_kill_kills_every_member);
    tcase_add_test(tc, group_kill_timeout_zero_marks_without_switching);
    tcase_add_test(tc, group_kill_waits_up_to_timeout);
    tcase_add_test(tc, group_kill_kills_newcomers);
    tcase_add_test(tc, group_kill_from_only_member);
    suite_add_tcase(s, tc);

    tc = tcase_create("group_map");
    tcase_add_test(tc, group_map_results_in_order_all_at_once);
    tcase_add_test(tc, group_map_workers_are_members);
    tcase_add_test(tc, map_results_null_for_killed_workers);
    tcase_add_test(tc, map_in_killed_greenlet_runs_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("pool");
    tcase_add_test(tc, pool_spawn_with_room_counts_at_once);
    tcase_add_test(tc, pool_spawn_waits_while_full_and_caps_concurrency);
    tcase_add_test(tc, pool_slots_are_handed_over_in_fifo_order);
    tcase_add_test(tc, pool_wait_available);
    tcase_add_test(tc, pool_wait_on_self_is_edeadlk);
    tcase_add_test(tc, pool_kill_and_join);
    suite_add_tcase(s, tc);

    tc = tcase_create("pool_map");
    tcase_add_test(tc, pool_map_fills_free_slots_results_in_order);
    tcase_add_test(tc, pool_map_shares_the_pool_with_other_spawns);
    tcase_add_test(tc, imap_unordered_in_arrival_order);
    tcase_add_test(tc, imap_each_may_block);
    suite_add_tcase(s, tc);

    tc = tcase_create("kill_timeout");
    tcase_add_loop_test(tc, kill_and_timeout_at_every_wait_point, 0, 2 * WP_COUNT);
    suite_add_tcase(s, tc);

    tc = tcase_create("free");
    tcase_add_test(tc, free_group_with_members_running);
    tcase_add_test(tc, free_pool_wakes_its_waiters_with_epipe);
    tcase_add_test(tc, free_group_during_map);
    tcase_add_test(tc, free_after_the_wake_keeps_its_result);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_add_test(tc, null_handles_and_arguments);
    tcase_add_test(tc, blocking_from_hub_is_edeadlk);
    tcase_add_test(tc, foreign_thread_gets_eperm);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(group_suite());
}
