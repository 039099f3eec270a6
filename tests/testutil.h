/*
 * Helpers shared by the Check suites.
 *
 * Every test runs in its own forked process (Check's CK_FORK default) with a
 * timeout, so one corrupted stack fails one test. Timing assertions carry
 * generous tolerances: these are shared, noisy 2-core machines.
 */
#ifndef GREEN_TESTUTIL_H
#define GREEN_TESTUTIL_H

#include <check.h>
#include <pthread.h>
#include <errno.h>
#include <green.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic seconds. */
static inline double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A flag another greenlet sets: proves whether a call switched. */
static int tu_flag __attribute__((unused));
static inline void *tu_set_flag(void *arg)
{
    (void)arg;
    tu_flag = 1;
    return NULL;
}

/* Runs fn(arg) on a new OS thread and waits for it. */
static inline void tu_on_other_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, fn, arg), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
}

/* Busy-waits without yielding, so that timers come due while we run. */
static inline void tu_spin(double seconds)
{
    double end = tu_now() + seconds;
    while (tu_now() < end)
        ;
}

/* Asserts that expr returns -1 with errno == err. */
#define ck_assert_fails(expr, err)                                                   \
    do {                                                                             \
        errno = 0;                                                                   \
        long ck_r_ = (long)(expr);                                                   \
        int ck_e_ = errno;                                                           \
        ck_assert_msg(ck_r_ == -1 && ck_e_ == (err), "%s: got %ld errno %d (%s), want -1 %s", \
                      #expr, ck_r_, ck_e_, strerror(ck_e_), #err);                   \
    } while (0)

/* Asserts that a pointer-returning expr returns NULL with errno == err. */
#define ck_assert_null_errno(expr, err)                                              \
    do {                                                                             \
        errno = 0;                                                                   \
        const void *ck_p_ = (expr);                                                  \
        int ck_e_ = errno;                                                           \
        ck_assert_msg(ck_p_ == NULL && ck_e_ == (err), "%s: got %p errno %d (%s), want NULL %s", \
                      #expr, ck_p_, ck_e_, strerror(ck_e_), #err);                   \
    } while (0)

/* Elapsed time within [lo, hi] seconds. */
#define ck_assert_elapsed(t0, lo, hi)                                                \
    do {                                                                             \
        double ck_dt_ = tu_now() - (t0);                                             \
        ck_assert_msg(ck_dt_ >= (lo) && ck_dt_ <= (hi), "elapsed %.3f s, want %.3f..%.3f", \
                      ck_dt_, (double)(lo), (double)(hi));                           \
    } while (0)

/* Runs a suite; the process exits non-zero if any test failed. */
static inline int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
