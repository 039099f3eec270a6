/*
 * GREEN_MONITOR=<ms>: the watchdog reports a greenlet that runs past the
 * limit without yielding, naming it, and stays quiet for greenlets that
 * yield. Each case runs in a child whose stderr is captured, because the
 * monitor reads the environment once, when the first hub is created.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static void spin_ms(double ms, bool yield)
{
    double t0 = tu_now();
    while ((tu_now() - t0) * 1e3 < ms)
        if (yield)
            green_yield();
}

/* Ten times the limit the tests set, so that a slow run (valgrind runs one
 * thread at a time) still gives the monitor thread its turns. */
static void *spinner(void *arg)
{
    spin_ms(1000, false);
    return arg;
}

static void *polite(void *arg)
{
    spin_ms(300, true);
    return arg;
}

/* Runs fn in a child with GREEN_MONITOR set; returns what it wrote on stderr. */
static char *run_child(const char *monitor, green_fn fn, const char *name)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        setenv("GREEN_MONITOR", monitor, 1);
        green_attr_t attr = {.name = name};
        green_t *g = green_spawn_attr(&attr, fn, NULL);
        green_join(g, GREEN_FOREVER);
        green_release(g);
        _exit(0);
    }
    close(fds[1]);
    static char buf[4096];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return buf;
}

START_TEST(test_reports_blocking_greenlet)
{
    char *err = run_child("100", spinner, "spinner");
    ck_assert_msg(strstr(err, "libgreen: monitor: greenlet ") != NULL, "stderr: %s", err);
    ck_assert_msg(strstr(err, "'spinner'") != NULL, "stderr: %s", err);
    ck_assert_msg(strstr(err, "blocks the hub") != NULL, "stderr: %s", err);
}
END_TEST

/* In a child forked by a process whose monitor runs, a new monitor thread
 * watches the child's hub. */
static void *fork_then_spin(void *arg)
{
    /* The monitor thread started with the hub a moment ago. A fork while it
     * is still starting can leave AddressSanitizer's own locks held in the
     * child (then no thread starts there): let it settle first. */
    green_sleep(0.05);
    pid_t pid = fork();
    if (pid < 0)
        return (void *)1;
    if (pid == 0) {
        green_attr_t attr = {.name = "forked-spinner"};
        green_t *g = green_spawn_attr(&attr, spinner, NULL);
        green_join(g, GREEN_FOREVER);
        _exit(0);
    }
    int status;
    if (green_waitpid(pid, &status, GREEN_FOREVER) != 0)
        return (void *)1;
    return arg;
}

START_TEST(test_reports_in_forked_child)
{
    char *err = run_child("100", fork_then_spin, "forker");
    ck_assert_msg(strstr(err, "'forked-spinner'") != NULL, "stderr: %s", err);
    ck_assert_msg(strstr(err, "blocks the hub") != NULL, "stderr: %s", err);
}
END_TEST

START_TEST(test_quiet_for_yielding_greenlet)
{
    char *err = run_child("100", polite, "polite");
    ck_assert_msg(err[0] == '\0', "unexpected report: %s", err);
}
END_TEST

START_TEST(test_off_without_env)
{
    char *err = run_child("0", spinner, "spinner");
    ck_assert_msg(err[0] == '\0', "unexpected report: %s", err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("monitor");
    TCase *tc = tcase_create("monitor");
    tcase_add_test(tc, test_reports_blocking_greenlet);
    tcase_add_test(tc, test_reports_in_forked_child);
    tcase_add_test(tc, test_quiet_for_yielding_greenlet);
    tcase_add_test(tc, test_off_without_env);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
