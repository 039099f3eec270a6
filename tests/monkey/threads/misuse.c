#define _GNU_SOURCE
/*
 * Misuse of the pthread API: each line prints what a call returned, so the
 * output under green-run --threads can be compared with the native run.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *name(int err)
{
    switch (err) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case EBUSY: return "EBUSY";
    case EDEADLK: return "EDEADLK";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EAGAIN: return "EAGAIN";
    case ESRCH: return "ESRCH";
    case ERANGE: return "ERANGE";
    default: return strerror(err);
    }
}

#define SHOW(what, expr) printf("%-48s %s\n", what, name(expr))
/* For calls that return -1 and set errno. */
#define SHOW_ERRNO(what, expr) printf("%-48s %s\n", what, (expr) == 0 ? "0" : name(errno))

static sem_t release_detached, detached_running;
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t held_ec;
static sem_t holder_locked, holder_release;

static void *detached_main(void *arg)
{
    (void)arg;
    sem_post(&detached_running);
    sem_wait(&release_detached);
    return NULL;
}

static void *holder_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&held);
    pthread_mutex_lock(&held_ec);
    sem_post(&holder_locked);
    sem_wait(&holder_release);
    pthread_mutex_unlock(&held_ec);
    pthread_mutex_unlock(&held);
    return (void *)42;
}

static void *self_join_main(void *arg)
{
    (void)arg;
    return (void *)(long)pthread_join(pthread_self(), NULL);
}

static struct timespec in(clockid_t clk, long ms)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (ts.tv_nsec < 0) {
        ts.tv_sec--;
        ts.tv_nsec += 1000000000L;
    }
    return ts;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&held_ec, &ma);
    sem_init(&release_detached, 0, 0);
    sem_init(&detached_running, 0, 0);
    sem_init(&holder_locked, 0, 0);
    sem_init(&holder_release, 0, 0);

    /* Joins. */
    SHOW("join self (main)", pthread_join(pthread_self(), NULL));
    pthread_t t;
    pthread_create(&t, NULL, self_join_main, NULL);
    void *r;
    pthread_join(t, &r);
    SHOW("join self (thread)", (int)(long)r);
    pthread_attr_t da;
    pthread_attr_init(&da);
    pthread_attr_setdetachstate(&da, PTHREAD_CREATE_DETACHED);
    pthread_create(&t, &da, detached_main, NULL);
    sem_wait(&detached_running);
    SHOW("join detached (still running)", pthread_join(t, NULL));
    SHOW("detach detached (still running)", pthread_detach(t));
    sem_post(&release_detached);
    usleep(20000);

    /* Mutexes. */
    pthread_mutex_t ec, rec, norm = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_init(&ec, &ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&rec, &ma);
    SHOW("errorcheck unlock, not locked", pthread_mutex_unlock(&ec));
    SHOW("errorcheck lock", pthread_mutex_lock(&ec));
    SHOW("errorcheck relock by owner", pthread_mutex_lock(&ec));
    SHOW("errorcheck trylock by owner", pthread_mutex_trylock(&ec));
    SHOW("errorcheck destroy while locked", pthread_mutex_destroy(&ec));
    SHOW("errorcheck unlock", pthread_mutex_unlock(&ec));
    SHOW("errorcheck destroy", pthread_mutex_destroy(&ec));
    SHOW("recursive unlock, not locked", pthread_mutex_unlock(&rec));
    SHOW("recursive lock x3", pthread_mutex_lock(&rec) | pthread_mutex_lock(&rec) |
                              pthread_mutex_trylock(&rec));
    SHOW("recursive destroy while locked", pthread_mutex_destroy(&rec));
    SHOW("recursive unlock x3", pthread_mutex_unlock(&rec) | pthread_mutex_unlock(&rec) |
                                pthread_mutex_unlock(&rec));
    SHOW("recursive unlock once more", pthread_mutex_unlock(&rec));
    SHOW("normal lock", pthread_mutex_lock(&norm));
    SHOW("normal trylock by owner", pthread_mutex_trylock(&norm));
    SHOW("normal destroy while locked", pthread_mutex_destroy(&norm));
    struct timespec ts = in(CLOCK_REALTIME, 30);
    SHOW("normal timedlock by owner (30 ms)", pthread_mutex_timedlock(&norm, &ts));
    SHOW("normal unlock", pthread_mutex_unlock(&norm));

    pthread_t h;
    pthread_create(&h, NULL, holder_main, NULL);
    sem_wait(&holder_locked);
    SHOW("errorcheck unlock, held by another thread", pthread_mutex_unlock(&held_ec));
    SHOW("trylock, held by another thread", pthread_mutex_trylock(&held));
    ts = in(CLOCK_REALTIME, 50);
    SHOW("timedlock, held by another (50 ms)", pthread_mutex_timedlock(&held, &ts));
    ts = in(CLOCK_REALTIME, -1000);
    SHOW("timedlock, held, past deadline", pthread_mutex_timedlock(&held, &ts));
    ts.tv_nsec = 2000000000L;
    SHOW("timedlock, held, bad tv_nsec", pthread_mutex_timedlock(&held, &ts));
    sem_post(&holder_release);
    pthread_join(h, &r);
    SHOW("join holder returns 42", (long)r == 42 ? 0 : EINVAL);
    SHOW("trylock, released", pthread_mutex_trylock(&held));
    SHOW("unlock", pthread_mutex_unlock(&held));

    /* Condition variables. */
    pthread_cond_t c = PTHREAD_COND_INITIALIZER, cm;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cm, &ca);
    pthread_mutex_lock(&norm);
    ts = in(CLOCK_REALTIME, -10);
    SHOW("cond timedwait, past deadline (realtime)", pthread_cond_timedwait(&c, &norm, &ts));
    ts = in(CLOCK_MONOTONIC, -10);
    SHOW("cond timedwait, past deadline (monotonic)", pthread_cond_timedwait(&cm, &norm, &ts));
    ts = in(CLOCK_MONOTONIC, 30);
    SHOW("cond timedwait, 30 ms (monotonic)", pthread_cond_timedwait(&cm, &norm, &ts));
    ts = in(CLOCK_REALTIME, 30);
    SHOW("cond clockwait, 30 ms (realtime)", pthread_cond_clockwait(&cm, &norm, CLOCK_REALTIME, &ts));
    SHOW("mutex still held after the waits (trylock)", pthread_mutex_trylock(&norm));
    pthread_mutex_unlock(&norm);
    pthread_mutex_lock(&held_ec);
    pthread_mutex_unlock(&held_ec);
    SHOW("cond wait, errorcheck mutex not held", pthread_cond_wait(&c, &held_ec));

    /* Read-write locks. */
    pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
    SHOW("rwlock wrlock", pthread_rwlock_wrlock(&rw));
    SHOW("rwlock wrlock again by writer", pthread_rwlock_wrlock(&rw));
    SHOW("rwlock rdlock by writer", pthread_rwlock_rdlock(&rw));
    SHOW("rwlock tryrdlock by writer", pthread_rwlock_tryrdlock(&rw));
    SHOW("rwlock unlock", pthread_rwlock_unlock(&rw));
    SHOW("rwlock rdlock x2", pthread_rwlock_rdlock(&rw) | pthread_rwlock_rdlock(&rw));
    SHOW("rwlock trywrlock while read-locked", pthread_rwlock_trywrlock(&rw));
    ts = in(CLOCK_REALTIME, 30);
    SHOW("rwlock timedwrlock while read-locked", pthread_rwlock_timedwrlock(&rw, &ts));
    SHOW("rwlock unlock x2", pthread_rwlock_unlock(&rw) | pthread_rwlock_unlock(&rw));
    SHOW("rwlock destroy", pthread_rwlock_destroy(&rw));

    /* Semaphores. */
    sem_t s;
    sem_init(&s, 0, 0);
    SHOW_ERRNO("sem trywait at 0", sem_trywait(&s));
    ts = in(CLOCK_REALTIME, -10);
    SHOW_ERRNO("sem timedwait, past deadline", sem_timedwait(&s, &ts));
    ts = in(CLOCK_REALTIME, 30);
    SHOW_ERRNO("sem timedwait, 30 ms", sem_timedwait(&s, &ts));
    ts.tv_nsec = -1;
    SHOW_ERRNO("sem timedwait, bad tv_nsec", sem_timedwait(&s, &ts));
    ts = in(CLOCK_MONOTONIC, 30);
    SHOW_ERRNO("sem clockwait monotonic, 30 ms", sem_clockwait(&s, CLOCK_MONOTONIC, &ts));
    SHOW_ERRNO("sem post", sem_post(&s));
    int v = -1;
    sem_getvalue(&s, &v);
    printf("%-48s %d\n", "sem value", v);
    SHOW_ERRNO("sem trywait at 1", sem_trywait(&s));
    SHOW_ERRNO("sem init above SEM_VALUE_MAX", sem_init(&s, 0, (unsigned)SEM_VALUE_MAX + 1u));
    sem_destroy(&s);

    /* Keys, names. */
    pthread_key_t k;
    pthread_key_create(&k, NULL);
    SHOW("key delete", pthread_key_delete(k));
    SHOW("key delete again", pthread_key_delete(k));
    SHOW("setspecific on a deleted key", pthread_setspecific(k, &k));
    SHOW("setname too long", pthread_setname_np(pthread_self(), "a name longer than 15"));
    char buf[4];
    pthread_create(&t, NULL, detached_main, NULL);
    sem_wait(&detached_running);
    SHOW("setname thread", pthread_setname_np(t, "worker"));
    SHOW("getname into a short buffer", pthread_getname_np(t, buf, sizeof buf));
    char nb[16];
    SHOW("getname", pthread_getname_np(t, nb, sizeof nb));
    printf("%-48s %s\n", "name", nb);
    sem_post(&release_detached);
    SHOW("join", pthread_join(t, NULL));
    return 0;
}
