/*
 * The thread pool (lib/threadpool.c): green_threadpool_call runs fn on an
 * OS thread while the calling greenlet waits cooperatively; the pool has
 * at most GREEN_THREADPOOL_SIZE threads; a killed or timed-out caller
 * returns at once while fn runs to its end and its result is dropped.
 *
 * GREEN_THREADPOOL_SIZE is read when the pool is first used: every test
 * runs in its own forked process, which has not used the pool yet, so a
 * test may set it first thing.
 *
 * Every test waits for the jobs it started to finish and for the hub to
 * take them back before it ends, so valgrind sees no job left behind.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/* A blocking call "at once" returns well within this (noisy machine). */
#define AT_ONCE (RUNNING_ON_VALGRIND ? 2.0 : 0.3)

/* Squares its argument (an integer carried in the pointer). */
static void *square(void *arg)
{
    intptr_t n = (intptr_t)arg;
    return (void *)(n * n);
}

/* Returns the OS thread it ran on, to tell the pool's threads apart. */
static void *which_thread(void *arg)
{
    (void)arg;
    return (void *)pthread_self();
}

/* Counts how many run at once; each takes a little while. */
static atomic_int running, most_running, ran;
static void *count_concurrency(void *arg)
{
    int now = atomic_fetch_add(&running, 1) + 1;
    int most = atomic_load(&most_running);
    while (now > most && !atomic_compare_exchange_weak(&most_running, &most, now))
        ;
    usleep(RUNNING_ON_VALGRIND ? 50000 : 10000); /* threads start slowly under valgrind */
    atomic_fetch_sub(&running, 1);
    atomic_fetch_add(&ran, 1);
    return arg;
}

/* A slow job: sleeps (blocking its OS thread), then marks itself finished. */
static atomic_int slow_finished;
static void *slow_job(void *arg)
{
    usleep((useconds_t)(intptr_t)arg * 1000);
    atomic_fetch_add(&slow_finished, 1);
    return (void *)(intptr_t)42;
}

/* Waits cooperatively until n slow jobs have finished, then lets the hub
 * collect them (a dropped result is disposed of when it arrives). */
static void wait_slow_jobs(int n)
{
    double end = tu_now() + 10;
    while (atomic_load(&slow_finished) < n) {
        ck_assert_msg(tu_now() < end, "the abandoned job never finished");
        green_sleep(0.01);
    }
    green_sleep(0.05);
}

/* A greenlet that calls the pool and records what it got. */
struct call {
    void *(*fn)(void *);
    void  *arg;
    double timeout;
    void  *result;
    int    rc, err;
    bool   done;
};

static void *caller(void *arg)
{
    struct call *c = arg;
    errno = 0;
    c->rc = green_threadpool_call(c->fn, c->arg, &c->result, c->timeout);
    c->err = errno;
    c->done = true;
    return NULL;
}

/* Counts ticks while the pool works: proves the caller waits cooperatively. */
static int ticks;
static void *ticker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        if (green_sleep(0.01) != 0)
            break;
        ticks++;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */

START_TEST(call_returns_the_result)
{
    void *result = NULL;
    ck_assert_int_eq(green_threadpool_call(square, (void *)(intptr_t)12, &result, 5), 0);
    ck_assert_int_eq((intptr_t)result, 144);
    ck_assert_int_eq(green_threadpool_call(square, (void *)(intptr_t)-3, &result, GREEN_FOREVER), 0);
    ck_assert_int_eq((intptr_t)result, 9);
    /* It ran on another thread. */
    ck_assert_int_eq(green_threadpool_call(which_thread, NULL, &result, 5), 0);
    ck_assert(!pthread_equal((pthread_t)result, pthread_self()));
    /* result may be NULL: the value is not wanted. */
    ck_assert_int_eq(green_threadpool_call(square, (void *)(intptr_t)5, NULL, 5), 0);
}
END_TEST

START_TEST(call_is_cooperative)
{
    green_t *t = green_spawn(ticker, NULL);
    double t0 = tu_now();
    void *result;
    ck_assert_int_eq(green_threadpool_call(slow_job, (void *)(intptr_t)200, &result, 5), 0);
    ck_assert_elapsed(t0, 0.15, 5);
    ck_assert_int_eq((intptr_t)result, 42);
    ck_assert_msg(ticks >= 5, "the hub ran only %d ticks while the job ran", ticks);
    ck_assert_int_eq(green_kill(t, 1), 0);
    green_release(t);
}
END_TEST

START_TEST(pool_size_bounds_concurrency)
{
    ck_assert_int_eq(setenv("GREEN_THREADPOOL_SIZE", "4", 1), 0);
    /* 100 callers; fewer under valgrind, whose leak check at exit takes
     * long over many greenlet stacks. */
    enum { NMAX = 100 };
    const int N = RUNNING_ON_VALGRIND ? 24 : NMAX;
    static struct call calls[NMAX];
    green_t *g[NMAX];
    for (int i = 0; i < N; i++) {
        calls[i] = (struct call){.fn = count_concurrency, .arg = (void *)(intptr_t)i, .timeout = 20};
        g[i] = green_spawn(caller, &calls[i]);
        ck_assert_ptr_nonnull(g[i]);
    }
    double t0 = tu_now();
    ck_assert_int_eq(green_joinall(g, (size_t)N, 20), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(calls[i].rc, 0);
        ck_assert_int_eq((intptr_t)calls[i].result, i);
        green_release(g[i]);
    }
    ck_assert_int_eq(atomic_load(&ran), N);
    int most = atomic_load(&most_running);
    ck_assert_msg(most <= 4, "%d jobs ran at once with GREEN_THREADPOOL_SIZE=4", most);
    /* And it did use more threads than the default on a 2-core machine. */
    ck_assert_msg(most >= 3, "only %d jobs ever ran at once with GREEN_THREADPOOL_SIZE=4", most);
    /* N jobs of 10 ms, at most 4 at a time: N * 2.5 ms at least. */
    ck_assert_elapsed(t0, N * 0.002, 20);
}
END_TEST

START_TEST(kill_while_waiting)
{
    struct call c = {.fn = slow_job, .arg = (void *)(intptr_t)1000, .timeout = GREEN_FOREVER,
                     .result = (void *)(intptr_t)-1};
    green_t *g = green_spawn(caller, &c);
    ck_assert_int_eq(green_sleep(0.05), 0);
    ck_assert(!c.done);
    double t0 = tu_now();
    ck_assert_int_eq(green_kill(g, 1), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    ck_assert_int_eq(c.rc, -1);
    ck_assert_int_eq(c.err, ECANCELED);
    ck_assert_int_eq((intptr_t)c.result, -1); /* dropped, not stored */
    green_release(g);
    /* fn still runs to its end on its thread. */
    ck_assert_int_eq(atomic_load(&slow_finished), 0);
    wait_slow_jobs(1);
    ck_assert_int_eq((intptr_t)c.result, -1);
    /* The pool still works. */
    void *result;
    ck_assert_int_eq(green_threadpool_call(square, (void *)(intptr_t)7, &result, 5), 0);
    ck_assert_int_eq((intptr_t)result, 49);
}
END_TEST

START_TEST(timeout_while_waiting)
{
    void *result = (void *)(intptr_t)-1;
    double t0 = tu_now();
    ck_assert_fails(green_threadpool_call(slow_job, (void *)(intptr_t)300, &result, 0.05),
                    ETIMEDOUT);
    ck_assert_elapsed(t0, 0.04, 0.05 + AT_ONCE);
    ck_assert_int_eq((intptr_t)result, -1);
    /* A green_timeout bounds it too. */
    green_timeout_t to;
    green_timeout_start(&to, 0.05);
    ck_assert_fails(green_threadpool_call(slow_job, (void *)(intptr_t)300, &result, 10),
                    ETIMEDOUT);
    ck_assert(green_timeout_cancel(&to));
    ck_assert_int_eq((intptr_t)result, -1);
    wait_slow_jobs(2);
}
END_TEST

START_TEST(timeout_zero_never_waits)
{
    atomic_store(&ran, 0);
    void *result = (void *)(intptr_t)-1;
    double t0 = tu_now();
    ck_assert_fails(green_threadpool_call(count_concurrency, NULL, &result, 0), EAGAIN);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    ck_assert_int_eq((intptr_t)result, -1);
    ck_assert_int_eq(green_sleep(0.05), 0);
    ck_assert_int_eq(atomic_load(&ran), 0); /* nothing was submitted */
}
END_TEST

START_TEST(bad_calls)
{
    void *result;
    ck_assert_fails(green_threadpool_call(NULL, NULL, &result, 1), EINVAL);
    ck_assert_fails(green_threadpool_call(NULL, NULL, NULL, 0), EINVAL);
    /* A killed greenlet's call fails at once and never runs fn. */
    atomic_store(&ran, 0);
    green_kill(green_current(), 0);
    double t0 = tu_now();
    ck_assert_fails(green_threadpool_call(count_concurrency, NULL, &result, 5), ECANCELED);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    usleep(50000);
    ck_assert_int_eq(atomic_load(&ran), 0);
}
END_TEST

START_TEST(idle_pool_hides_no_deadlock)
{
    /* Once its jobs are back, the pool neither keeps the hub alive nor
     * hides a deadlock. */
    void *result;
    ck_assert_int_eq(green_threadpool_call(square, (void *)(intptr_t)2, &result, 5), 0);
    green_event_t *e = green_event_new();
    double t0 = tu_now();
    ck_assert_fails(green_event_wait(e, GREEN_FOREVER), EDEADLK);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    green_event_free(e);
    ck_assert_int_eq(green_wait(1), 0);
}
END_TEST

/* Each OS thread has its own hub; both share the pool. */
static void *thread_calls(void *arg)
{
    intptr_t base = (intptr_t)arg, sum = 0;
    for (intptr_t i = 0; i < 50; i++) {
        void *r;
        if (green_threadpool_call(square, (void *)(base + i), &r, 10) != 0)
            return (void *)(intptr_t)-1;
        sum += (intptr_t)r;
    }
    return (void *)sum;
}

START_TEST(calls_from_several_threads)
{
    pthread_t t[3];
    for (intptr_t i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, thread_calls, (void *)(i * 100)), 0);
    void *mine = thread_calls((void *)(intptr_t)1000);
    for (intptr_t i = 0; i < 3; i++) {
        void *sum;
        ck_assert_int_eq(pthread_join(t[i], &sum), 0);
        intptr_t want = 0;
        for (intptr_t k = 0; k < 50; k++)
            want += (i * 100 + k) * (i * 100 + k);
        ck_assert_int_eq((intptr_t)sum, want);
    }
    intptr_t want = 0;
    for (intptr_t k = 0; k < 50; k++)
        want += (1000 + k) * (1000 + k);
    ck_assert_int_eq((intptr_t)mine, want);
}
END_TEST


/* A fork while jobs are out: in the child they can never arrive (the pool's
 * threads stayed in the parent), so their waiters fail with EAGAIN, nothing
 * is left waiting, and the pool works again there; the parent gets its
 * results as usual. */
static green_t *fork_callers[2];
static struct call fork_calls[2];

static void *fork_with_job_out(void *arg)
{
    (void)arg;
    green_sleep(0.05); /* the callers' jobs are out */
    pid_t pid = fork();
    if (pid == 0) {
        int code = 0;
        if (green_joinall(fork_callers, 2, 5.0) != 0) /* nothing is stuck */
            code = 1;
        for (int i = 0; i < 2; i++)
            if (fork_calls[i].rc != -1 || fork_calls[i].err != EAGAIN)
                code = 2;
        void *r = NULL;
        if (green_threadpool_call(square, (void *)(intptr_t)7, &r, 5.0) != 0 || r != (void *)(intptr_t)49)
            code = 3;
        _exit(code);
    }
    return (void *)(intptr_t)pid;
}

START_TEST(fork_with_jobs_out)
{
    struct call *c = fork_calls;
    green_t **g = fork_callers;
    for (int i = 0; i < 2; i++) {
        c[i] = (struct call){.fn = slow_job, .arg = (void *)(intptr_t)300, .timeout = -1};
        g[i] = green_spawn(caller, &c[i]);
    }
    green_t *f = green_spawn(fork_with_job_out, NULL);
    ck_assert_int_eq(green_join(f, 5.0), 0);
    pid_t pid = (pid_t)(intptr_t)green_value(f);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(green_joinall(g, 2, 5.0), 0);
    for (int i = 0; i < 2; i++) { /* the parent: results as usual */
        ck_assert_int_eq(c[i].rc, 0);
        ck_assert_ptr_eq(c[i].result, (void *)(intptr_t)42);
        green_release(g[i]);
    }
    green_release(f);
    int status;
    ck_assert_int_eq(green_waitpid(pid, &status, 10.0), 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %x", status);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threadpool");
    TCase *tc = tcase_create("threadpool");
    tcase_set_timeout(tc, RUNNING_ON_VALGRIND ? 120 : 20);
    tcase_add_test(tc, call_returns_the_result);
    tcase_add_test(tc, call_is_cooperative);
    tcase_add_test(tc, pool_size_bounds_concurrency);
    tcase_add_test(tc, kill_while_waiting);
    tcase_add_test(tc, timeout_while_waiting);
    tcase_add_test(tc, timeout_zero_never_waits);
    tcase_add_test(tc, bad_calls);
    tcase_add_test(tc, idle_pool_hides_no_deadlock);
    tcase_add_test(tc, calls_from_several_threads);
    tcase_add_test(tc, fork_with_jobs_out);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
