#define _GNU_SOURCE
/*
 * Two threads, each locking the other's mutex: the classic lock-order
 * deadlock. Natively it hangs forever; under green-run --threads it must be
 * reported (the core finds nothing left that could run) instead.
 */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;

static void *one(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&a);
    usleep(20000); /* the other thread takes b meanwhile */
    pthread_mutex_lock(&b);
    pthread_mutex_unlock(&b);
    pthread_mutex_unlock(&a);
    return NULL;
}

static void *two(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&b);
    usleep(20000);
    pthread_mutex_lock(&a);
    pthread_mutex_unlock(&a);
    pthread_mutex_unlock(&b);
    return NULL;
}

int main(void)
{
    pthread_t t1, t2;
    pthread_create(&t1, NULL, one, NULL);
    pthread_create(&t2, NULL, two, NULL);
    pthread_setname_np(t1, "one");
    pthread_setname_np(t2, "two");
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    puts("not reached");
    return 0;
}
