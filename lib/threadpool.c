/*
 * The thread pool: blocking or CPU-bound work on OS threads while the calling
 * greenlet waits cooperatively.
 *
 * One pool per process: GREEN_THREADPOOL_SIZE threads at most (default: the
 * number of cores), started as work arrives. A job is queued under the pool's
 * mutex; a worker runs it and reports back to the submitting hub through the
 * hub's inbox: a mutex-protected list of finished jobs and an ev_async that
 * wakes the hub's loop. The inbox callback, on the hub's thread, hands each
 * result to its waiter with green__trigger.
 *
 * A waiter that is killed or times out leaves its job behind: the job still
 * runs to its end, and when it arrives the hub disposes of its result with
 * the job's drop function. A job's `waiter`, `arrived` and `abandoned` fields
 * are only touched on the hub's thread, so they need no lock.
 *
 * The ev_async is unref'd while no job of the hub is out, so an idle pool
 * neither keeps green_wait waiting nor hides a deadlock.
 *
 * Fork. The child has none of the parent's threads, so the jobs its hub had
 * out will never arrive there: the child's fork handler ends each one, its
 * waiter failing with EAGAIN (a retry in the child runs on a fresh pool),
 * which is why the hub keeps a list of the jobs it has out.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

struct job {
    struct job            *next;
    struct job            *out_next, *out_prev; /* the hub's jobs out (hub thread only) */
    void                *(*fn)(void *);
    void                  *arg;
    void                  *result;
    void                 (*drop)(void *arg, void *result);
    struct green_hub      *hub;
    struct green__waiter  *waiter;    /* hub thread only */
    bool                   arrived;   /* hub thread only */
    bool                   abandoned; /* hub thread only */
};

struct green__pool_inbox {
    ev_async        async;
    pthread_mutex_t lock;
    struct job     *done;    /* finished, newest first */
    unsigned        pending; /* submitted and not yet arrived (hub thread only) */
    struct job     *out;     /* those jobs (hub thread only) */
};

static void out_remove(struct green__pool_inbox *in, struct job *j)
{
    if (j->out_prev)
        j->out_prev->out_next = j->out_next;
    else
        in->out = j->out_next;
    if (j->out_next)
        j->out_next->out_prev = j->out_prev;
    j->out_next = j->out_prev = NULL;
}

static void dispose(struct job *j);
/* A job has arrived (or, in a forked child, never will): accounts for it. */
static void job_arrived(struct green__pool_inbox *in, struct job *j)
{
    j->arrived = true;
    out_remove(in, j);
    if (--in->pending == 0) {
        ev_unref(j->hub->loop);
        green__active_dec(j->hub);
    }
}

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    struct job     *head, *tail;
    unsigned        max, threads, idle;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0};

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_atfork_child(void)
{
    /* The child has none of the parent's threads: start afresh. The jobs
     * queued by the parent are the parent's. */
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.cond, NULL);
    pool.head = pool.tail = NULL;
    pool.threads = pool.idle = 0;
    /* A worker may have held the forking hub's inbox lock (it posts there). */
    struct green_hub *h = green__tls_hub;
    struct green__pool_inbox *in = h ? h->inbox : NULL;
    if (!in)
        return;
    pthread_mutex_init(&in->lock, NULL);
    in->done = NULL; /* arrived in the parent, not here */
    struct job *j;
    while ((j = in->out) != NULL) {
        job_arrived(in, j);
        if (j->abandoned)
            dispose(j);
        else
            green__trigger(j->waiter, EAGAIN); /* its caller disposes of it */
    }
}

static void pool_init(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("GREEN_THREADPOOL_SIZE");
    if (env && atol(env) > 0)
        n = atol(env);
    pool.max = n > 0 ? (unsigned)n : 1;
    pthread_atfork(NULL, NULL, pool_atfork_child);
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head) {
            pool.idle++;
            pthread_cond_wait(&pool.cond, &pool.lock);
            pool.idle--;
        }
        struct job *j = pool.head;
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
        pthread_mutex_unlock(&pool.lock);

        j->result = j->fn(j->arg);

        struct green__pool_inbox *in = j->hub->inbox;
        pthread_mutex_lock(&in->lock);
        j->next = in->done;
        in->done = j;
        pthread_mutex_unlock(&in->lock);
        ev_async_send(j->hub->loop, &in->async);

        pthread_mutex_lock(&pool.lock);
    }
    return NULL;
}

static int pool_submit(struct job *j)
{
    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&pool.lock);
    j->next = NULL;
    if (pool.tail)
        pool.tail->next = j;
    else
        pool.head = j;
    pool.tail = j;
    int err = 0;
    if (pool.idle == 0 && pool.threads < pool.max) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        /* Workers block every signal: signals belong to the program's threads. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        if (pthread_create(&t, &a, worker, NULL) == 0)
            pool.threads++;
        else if (pool.threads == 0)
            err = EAGAIN;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&a);
    }
    if (err) {
        /* No thread at all to run it: take the job back. */
        pool.head = pool.tail = NULL;
    } else {
        pthread_cond_signal(&pool.cond);
    }
    pthread_mutex_unlock(&pool.lock);
    return err;
}

static void dispose(struct job *j)
{
    if (j->drop)
        j->drop(j->arg, j->result);
    free(j);
}

static void inbox_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)revents;
    struct green__pool_inbox *in = (struct green__pool_inbox *)a;
    pthread_mutex_lock(&in->lock);
    struct job *j = in->done, *fifo = NULL;
    in->done = NULL;
    pthread_mutex_unlock(&in->lock);
    while (j) { /* newest first: reverse to hand results out in order */
        struct job *next = j->next;
        j->next = fifo;
        fifo = j;
        j = next;
    }
    for (j = fifo; j; j = fifo) {
        fifo = j->next;
        job_arrived(in, j);
        if (j->abandoned)
            dispose(j);
        else
            green__trigger(j->waiter, 0);
    }
}

static struct green__pool_inbox *inbox_of(struct green_hub *h)
{
    if (h->inbox)
        return h->inbox;
    struct green__pool_inbox *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    pthread_mutex_init(&in->lock, NULL);
    ev_async_init(&in->async, inbox_cb);
    ev_async_start(h->loop, &in->async);
    ev_unref(h->loop); /* only jobs out keep the loop alive */
    h->inbox = in;
    return in;
}

int green__threadpool_run(struct green_hub *h, void *(*fn)(void *), void *arg, void **result,
                          double timeout, void (*drop)(void *arg, void *result))
{
    if (timeout == 0)
        return EAGAIN;
    struct green__pool_inbox *in = inbox_of(h);
    struct job *j = calloc(1, sizeof *j);
    if (!in || !j) {
        free(j);
        return ENOMEM;
    }
    j->fn = fn;
    j->arg = arg;
    j->drop = drop;
    j->hub = h;
    struct green__waiter w;
    green__waiter_init(&w, "threadpool", (const void *)fn);
    j->waiter = &w;
    int err = pool_submit(j);
    if (err) {
        free(j);
        return err;
    }
    if (in->pending++ == 0) {
        ev_ref(h->loop);
        green__active_inc(h);
    }
    j->out_next = in->out;
    if (in->out)
        in->out->out_prev = j;
    in->out = j;
    err = green__park(&w, timeout);
    if (err) {
        j->waiter = NULL;
        if (j->arrived)
            dispose(j); /* it arrived after the wait had already ended */
        else
            j->abandoned = true; /* disposed of by inbox_cb on arrival */
        return err;
    }
    if (result)
        *result = j->result;
    free(j);
    return 0;
}

int green_threadpool_call(void *(*fn)(void *), void *arg, void **result, double timeout)
{
    if (!fn)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (!err)
        err = green__threadpool_run(h, fn, arg, result, timeout, NULL);
    return err ? green__fail(err) : 0;
}

void green__threadpool_hub_free(struct green_hub *h)
{
    struct green__pool_inbox *in = h->inbox;
    if (!in)
        return;
    ev_ref(h->loop);
    ev_async_stop(h->loop, &in->async);
    pthread_mutex_destroy(&in->lock);
    free(in);
    h->inbox = NULL;
}
