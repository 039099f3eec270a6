/*
 * The samples (samples/NAME.c, built into BUILD/samples/): each is run as a
 * user would run it, with no arguments, and its stdout is checked against
 * what the recipe it ports prints. They are found relative to this binary
 * (BUILD/tests/test_samples -> BUILD/samples/NAME, through /proc/self/exe),
 * so every build directory (asan, valgrind, ucontext) checks its own.
 */
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* What a run of a sample gave. */
struct run {
    char   out[16384];
    size_t len;
    int    status;   /* as waitpid's */
    double elapsed;
    char  *lines[256];
    size_t nlines;
};

/* BUILD/samples/NAME, from this binary's BUILD/tests/test_samples. */
static void sample_path(const char *name, char *path, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ck_assert_msg(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
    exe[n] = '\0';
    char *slash = strrchr(exe, '/'); /* BUILD/tests/ */
    ck_assert_ptr_nonnull(slash);
    *slash = '\0';
    slash = strrchr(exe, '/'); /* BUILD/ */
    ck_assert_ptr_nonnull(slash);
    *slash = '\0';
    snprintf(path, size, "%s/samples/%s", exe, name);
    ck_assert_msg(access(path, X_OK) == 0, "%s: %s (build it with `make samples`)", path,
                  strerror(errno));
}

/* Runs the sample with no arguments and collects its stdout, split in lines. */
static void run_sample(const char *name, struct run *r)
{
    char path[PATH_MAX + 64];
    sample_path(name, path, sizeof path);
    memset(r, 0, sizeof *r);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    double t0 = tu_now();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        alarm(30); /* "exits within 30 s": past that, SIGALRM ends it */
        execl(path, name, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        ssize_t n = read(fds[0], r->out + r->len, sizeof r->out - 1 - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        r->len += (size_t)n;
        if (r->len == sizeof r->out - 1)
            break;
    }
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &r->status, 0), pid);
    r->elapsed = tu_now() - t0;
    r->out[r->len] = '\0';
    ck_assert_msg(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
                  "%s: status 0x%x (exit %d, signal %d); output:\n%s", name, r->status,
                  WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1,
                  WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0, r->out);
    ck_assert_msg(r->elapsed < 30, "%s took %.1f s", name, r->elapsed);
    for (char *save = NULL, *line = strtok_r(r->out, "\n", &save); line && r->nlines < 256;
         line = strtok_r(NULL, "\n", &save))
        r->lines[r->nlines++] = line;
}

/* ------------------------------------------------------------------------ */

START_TEST(boss_worker_hands_out_every_task_once_in_order)
{
    struct run r;
    run_sample("boss_worker", &r);
    static const char *names[3] = {"steve", "john", "nancy"};
    int used[3] = {0, 0, 0};
    int next_task = 1, quitting = 0;
    for (size_t i = 0; i < r.nlines; i++) {
        char name[32];
        int task, end = 0;
        if (sscanf(r.lines[i], "Worker %31s got task %d%n", name, &task, &end) == 2 &&
            r.lines[i][end] == '\0') {
            ck_assert_msg(quitting == 0, "a task after a worker quit: %s", r.lines[i]);
            ck_assert_msg(task == next_task, "line %zu: task %d, want %d", i, task, next_task);
            next_task++;
            int k;
            for (k = 0; k < 3 && strcmp(name, names[k]) != 0; k++)
                ;
            ck_assert_msg(k < 3, "unknown worker '%s'", name);
            used[k]++;
            /* gevent's output: the workers take turns, steve first. */
            ck_assert_msg(k == (task - 1) % 3, "task %d went to %s", task, name);
        } else {
            ck_assert_msg(strcmp(r.lines[i], "Quitting time!") == 0, "unexpected line: '%s'",
                          r.lines[i]);
            quitting++;
        }
    }
    ck_assert_int_eq(next_task - 1, 24);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(used[k] > 0, "worker %s got no task", names[k]);
    ck_assert_int_eq(quitting, 3);
}
END_TEST

/* Checks lines [from, from + 10) are "Task N done" for N in 0..9 (in order or not). */
static void check_ten_tasks(struct run *r, size_t from, bool in_order)
{
    int seen[10] = {0};
    ck_assert_uint_ge(r->nlines, from + 10);
    for (size_t i = 0; i < 10; i++) {
        int n, end = 0;
        const char *line = r->lines[from + i];
        ck_assert_msg(sscanf(line, "Task %d done%n", &n, &end) == 1 && line[end] == '\0' &&
                          n >= 0 && n < 10,
                      "line %zu: '%s'", from + i, line);
        seen[n]++;
        if (in_order)
            ck_assert_msg(n == (int)i, "synchronous line %zu: '%s'", from + i, line);
    }
    for (int n = 0; n < 10; n++)
        ck_assert_msg(seen[n] == 1, "task %d done %d times", n, seen[n]);
}

START_TEST(spawn_async_sync_and_results)
{
    struct run r;
    run_sample("spawn", &r);
    ck_assert_uint_eq(r.nlines, 33);
    ck_assert_str_eq(r.lines[0], "Asynchronous:");
    check_ten_tasks(&r, 1, false);
    ck_assert_str_eq(r.lines[11], "Synchronous:");
    check_ten_tasks(&r, 12, true);
    ck_assert_str_eq(r.lines[22], "Results in synchronous fashion:");
    for (int i = 0; i < 10; i++) {
        char want[64];
        snprintf(want, sizeof want, "Task %d returned %d", i, i * i);
        ck_assert_str_eq(r.lines[23 + i], want);
    }
}
END_TEST

START_TEST(group_talkers_interleave)
{
    struct run r;
    run_sample("group", &r);
    ck_assert_uint_eq(r.nlines, 9);
    int counts[3] = {0, 0, 0};
    static const char *words[3] = {"bar", "foo", "fizz"};
    for (size_t i = 0; i < r.nlines; i++) {
        int k;
        for (k = 0; k < 3 && strcmp(r.lines[i], words[k]) != 0; k++)
            ;
        ck_assert_msg(k < 3, "unexpected line '%s'", r.lines[i]);
        counts[k]++;
    }
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(counts[k], 3);
    /* Interleaved: every three consecutive lines are three different talkers
     * (run one after the other they would print bar bar bar foo...). */
    for (size_t i = 0; i + 2 < r.nlines; i++)
        ck_assert_msg(strcmp(r.lines[i], r.lines[i + 1]) != 0 &&
                          strcmp(r.lines[i], r.lines[i + 2]) != 0 &&
                          strcmp(r.lines[i + 1], r.lines[i + 2]) != 0,
                      "lines %zu..%zu not interleaved: %s %s %s", i, i + 2, r.lines[i],
                      r.lines[i + 1], r.lines[i + 2]);
    ck_assert_str_eq(r.lines[0], "bar");
}
END_TEST

START_TEST(pool_map_never_exceeds_two)
{
    struct run r;
    run_sample("pool_map", &r);
    ck_assert_uint_eq(r.nlines, 7);
    for (size_t i = 0; i < 3; i++) {
        unsigned size;
        int end = 0;
        ck_assert_msg(sscanf(r.lines[i], "Size of pool %u%n", &size, &end) == 1 &&
                          r.lines[i][end] == '\0',
                      "line %zu: '%s'", i, r.lines[i]);
        ck_assert_msg(size >= 1 && size <= 2, "line %zu: '%s'", i, r.lines[i]);
    }
    /* The squares of 0..3, each once, in the order they arrive. */
    int seen[10] = {0};
    for (size_t i = 3; i < 7; i++) {
        int sq, end = 0;
        ck_assert_msg(sscanf(r.lines[i], "%d%n", &sq, &end) == 1 && r.lines[i][end] == '\0' &&
                          (sq == 0 || sq == 1 || sq == 4 || sq == 9),
                      "line %zu: '%s'", i, r.lines[i]);
        seen[sq]++;
    }
    ck_assert(seen[0] == 1 && seen[1] == 1 && seen[4] == 1 && seen[9] == 1);
    /* Item 1 (50 ms) is the first to finish, item 3 (started last) the last. */
    ck_assert_str_eq(r.lines[3], "1");
    ck_assert_str_eq(r.lines[6], "9");
}
END_TEST

START_TEST(gr123_takes_two_seconds_not_five)
{
    struct run r;
    run_sample("gr123", &r);
    ck_assert_msg(r.elapsed >= 1.5 && r.elapsed <= 4.0, "gr123 took %.2f s", r.elapsed);
    ck_assert_uint_eq(r.nlines, 6);
    int at0 = 0, at2 = 0, done = 0;
    for (size_t i = 0; i < r.nlines; i++) {
        if (strstr(r.lines[i], "at 0.0 seconds"))
            at0++;
        if (strstr(r.lines[i], "at 2.0 seconds"))
            at2++;
        if (strcmp(r.lines[i], "Done!") == 0)
            done++;
    }
    ck_assert_int_eq(at0, 3);
    ck_assert_int_eq(at2, 2);
    ck_assert_int_eq(done, 1);
    ck_assert_str_eq(r.lines[0], "gr1 started work: at 0.0 seconds");
    ck_assert_str_eq(r.lines[2],
                     "Let's do some stuff while the coroutines are blocked, at 0.0 seconds");
    ck_assert_str_eq(r.lines[3], "Done!"); /* gr3's 1 s ends before the 2 s ones */
    ck_assert_str_eq(r.lines[4], "gr1 ended work: at 2.0 seconds");
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *samples_suite(void)
{
    Suite *s = suite_create("samples");
    TCase *tc = tcase_create("samples");
    tcase_set_timeout(tc, 40);
    tcase_add_test(tc, boss_worker_hands_out_every_task_once_in_order);
    tcase_add_test(tc, spawn_async_sync_and_results);
    tcase_add_test(tc, group_talkers_interleave);
    tcase_add_test(tc, pool_map_never_exceeds_two);
    tcase_add_test(tc, gr123_takes_two_seconds_not_five);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(samples_suite());
}
