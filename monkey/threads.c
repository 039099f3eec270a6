/*
 * green-run --threads: POSIX threads become greenlets on the main thread's hub.
 *
 * The mode is chosen once, by GREEN_THREADS=1 in the environment (green-run
 * --threads sets it). Without it every function here calls glibc's at once,
 * so a program run under the plain shim is unchanged.
 *
 * WHO IS EMULATED. In threads mode a call is emulated when it is made on the
 * process's main OS thread and does not come from libgreen.so itself; all
 * other calls go straight to glibc (the real function, found with
 * dlsym(RTLD_NEXT)):
 *  - libgreen's own threads (the thread pool, the monitor) and any other OS
 *    thread are not on the hub and must block for real;
 *  - libgreen resolves pthread_* through the global scope, so its calls land
 *    here too: the return address of each call is compared with the text of
 *    libgreen.so (found once with dladdr and dl_iterate_phdr). That keeps
 *    libgreen's objects (the thread pool's mutex, shared with its worker
 *    threads; its pthread keys and once controls) in glibc's hands, and its
 *    pthread_create calls (thread pool, monitor) creating real threads. No
 *    change to lib/ is needed. As a second line of defence, a mutex that
 *    glibc has locked (its first word is then a small integer, never one of
 *    our pointers) is left to glibc.
 * Calls made in the hub context itself (a libev callback, a signal handler
 * that interrupts the hub) are emulated but never wait: a lock that would
 * have to wait fails with EDEADLK there.
 *
 * THE OBJECTS. pthread_mutex_t (40 bytes), pthread_cond_t (48),
 * pthread_rwlock_t (56), sem_t (32), pthread_barrier_t (32) and
 * pthread_spinlock_t are the program's memory, often set up by a static
 * initializer (all zeros, or a kind number in glibc's __kind field). Every
 * emulated state fits inside the object, laid over glibc's fields, so
 * nothing is allocated and nothing can leak: the owner (a thread record
 * pointer), a count, glibc's own kind field left where the initializers put
 * it, and an intrusive FIFO of waiters (head and tail pointers). A waiter
 * lives on the stack of the greenlet that waits. Everything runs on one OS
 * thread, so no atomics are needed. sem_t carries a magic word: a semaphore
 * made by sem_open or with pshared set stays glibc's (it may be shared with
 * other processes), as does a process-shared mutex (glibc's pshared bit in
 * __kind); those block the whole program while they wait.
 *
 * THE THREADS. pthread_create spawns a greenlet (the attribute's stack size
 * if one was set, rounded to the library's minimum; otherwise libgreen's
 * default, GREEN_STACK_SIZE or 256 KiB) that runs the start routine. Each
 * thread has a record (struct thr): its pthread_t is the record's address
 * (the main greenlet keeps the real pthread_self()), it holds the result,
 * the detached and finished flags, its pthread key values, its joiner and
 * what it waits on. A greenlet the program spawned with libgreen directly
 * gets a record when it first asks for one. The record of a joinable thread
 * is freed by pthread_join, of a detached one when it ends.
 *
 * WAITING. Every wait goes through the library's one suspension primitive,
 * reached through the public API: each thread record has a green_sem_t with
 * no units (made on its first wait) on which it parks. A waker takes the
 * waiter off the object's list, marks it granted (a lock or semaphore unit
 * is handed over on the spot: no barging) and releases that semaphore. A
 * waiter that times out after being granted keeps what it was given and
 * takes the stale unit back, so a hand-over is never lost.
 *
 * DEADLOCK. When every greenlet is blocked and no timer or descriptor could
 * wake one, the core wakes the main greenlet with EDEADLK (see green_wait).
 * The main greenlet is always parked in that situation (its blocking calls
 * all wait on the hub), so whatever it waits on here reports the deadlock on
 * stderr, with green_dump's listing and what each thread waits on, and the
 * process exits with status 70 instead of hanging silently.
 *
 * LIMITS. One core runs every thread; a thread that computes without making
 * a blocking call keeps the others waiting (Python's GIL hand-over happens
 * only when the holder blocks). __thread variables and glibc's per-thread
 * state (errno between calls, stdio FILE locks, the locale, the signal mask)
 * belong to the OS thread and are shared by all the greenlet-threads: two
 * greenlets can interleave inside one FILE's lock. pthread_cleanup_push
 * handlers and C++ unwinding do not run on pthread_exit from a greenlet, and
 * pthread_cancel is not supported (ENOTSUP).
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "monkey.h"
#include "shim.h"

#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define CALLER() __builtin_return_address(0)

/* The real functions, found once (see monkey.c). */
#define REAL(name)                                                                \
    ({                                                                            \
        static __typeof__(&name) real_;                                           \
        if (UNLIKELY(real_ == NULL))                                              \
            real_ = (__typeof__(&name))dlsym(RTLD_NEXT, #name);                   \
        real_;                                                                    \
    })

/* The status a deadlocked program exits with (documented in green-run --help). */
#define DEADLOCK_EXIT 70

/* ------------------------------------------------------------------------ */
/* Waiters                                                                    */
/* ------------------------------------------------------------------------ */

struct thr;

/* On the waiting greenlet's stack while it waits. */
struct waiter {
    struct waiter *next, *prev;
    struct wlist  *list;
    struct thr    *t;
    bool           granted;
};

/* Waiters live on the stacks of the greenlets that wait and leave their list
 * before their frame returns; GCC cannot see that. */
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wdangling-pointer"

/* An intrusive FIFO; all zeros is empty (what the static initializers give). */
struct wlist {
    struct waiter *head, *tail;
};

static void wl_push(struct wlist *l, struct waiter *w)
{
    w->list = l;
    w->next = NULL;
    w->prev = l->tail;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
}

static void wl_remove(struct waiter *w)
{
    struct wlist *l = w->list;
    if (!l)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->next = w->prev = NULL;
    w->list = NULL;
}

/* ------------------------------------------------------------------------ */
/* Thread records                                                             */
/* ------------------------------------------------------------------------ */

#define THR_MAGIC 0x6772656e74687231ULL /* "grenthr1" */
#define KEYS_MAX PTHREAD_KEYS_MAX
#define DESTRUCTOR_PASSES PTHREAD_DESTRUCTOR_ITERATIONS

struct keyval {
    unsigned seq;
    void    *value;
};

struct thr {
    uint64_t       magic;     /* first: a real pthread_t points at its own TCB */
    pthread_t      id;        /* what pthread_self returns */
    green_t       *g;         /* our reference (NULL for main) */
    void        *(*fn)(void *);
    void          *arg;
    void          *result;
    green_sem_t   *park;      /* parks this thread; made on first wait */
    struct wlist   joiners;
    struct thr    *joining;   /* the thread this one waits to join */
    const char    *wait_what; /* for the deadlock report */
    const void    *wait_obj;
    struct keyval *vals;
    unsigned       nvals;
    bool           detached, done, adopted, counted;
    struct thr    *all_next, *all_prev;
    char           name[16];
};

static int mode = -1;              /* -1 not read yet, 0 off, 1 threads mode */
static bool inited;
static uintptr_t libgreen_lo, libgreen_hi;
static green_key_t rec_key;        /* greenlet -> its record */
static green_t *main_g;
static struct thr main_rec = {.magic = THR_MAGIC};
static struct thr hub_rec = {.magic = THR_MAGIC}; /* owner for calls made in the hub */
static struct thr *all_thr = &main_rec;
static size_t nlive;               /* created threads not yet finished */
static bool main_exited;           /* main called pthread_exit */
static struct wlist exit_waiters;  /* main, waiting for the last thread */
static struct wlist once_waiters;  /* pthread_once calls waiting for another's */
static __thread signed char on_main_thread __attribute__((tls_model("initial-exec")));

static int find_libgreen(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    if (info->dlpi_addr != (uintptr_t)data)
        return 0;
    shim_object_extent(info, true, &libgreen_lo, &libgreen_hi);
    return 1;
}

static void key_dtor_adopted(void *rec);

/* Reads the mode; in threads mode, on the main thread, sets everything up
 * (libgreen's range before the hub is made, since making it calls pthread_*). */
static void init_mode(void)
{
    const char *env = getenv("GREEN_THREADS");
    int m = env && env[0] && strcmp(env, "0") != 0;
    if (m) {
        Dl_info info;
        if (dladdr((void *)green_spawn, &info) && info.dli_fbase)
            dl_iterate_phdr(find_libgreen, info.dli_fbase);
    }
    mode = m;
}

static bool on_main(void)
{
    if (UNLIKELY(on_main_thread == 0))
        on_main_thread = syscall(SYS_gettid) == getpid() ? 1 : -1;
    return on_main_thread > 0;
}

static void init_threads(void)
{
    if (inited)
        return;
    inited = true;
    main_rec.id = REAL(pthread_self)();
    hub_rec.id = main_rec.id;
    if (green_key_create(&rec_key, key_dtor_adopted) != 0) {
        fprintf(stderr, "green-run --threads: out of greenlet keys\n");
        abort();
    }
    main_g = green_current(); /* makes the hub; nothing else runs yet */
    if (!main_g) {
        fprintf(stderr, "green-run --threads: cannot make the hub: %s\n", strerror(errno));
        abort();
    }
}

/* True when the call from `caller` is to be emulated. */
static inline bool emulate(const void *caller)
{
    if (UNLIKELY(mode < 0))
        init_mode();
    if (LIKELY(!mode))
        return false;
    if (!on_main())
        return false;
    uintptr_t a = (uintptr_t)caller;
    if (a >= libgreen_lo && a < libgreen_hi)
        return false;
    if (UNLIKELY(!inited))
        init_threads();
    return true;
}

__attribute__((constructor)) static void threads_ctor(void)
{
    if (mode < 0)
        init_mode();
    if (mode && on_main())
        init_threads();
}

static void thr_link(struct thr *t)
{
    t->all_prev = NULL;
    t->all_next = all_thr;
    all_thr->all_prev = t;
    all_thr = t;
}

static void thr_unlink(struct thr *t)
{
    if (t->all_prev)
        t->all_prev->all_next = t->all_next;
    else
        all_thr = t->all_next;
    if (t->all_next)
        t->all_next->all_prev = t->all_prev;
}

static void thr_free(struct thr *t)
{
    thr_unlink(t);
    if (t->park)
        green_sem_free(t->park);
    free(t->vals);
    if (t->g)
        green_release(t->g);
    t->magic = 0;
    free(t);
}

/* The calling greenlet's record. */
static struct thr *self_rec(void)
{
    struct thr *t = green_getspecific(rec_key);
    if (LIKELY(t != NULL))
        return t;
    if (!green__monkey_active())
        return &hub_rec;
    green_t *g = green_current();
    if (g == main_g)
        return &main_rec;
    /* A greenlet the program spawned itself: it gets a record now. */
    t = calloc(1, sizeof *t);
    if (!t)
        return &hub_rec; /* no memory: it shares the hub's identity */
    t->magic = THR_MAGIC;
    t->id = (pthread_t)t;
    t->adopted = true;
    t->detached = true;
    thr_link(t);
    green_setspecific(rec_key, t);
    return t;
}

/* The record of t, or NULL for a thread that is not ours (a real one). */
static struct thr *rec_of(pthread_t t)
{
    if (t == main_rec.id)
        return &main_rec;
    struct thr *r = (struct thr *)t;
    if (r && r->magic == THR_MAGIC)
        return r;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Parking                                                                    */
/* ------------------------------------------------------------------------ */

static void deadlock_report(void) __attribute__((noreturn));

static void describe(const struct thr *t, char *buf, size_t n)
{
    if (t == &main_rec)
        snprintf(buf, n, "main thread");
    else
        snprintf(buf, n, "thread %#lx%s%s%s", (unsigned long)t->id, t->name[0] ? " '" : "",
                 t->name, t->name[0] ? "'" : "");
}

static void deadlock_report(void)
{
    fprintf(stderr, "green-run --threads: deadlock: every thread is blocked and nothing "
                    "(no timer, no descriptor) can wake one\n");
    fprintf(stderr, "greenlets (green_dump):\n");
    green_dump(stderr);
    fprintf(stderr, "threads:\n");
    for (struct thr *t = all_thr; t; t = t->all_next) {
        if (t->done)
            continue;
        char who[64];
        describe(t, who, sizeof who);
        char held[80] = "";
        if (t->wait_what && strcmp(t->wait_what, "pthread_mutex_lock") == 0) {
            const struct thr *o = *(struct thr *const *)t->wait_obj; /* gmutex's owner */
            if (o) {
                char owner[64];
                describe(o, owner, sizeof owner);
                snprintf(held, sizeof held, ", held by %s", owner);
            }
        }
        if (t->wait_what)
            fprintf(stderr, "  %s (greenlet %llu): blocked in %s(%p)%s\n", who,
                    (unsigned long long)green_id(t == &main_rec ? main_g : t->g), t->wait_what,
                    t->wait_obj, held);
        else
            fprintf(stderr, "  %s (greenlet %llu): blocked in a call outside the pthread API\n",
                    who, (unsigned long long)green_id(t == &main_rec ? main_g : t->g));
    }
    fflush(stderr);
    _exit(DEADLOCK_EXIT);
}

/*
 * Parks self on w (already pushed on an object's list, or on none) until a
 * waker grants it, the timeout (seconds, < 0 forever) or an error. Returns 0
 * when granted (even if the timeout came too), else ETIMEDOUT, ECANCELED,
 * ENOMEM, EDEADLK (hub context); w is off its list on return.
 */
static int park(struct thr *self, struct waiter *w, const char *what, const void *obj,
                double timeout)
{
    if (self == &hub_rec || !green__monkey_active()) {
        wl_remove(w);
        return EDEADLK;
    }
    if (!self->park && !(self->park = green_sem_new(0))) {
        wl_remove(w);
        return ENOMEM;
    }
    self->wait_what = what;
    self->wait_obj = obj;
    int err = 0;
    while (!w->granted) {
        if (green_sem_acquire(self->park, timeout) == 0)
            continue; /* only a grant releases it */
        err = errno;
        if (w->granted) {
            /* Handed over as the timeout fired: keep it, take the unit back. */
            green_sem_acquire(self->park, 0);
            err = 0;
        } else if (err == EDEADLK) {
            deadlock_report();
        }
        break;
    }
    self->wait_what = NULL;
    self->wait_obj = NULL;
    if (!w->granted) {
        wl_remove(w);
        return err ? err : ETIMEDOUT;
    }
    return 0;
}

static void grant(struct waiter *w)
{
    wl_remove(w);
    w->granted = true;
    green_sem_release(w->t->park);
}

static void wake_all(struct wlist *l)
{
    while (l->head)
        grant(l->head);
}

/* Waits on list l until granted or the timeout; see park. */
static int wait_on(struct wlist *l, struct thr *self, const char *what, const void *obj,
                   double timeout)
{
    struct waiter w = {.t = self};
    wl_push(l, &w);
    return park(self, &w, what, obj, timeout);
}

/* ------------------------------------------------------------------------ */
/* Time                                                                       */
/* ------------------------------------------------------------------------ */

static bool valid_ts(const struct timespec *ts)
{
    return ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

/* The clocks the clock* variants accept, as glibc's do (else EINVAL). */
static bool clock_supported(clockid_t clk)
{
    return clk == CLOCK_REALTIME || clk == CLOCK_MONOTONIC;
}

/* Seconds from now until abstime on clk (<= 0: passed). */
static double until(clockid_t clk, const struct timespec *abstime)
{
    struct timespec now;
    clock_gettime(clk, &now);
    return (double)(abstime->tv_sec - now.tv_sec) + (double)(abstime->tv_nsec - now.tv_nsec) / 1e9;
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                    */
/* ------------------------------------------------------------------------ */

static void run_key_destructors(struct thr *t);

/* Ends thread t with result (its greenlet then finishes). */
static void thread_end(struct thr *t, void *result)
{
    run_key_destructors(t);
    green_setspecific(rec_key, NULL);
    t->result = result;
    t->done = true;
    wake_all(&t->joiners);
    if (t->counted && --nlive == 0)
        wake_all(&exit_waiters);
    if (t->detached)
        thr_free(t);
}

static void *thread_main(void *arg)
{
    struct thr *t = arg;
    green_setspecific(rec_key, t);
    void *result = t->fn(t->arg);
    thread_end(t, result);
    return result;
}

/* A program-spawned greenlet's record goes with it. */
static void key_dtor_adopted(void *rec)
{
    struct thr *t = rec;
    if (!t || t->magic != THR_MAGIC || !t->adopted)
        return;
    green_setspecific(rec_key, t); /* key destructors may ask for their thread */
    run_key_destructors(t);
    green_setspecific(rec_key, NULL);
    t->done = true;
    wake_all(&t->joiners);
    thr_free(t);
}

/* The stack size the attribute asks for, or 0 when it sets none. */
static size_t attr_stack(const pthread_attr_t *attr)
{
    if (!attr)
        return 0;
    size_t size = 0;
    void *addr = NULL;
    if (pthread_attr_getstack(attr, &addr, &size) == 0 && addr)
        return size; /* a stack of its own: the size is what matters here */
    if (pthread_attr_getstacksize(attr, &size) != 0)
        return 0;
    /* glibc keeps 0 in the attribute until a size is set and reports its
     * default instead; read the field (struct pthread_attr's stacksize) to
     * tell the two apart, and fall back on comparing with the default. */
    const size_t *raw = (const size_t *)((const char *)attr + 32);
    if (*raw == size)
        return size;
    if (*raw == 0)
        return 0;
    pthread_attr_t def;
    size_t dsize = 0;
    if (pthread_attr_init(&def) == 0) {
        pthread_attr_getstacksize(&def, &dsize);
        pthread_attr_destroy(&def);
    }
    return size == dsize ? 0 : size;
}

EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg)
{
    if (!emulate(CALLER()))
        return REAL(pthread_create)(thread, attr, fn, arg);
    int detach = PTHREAD_CREATE_JOINABLE;
    if (attr && pthread_attr_getdetachstate(attr, &detach) != 0)
        return EINVAL;
    struct thr *t = calloc(1, sizeof *t);
    if (!t)
        return EAGAIN;
    t->magic = THR_MAGIC;
    t->id = (pthread_t)t;
    t->fn = fn;
    t->arg = arg;
    t->detached = detach == PTHREAD_CREATE_DETACHED;
    green_attr_t ga = {.stack_size = attr_stack(attr), .name = NULL};
    t->g = green_spawn_attr(&ga, thread_main, t);
    if (!t->g) {
        int err = errno == EINVAL ? EINVAL : EAGAIN;
        free(t);
        return err;
    }
    t->counted = true;
    nlive++;
    thr_link(t);
    *thread = t->id;
    return 0;
}

EXPORT int pthread_join(pthread_t thread, void **result)
{
    if (!emulate(CALLER()))
        return REAL(pthread_join)(thread, result);
    struct thr *self = self_rec(), *t = rec_of(thread);
    if (!t)
        return REAL(pthread_join)(thread, result);
    if (t == self || t->joining == self)
        return EDEADLK;
    if (t->detached || t->joiners.head)
        return EINVAL;
    while (!t->done) {
        self->joining = t;
        int err = wait_on(&t->joiners, self, "pthread_join", (void *)t->id, GREEN_FOREVER);
        self->joining = NULL;
        if (err)
            return err;
    }
    if (result)
        *result = t->result;
    if (t != &main_rec)
        thr_free(t);
    return 0;
}

static int timed_join(pthread_t thread, void **result, clockid_t clk,
                      const struct timespec *abstime, bool try_only)
{
    struct thr *self = self_rec(), *t = rec_of(thread);
    if (!t)
        return ESRCH;
    if (t == self || t->joining == self)
        return EDEADLK;
    if (t->detached || t->joiners.head)
        return EINVAL;
    while (!t->done) {
        if (try_only)
            return EBUSY;
        if (abstime && !valid_ts(abstime))
            return EINVAL;
        double left = abstime ? until(clk, abstime) : GREEN_FOREVER;
        if (abstime && left <= 0)
            return ETIMEDOUT;
        self->joining = t;
        int err = wait_on(&t->joiners, self, "pthread_timedjoin_np", (void *)t->id, left);
        self->joining = NULL;
        if (err)
            return err;
    }
    if (result)
        *result = t->result;
    if (t != &main_rec)
        thr_free(t);
    return 0;
}

EXPORT int pthread_tryjoin_np(pthread_t thread, void **result)
{
    if (!emulate(CALLER()) || !rec_of(thread))
        return REAL(pthread_tryjoin_np)(thread, result);
    return timed_join(thread, result, CLOCK_REALTIME, NULL, true);
}

EXPORT int pthread_timedjoin_np(pthread_t thread, void **result, const struct timespec *abstime)
{
    if (!emulate(CALLER()) || !rec_of(thread))
        return REAL(pthread_timedjoin_np)(thread, result, abstime);
    return timed_join(thread, result, CLOCK_REALTIME, abstime, false);
}

EXPORT int pthread_clockjoin_np(pthread_t thread, void **result, clockid_t clk,
                                const struct timespec *abstime)
{
    if (!emulate(CALLER()) || !rec_of(thread))
        return REAL(pthread_clockjoin_np)(thread, result, clk, abstime);
    if (!clock_supported(clk))
        return EINVAL;
    return timed_join(thread, result, clk, abstime, false);
}

EXPORT int pthread_detach(pthread_t thread)
{
    if (!emulate(CALLER()))
        return REAL(pthread_detach)(thread);
    struct thr *t = rec_of(thread);
    if (!t || t == &main_rec)
        return REAL(pthread_detach)(thread);
    if (t->detached)
        return EINVAL;
    if (t->done) {
        thr_free(t);
        return 0;
    }
    t->detached = true;
    return 0;
}

EXPORT void pthread_exit(void *result)
{
    if (!emulate(CALLER()))
        REAL(pthread_exit)(result);
    struct thr *self = self_rec();
    if (self == &main_rec) {
        /* As glibc: the main thread ends, the process lives until the last
         * thread ends, then exits with status 0. */
        if (!main_exited) {
            main_exited = true;
            run_key_destructors(self);
            self->result = result;
            self->done = true;
            wake_all(&self->joiners);
        }
        while (nlive > 0) {
            int err = wait_on(&exit_waiters, self, "pthread_exit (main, waiting for the threads)",
                              NULL, GREEN_FOREVER);
            if (err && err != EINTR)
                break;
        }
        exit(0);
    }
    if (self == &hub_rec || self->adopted)
        green_exit(result); /* the adopted record goes with its greenlet */
    thread_end(self, result);
    green_exit(result);
}

EXPORT pthread_t pthread_self(void)
{
    if (!emulate(CALLER()))
        return REAL(pthread_self)();
    return self_rec()->id;
}

EXPORT int pthread_equal(pthread_t a, pthread_t b)
{
    return a == b;
}

EXPORT int pthread_setname_np(pthread_t thread, const char *name)
{
    if (!emulate(CALLER()))
        return REAL(pthread_setname_np)(thread, name);
    struct thr *t = rec_of(thread);
    if (!t)
        return REAL(pthread_setname_np)(thread, name);
    if (strlen(name) >= sizeof t->name)
        return ERANGE;
    if (t == &main_rec) {
        int err = REAL(pthread_setname_np)(thread, name);
        if (err)
            return err;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    green_set_name(t == &main_rec ? main_g : t->g, name);
    return 0;
}

EXPORT int pthread_getname_np(pthread_t thread, char *buf, size_t len)
{
    if (!emulate(CALLER()))
        return REAL(pthread_getname_np)(thread, buf, len);
    struct thr *t = rec_of(thread);
    if (!t || t == &main_rec)
        return REAL(pthread_getname_np)(thread, buf, len);
    if (len < strlen(t->name) + 1)
        return ERANGE;
    memcpy(buf, t->name, strlen(t->name) + 1);
    return 0;
}

/* OS-level operations on a greenlet-thread act on the one OS thread. */
EXPORT int pthread_kill(pthread_t thread, int sig)
{
    if (!emulate(CALLER()))
        return REAL(pthread_kill)(thread, sig);
    struct thr *t = rec_of(thread);
    if (t && t != &main_rec) {
        if (t->done)
            return ESRCH;
        thread = main_rec.id;
    }
    return REAL(pthread_kill)(thread, sig);
}

EXPORT int pthread_getattr_np(pthread_t thread, pthread_attr_t *attr)
{
    if (!emulate(CALLER()))
        return REAL(pthread_getattr_np)(thread, attr);
    struct thr *t = rec_of(thread);
    if (!t || t == &main_rec)
        return REAL(pthread_getattr_np)(thread, attr);
    int err = pthread_attr_init(attr);
    if (!err)
        err = pthread_attr_setdetachstate(attr, t->detached ? PTHREAD_CREATE_DETACHED
                                                            : PTHREAD_CREATE_JOINABLE);
    return err;
}

EXPORT int pthread_cancel(pthread_t thread)
{
    if (!emulate(CALLER()))
        return REAL(pthread_cancel)(thread);
    struct thr *t = rec_of(thread);
    if (!t)
        return REAL(pthread_cancel)(thread);
    return ENOTSUP;
}

EXPORT int sched_yield(void)
{
    if (!emulate(CALLER()))
        return REAL(sched_yield)();
    green_yield();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* pthread_once                                                               */
/* ------------------------------------------------------------------------ */

/* glibc's values: 0 not run, bit 1 in progress, bit 2 done (the rest is its
 * fork generation), so a once finished by either side is done for both. */
#define ONCE_INPROGRESS 1
#define ONCE_DONE 2

EXPORT int pthread_once(pthread_once_t *once, void (*fn)(void))
{
    if (!emulate(CALLER()))
        return REAL(pthread_once)(once, fn);
    for (;;) {
        int v = *once;
        if (v & ONCE_DONE)
            return 0;
        if (!(v & ONCE_INPROGRESS)) {
            *once = ONCE_INPROGRESS;
            fn();
            *once = ONCE_DONE;
            wake_all(&once_waiters);
            return 0;
        }
        int err = wait_on(&once_waiters, self_rec(), "pthread_once", once, GREEN_FOREVER);
        if (err == EDEADLK)
            return REAL(pthread_once)(once, fn);
        if (err)
            return err;
    }
}

/* ------------------------------------------------------------------------ */
/* Thread-specific keys                                                       */
/* ------------------------------------------------------------------------ */

/* A key is in use while its sequence number is odd (glibc's scheme), so a
 * value set under a deleted key is never seen under the key's next life. */
static struct {
    unsigned seq;
    void   (*dtor)(void *);
} keys[KEYS_MAX];

EXPORT int pthread_key_create(pthread_key_t *key, void (*dtor)(void *))
{
    if (!emulate(CALLER()))
        return REAL(pthread_key_create)(key, dtor);
    for (unsigned k = 0; k < KEYS_MAX; k++) {
        if (!(keys[k].seq & 1) && keys[k].seq + 1 > keys[k].seq) {
            keys[k].seq++;
            keys[k].dtor = dtor;
            *key = k;
            return 0;
        }
    }
    return EAGAIN;
}

EXPORT int pthread_key_delete(pthread_key_t key)
{
    if (!emulate(CALLER()))
        return REAL(pthread_key_delete)(key);
    if (key >= KEYS_MAX || !(keys[key].seq & 1))
        return EINVAL;
    keys[key].seq++;
    keys[key].dtor = NULL;
    return 0;
}

EXPORT void *pthread_getspecific(pthread_key_t key)
{
    if (!emulate(CALLER()))
        return REAL(pthread_getspecific)(key);
    if (key >= KEYS_MAX)
        return NULL;
    struct thr *t = self_rec();
    if (key < t->nvals && t->vals[key].seq == keys[key].seq)
        return t->vals[key].value;
    return NULL;
}

EXPORT int pthread_setspecific(pthread_key_t key, const void *value)
{
    if (!emulate(CALLER()))
        return REAL(pthread_setspecific)(key, value);
    if (key >= KEYS_MAX || !(keys[key].seq & 1))
        return EINVAL;
    struct thr *t = self_rec();
    if (key >= t->nvals) {
        unsigned n = t->nvals ? t->nvals : 8;
        while (n <= key)
            n *= 2;
        if (n > KEYS_MAX)
            n = KEYS_MAX;
        struct keyval *grown = realloc(t->vals, n * sizeof *grown);
        if (!grown)
            return ENOMEM;
        memset(grown + t->nvals, 0, (n - t->nvals) * sizeof *grown);
        t->vals = grown;
        t->nvals = n;
    }
    t->vals[key].seq = keys[key].seq;
    t->vals[key].value = (void *)value;
    return 0;
}

static void run_key_destructors(struct thr *t)
{
    for (int pass = 0; pass < DESTRUCTOR_PASSES; pass++) {
        bool again = false;
        for (unsigned k = 0; k < t->nvals; k++) {
            void *v = t->vals[k].value;
            if (!v || t->vals[k].seq != keys[k].seq)
                continue;
            t->vals[k].value = NULL;
            if (keys[k].dtor) {
                keys[k].dtor(v);
                again = true;
            }
        }
        if (!again)
            break;
    }
}

/* ------------------------------------------------------------------------ */
/* Mutexes                                                                    */
/* ------------------------------------------------------------------------ */

/* Laid over pthread_mutex_t; glibc's __kind stays where the initializers
 * (PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP...) and pthread_mutex_init put it. */
struct gmutex {
    struct thr  *owner;  /* over __lock, __count */
    unsigned     count;  /* over __owner: recursion depth */
    unsigned     unused; /* __nusers */
    int          kind;   /* glibc's __kind */
    int          spare;  /* __spins, __elision */
    struct wlist wl;     /* over __list */
};
_Static_assert(sizeof(struct gmutex) <= sizeof(pthread_mutex_t), "mutex state fits");
_Static_assert(offsetof(struct gmutex, kind) == offsetof(pthread_mutex_t, __data.__kind),
               "kind stays glibc's");

#define KIND_TYPE(k) ((k) & 3)            /* PTHREAD_MUTEX_KIND_MASK_NP */
#define KIND_PSHARED 128                  /* PTHREAD_MUTEX_PSHARED_BIT */

/* True when glibc must handle m: process-shared, or locked by glibc (its
 * __lock is then 1 or 2, an odd or unaligned word, where our owner is an
 * aligned pointer). */
static inline bool mutex_is_glibcs(const pthread_mutex_t *m)
{
    const struct gmutex *g = (const struct gmutex *)m;
    return (g->kind & KIND_PSHARED) || ((uintptr_t)g->owner & 7);
}

/* Locks m for self, waiting up to timeout (seconds, < 0 forever; 0 try). */
static int mutex_lock(pthread_mutex_t *pm, struct thr *self, double timeout, bool try_only)
{
    struct gmutex *m = (struct gmutex *)pm;
    if (!m->owner) {
        m->owner = self;
        m->count = 1;
        return 0;
    }
    if (m->owner == self) {
        switch (KIND_TYPE(m->kind)) {
        case PTHREAD_MUTEX_RECURSIVE:
            if (m->count == UINT_MAX)
                return EAGAIN;
            m->count++;
            return 0;
        case PTHREAD_MUTEX_ERRORCHECK:
            return try_only ? EBUSY : EDEADLK;
        default:
            if (try_only)
                return EBUSY;
            break; /* a normal mutex deadlocks, as natively (then reported) */
        }
    }
    if (try_only)
        return EBUSY;
    if (timeout == 0)
        return ETIMEDOUT;
    /* The unlocker hands the mutex over: owner and count are set for us. */
    return wait_on(&m->wl, self, "pthread_mutex_lock", pm, timeout);
}

static int mutex_unlock(pthread_mutex_t *pm, struct thr *self)
{
    struct gmutex *m = (struct gmutex *)pm;
    int type = KIND_TYPE(m->kind);
    if (m->owner != self) {
        /* glibc checks the owner of recursive and error-checking mutexes
         * only; a normal one is simply unlocked. */
        if (type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK)
            return EPERM;
        if (!m->owner)
            return 0;
    }
    if (type == PTHREAD_MUTEX_RECURSIVE && --m->count > 0)
        return 0;
    struct waiter *w = m->wl.head;
    if (w) {
        m->owner = w->t;
        m->count = 1;
        grant(w);
    } else {
        m->owner = NULL;
        m->count = 0;
    }
    return 0;
}

EXPORT int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr)
{
    /* glibc's init leaves every field zero except __kind: our empty state. */
    return REAL(pthread_mutex_init)(m, attr);
}

EXPORT int pthread_mutex_lock(pthread_mutex_t *m)
{
    if (!emulate(CALLER()) || mutex_is_glibcs(m))
        return REAL(pthread_mutex_lock)(m);
    return mutex_lock(m, self_rec(), GREEN_FOREVER, false);
}

EXPORT int pthread_mutex_trylock(pthread_mutex_t *m)
{
    if (!emulate(CALLER()) || mutex_is_glibcs(m))
        return REAL(pthread_mutex_trylock)(m);
    return mutex_lock(m, self_rec(), 0, true);
}

static int mutex_clocklock(pthread_mutex_t *m, clockid_t clk, const struct timespec *abstime)
{
    struct thr *self = self_rec();
    int err = mutex_lock(m, self, 0, true);
    if (err != EBUSY)
        return err;
    struct gmutex *g = (struct gmutex *)m;
    if (g->owner == self && KIND_TYPE(g->kind) == PTHREAD_MUTEX_ERRORCHECK)
        return EDEADLK;
    if (!valid_ts(abstime))
        return EINVAL;
    double left = until(clk, abstime);
    if (left <= 0)
        return ETIMEDOUT;
    return mutex_lock(m, self, left, false);
}

EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abstime)
{
    if (!emulate(CALLER()) || mutex_is_glibcs(m))
        return REAL(pthread_mutex_timedlock)(m, abstime);
    return mutex_clocklock(m, CLOCK_REALTIME, abstime);
}

EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clk,
                                   const struct timespec *abstime)
{
    if (!emulate(CALLER()) || mutex_is_glibcs(m))
        return REAL(pthread_mutex_clocklock)(m, clk, abstime);
    if (!clock_supported(clk))
        return EINVAL;
    return mutex_clocklock(m, clk, abstime);
}

EXPORT int pthread_mutex_unlock(pthread_mutex_t *m)
{
    if (!emulate(CALLER()) || mutex_is_glibcs(m))
        return REAL(pthread_mutex_unlock)(m);
    return mutex_unlock(m, self_rec());
}

EXPORT int pthread_mutex_destroy(pthread_mutex_t *m)
{
    if (!emulate(CALLER()) || mutex_is_glibcs(m))
        return REAL(pthread_mutex_destroy)(m);
    struct gmutex *g = (struct gmutex *)m;
    if (g->owner || g->wl.head)
        return EBUSY;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Condition variables                                                        */
/* ------------------------------------------------------------------------ */

/* Laid over pthread_cond_t; PTHREAD_COND_INITIALIZER (zeros) is an empty
 * list on CLOCK_REALTIME (0). */
struct gcond {
    struct wlist wl;
    clockid_t    clock;
};
_Static_assert(sizeof(struct gcond) <= sizeof(pthread_cond_t), "cond state fits");

EXPORT int pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *attr)
{
    if (!emulate(CALLER()))
        return REAL(pthread_cond_init)(c, attr);
    memset(c, 0, sizeof *c);
    struct gcond *g = (struct gcond *)c;
    clockid_t clk = CLOCK_REALTIME;
    if (attr)
        pthread_condattr_getclock(attr, &clk);
    g->clock = clk;
    return 0;
}

EXPORT int pthread_cond_destroy(pthread_cond_t *c)
{
    if (!emulate(CALLER()))
        return REAL(pthread_cond_destroy)(c);
    return ((struct gcond *)c)->wl.head ? EBUSY : 0;
}

EXPORT int pthread_cond_signal(pthread_cond_t *c)
{
    if (!emulate(CALLER()))
        return REAL(pthread_cond_signal)(c);
    struct gcond *g = (struct gcond *)c;
    if (g->wl.head)
        grant(g->wl.head);
    return 0;
}

EXPORT int pthread_cond_broadcast(pthread_cond_t *c)
{
    if (!emulate(CALLER()))
        return REAL(pthread_cond_broadcast)(c);
    wake_all(&((struct gcond *)c)->wl);
    return 0;
}

/* Waits on c with m released, until signalled or abstime on clk (NULL:
 * forever); m is held again on return, whatever the result. */
static int cond_wait(pthread_cond_t *c, pthread_mutex_t *pm, clockid_t clk,
                     const struct timespec *abstime)
{
    struct thr *self = self_rec();
    struct gmutex *m = (struct gmutex *)pm;
    if (m->owner != self)
        return EPERM;
    if (abstime && !valid_ts(abstime))
        return EINVAL;
    double left = abstime ? until(clk, abstime) : GREEN_FOREVER;
    struct waiter w = {.t = self};
    struct gcond *g = (struct gcond *)c;
    unsigned count = m->count;
    m->count = 1;
    mutex_unlock(pm, self);
    int err;
    if (abstime && left <= 0) {
        err = ETIMEDOUT;
    } else {
        wl_push(&g->wl, &w);
        err = park(self, &w, "pthread_cond_wait", c, left);
    }
    int lerr = mutex_lock(pm, self, GREEN_FOREVER, false);
    if (lerr)
        return lerr; /* out of memory, or in the hub: it cannot wait */
    m->count = count;
    return err == EDEADLK ? 0 : err; /* in the hub: a spurious wake-up */
}

EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    if (!emulate(CALLER()) || mutex_is_glibcs(m))
        return REAL(pthread_cond_wait)(c, m);
    return cond_wait(c, m, CLOCK_REALTIME, NULL);
}

EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                  const struct timespec *abstime)
{
    if (!emulate(CALLER()) || mutex_is_glibcs(m))
        return REAL(pthread_cond_timedwait)(c, m, abstime);
    return cond_wait(c, m, ((struct gcond *)c)->clock, abstime);
}

EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clk,
                                  const struct timespec *abstime)
{
    if (!emulate(CALLER()) || mutex_is_glibcs(m))
        return REAL(pthread_cond_clockwait)(c, m, clk, abstime);
    if (!clock_supported(clk))
        return EINVAL;
    return cond_wait(c, m, clk, abstime);
}

/* ------------------------------------------------------------------------ */
/* Read-write locks                                                           */
/* ------------------------------------------------------------------------ */

/* Laid over pthread_rwlock_t; glibc's __flags (the kind set by
 * pthread_rwlockattr_setkind_np or the writer-preferring initializer) stays
 * at offset 48. Readers are preferred unless the kind asks for writers
 * (PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP), as glibc does. */
struct grwlock {
    unsigned     readers;
    unsigned     writers_waiting;
    struct thr  *writer;
    struct wlist wl;
    char         pad[48 - 32];
    unsigned     flags;
};
_Static_assert(sizeof(struct grwlock) <= sizeof(pthread_rwlock_t), "rwlock state fits");
_Static_assert(offsetof(struct grwlock, flags) == offsetof(pthread_rwlock_t, __data.__flags),
               "flags stay glibc's");

EXPORT int pthread_rwlock_init(pthread_rwlock_t *rw, const pthread_rwlockattr_t *attr)
{
    if (!emulate(CALLER()))
        return REAL(pthread_rwlock_init)(rw, attr);
    memset(rw, 0, sizeof *rw);
    int kind = PTHREAD_RWLOCK_DEFAULT_NP;
    if (attr)
        pthread_rwlockattr_getkind_np(attr, &kind);
    ((struct grwlock *)rw)->flags = (unsigned)kind;
    return 0;
}

EXPORT int pthread_rwlock_destroy(pthread_rwlock_t *rw)
{
    if (!emulate(CALLER()))
        return REAL(pthread_rwlock_destroy)(rw);
    struct grwlock *g = (struct grwlock *)rw;
    return g->readers || g->writer || g->wl.head ? EBUSY : 0;
}

/* Takes rw for reading or writing; waiters retry when woken. */
static int rwlock_take(pthread_rwlock_t *rw, bool write, bool try_only, clockid_t clk,
                       const struct timespec *abstime)
{
    struct grwlock *g = (struct grwlock *)rw;
    struct thr *self = self_rec();
    if (g->writer == self)
        return try_only ? EBUSY : EDEADLK;
    for (;;) {
        bool free_now = write ? !g->writer && g->readers == 0
                              : !g->writer && !(g->flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP &&
                                                g->writers_waiting);
        if (free_now) {
            if (write)
                g->writer = self;
            else if (g->readers == UINT_MAX)
                return EAGAIN;
            else
                g->readers++;
            return 0;
        }
        if (try_only)
            return EBUSY;
        if (abstime && !valid_ts(abstime))
            return EINVAL;
        double left = abstime ? until(clk, abstime) : GREEN_FOREVER;
        if (abstime && left <= 0)
            return ETIMEDOUT;
        if (write)
            g->writers_waiting++;
        int err = wait_on(&g->wl, self, write ? "pthread_rwlock_wrlock" : "pthread_rwlock_rdlock",
                          rw, left);
        if (write)
            g->writers_waiting--;
        if (err)
            return err;
    }
}

EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *rw)
{
    if (!emulate(CALLER()))
        return REAL(pthread_rwlock_rdlock)(rw);
    return rwlock_take(rw, false, false, CLOCK_REALTIME, NULL);
}

EXPORT int pthread_rwlock_tryrdlock(pthread_rwlock_t *rw)
{
    if (!emulate(CALLER()))
        return REAL(pthread_rwlock_tryrdlock)(rw);
    return rwlock_take(rw, false, true, CLOCK_REALTIME, NULL);
}

EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *rw, const struct timespec *abstime)
{
    if (!emulate(CALLER()))
        return REAL(pthread_rwlock_timedrdlock)(rw, abstime);
    return rwlock_take(rw, false, false, CLOCK_REALTIME, abstime);
}

EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t *rw, clockid_t clk,
                                      const struct timespec *abstime)
{
    if (!emulate(CALLER()))
        return REAL(pthread_rwlock_clockrdlock)(rw, clk, abstime);
    if (!clock_supported(clk))
        return EINVAL;
    return rwlock_take(rw, false, false, clk, abstime);
}

EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *rw)
{
    if (!emulate(CALLER()))
        return REAL(pthread_rwlock_wrlock)(rw);
    return rwlock_take(rw, true, false, CLOCK_REALTIME, NULL);
}

EXPORT int pthread_rwlock_trywrlock(pthread_rwlock_t *rw)
{
    if (!emulate(CALLER()))
        return REAL(pthread_rwlock_trywrlock)(rw);
    return rwlock_take(rw, true, true, CLOCK_REALTIME, NULL);
}

EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *rw, const struct timespec *abstime)
{
    if (!emulate(CALLER()))
        return REAL(pthread_rwlock_timedwrlock)(rw, abstime);
    return rwlock_take(rw, true, false, CLOCK_REALTIME, abstime);
}

EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t *rw, clockid_t clk,
                                      const struct timespec *abstime)
{
    if (!emulate(CALLER()))
        return REAL(pthread_rwlock_clockwrlock)(rw, clk, abstime);
    if (!clock_supported(clk))
        return EINVAL;
    return rwlock_take(rw, true, false, clk, abstime);
}

EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *rw)
{
    if (!emulate(CALLER()))
        return REAL(pthread_rwlock_unlock)(rw);
    struct grwlock *g = (struct grwlock *)rw;
    if (g->writer == self_rec())
        g->writer = NULL;
    else if (g->readers > 0)
        g->readers--;
    else
        return EPERM;
    /* Waiters retry: a writer gets in once the last reader leaves, readers
     * as soon as no writer holds it. */
    if (!g->writer && g->wl.head)
        wake_all(&g->wl);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Barriers and spin locks                                                    */
/* ------------------------------------------------------------------------ */

struct gbarrier {
    unsigned     count, arrived;
    struct wlist wl;
};
_Static_assert(sizeof(struct gbarrier) <= sizeof(pthread_barrier_t), "barrier state fits");

EXPORT int pthread_barrier_init(pthread_barrier_t *b, const pthread_barrierattr_t *attr,
                                unsigned count)
{
    if (!emulate(CALLER()))
        return REAL(pthread_barrier_init)(b, attr, count);
    if (count == 0)
        return EINVAL;
    memset(b, 0, sizeof *b);
    ((struct gbarrier *)b)->count = count;
    return 0;
}

EXPORT int pthread_barrier_destroy(pthread_barrier_t *b)
{
    if (!emulate(CALLER()))
        return REAL(pthread_barrier_destroy)(b);
    return ((struct gbarrier *)b)->wl.head ? EBUSY : 0;
}

EXPORT int pthread_barrier_wait(pthread_barrier_t *b)
{
    if (!emulate(CALLER()))
        return REAL(pthread_barrier_wait)(b);
    struct gbarrier *g = (struct gbarrier *)b;
    if (++g->arrived == g->count) {
        g->arrived = 0;
        wake_all(&g->wl);
        return PTHREAD_BARRIER_SERIAL_THREAD;
    }
    int err = wait_on(&g->wl, self_rec(), "pthread_barrier_wait", b, GREEN_FOREVER);
    return err;
}

/* A spin lock held by a parked greenlet would spin forever: yield instead. */
EXPORT int pthread_spin_lock(pthread_spinlock_t *s)
{
    if (!emulate(CALLER()))
        return REAL(pthread_spin_lock)(s);
    for (int i = 0; *s; i++) {
        if (!green__monkey_active())
            return REAL(pthread_spin_lock)(s);
        green_yield();
        if (i > 1000)
            usleep(1000); /* let a sleeping holder's timer fire */
    }
    *s = 1;
    return 0;
}

EXPORT int pthread_spin_trylock(pthread_spinlock_t *s)
{
    if (!emulate(CALLER()))
        return REAL(pthread_spin_trylock)(s);
    if (*s)
        return EBUSY;
    *s = 1;
    return 0;
}

EXPORT int pthread_spin_unlock(pthread_spinlock_t *s)
{
    if (!emulate(CALLER()))
        return REAL(pthread_spin_unlock)(s);
    *s = 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* POSIX semaphores                                                           */
/* ------------------------------------------------------------------------ */

#define SEM_MAGIC 0x67726e73656d3031ULL /* "grnsem01" */

/* Laid over sem_t. glibc's own semaphores (sem_open, pshared) use the first
 * 16 bytes only and never carry the magic. */
struct gsem {
    unsigned     value;
    unsigned     unused;
    struct wlist wl;
    uint64_t     magic;
};
_Static_assert(sizeof(struct gsem) <= sizeof(sem_t), "sem state fits");

static inline bool sem_is_ours(sem_t *s)
{
    return ((struct gsem *)s)->magic == SEM_MAGIC;
}

EXPORT int sem_init(sem_t *s, int pshared, unsigned value)
{
    if (!emulate(CALLER()) || pshared) {
        memset(s, 0, sizeof *s);
        return REAL(sem_init)(s, pshared, value);
    }
    if (value > SEM_VALUE_MAX) {
        errno = EINVAL;
        return -1;
    }
    memset(s, 0, sizeof *s);
    struct gsem *g = (struct gsem *)s;
    g->value = value;
    g->magic = SEM_MAGIC;
    return 0;
}

EXPORT int sem_destroy(sem_t *s)
{
    if (!emulate(CALLER()) || !sem_is_ours(s))
        return REAL(sem_destroy)(s);
    ((struct gsem *)s)->magic = 0;
    return 0;
}

EXPORT int sem_post(sem_t *s)
{
    if (!emulate(CALLER()) || !sem_is_ours(s))
        return REAL(sem_post)(s);
    struct gsem *g = (struct gsem *)s;
    if (g->wl.head) {
        grant(g->wl.head); /* the unit goes straight to the first waiter */
        return 0;
    }
    if (g->value >= SEM_VALUE_MAX) {
        errno = EOVERFLOW;
        return -1;
    }
    g->value++;
    return 0;
}

static int sem_take(sem_t *s, bool try_only, clockid_t clk, const struct timespec *abstime)
{
    struct gsem *g = (struct gsem *)s;
    if (g->value > 0) {
        g->value--;
        return 0;
    }
    int err;
    if (try_only) {
        err = EAGAIN;
    } else if (abstime && !valid_ts(abstime)) {
        err = EINVAL;
    } else {
        double left = abstime ? until(clk, abstime) : GREEN_FOREVER;
        if (abstime && left <= 0)
            err = ETIMEDOUT;
        else
            err = wait_on(&g->wl, self_rec(), "sem_wait", s, left);
        if (err == EDEADLK)
            err = EINTR; /* in the hub: as a signal would interrupt it */
    }
    if (!err)
        return 0;
    errno = err;
    return -1;
}

EXPORT int sem_wait(sem_t *s)
{
    if (!emulate(CALLER()) || !sem_is_ours(s))
        return REAL(sem_wait)(s);
    return sem_take(s, false, CLOCK_REALTIME, NULL);
}

EXPORT int sem_trywait(sem_t *s)
{
    if (!emulate(CALLER()) || !sem_is_ours(s))
        return REAL(sem_trywait)(s);
    return sem_take(s, true, CLOCK_REALTIME, NULL);
}

EXPORT int sem_timedwait(sem_t *s, const struct timespec *abstime)
{
    if (!emulate(CALLER()) || !sem_is_ours(s))
        return REAL(sem_timedwait)(s, abstime);
    return sem_take(s, false, CLOCK_REALTIME, abstime);
}

EXPORT int sem_clockwait(sem_t *s, clockid_t clk, const struct timespec *abstime)
{
    if (!emulate(CALLER()) || !sem_is_ours(s))
        return REAL(sem_clockwait)(s, clk, abstime);
    if (!clock_supported(clk)) {
        errno = EINVAL;
        return -1;
    }
    return sem_take(s, false, clk, abstime);
}

EXPORT int sem_getvalue(sem_t *s, int *value)
{
    if (!emulate(CALLER()) || !sem_is_ours(s))
        return REAL(sem_getvalue)(s, value);
    *value = (int)((struct gsem *)s)->value;
    return 0;
}
