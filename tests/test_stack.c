/*
 * Greenlet stacks (lib/stack.c): sizes from GREEN_STACK_SIZE and
 * green_attr_t, deep recursion, the stack overflow report, the SIGSEGV
 * chaining for faults that are not overflows, and scale: a million
 * spawn/join cycles in flat memory and a million greenlets alive at once
 * under the default vm.max_map_count.
 *
 * Tests that must start libgreen afresh (the environment variable is read
 * once per process) or that crash on purpose run their body in a child they
 * fork themselves, and look at its exit status and what it wrote.
 *
 * A stack's usable size is measured from the outside: a probe greenlet
 * recurses until it overflows, recording in memory shared with the parent
 * how deep it got. The exact rounding is also read from the two internal
 * functions that compute sizes (green__stack_round, green__stack_default);
 * the suite never reads internal structs, whose layout differs between
 * builds (ucontext, ASan).
 */
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#define VALGRIND_DISABLE_ERROR_REPORTING ((void)0)
#endif

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)
#define GIB (KIB * MIB)

/* The default the header promises when GREEN_STACK_SIZE is not set. */
#define DEFAULT_STACK (256 * KIB)

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t round_up_pages(size_t n)
{
    size_t p = page_size();
    return (n + p - 1) / p * p;
}

/* The scale of the million-greenlet tests: 10,000 under valgrind or with
 * GREEN_TEST_QUICK=1, where a million would take far too long. */
static size_t scale_n(void)
{
    const char *quick = getenv("GREEN_TEST_QUICK");
    if (RUNNING_ON_VALGRIND || (quick && strcmp(quick, "1") == 0))
        return 10000;
    return 1000000;
}

/* The scale of the concurrent test. Under ASan every live greenlet also
 * costs shadow memory and a stack unpoisoning when it ends: a million take
 * twice the memory (8+ GiB) and far more than the test's ten minutes on
 * these machines, so ASan builds check a hundred thousand. */
static size_t scale_concurrent(void)
{
    size_t n = scale_n();
    return UNDER_ASAN && n > 100000 ? 100000 : n;
}

/* ------------------------------------------------------------------------ */
/* Running a body in a child process                                          */
/* ------------------------------------------------------------------------ */

struct child {
    int  status;
    char out[8192];
    char err[8192];
};

/* Reads both pipes to EOF without letting either fill up. */
static void drain(int fd_out, int fd_err, struct child *c)
{
    size_t nout = 0, nerr = 0;
    struct pollfd p[2] = {{.fd = fd_out, .events = POLLIN}, {.fd = fd_err, .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(p, 2, 60000) <= 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char *buf = i == 0 ? c->out : c->err;
            size_t *n = i == 0 ? &nout : &nerr;
            char tmp[4096];
            ssize_t r = read(p[i].fd, tmp, sizeof tmp);
            if (r <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
                continue;
            }
            size_t room = sizeof c->out - 1 - *n;
            size_t take = (size_t)r < room ? (size_t)r : room;
            memcpy(buf + *n, tmp, take);
            *n += take;
        }
    }
    c->out[nout] = '\0';
    c->err[nerr] = '\0';
}

/* Forks, runs body(arg) in the child with stdout and stderr captured, and
 * waits for it. The child exits 0 if body returns. */
static void run_child(void (*body)(void *), void *arg, struct child *c)
{
    memset(c, 0, sizeof *c);
    int po[2], pe[2];
    ck_assert_int_eq(pipe(po), 0);
    ck_assert_int_eq(pipe(pe), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(po[0]);
        close(pe[0]);
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        close(po[1]);
        close(pe[1]);
        /* Crashes on purpose should not litter the disk with cores. */
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        body(arg);
        _exit(0);
    }
    close(po[1]);
    close(pe[1]);
    drain(po[0], pe[0], c);
    ck_assert_int_eq(waitpid(pid, &c->status, 0), pid);
}

static bool died_of(const struct child *c, int sig)
{
    return WIFSIGNALED(c->status) && WTERMSIG(c->status) == sig;
}

static bool exited_with(const struct child *c, int code)
{
    return WIFEXITED(c->status) && WEXITSTATUS(c->status) == code;
}

/* ------------------------------------------------------------------------ */
/* Recursion                                                                  */
/* ------------------------------------------------------------------------ */

/* The frame address where the recursion started. */
static char *volatile recursion_top;

/* Where the recursion records the deepest point it reached (shared with the
 * parent of a probe child), or NULL. */
static volatile size_t *deepest;

/* Recurses until `target` bytes of stack are in use below recursion_top.
 * Frames are measured by address, so the depth adapts to the compiler and
 * to sanitizers; the volatile buffer makes each frame real, and the use of
 * it after the call keeps the recursion from becoming a loop. */
__attribute__((noinline)) static int recurse_to(size_t target)
{
    volatile char pad[1024];
    pad[0] = 1;
    pad[sizeof pad - 1] = 2;
    char *here = __builtin_frame_address(0);
    if (deepest)
        *deepest = (size_t)(recursion_top - here);
    if ((size_t)(recursion_top - here) < target)
        return recurse_to(target) + pad[0];
    return pad[sizeof pad - 1];
}

/* A greenlet that uses `arg` bytes of its stack; returns 1 on success. */
static void *fn_use_stack(void *arg)
{
    recursion_top = __builtin_frame_address(0);
    int r = recurse_to((size_t)(uintptr_t)arg);
    return (void *)(intptr_t)(r > 0);
}

static void *fn_noop(void *arg)
{
    return arg;
}

/* What a probe child does: optionally sets GREEN_STACK_SIZE, then overflows
 * a greenlet with the given attribute size. */
struct probe {
    const char *env;        /* NULL: leave the environment alone */
    size_t      stack_size; /* attribute; 0: default */
};

static void probe_body(void *arg)
{
    const struct probe *pr = arg;
    if (pr->env)
        setenv("GREEN_STACK_SIZE", pr->env, 1);
    green_attr_t attr = {.stack_size = pr->stack_size, .name = "probe"};
    green_t *g = green_spawn_attr(&attr, fn_use_stack, (void *)(uintptr_t)SIZE_MAX);
    if (!g)
        _exit(8);
    green_join(g, GREEN_FOREVER);
    _exit(9); /* never reached: the overflow aborts */
}

/*
 * How many bytes of stack a greenlet could use before it overflowed: within
 * a frame or two (and what the library's entry code above the function
 * takes) of its usable size. Runs in a child, which must die of the
 * overflow report's SIGABRT.
 */
static size_t probe_stack(const char *env, size_t stack_size)
{
    size_t *shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(shared, MAP_FAILED);
    *shared = 0;
    deepest = shared;
    struct probe pr = {env, stack_size};
    struct child c;
    run_child(probe_body, &pr, &c);
    deepest = NULL;
    size_t depth = *shared;
    munmap(shared, sizeof *shared);
    ck_assert_msg(died_of(&c, SIGABRT), "probe (env %s, size %zu): status %#x, stderr: %s",
                  env ? env : "-", stack_size, c.status, c.err);
    ck_assert_msg(strstr(c.err, "libgreen: stack overflow in greenlet ") != NULL, "stderr: %s",
                  c.err);
    return depth;
}

/* The probe's depth is at most the usable size, and falls short of it by
 * less than PROBE_SLACK: a 1 KiB frame or two plus the entry code above the
 * greenlet's function, sanitizer redzones included. */
#define PROBE_SLACK (4 * KIB)

static void assert_probe_fits(size_t depth, size_t want, const char *what)
{
    ck_assert_msg(depth <= want && depth + PROBE_SLACK > want,
                  "%s: a greenlet got %zu bytes deep, want a usable stack of %zu", what, depth,
                  want);
}

/* Runs fn(depth) in a greenlet with the default stack; checks its value. */
static void run_to_depth(green_fn fn, size_t depth, void *want)
{
    green_t *g = green_spawn(fn, (void *)(uintptr_t)depth);
    ck_assert_ptr_nonnull(g);
    void *r = NULL;
    ck_assert_int_eq(green_get(g, &r, GREEN_FOREVER), 0);
    ck_assert_ptr_eq(r, want);
    green_release(g);
}

START_TEST(deep_recursion_within_default_stack)
{
    /* Most of the default 256 KiB, in a greenlet with the default stack. */
    ck_assert_uint_eq(green__stack_default(), DEFAULT_STACK);
    run_to_depth(fn_use_stack, 200 * KIB, (void *)1);
    /* And again on a recycled stack, after a greenlet that went deep. */
    run_to_depth(fn_use_stack, 220 * KIB, (void *)1);
}
END_TEST

/* Parks at the bottom of a deep recursion (so the library sees the depth),
 * then leaves with green_exit from there: its stack is given back while the
 * exit still runs on it, deep below the part that is always kept. */
__attribute__((noinline)) static int exit_deep(size_t target)
{
    volatile char pad[1024];
    pad[0] = 1;
    if ((size_t)(recursion_top - (char *)__builtin_frame_address(0)) < target)
        return exit_deep(target) + pad[0];
    if (green_sleep(0.001) == 0)
        green_exit((void *)(uintptr_t)7);
    return -1; /* the sleep failed: the test sees a NULL value */
}

static void *fn_exit_deep(void *arg)
{
    recursion_top = __builtin_frame_address(0);
    exit_deep((size_t)(uintptr_t)arg);
    return NULL; /* not reached */
}

START_TEST(green_exit_deep_in_the_stack)
{
    run_to_depth(fn_exit_deep, 200 * KIB, (void *)7);
    /* The recycled stack works, all the way down. */
    run_to_depth(fn_use_stack, 220 * KIB, (void *)1);
}
END_TEST

/* Where in its page a greenlet's first frame lies. */
static void *fn_frame_offset(void *arg)
{
    volatile char probe = 0;
    *(uintptr_t *)arg = (uintptr_t)&probe % 4096;
    return NULL;
}

START_TEST(successive_spawns_start_at_different_offsets)
{
    /* Stack colouring (internal.h): the hot frames of greenlets spawned
     * one after another must not share their cache sets. */
    uintptr_t off[GREEN__COLOURS];
    green_t *g[GREEN__COLOURS];
    for (unsigned i = 0; i < GREEN__COLOURS; i++) {
        g[i] = green_spawn(fn_frame_offset, &off[i]);
        ck_assert_ptr_nonnull(g[i]);
    }
    ck_assert_int_eq(green_joinall(g, GREEN__COLOURS, GREEN_FOREVER), 0);
    for (unsigned i = 0; i < GREEN__COLOURS; i++) {
        green_release(g[i]);
        for (unsigned j = 0; j < i; j++) {
            uintptr_t d = off[i] > off[j] ? off[i] - off[j] : off[j] - off[i];
            ck_assert_msg(d >= GREEN__COLOUR_STEP,
                          "greenlets %u and %u start %zu bytes apart in their pages", j, i,
                          (size_t)d);
        }
    }
}
END_TEST

START_TEST(deep_recursion_on_large_stack)
{
    size_t deep = RUNNING_ON_VALGRIND ? 4 * MIB : 48 * MIB;
    green_attr_t attr = {.stack_size = 64 * MIB, .name = "big"};
    green_t *g = green_spawn_attr(&attr, fn_use_stack, (void *)(uintptr_t)deep);
    ck_assert_ptr_nonnull(g);
    void *r = NULL;
    ck_assert_int_eq(green_get(g, &r, GREEN_FOREVER), 0);
    ck_assert_ptr_eq(r, (void *)1);
    green_release(g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Stack sizes                                                                */
/* ------------------------------------------------------------------------ */

START_TEST(attr_stack_size_rounding)
{
    /* The computation: whole pages, at least 16 KiB, at most 1 GiB. */
    size_t p = page_size();
    static const size_t asked[] = {1, 4096, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 100000,
                                   256 * 1024, 1024 * 1024 + 3, GIB - 1, GIB};
    for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
        size_t want = round_up_pages(asked[i] < 16 * KIB ? 16 * KIB : asked[i]);
        size_t got = green__stack_round(asked[i]);
        ck_assert_msg(got == want, "stack_size %zu: rounded to %zu, want %zu", asked[i], got, want);
        ck_assert_uint_eq(got % p, 0);
    }
    ck_assert_uint_eq(green__stack_round(GIB + 1), 0);

    /* What greenlets really get, measured by overflowing them. */
    static const size_t probed[] = {1, 16 * 1024 + 1, 100000, 64 * 1024};
    for (size_t i = 0; i < sizeof probed / sizeof probed[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "stack_size %zu", probed[i]);
        size_t want = round_up_pages(probed[i] < 16 * KIB ? 16 * KIB : probed[i]);
        assert_probe_fits(probe_stack(NULL, probed[i]), want, what);
    }
    /* 0 is the default. */
    assert_probe_fits(probe_stack(NULL, 0), DEFAULT_STACK, "stack_size 0");
}
END_TEST

START_TEST(attr_stack_size_limits)
{
    /* Exactly 1 GiB is allowed (it costs only the pages touched). */
    green_attr_t max = {.stack_size = GIB, .name = "one gib"};
    green_t *g = green_spawn_attr(&max, fn_use_stack, (void *)(uintptr_t)(1 * MIB));
    ck_assert_ptr_nonnull(g);
    void *r = NULL;
    ck_assert_int_eq(green_get(g, &r, GREEN_FOREVER), 0);
    ck_assert_ptr_eq(r, (void *)1);
    green_release(g);

    /* Anything above is EINVAL, and a failed spawn leaves nothing. */
    static const size_t too_big[] = {GIB + 1, GIB + 4096, 2 * GIB, SIZE_MAX, SIZE_MAX / 2};
    for (size_t i = 0; i < sizeof too_big / sizeof too_big[0]; i++) {
        green_attr_t attr = {.stack_size = too_big[i], .name = "too big"};
        ck_assert_null_errno(green_spawn_attr(&attr, fn_noop, NULL), EINVAL);
    }
    ck_assert_int_eq(green_count(), 0);
    ck_assert_int_eq(green_wait(0), 0);
}
END_TEST

/* GREEN_STACK_SIZE, read once per process: each value gets a child. */
struct env_case {
    const char *value;
    size_t      want;     /* 0: not a valid size (default or EINVAL accepted) */
};

static void env_body(void *arg)
{
    const struct env_case *e = arg;
    if (e->value)
        setenv("GREEN_STACK_SIZE", e->value, 1);
    else
        unsetenv("GREEN_STACK_SIZE");
    errno = 0;
    green_t *g = green_spawn(fn_noop, NULL);
    int err = errno;
    size_t size = g ? green__stack_default() : 0;
    /* An explicit size in the attributes ignores the variable. */
    green_attr_t attr = {.stack_size = 32 * KIB};
    green_t *h = green_spawn_attr(&attr, fn_noop, NULL);
    dprintf(STDOUT_FILENO, "%zu %d %d\n", size, g ? 0 : err, h != NULL);
    if (g) {
        green_join(g, GREEN_FOREVER);
        green_release(g);
    }
    if (h) {
        green_join(h, GREEN_FOREVER);
        green_release(h);
    }
}

START_TEST(env_stack_size_parsing)
{
    static const struct env_case cases[] = {
        {NULL, DEFAULT_STACK},
        {"65536", 64 * KIB},
        {"64k", 64 * KIB},
        {"64K", 64 * KIB},
        {"2m", 2 * MIB},
        {"2M", 2 * MIB},
        {"100000", 0 /* rounded below */},
        {"1k", 16 * KIB},
        {"20000", 0 /* rounded below */},
        {"1024m", GIB},
        {"1048576k", GIB},
        {"1025m", 0},
        {"abc", 0},
        {"12x", 0},
        {"", 0},
        {"-5", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct env_case e = cases[i];
        bool valid = e.want != 0;
        if (e.value && (strcmp(e.value, "100000") == 0 || strcmp(e.value, "20000") == 0)) {
            e.want = round_up_pages((size_t)atol(e.value));
            valid = true;
        }
        struct child c;
        run_child(env_body, &e, &c);
        ck_assert_msg(exited_with(&c, 0), "GREEN_STACK_SIZE=%s: child status %#x, stderr: %s",
                      e.value ? e.value : "(unset)", c.status, c.err);
        size_t size = 0;
        int err = -1, explicit_ok = 0;
        ck_assert_msg(sscanf(c.out, "%zu %d %d", &size, &err, &explicit_ok) == 3,
                      "GREEN_STACK_SIZE=%s: child said '%s'", e.value, c.out);
        if (valid) {
            ck_assert_msg(size == e.want && err == 0, "GREEN_STACK_SIZE=%s: %zu bytes (errno %d), want %zu",
                          e.value ? e.value : "(unset)", size, err, e.want);
        } else {
            /* Not a byte count in range: the library may fall back to its
             * default or refuse the spawn with EINVAL; never anything else. */
            ck_assert_msg((size == DEFAULT_STACK && err == 0) || (size == 0 && err == EINVAL),
                          "GREEN_STACK_SIZE=%s: %zu bytes, errno %d", e.value, size, err);
        }
        ck_assert_msg(explicit_ok, "GREEN_STACK_SIZE=%s: an explicit 32 KiB spawn failed",
                      e.value ? e.value : "(unset)");
    }

    /* What greenlets really get, measured by overflowing them. */
    assert_probe_fits(probe_stack("64k", 0), 64 * KIB, "GREEN_STACK_SIZE=64k");
    assert_probe_fits(probe_stack("1m", 0), MIB, "GREEN_STACK_SIZE=1m");
    assert_probe_fits(probe_stack("20000", 0), round_up_pages(20000), "GREEN_STACK_SIZE=20000");
    /* An explicit attribute size wins over the variable. */
    assert_probe_fits(probe_stack("1m", 32 * KIB), 32 * KIB, "GREEN_STACK_SIZE=1m, stack_size 32k");
}
END_TEST

/* Uses 1.5 MiB of stack: fine with GREEN_STACK_SIZE=2m, an overflow with
 * the 256 KiB default. */
static void env_deep_body(void *arg)
{
    setenv("GREEN_STACK_SIZE", (const char *)arg, 1);
    green_t *g = green_spawn(fn_use_stack, (void *)(uintptr_t)(1536 * KIB));
    void *r = NULL;
    if (!g || green_get(g, &r, GREEN_FOREVER) != 0 || r != (void *)1)
        _exit(3);
    green_release(g);
}

START_TEST(env_stack_size_takes_effect)
{
    struct child c;
    run_child(env_deep_body, "2m", &c);
    ck_assert_msg(exited_with(&c, 0), "2m: status %#x, stderr: %s", c.status, c.err);
    run_child(env_deep_body, "256k", &c);
    ck_assert_msg(died_of(&c, SIGABRT), "256k: status %#x, stderr: %s", c.status, c.err);
    ck_assert_msg(strstr(c.err, "libgreen: stack overflow in greenlet ") != NULL, "stderr: %s",
                  c.err);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Stack overflow                                                             */
/* ------------------------------------------------------------------------ */

struct overflow_case {
    const char *name;        /* NULL: unnamed */
    size_t      stack_size;  /* 0: default */
    bool        set_name;    /* name it with green_set_name rather than attr */
};

static void overflow_body(void *arg)
{
    const struct overflow_case *oc = arg;
    green_attr_t attr = {.stack_size = oc->stack_size, .name = oc->set_name ? NULL : oc->name};
    green_t *g = green_spawn_attr(&attr, fn_use_stack, (void *)(uintptr_t)SIZE_MAX);
    if (!g)
        _exit(4);
    if (oc->set_name)
        green_set_name(g, oc->name);
    /* Another greenlet first, so the overflowing one is not the first id. */
    green_t *other = green_spawn(fn_noop, NULL);
    dprintf(STDOUT_FILENO, "%llu\n", (unsigned long long)green_id(g));
    green_join(other, GREEN_FOREVER);
    green_join(g, GREEN_FOREVER);
    _exit(5); /* never reached: the overflow aborts */
}

static void check_overflow(const struct overflow_case *oc)
{
    struct child c;
    run_child(overflow_body, (void *)oc, &c);
    ck_assert_msg(died_of(&c, SIGABRT), "status %#x (want SIGABRT), stderr: %s", c.status, c.err);
    unsigned long long id = 0;
    ck_assert_msg(sscanf(c.out, "%llu", &id) == 1 && id > 0, "child said '%s'", c.out);
    char want[512];
    snprintf(want, sizeof want, "libgreen: stack overflow in greenlet %llu '%s'\n", id,
             oc->name ? oc->name : "");
    if (RUNNING_ON_VALGRIND) {
        /* valgrind adds its own report of the abort. */
        ck_assert_msg(strstr(c.err, want) != NULL, "stderr: '%s', want '%s'", c.err, want);
    } else {
        ck_assert_msg(strcmp(c.err, want) == 0, "stderr: '%s', want exactly '%s'", c.err, want);
    }
}

START_TEST(overflow_named_default_stack)
{
    struct overflow_case oc = {.name = "overflower"};
    check_overflow(&oc);
}
END_TEST

START_TEST(overflow_unnamed_small_stack)
{
    struct overflow_case oc = {.name = NULL, .stack_size = 16 * KIB};
    check_overflow(&oc);
}
END_TEST

START_TEST(overflow_renamed_large_stack)
{
    struct overflow_case oc = {.name = "renamed worker", .stack_size = 4 * MIB, .set_name = true};
    check_overflow(&oc);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Other faults go to the handler that was there before                       */
/* ------------------------------------------------------------------------ */

static int *volatile null_pointer; /* volatile: the compiler cannot see it is NULL */
static volatile sig_atomic_t handler_saw_null;

static void plain_handler(int sig)
{
    static const char msg[] = "previous handler ran\n";
    ssize_t w = write(STDOUT_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(sig == SIGSEGV ? 42 : 43);
}

static void siginfo_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    static const char msg[] = "previous siginfo handler ran\n";
    ssize_t w = write(STDOUT_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(sig == SIGSEGV && si && si->si_addr == NULL ? 44 : 45);
}

/* Stores through the NULL pointer. UBSan would stop at the store before
 * the fault, and valgrind would count it as an error of the run; the fault
 * itself is what these tests are about. */
__attribute__((noinline, no_sanitize_undefined)) static void store_to_null(void)
{
    VALGRIND_DISABLE_ERROR_REPORTING;
    *null_pointer = 1;
}

static void *fn_fault(void *arg)
{
    (void)arg;
    store_to_null();
    return NULL;
}

enum fault_where { FAULT_IN_MAIN, FAULT_IN_GREENLET };

struct fault_case {
    int              handler;  /* 0 none, 1 plain, 2 siginfo */
    enum fault_where where;
};

static void fault_body(void *arg)
{
    const struct fault_case *fc = arg;
    if (fc->handler) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sigemptyset(&sa.sa_mask);
        if (fc->handler == 1) {
            sa.sa_handler = plain_handler;
        } else {
            sa.sa_sigaction = siginfo_handler;
            sa.sa_flags = SA_SIGINFO;
        }
        sigaction(SIGSEGV, &sa, NULL);
    }
    /* Start libgreen (and its overflow handler) after ours. */
    green_t *g = green_spawn(fn_noop, NULL);
    if (!g || green_join(g, GREEN_FOREVER) != 0)
        _exit(6);
    green_release(g);
    if (fc->where == FAULT_IN_MAIN) {
        store_to_null();
    } else {
        g = green_spawn(fn_fault, NULL);
        green_join(g, GREEN_FOREVER);
    }
    _exit(7); /* never reached */
}

static void check_fault(int handler, enum fault_where where)
{
    struct fault_case fc = {handler, where};
    struct child c;
    run_child(fault_body, &fc, &c);
    const char *at = where == FAULT_IN_MAIN ? "main" : "greenlet";
    ck_assert_msg(strstr(c.err, "stack overflow") == NULL, "%s: a NULL fault reported as overflow: %s",
                  at, c.err);
    if (handler == 1) {
        ck_assert_msg(exited_with(&c, 42), "%s: status %#x, stdout '%s', stderr '%s'", at, c.status,
                      c.out, c.err);
        ck_assert_str_eq(c.out, "previous handler ran\n");
    } else if (handler == 2) {
        ck_assert_msg(exited_with(&c, 44), "%s: status %#x, stdout '%s', stderr '%s'", at, c.status,
                      c.out, c.err);
        ck_assert_str_eq(c.out, "previous siginfo handler ran\n");
    } else if (UNDER_ASAN) {
        /* The handler before libgreen's was ASan's: it reports and exits. */
        ck_assert_msg(!exited_with(&c, 0) && strstr(c.err, "AddressSanitizer") != NULL,
                      "%s: status %#x, stderr '%s'", at, c.status, c.err);
    } else {
        /* No handler before: the default action, a plain SIGSEGV death. */
        ck_assert_msg(died_of(&c, SIGSEGV), "%s: status %#x, stderr '%s'", at, c.status, c.err);
    }
}

START_TEST(null_fault_in_main_goes_to_previous_handler)
{
    check_fault(1, FAULT_IN_MAIN);
    check_fault(2, FAULT_IN_MAIN);
}
END_TEST

START_TEST(null_fault_in_greenlet_goes_to_previous_handler)
{
    check_fault(1, FAULT_IN_GREENLET);
    check_fault(2, FAULT_IN_GREENLET);
}
END_TEST

START_TEST(null_fault_without_handler_is_plain_segv)
{
    check_fault(0, FAULT_IN_MAIN);
    check_fault(0, FAULT_IN_GREENLET);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Scale                                                                      */
/* ------------------------------------------------------------------------ */

/* VmRSS of this process, in KiB. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    ck_assert_ptr_nonnull(f);
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    ck_assert_int_ge(kib, 0);
    return kib;
}

/* Lines of /proc/self/maps: the map-count entries this process uses. */
static long map_count(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    ck_assert_ptr_nonnull(f);
    long n = 0;
    int ch;
    while ((ch = getc(f)) != EOF)
        if (ch == '\n')
            n++;
    fclose(f);
    return n;
}

static long max_map_count(void)
{
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 65530;
        fclose(f);
    }
    return max;
}

static void *fn_touch(void *arg)
{
    volatile char buf[512];
    buf[0] = (char)(uintptr_t)arg;
    return (void *)(uintptr_t)buf[0];
}

START_TEST(million_spawn_join_cycles_flat_rss)
{
    size_t n = scale_n();
    /* Warm up: the pools, the hub, malloc's arenas. */
    for (size_t i = 0; i < 10000; i++) {
        green_t *g = green_spawn(fn_touch, (void *)(uintptr_t)(i & 0x7f));
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(green_join(g, GREEN_FOREVER), 0);
        green_release(g);
    }
    long before = rss_kib();
    double t0 = tu_now();
    for (size_t i = 0; i < n; i++) {
        green_t *g = green_spawn(fn_touch, (void *)(uintptr_t)(i & 0x7f));
        if (!g)
            ck_abort_msg("spawn %zu failed: %s", i, strerror(errno));
        if (green_join(g, GREEN_FOREVER) != 0)
            ck_abort_msg("join %zu failed: %s", i, strerror(errno));
        if (green_value(g) != (void *)(uintptr_t)(i & 0x7f))
            ck_abort_msg("greenlet %zu returned the wrong value", i);
        green_release(g);
    }
    double dt = tu_now() - t0;
    long after = rss_kib();
    fprintf(stderr, "%zu spawn/join cycles: %.2f s, VmRSS %ld -> %ld KiB\n", n, dt, before, after);
    ck_assert_msg(after - before < 8 * 1024, "VmRSS grew by %ld KiB over %zu cycles",
                  after - before, n);
    ck_assert_int_eq(green_count(), 0);
}
END_TEST

/*
 * A million greenlets alive at once: half of them sleep until killed, half
 * wait for a gate greenlet to finish (an event-like wait). Each counts how
 * it ended.
 */
static size_t sleep_cancelled, sleep_other, joined_ok, joined_other;

static void *fn_sleep_until_killed(void *arg)
{
    (void)arg;
    if (green_sleep(3600) == -1 && errno == ECANCELED)
        sleep_cancelled++;
    else
        sleep_other++;
    return NULL;
}

static void *fn_wait_on_gate(void *arg)
{
    if (green_join((green_t *)arg, GREEN_FOREVER) == 0)
        joined_ok++;
    else
        joined_other++;
    return NULL;
}

static void *fn_gate(void *arg)
{
    (void)arg;
    green_sleep(3600); /* until killed */
    return NULL;
}

START_TEST(million_concurrent_greenlets)
{
    size_t n = scale_concurrent(), nsleep = n / 2, nwait = n - nsleep;
    green_t *gate = green_spawn(fn_gate, NULL);
    ck_assert_ptr_nonnull(gate);
    green_t **sleepers = malloc(nsleep * sizeof *sleepers);
    green_t **waiters = malloc(nwait * sizeof *waiters);
    ck_assert_ptr_nonnull(sleepers);
    ck_assert_ptr_nonnull(waiters);
    long maps_before = map_count();
    double t0 = tu_now();
    for (size_t i = 0; i < n; i++) {
        green_t *g = i % 2 ? green_spawn(fn_wait_on_gate, gate)
                           : green_spawn(fn_sleep_until_killed, NULL);
        if (!g)
            ck_abort_msg("spawn %zu of %zu failed: %s (maps %ld)", i, n, strerror(errno),
                         map_count());
        if (i % 2)
            waiters[i / 2] = g;
        else
            sleepers[i / 2] = g;
    }
    /* Not yet started, they count already. */
    ck_assert_uint_eq(green_count(), n + 1);
    green_yield(); /* every one of them starts and blocks */
    double t_started = tu_now() - t0;
    ck_assert_uint_eq(green_count(), n + 1);
    ck_assert_uint_eq(sleep_cancelled + sleep_other + joined_ok + joined_other, 0);
    long maps = map_count(), limit = max_map_count();
    fprintf(stderr, "%zu blocked greenlets: %.2f s, maps %ld -> %ld (max %ld), VmRSS %ld KiB\n",
            n, t_started, maps_before, maps, limit, rss_kib());
    /* Under valgrind the library gives each stack a mapping of its own with
     * mprotect guards (two entries each), which valgrind understands; the
     * ten thousand greenlets it runs there must still fit. */
    long bound = RUNNING_ON_VALGRIND ? limit - limit / 8 : limit / 4;
    ck_assert_msg(maps < bound, "%ld map entries for %zu greenlets (max_map_count %ld)", maps, n,
                  limit);
    ck_assert(!green_ready(sleepers[0]) && !green_ready(sleepers[nsleep - 1]));
    ck_assert(!green_ready(waiters[0]) && !green_ready(waiters[nwait - 1]));
    ck_assert_uint_lt(green_id(sleepers[0]), green_id(waiters[nwait - 1]));

    /* Opening the gate wakes every waiter with success. */
    ck_assert_int_eq(green_kill(gate, 60.0), 0);
    ck_assert_int_eq(green_joinall(waiters, nwait, 300.0), 0);
    ck_assert_uint_eq(joined_ok, nwait);
    ck_assert_uint_eq(joined_other, 0);
    ck_assert_uint_eq(green_count(), nsleep);

    /* Killing the sleepers ends every one of them with ECANCELED. */
    ck_assert_int_eq(green_killall(sleepers, nsleep, 300.0), 0);
    ck_assert_uint_eq(sleep_cancelled, nsleep);
    ck_assert_uint_eq(sleep_other, 0);
    ck_assert_uint_eq(green_count(), 0);
    for (size_t i = 0; i < nsleep; i++) {
        if (!green_ready(sleepers[i]) || !green_killed(sleepers[i]))
            ck_abort_msg("sleeper %zu not killed and finished", i);
        green_release(sleepers[i]);
    }
    for (size_t i = 0; i < nwait; i++) {
        if (!green_ready(waiters[i]) || green_killed(waiters[i]))
            ck_abort_msg("waiter %zu not finished, or killed", i);
        green_release(waiters[i]);
    }
    green_release(gate);
    free(sleepers);
    free(waiters);
    ck_assert_int_eq(green_wait(0), 0);
}
END_TEST

static Suite *stack_suite(void)
{
    Suite *s = suite_create("stack");
    TCase *tc = tcase_create("sizes");
    tcase_add_test(tc, deep_recursion_within_default_stack);
    tcase_add_test(tc, deep_recursion_on_large_stack);
    tcase_add_test(tc, green_exit_deep_in_the_stack);
    tcase_add_test(tc, successive_spawns_start_at_different_offsets);
    tcase_add_test(tc, attr_stack_size_rounding);
    tcase_add_test(tc, attr_stack_size_limits);
    tcase_add_test(tc, env_stack_size_parsing);
    tcase_add_test(tc, env_stack_size_takes_effect);
    suite_add_tcase(s, tc);

    tc = tcase_create("faults");
    tcase_add_test(tc, overflow_named_default_stack);
    tcase_add_test(tc, overflow_unnamed_small_stack);
    tcase_add_test(tc, overflow_renamed_large_stack);
    tcase_add_test(tc, null_fault_in_main_goes_to_previous_handler);
    tcase_add_test(tc, null_fault_in_greenlet_goes_to_previous_handler);
    tcase_add_test(tc, null_fault_without_handler_is_plain_segv);
    suite_add_tcase(s, tc);

    /* A million live greenlets cost a first-touched page each: ~11 us on an
     * idle machine of this kind, but 100-300 us on a busy one, where the
     * million took 2-5 minutes. Allow ten, not the default seconds. */
    tc = tcase_create("scale");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, million_spawn_join_cycles_flat_rss);
    tcase_add_test(tc, million_concurrent_greenlets);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(stack_suite());
}
