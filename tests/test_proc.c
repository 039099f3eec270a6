/*
 * Processes and signals (lib/proc.c): green_waitpid and green_signal_wait.
 *
 * green_waitpid must reap only the child it is asked about, so the
 * program's own waitpid(2) calls keep working, and must give the program's
 * SIGCHLD disposition back once nobody waits. green_signal_wait wakes every
 * waiter, keeps its handler installed between waits (a signal then is not
 * fatal, and is kept for the next wait), and a signal belongs to one hub.
 *
 * Children are forked by the tests and end by exec'ing `sh -c "exit N"`, so
 * they never run Check's code (nor, under valgrind, a leak check of their
 * own); most exit when told to through a pipe rather than after a delay,
 * which keeps the orderings the tests rely on deterministic on a loaded
 * machine.
 */
#include <pthread.h>
#include <signal.h>
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

/* ------------------------------------------------------------------------ */
/* Children                                                                   */
/* ------------------------------------------------------------------------ */

/* Ends a forked child with `code` through exec, so that under valgrind the
 * child does not run a leak check over the memory it shares with the test
 * (it would take seconds and report the parent's blocks as lost). */
__attribute__((noreturn)) static void child_exit(int code)
{
    char cmd[32];
    snprintf(cmd, sizeof cmd, "exit %d", code);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(code);
}

/* A child that exits with `code` after `delay` seconds. */
static pid_t child_after(double delay, int code)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (delay > 0)
            usleep((useconds_t)(delay * 1e6));
        child_exit(code);
    }
    return pid;
}

/* A child that exits with `code` when a byte is written to *tell (or when
 * *tell is closed). */
static pid_t child_on_cue(int code, int *tell)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[1]);
        char c;
        while (read(fds[0], &c, 1) < 0 && errno == EINTR)
            ;
        child_exit(code);
    }
    close(fds[0]);
    *tell = fds[1];
    return pid;
}

static void cue(int tell)
{
    ck_assert_int_eq(write(tell, "x", 1), 1);
    close(tell);
}

/* Waits, cooperatively and without reaping it, until pid has exited. */
static void wait_zombie(pid_t pid)
{
    double end = tu_now() + 10;
    for (;;) {
        siginfo_t si;
        si.si_pid = 0;
        ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
        if (si.si_pid == pid)
            return;
        ck_assert_msg(tu_now() < end, "child %d did not exit", (int)pid);
        green_sleep(0.005);
    }
}

/* A greenlet that waits for a child and records what it got. */
struct pid_wait {
    pid_t  pid;
    double timeout;
    int    rc, err, status;
    bool   done;
};

static void *pid_waiter(void *arg)
{
    struct pid_wait *w = arg;
    errno = 0;
    w->rc = green_waitpid(w->pid, &w->status, w->timeout);
    w->err = errno;
    w->done = true;
    return NULL;
}

/* Counts ticks while another greenlet waits: proves the wait cooperates. */
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

static struct sigaction sigchld_now(void)
{
    struct sigaction sa;
    ck_assert_int_eq(sigaction(SIGCHLD, NULL, &sa), 0);
    return sa;
}

/* ------------------------------------------------------------------------ */
/* green_waitpid                                                              */
/* ------------------------------------------------------------------------ */

/* Sleeps 0.2 s, then tells the child (its fd in arg) to exit. */
static void *cue_later(void *arg)
{
    ck_assert_int_eq(green_sleep(0.2), 0);
    cue((int)(intptr_t)arg);
    return NULL;
}

START_TEST(waitpid_child_exits_later)
{
    int tell;
    pid_t pid = child_on_cue(7, &tell);
    /* Another greenlet runs while the main one waits, and ends the child. */
    green_t *c = green_spawn(cue_later, (void *)(intptr_t)tell);
    green_t *t = green_spawn(ticker, NULL);
    int status = -1;
    double t0 = tu_now();
    ck_assert_int_eq(green_waitpid(pid, &status, 10), 0);
    ck_assert_elapsed(t0, 0.15, 5);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 7);
    ck_assert_msg(ticks >= 3, "the hub ran only %d ticks while waiting", ticks);
    /* Reaped: it is nobody's child any more. */
    ck_assert_fails(green_waitpid(pid, &status, 0), ECHILD);
    ck_assert_int_eq(green_join(c, 1), 0);
    ck_assert_int_eq(green_kill(t, 1), 0);
    green_release(c);
    green_release(t);
}
END_TEST

START_TEST(waitpid_child_exited_before_the_call)
{
    pid_t pid = child_after(0, 3);
    wait_zombie(pid);
    int status = -1;
    double t0 = tu_now();
    /* Nothing to wait for: even timeout 0 succeeds. */
    ck_assert_int_eq(green_waitpid(pid, &status, 0), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 3);

    /* The same through the parked path: the child ends with a SIGCHLD
     * nobody was listening for, then the call comes. */
    pid = child_after(0, 4);
    wait_zombie(pid);
    ck_assert_int_eq(green_waitpid(pid, &status, 5), 0);
    ck_assert_int_eq(WEXITSTATUS(status), 4);
}
END_TEST

START_TEST(waitpid_child_ending_at_the_call)
{
    /* Children that end while green_waitpid is starting its watcher: one
     * whose SIGCHLD came just before the watcher must still be seen (a
     * wait that missed it would run out of time). Natively the children
     * _exit at once, to hit the window often; under valgrind they exec, so
     * as not to run a leak check each. At most 4 s of them: fork is slow
     * under sanitizers and on a loaded machine. */
    int n = RUNNING_ON_VALGRIND ? 5 : 300;
    double end = tu_now() + 4;
    for (int i = 0; i < n && (i < 5 || tu_now() < end); i++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            if (RUNNING_ON_VALGRIND)
                child_exit(i & 0x7f);
            _exit(i & 0x7f);
        }
        int status = -1;
        ck_assert_msg(green_waitpid(pid, &status, 2) == 0, "child %d: %s", i, strerror(errno));
        ck_assert_int_eq(WEXITSTATUS(status), i & 0x7f);
    }
}
END_TEST

START_TEST(waitpid_status_may_be_null)
{
    pid_t pid = child_after(0.05, 1);
    ck_assert_int_eq(green_waitpid(pid, NULL, 10), 0);
    pid = child_after(0, 1);
    wait_zombie(pid);
    ck_assert_int_eq(green_waitpid(pid, NULL, 0), 0);
}
END_TEST

START_TEST(waitpid_not_a_child)
{
    int status;
    ck_assert_fails(green_waitpid(getppid(), &status, 1), ECHILD);
    ck_assert_fails(green_waitpid(getpid(), &status, 1), ECHILD);
    pid_t pid = child_after(0, 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid); /* the program reaps it */
    ck_assert_fails(green_waitpid(pid, &status, 1), ECHILD);
    ck_assert_fails(green_waitpid(pid, &status, 0), ECHILD);
    /* Nothing was installed for them. */
    ck_assert_ptr_eq((void *)sigchld_now().sa_handler, (void *)SIG_DFL);
}
END_TEST

START_TEST(waitpid_bad_pid)
{
    int status;
    ck_assert_fails(green_waitpid(0, &status, 1), EINVAL);
    ck_assert_fails(green_waitpid(-1, &status, 1), EINVAL);
    ck_assert_fails(green_waitpid(-getpid(), &status, 1), EINVAL);
}
END_TEST

START_TEST(waitpid_timeout)
{
    int tell;
    pid_t pid = child_on_cue(9, &tell);
    int status = -1;
    double t0 = tu_now();
    ck_assert_fails(green_waitpid(pid, &status, 0), EAGAIN);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    t0 = tu_now();
    ck_assert_fails(green_waitpid(pid, &status, 0.1), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.09, 2);
    ck_assert_int_eq(status, -1);
    /* Nobody waits: SIGCHLD is the program's again. */
    ck_assert_ptr_eq((void *)sigchld_now().sa_handler, (void *)SIG_DFL);
    /* A green_timeout bounds it too. */
    green_timeout_t to;
    green_timeout_start(&to, 0.05);
    ck_assert_fails(green_waitpid(pid, &status, 10), ETIMEDOUT);
    ck_assert(green_timeout_cancel(&to));
    /* The child is still there to be waited for. */
    cue(tell);
    ck_assert_int_eq(green_waitpid(pid, &status, 10), 0);
    ck_assert_int_eq(WEXITSTATUS(status), 9);
}
END_TEST

START_TEST(waitpid_killed_while_waiting)
{
    int tell;
    pid_t pid = child_on_cue(5, &tell);
    struct pid_wait w = {.pid = pid, .timeout = GREEN_FOREVER};
    green_t *g = green_spawn(pid_waiter, &w);
    ck_assert_int_eq(green_sleep(0.05), 0);
    ck_assert(!w.done);
    double t0 = tu_now();
    ck_assert_int_eq(green_kill(g, 1), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    ck_assert(w.done);
    ck_assert_int_eq(w.rc, -1);
    ck_assert_int_eq(w.err, ECANCELED);
    green_release(g);
    ck_assert_ptr_eq((void *)sigchld_now().sa_handler, (void *)SIG_DFL);
    /* A killed greenlet's later calls fail at once, even with nothing to wait for. */
    cue(tell);
    wait_zombie(pid);
    green_kill(green_current(), 0);
    int status;
    ck_assert_fails(green_waitpid(pid, &status, 10), ECANCELED);
    /* The child is still the program's to reap. */
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(WEXITSTATUS(status), 5);
}
END_TEST

START_TEST(waitpid_two_greenlets_two_children)
{
    int tell_a, tell_b;
    struct pid_wait a = {.pid = child_on_cue(1, &tell_a), .timeout = 10};
    struct pid_wait b = {.pid = child_on_cue(2, &tell_b), .timeout = 10};
    green_t *ga = green_spawn(pid_waiter, &a), *gb = green_spawn(pid_waiter, &b);
    green_t *gs[2] = {ga, gb};
    green_iwait_t *it = green_iwait_new(gs, 2);
    ck_assert_null_errno(green_iwait_next(it, 0.05), ETIMEDOUT);
    cue(tell_b); /* b's child ends first */
    ck_assert_ptr_eq(green_iwait_next(it, 10), gb);
    ck_assert(!a.done);
    cue(tell_a);
    ck_assert_ptr_eq(green_iwait_next(it, 10), ga);
    green_iwait_free(it);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_int_eq(WEXITSTATUS(a.status), 1);
    ck_assert_int_eq(WEXITSTATUS(b.status), 2);
    green_release(ga);
    green_release(gb);
}
END_TEST

START_TEST(waitpid_two_greenlets_one_child)
{
    /* Both waiters of one pid get its status. */
    int tell;
    pid_t pid = child_on_cue(6, &tell);
    struct pid_wait a = {.pid = pid, .timeout = 10}, b = {.pid = pid, .timeout = 10};
    green_t *ga = green_spawn(pid_waiter, &a), *gb = green_spawn(pid_waiter, &b);
    ck_assert_int_eq(green_sleep(0.05), 0);
    cue(tell);
    ck_assert_int_eq(green_join(ga, 10), 0);
    ck_assert_int_eq(green_join(gb, 10), 0);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_int_eq(WEXITSTATUS(a.status), 6);
    ck_assert_int_eq(WEXITSTATUS(b.status), 6);
    green_release(ga);
    green_release(gb);
}
END_TEST

START_TEST(waitpid_second_waiter_reaps_first)
{
    /* One greenlet waits for a child; the child ends and a second greenlet
     * asks for it before the hub has handled the SIGCHLD: the second reaps
     * it, and the first gets the same status rather than ECHILD. */
    int tell;
    pid_t pid = child_on_cue(14, &tell);
    struct pid_wait a = {.pid = pid, .timeout = 10};
    green_t *ga = green_spawn(pid_waiter, &a);
    ck_assert_int_eq(green_sleep(0.02), 0);
    cue(tell);
    siginfo_t si;
    ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0); /* blocks the hub */
    int status = -1;
    ck_assert_int_eq(green_waitpid(pid, &status, 0), 0);
    ck_assert_int_eq(WEXITSTATUS(status), 14);
    ck_assert_int_eq(green_join(ga, 10), 0);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(WEXITSTATUS(a.status), 14);
    green_release(ga);
}
END_TEST

START_TEST(waitpid_leaves_other_children_alone)
{
    /* The other child ends first, while green_waitpid waits with SIGCHLD
     * installed: the library must not reap it. */
    int tell_a;
    pid_t a = child_on_cue(11, &tell_a);
    pid_t b = child_after(0, 22);
    struct pid_wait w = {.pid = a, .timeout = 10};
    green_t *g = green_spawn(pid_waiter, &w);
    ck_assert_int_eq(green_sleep(0.05), 0);
    wait_zombie(b);
    ck_assert_int_eq(green_sleep(0.05), 0); /* its SIGCHLD has been handled */
    ck_assert(!w.done);
    cue(tell_a);
    ck_assert_int_eq(green_join(g, 10), 0);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_int_eq(WEXITSTATUS(w.status), 11);
    green_release(g);
    int status = -1;
    ck_assert_int_eq(waitpid(b, &status, WNOHANG), b);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 22);
    /* And a plain blocking waitpid of a third child works as before. */
    pid_t c = child_after(0.02, 33);
    ck_assert_int_eq(waitpid(c, &status, 0), c);
    ck_assert_int_eq(WEXITSTATUS(status), 33);
}
END_TEST

static volatile sig_atomic_t program_sigchld;
static void program_handler(int sig)
{
    (void)sig;
    program_sigchld++;
}

START_TEST(waitpid_restores_the_programs_handler)
{
    struct sigaction mine;
    memset(&mine, 0, sizeof mine);
    mine.sa_handler = program_handler;
    mine.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&mine.sa_mask);
    sigaddset(&mine.sa_mask, SIGUSR2);
    ck_assert_int_eq(sigaction(SIGCHLD, &mine, NULL), 0);

    /* The program's own child b ends while green_waitpid holds SIGCHLD. */
    int tell_a, tell_b;
    pid_t a = child_on_cue(1, &tell_a);
    pid_t b = child_on_cue(2, &tell_b);
    struct pid_wait w = {.pid = a, .timeout = 10};
    green_t *g = green_spawn(pid_waiter, &w);
    ck_assert_int_eq(green_sleep(0.05), 0);
    ck_assert_ptr_ne((void *)sigchld_now().sa_handler, (void *)program_handler);
    program_sigchld = 0;
    cue(tell_b);
    wait_zombie(b);
    cue(tell_a);
    ck_assert_int_eq(green_join(g, 10), 0);
    ck_assert_int_eq(w.rc, 0);
    green_release(g);

    /* The program's disposition is back, flags and mask included... */
    struct sigaction now = sigchld_now();
    ck_assert_ptr_eq((void *)now.sa_handler, (void *)program_handler);
    ck_assert(now.sa_flags & SA_NOCLDSTOP);
    ck_assert(now.sa_flags & SA_RESTART);
    ck_assert(sigismember(&now.sa_mask, SIGUSR2));
    /* ...its handler heard about b, which is still its to reap. */
    ck_assert_int_ge(program_sigchld, 1);
    int status;
    ck_assert_int_eq(waitpid(b, &status, WNOHANG), b);
    ck_assert_int_eq(WEXITSTATUS(status), 2);

    /* The handler keeps working after the library is done. */
    program_sigchld = 0;
    pid_t c = child_after(0, 3);
    ck_assert_int_eq(waitpid(c, &status, 0), c);
    for (int i = 0; i < 200 && !program_sigchld; i++)
        usleep(1000);
    ck_assert_int_ge(program_sigchld, 1);
}
END_TEST

START_TEST(waitpid_with_sigchld_ignored)
{
    /* SIG_IGN makes the kernel reap children itself; green_waitpid still
     * gets the status of a child that ends while it waits, and the program
     * gets SIG_IGN back. */
    signal(SIGCHLD, SIG_IGN);
    int tell;
    pid_t pid = child_on_cue(8, &tell);
    green_t *c = green_spawn(cue_later, (void *)(intptr_t)tell);
    int status = -1;
    ck_assert_int_eq(green_waitpid(pid, &status, 10), 0);
    ck_assert_int_eq(green_join(c, 1), 0);
    green_release(c);
    ck_assert_int_eq(WEXITSTATUS(status), 8);
    ck_assert_ptr_eq((void *)sigchld_now().sa_handler, (void *)SIG_IGN);
}
END_TEST

START_TEST(waitpid_with_sigchld_blocked)
{
    /* A program that blocks SIGCHLD (to sigwait for it, say) still gets its
     * green_waitpid, and finds SIGCHLD blocked again afterwards, with the
     * notification for its own child that ended meanwhile pending. */
    sigset_t chld, mask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &chld, NULL), 0);
    int tell, tell_b;
    pid_t pid = child_on_cue(12, &tell);
    pid_t b = child_on_cue(13, &tell_b);
    struct pid_wait w = {.pid = pid, .timeout = 10};
    green_t *g = green_spawn(pid_waiter, &w);
    ck_assert_int_eq(green_sleep(0.05), 0);
    cue(tell_b);
    wait_zombie(b);
    cue(tell);
    ck_assert_int_eq(green_join(g, 10), 0);
    green_release(g);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_int_eq(WEXITSTATUS(w.status), 12);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
    ck_assert(sigismember(&mask, SIGCHLD));
    struct timespec zero = {0, 0};
    ck_assert_int_eq(sigtimedwait(&chld, NULL, &zero), SIGCHLD);
    int status;
    ck_assert_int_eq(waitpid(b, &status, WNOHANG), b);
    ck_assert_int_eq(WEXITSTATUS(status), 13);
}
END_TEST

/* Another OS thread's hub: SIGCHLD is taken while green_waitpid waits here. */
struct thread_call {
    pid_t pid;
    int   rc, err;
};

static void *thread_waitpid(void *arg)
{
    struct thread_call *c = arg;
    errno = 0;
    c->rc = green_waitpid(c->pid, NULL, 1);
    c->err = errno;
    return NULL;
}

static void on_other_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, fn, arg), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
}

START_TEST(waitpid_from_two_threads)
{
    int tell_a, tell_b;
    pid_t a = child_on_cue(1, &tell_a);
    pid_t b = child_on_cue(2, &tell_b);
    struct pid_wait w = {.pid = a, .timeout = 10};
    green_t *g = green_spawn(pid_waiter, &w);
    ck_assert_int_eq(green_sleep(0.05), 0);
    /* This hub holds SIGCHLD: another thread's hub cannot wait. */
    struct thread_call c = {.pid = b};
    on_other_thread(thread_waitpid, &c);
    ck_assert_int_eq(c.rc, -1);
    ck_assert_int_eq(c.err, EPERM);
    cue(tell_a);
    ck_assert_int_eq(green_join(g, 10), 0);
    ck_assert_int_eq(w.rc, 0);
    green_release(g);
    /* Given back once nobody waits here: now the other thread can. */
    cue(tell_b);
    c.rc = -2;
    on_other_thread(thread_waitpid, &c);
    ck_assert_int_eq(c.rc, 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* green_signal_wait                                                          */
/* ------------------------------------------------------------------------ */

struct sig_wait {
    int    sig;
    double timeout;
    int    rc, err;
    bool   done;
};

static void *sig_waiter(void *arg)
{
    struct sig_wait *w = arg;
    errno = 0;
    w->rc = green_signal_wait(w->sig, w->timeout);
    w->err = errno;
    w->done = true;
    return NULL;
}

/* Spawns n waiters on sig, lets them park, sends the signal with `send`,
 * and checks every one of them woke with 0. */
static void wake_all(int sig, int n, bool by_kill)
{
    struct sig_wait w[8];
    green_t *g[8];
    ck_assert_int_le(n, 8);
    for (int i = 0; i < n; i++) {
        w[i] = (struct sig_wait){.sig = sig, .timeout = 10};
        g[i] = green_spawn(sig_waiter, &w[i]);
    }
    ck_assert_int_eq(green_sleep(0.05), 0);
    for (int i = 0; i < n; i++)
        ck_assert(!w[i].done);
    double t0 = tu_now();
    if (by_kill)
        ck_assert_int_eq(kill(getpid(), sig), 0);
    else
        ck_assert_int_eq(raise(sig), 0);
    ck_assert_int_eq(green_joinall(g, (size_t)n, 10), 0);
    ck_assert_elapsed(t0, 0, 2);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(w[i].rc, 0);
        green_release(g[i]);
    }
}

START_TEST(signal_wakes_every_waiter)
{
    wake_all(SIGUSR1, 3, false);
    wake_all(SIGUSR1, 4, true);
    wake_all(SIGUSR2, 1, true);
}
END_TEST

START_TEST(signal_main_greenlet_waits)
{
    /* The main greenlet alone, the signal from another process. A first
     * wait installs the handler, so that the signal cannot come too early
     * whatever the timing (it would then be kept for the wait below). */
    ck_assert_fails(green_signal_wait(SIGUSR1, 0.001), ETIMEDOUT);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        usleep(100000);
        kill(parent, SIGUSR1);
        child_exit(0);
    }
    double t0 = tu_now();
    ck_assert_int_eq(green_signal_wait(SIGUSR1, 10), 0);
    ck_assert_elapsed(t0, 0.05, 5);
    ck_assert_int_eq(green_waitpid(pid, NULL, 10), 0);
}
END_TEST

START_TEST(signal_bad_numbers)
{
    ck_assert_fails(green_signal_wait(SIGKILL, 1), EINVAL);
    ck_assert_fails(green_signal_wait(SIGSTOP, 1), EINVAL);
    ck_assert_fails(green_signal_wait(0, 1), EINVAL);
    ck_assert_fails(green_signal_wait(-1, 1), EINVAL);
    ck_assert_fails(green_signal_wait(NSIG, 1), EINVAL);
    ck_assert_fails(green_signal_wait(NSIG + 1, 1), EINVAL);
    ck_assert_fails(green_signal_wait(100000, 0), EINVAL);
}
END_TEST

START_TEST(signal_timeouts)
{
    double t0 = tu_now();
    ck_assert_fails(green_signal_wait(SIGUSR2, 0), EAGAIN);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    t0 = tu_now();
    ck_assert_fails(green_signal_wait(SIGUSR2, 0.1), ETIMEDOUT);
    ck_assert_elapsed(t0, 0.09, 2);
    green_timeout_t to;
    green_timeout_start(&to, 0.05);
    ck_assert_fails(green_signal_wait(SIGUSR2, GREEN_FOREVER), ETIMEDOUT);
    ck_assert(green_timeout_cancel(&to));
}
END_TEST

START_TEST(signal_killed_while_waiting)
{
    struct sig_wait w = {.sig = SIGUSR1, .timeout = GREEN_FOREVER};
    green_t *g = green_spawn(sig_waiter, &w);
    ck_assert_int_eq(green_sleep(0.05), 0);
    double t0 = tu_now();
    ck_assert_int_eq(green_kill(g, 1), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    ck_assert_int_eq(w.rc, -1);
    ck_assert_int_eq(w.err, ECANCELED);
    green_release(g);
    green_kill(green_current(), 0);
    ck_assert_fails(green_signal_wait(SIGUSR1, 1), ECANCELED);
}
END_TEST

START_TEST(signal_sticky_handler)
{
    /* After the first wait the handler stays: a signal while nobody waits
     * does not kill the process, and it is kept (once, like a pending
     * blocked signal) for the next wait, which returns at once. */
    ck_assert_fails(green_signal_wait(SIGUSR1, 0.02), ETIMEDOUT);
    struct sigaction sa;
    ck_assert_int_eq(sigaction(SIGUSR1, NULL, &sa), 0);
    ck_assert_ptr_ne((void *)sa.sa_handler, (void *)SIG_DFL);
    ck_assert_int_eq(raise(SIGUSR1), 0);
    ck_assert_int_eq(raise(SIGUSR1), 0);
    ck_assert_int_eq(green_sleep(0.02), 0); /* the hub sees them, nobody waits */
    double t0 = tu_now();
    ck_assert_int_eq(green_signal_wait(SIGUSR1, 0), 0);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    /* Two signals with nobody waiting count once. */
    ck_assert_fails(green_signal_wait(SIGUSR1, 0), EAGAIN);
    ck_assert_fails(green_signal_wait(SIGUSR1, 0.05), ETIMEDOUT);
    /* A second signal after the first wait wakes a new waiter. */
    wake_all(SIGUSR1, 2, false);
    wake_all(SIGUSR1, 2, true);
}
END_TEST

START_TEST(signal_idle_handler_hides_no_deadlock)
{
    /* The installed-but-idle handler neither keeps the hub alive nor hides
     * a deadlock: waiting on an event nobody can set fails with EDEADLK. */
    ck_assert_fails(green_signal_wait(SIGUSR1, 0.02), ETIMEDOUT);
    green_event_t *e = green_event_new();
    double t0 = tu_now();
    ck_assert_fails(green_event_wait(e, GREEN_FOREVER), EDEADLK);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    /* Nor does the SIGCHLD watcher once green_waitpid is done. */
    ck_assert_int_eq(green_waitpid(child_after(0.02, 0), NULL, 10), 0);
    t0 = tu_now();
    ck_assert_fails(green_event_wait(e, GREEN_FOREVER), EDEADLK);
    ck_assert_elapsed(t0, 0, AT_ONCE);
    green_event_free(e);
}
END_TEST

START_TEST(signal_wait_and_waitpid_share_sigchld)
{
    struct sig_wait w = {.sig = SIGCHLD, .timeout = 10};
    green_t *g = green_spawn(sig_waiter, &w);
    ck_assert_int_eq(green_sleep(0.02), 0);
    int status;
    ck_assert_int_eq(green_waitpid(child_after(0.05, 4), &status, 10), 0);
    ck_assert_int_eq(WEXITSTATUS(status), 4);
    ck_assert_int_eq(green_join(g, 10), 0);
    ck_assert_int_eq(w.rc, 0);
    green_release(g);
    /* A green_signal_wait(SIGCHLD) keeps the handler: the program's own
     * waitpid still works, since the library reaps nothing by itself. */
    pid_t pid = child_after(0, 5);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(WEXITSTATUS(status), 5);
}
END_TEST

static void *thread_signal_wait(void *arg)
{
    struct thread_call *c = arg;
    errno = 0;
    c->rc = green_signal_wait(SIGUSR1, 0.05);
    c->err = errno;
    return NULL;
}

START_TEST(signal_owned_by_one_hub)
{
    /* This thread's hub owns SIGUSR1 from its first wait on. */
    ck_assert_fails(green_signal_wait(SIGUSR1, 0.01), ETIMEDOUT);
    struct thread_call c = {0};
    on_other_thread(thread_signal_wait, &c);
    ck_assert_int_eq(c.rc, -1);
    ck_assert_int_eq(c.err, EPERM);
    /* Still this hub's to wait on. */
    wake_all(SIGUSR1, 1, true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("proc");
    TCase *tw = tcase_create("waitpid");
    tcase_set_timeout(tw, RUNNING_ON_VALGRIND ? 120 : 20);
    tcase_add_test(tw, waitpid_child_exits_later);
    tcase_add_test(tw, waitpid_child_exited_before_the_call);
    tcase_add_test(tw, waitpid_child_ending_at_the_call);
    tcase_add_test(tw, waitpid_status_may_be_null);
    tcase_add_test(tw, waitpid_not_a_child);
    tcase_add_test(tw, waitpid_bad_pid);
    tcase_add_test(tw, waitpid_timeout);
    tcase_add_test(tw, waitpid_killed_while_waiting);
    tcase_add_test(tw, waitpid_two_greenlets_two_children);
    tcase_add_test(tw, waitpid_two_greenlets_one_child);
    tcase_add_test(tw, waitpid_second_waiter_reaps_first);
    tcase_add_test(tw, waitpid_leaves_other_children_alone);
    tcase_add_test(tw, waitpid_restores_the_programs_handler);
    tcase_add_test(tw, waitpid_with_sigchld_ignored);
    tcase_add_test(tw, waitpid_with_sigchld_blocked);
    tcase_add_test(tw, waitpid_from_two_threads);
    suite_add_tcase(s, tw);
    TCase *ts = tcase_create("signal");
    tcase_set_timeout(ts, RUNNING_ON_VALGRIND ? 120 : 20);
    tcase_add_test(ts, signal_wakes_every_waiter);
    tcase_add_test(ts, signal_main_greenlet_waits);
    tcase_add_test(ts, signal_bad_numbers);
    tcase_add_test(ts, signal_timeouts);
    tcase_add_test(ts, signal_killed_while_waiting);
    tcase_add_test(ts, signal_sticky_handler);
    tcase_add_test(ts, signal_idle_handler_hides_no_deadlock);
    tcase_add_test(ts, signal_wait_and_waitpid_share_sigchld);
    tcase_add_test(ts, signal_owned_by_one_hub);
    suite_add_tcase(s, ts);
    return tu_run(s);
}
