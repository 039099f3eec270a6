/*
 * The pthread toolbox doing real work across threads; prints only results
 * that do not depend on scheduling, so the native run and the run under
 * green-run --threads print the same. Ends with pthread_exit in main: the
 * process must live until the last thread ends, then exit with status 0.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N 8
#define ROUNDS 2000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t rlock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_barrier_t barrier;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static sem_t slots;
static long counter, table[N], once_runs, dtor_runs, in_slots, max_in_slots;
static int ready;

static void init_once(void)
{
    usleep(10000); /* others arrive while it runs */
    once_runs++;
}

static void dtor(void *v)
{
    pthread_mutex_lock(&lock);
    dtor_runs += (long)v;
    pthread_mutex_unlock(&lock);
}

static void *worker(void *arg)
{
    long id = (long)arg;
    pthread_once(&once, init_once);
    pthread_setspecific(key, (void *)(id + 1));
    /* Mutex + yield: increments interleave but none is lost. */
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        long c = counter;
        if (i % 100 == 0)
            sched_yield();
        counter = c + 1;
        pthread_mutex_unlock(&lock);
    }
    /* Recursive mutex held across a sleep. */
    pthread_mutex_lock(&rlock);
    pthread_mutex_lock(&rlock);
    usleep(1000);
    pthread_mutex_unlock(&rlock);
    pthread_mutex_unlock(&rlock);
    /* Writers update the table; readers check it is consistent. */
    for (int i = 0; i < 50; i++) {
        if (i % 5 == 0) {
            pthread_rwlock_wrlock(&rw);
            for (int j = 0; j < N; j++)
                table[j]++;
            usleep(100);
            pthread_rwlock_unlock(&rw);
        } else {
            pthread_rwlock_rdlock(&rw);
            long v0 = table[0];
            usleep(50);
            for (int j = 1; j < N; j++)
                if (table[j] != v0)
                    puts("rwlock: inconsistent table");
            pthread_rwlock_unlock(&rw);
        }
    }
    /* A counting semaphore admits at most 3 at a time. */
    sem_wait(&slots);
    pthread_mutex_lock(&lock);
    if (++in_slots > max_in_slots)
        max_in_slots = in_slots;
    pthread_mutex_unlock(&lock);
    usleep(2000);
    pthread_mutex_lock(&lock);
    in_slots--;
    pthread_mutex_unlock(&lock);
    sem_post(&slots);
    /* Everyone meets at the barrier; one is the serial thread. */
    int r = pthread_barrier_wait(&barrier);
    /* Then waits for main's go on the condition variable. */
    pthread_mutex_lock(&lock);
    while (!ready)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    if (id == N - 1)
        pthread_exit((void *)(long)(r == PTHREAD_BARRIER_SERIAL_THREAD ? 1000 : 2000));
    return (void *)(long)(r == PTHREAD_BARRIER_SERIAL_THREAD ? 1000 : 2000);
}

static void *late(void *arg)
{
    (void)arg;
    usleep(50000);
    puts("late thread: still running after main's pthread_exit");
    fflush(stdout);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_barrier_init(&barrier, NULL, N);
    pthread_key_create(&key, dtor);
    sem_init(&slots, 0, 3);
    pthread_t ts[N];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (long i = 0; i < N; i++)
        if (pthread_create(&ts[i], &attr, worker, (void *)i) != 0)
            puts("pthread_create failed");
    size_t ss = 0;
    pthread_attr_getstacksize(&attr, &ss);
    usleep(100000);
    pthread_mutex_lock(&lock);
    ready = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    long serial = 0, others = 0;
    for (int i = 0; i < N; i++) {
        void *r;
        pthread_join(ts[i], &r);
        if ((long)r == 1000)
            serial++;
        else if ((long)r == 2000)
            others++;
    }
    printf("counter=%ld (want %d)\n", counter, N * ROUNDS);
    printf("once ran %ld time(s)\n", once_runs);
    printf("key destructors saw %ld (want %d)\n", dtor_runs, N * (N + 1) / 2);
    printf("table=%ld\n", table[0]);
    printf("semaphore: at most %ld inside (limit 3)\n", max_in_slots > 3 ? max_in_slots : 3);
    printf("barrier: %ld serial, %ld others\n", serial, others);
    printf("distinct pthread_self: %d\n", !pthread_equal(ts[0], ts[1]) && !pthread_equal(ts[0], pthread_self()));
    pthread_t l;
    pthread_create(&l, NULL, late, NULL);
    pthread_detach(l);
    pthread_exit(NULL);
}
