/*
 * GREEN_MONITOR=<ms>: a watchdog thread that reports, on stderr, a greenlet
 * that has run longer than <ms> without yielding (it blocks its hub, so every
 * other greenlet of that thread waits).
 *
 * Each hub counts its switches (a relaxed store on the switch path). The
 * monitor samples every hub a few times per period; a hub whose count has
 * not moved for <ms> while it was not sleeping in the poller is running one
 * greenlet all that time. It is reported once per such stretch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

struct watched {
    struct watched   *next;
    struct green_hub *hub;
    unsigned long     seen;
    double            since;
    bool              reported;
};

static pthread_mutex_t mon_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t mon_once = PTHREAD_ONCE_INIT;
static struct watched *watched;
static double limit_ms;
static bool running;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *monitor_main(void *arg)
{
    (void)arg;
    double period = limit_ms / 4;
    if (period < 1)
        period = 1;
    if (period > 100)
        period = 100;
    struct timespec ts = {(time_t)(period / 1e3), (long)((period - (double)(time_t)(period / 1e3) * 1e3) * 1e6)};
    for (;;) {
        nanosleep(&ts, NULL);
        double now = mono_ms();
        pthread_mutex_lock(&mon_lock);
        for (struct watched *w = watched; w; w = w->next) {
            struct green_hub *h = w->hub;
            unsigned long n = atomic_load_explicit(&h->nswitch, memory_order_relaxed);
            if (n != w->seen || atomic_load_explicit(&h->polling, memory_order_relaxed)) {
                w->seen = n;
                w->since = now;
                w->reported = false;
            } else if (!w->reported && now - w->since >= limit_ms) {
                green_t *g = __atomic_load_n(&h->current, __ATOMIC_RELAXED);
                fprintf(stderr,
                        "libgreen: monitor: greenlet %llu '%s' has run for %.0f ms without "
                        "yielding; it blocks the hub\n",
                        (unsigned long long)g->id, green_name(g), now - w->since);
                w->reported = true;
            }
        }
        pthread_mutex_unlock(&mon_lock);
    }
    return NULL;
}

static bool monitor_start(void)
{
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    bool ok = pthread_create(&t, &a, monitor_main, NULL) == 0;
    pthread_attr_destroy(&a);
    return ok;
}

/*
 * fork: the lock is taken across it, so the child never inherits it held by
 * the monitor thread. The child has only the forking thread: it keeps
 * watching that thread's hub (the others' threads are gone, and their
 * frozen counters would read as greenlets that never yield), and starts a
 * monitor thread of its own at its next spawn or hub loop iteration
 * (green__monitor_check_fork), not in the fork handler: a thread created
 * there can block for good on a lock held across the fork (measured:
 * AddressSanitizer's), and POSIX allows a forked child of a threaded
 * process only async-signal-safe calls until it is back from fork.
 */
_Atomic bool green__monitor_fork_pending;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&mon_lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&mon_lock);
}

static void atfork_child(void)
{
    struct green_hub *mine = green__tls_hub;
    struct watched *w = watched, *next;
    watched = NULL;
    for (; w; w = next) {
        next = w->next;
        if (w->hub == mine) {
            w->next = NULL;
            watched = w;
        } else {
            free(w);
        }
    }
    running = false;
    green__monitor_fork_pending = true;
    pthread_mutex_unlock(&mon_lock);
}

void green__monitor_after_fork(void)
{
    pthread_mutex_lock(&mon_lock);
    if (green__monitor_fork_pending) {
        green__monitor_fork_pending = false;
        running = monitor_start();
        for (struct watched *w = watched; w; w = w->next) {
            w->since = mono_ms();
            w->reported = false;
        }
        if (!running && watched) { /* no thread: nothing watches */
            watched->hub->monitor = NULL;
            free(watched);
            watched = NULL;
        }
    }
    pthread_mutex_unlock(&mon_lock);
}

static void monitor_init(void)
{
    const char *env = getenv("GREEN_MONITOR");
    if (!env)
        return;
    double ms = strtod(env, NULL);
    if (!(ms > 0))
        return;
    limit_ms = ms;
    running = monitor_start();
    if (running)
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

void green__monitor_attach(struct green_hub *h)
{
    pthread_once(&mon_once, monitor_init);
    green__monitor_check_fork();
    if (!running)
        return;
    struct watched *w = calloc(1, sizeof *w);
    if (!w)
        return;
    w->hub = h;
    w->since = mono_ms();
    pthread_mutex_lock(&mon_lock);
    w->next = watched;
    watched = w;
    pthread_mutex_unlock(&mon_lock);
    h->monitor = w;
}

void green__monitor_detach(struct green_hub *h)
{
    if (!h->monitor)
        return;
    pthread_mutex_lock(&mon_lock);
    for (struct watched **pp = &watched; *pp; pp = &(*pp)->next) {
        if (*pp == h->monitor) {
            *pp = (*pp)->next;
            break;
        }
    }
    pthread_mutex_unlock(&mon_lock);
    free(h->monitor);
    h->monitor = NULL;
}
