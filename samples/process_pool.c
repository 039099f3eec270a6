/*
 * Recipe: multiprocessing.Pool (the Python documentation's "Using a pool
 * of workers" example): map, imap_unordered and apply_async on a pool of
 * four worker processes, a get with a timeout, then the pool shut down:
 *
 *     from multiprocessing import Pool, TimeoutError
 *     import time
 *     import os
 *
 *     def f(x):
 *         return x*x
 *
 *     if __name__ == '__main__':
 *         # start 4 worker processes
 *         with Pool(processes=4) as pool:
 *
 *             # print "[0, 1, 4,..., 81]"
 *             print(pool.map(f, range(10)))
 *
 *             # print same numbers in arbitrary order
 *             for i in pool.imap_unordered(f, range(10)):
 *                 print(i)
 *
 *             # evaluate "f(20)" asynchronously
 *             res = pool.apply_async(f, (20,))      # runs in *only* one process
 *             print(res.get(timeout=1))             # prints "400"
 *
 *             # evaluate "os.getpid()" asynchronously
 *             res = pool.apply_async(os.getpid, ()) # runs in *only* one process
 *             print(res.get(timeout=1))             # prints the PID of that process
 *
 *             # launching multiple evaluations asynchronously *may* use more processes
 *             multiple_results = [pool.apply_async(os.getpid, ()) for i in range(4)]
 *             print([res.get(timeout=1) for res in multiple_results])
 *
 *             # make a single worker sleep for 10 seconds
 *             res = pool.apply_async(time.sleep, (10,))
 *             try:
 *                 print(res.get(timeout=1))
 *             except TimeoutError:
 *                 print("We lacked patience and got a multiprocessing.TimeoutError")
 *
 *             print("For the moment, the pool remains available for more work")
 *
 *         # exiting the 'with'-block has stopped the pool
 *         print("Now the pool is closed and no longer available")
 *
 * It prints [0, 1, 4, 9, 16, 25, 36, 49, 64, 81], the ten squares one per
 * line in arbitrary order, 400, a worker's pid, a list of four worker pids,
 * the TimeoutError line and the two closing lines, in about one second.
 *
 * The port. Pool(4) forks four workers; each reads tasks from its own pipe
 * and writes results to another, with plain blocking calls (a worker is an
 * ordinary process and uses no greenlets). In the parent, each worker has a
 * feeder greenlet that takes the next task from a shared green_queue (so a
 * task goes to whichever worker is free, as with multiprocessing), writes
 * it to the worker with green_write_all and reads the answer with
 * green_read, cooperatively, and fills in the task's green_result (an
 * AsyncResult). Leaving the with-block is Pool.terminate(): the queue is
 * closed, the workers get SIGTERM (the one still asleep included), and
 * green_waitpid reaps each of them.
 */
#include <errno.h>
#include <green.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NWORKERS 4

enum op { OP_SQUARE, OP_GETPID, OP_SLEEP };

/* What goes down a worker's task pipe, and what comes back. */
struct request {
    int32_t op;
    int64_t arg;
};
struct reply {
    int64_t value;
};

/* An apply_async: the caller owns it and frees it once nobody can touch
 * it any more (after its get, or after the pool is terminated). */
struct task {
    struct request  req;
    green_result_t *result;   /* AsyncResult */
    green_queue_t  *done;     /* imap_unordered: the task is put here when done */
};

struct worker {
    pid_t          pid;
    int            task_fd;   /* parent -> worker */
    int            reply_fd;  /* worker -> parent */
    green_queue_t *tasks;     /* the pool's */
    green_t       *feeder;
};

struct pool {
    struct worker  workers[NWORKERS];
    green_queue_t *tasks;
};

/* ------------------------------------------------------------------------ */
/* The worker process                                                        */
/* ------------------------------------------------------------------------ */

static int64_t f(int64_t x)
{
    return x * x;
}

static bool read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* Serves requests until the parent closes the task pipe. */
__attribute__((noreturn)) static void worker_main(int task_fd, int reply_fd)
{
    struct request req;
    while (read_full(task_fd, &req, sizeof req)) {
        struct reply rep = {0};
        switch (req.op) {
        case OP_SQUARE:
            rep.value = f(req.arg);
            break;
        case OP_GETPID:
            rep.value = getpid();
            break;
        case OP_SLEEP:
            sleep((unsigned)req.arg);
            break;
        }
        if (write(reply_fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
            break;
    }
    _exit(0);
}

/* ------------------------------------------------------------------------ */
/* The pool, in the parent                                                    */
/* ------------------------------------------------------------------------ */

/* Cooperative read of exactly n bytes; false on EOF or error. */
static bool coop_read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = green_read(fd, (char *)buf + got, n - got, GREEN_FOREVER);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* One per worker: hands it the next task, waits for the answer. */
static void *feeder(void *arg)
{
    struct worker *w = arg;
    void *item;
    while (green_queue_get(w->tasks, &item, GREEN_FOREVER) == 0) {
        struct task *t = item;
        struct reply rep;
        if (green_write_all(w->task_fd, &t->req, sizeof t->req, GREEN_FOREVER) < 0 ||
            !coop_read_full(w->reply_fd, &rep, sizeof rep)) {
            /* The worker is gone (terminated while it worked). */
            green_result_fail(t->result, EPIPE);
            break;
        }
        green_result_set(t->result, (void *)(intptr_t)rep.value);
        if (t->done)
            green_queue_put(t->done, t, GREEN_FOREVER);
    }
    return NULL;
}

/* Pool(processes=NWORKERS). */
static int pool_start(struct pool *p)
{
    memset(p, 0, sizeof *p);
    p->tasks = green_queue_new(0);
    if (!p->tasks)
        return -1;
    int fds[NWORKERS][4]; /* task read, task write, reply read, reply write */
    for (int i = 0; i < NWORKERS; i++) {
        if (pipe(&fds[i][0]) < 0 || pipe(&fds[i][2]) < 0)
            return -1;
    }
    fflush(stdout); /* nothing buffered is written twice */
    for (int i = 0; i < NWORKERS; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            /* Keep only this worker's two ends: the others' ends held here
             * would keep their pipes from ever reporting end-of-file. */
            for (int k = 0; k < NWORKERS; k++)
                for (int e = 0; e < 4; e++)
                    if (!(k == i && (e == 0 || e == 3)))
                        close(fds[k][e]);
            worker_main(fds[i][0], fds[i][3]);
        }
        struct worker *w = &p->workers[i];
        w->pid = pid;
        w->tasks = p->tasks;
    }
    for (int i = 0; i < NWORKERS; i++) {
        struct worker *w = &p->workers[i];
        close(fds[i][0]);
        close(fds[i][3]);
        w->task_fd = fds[i][1];
        w->reply_fd = fds[i][2];
        w->feeder = green_spawn(feeder, w);
        if (!w->feeder)
            return -1;
    }
    return 0;
}

/* pool.apply_async(op, (arg,)): queued for the next free worker. */
static struct task *apply_async(struct pool *p, enum op op, int64_t arg, green_queue_t *done)
{
    struct task *t = calloc(1, sizeof *t);
    if (!t || !(t->result = green_result_new())) {
        free(t);
        return NULL;
    }
    t->req.op = op;
    t->req.arg = arg;
    t->done = done;
    if (green_queue_put(p->tasks, t, GREEN_FOREVER) != 0) {
        green_result_free(t->result);
        free(t);
        return NULL;
    }
    return t;
}

/* res.get(timeout): 0 and the value, or -1 (ETIMEDOUT: TimeoutError). */
static int task_get(struct task *t, int64_t *value, double timeout)
{
    void *v;
    if (green_result_get(t->result, &v, timeout) != 0)
        return -1;
    *value = (int64_t)(intptr_t)v;
    return 0;
}

static void task_free(struct task *t)
{
    if (t) {
        green_result_free(t->result);
        free(t);
    }
}

/* Pool.terminate(): stop handing out work, kill the workers, reap them. */
static int pool_terminate(struct pool *p)
{
    int rc = 0;
    green_queue_close(p->tasks);
    for (int i = 0; i < NWORKERS; i++)
        kill(p->workers[i].pid, SIGTERM);
    for (int i = 0; i < NWORKERS; i++) {
        struct worker *w = &p->workers[i];
        int status;
        if (green_waitpid(w->pid, &status, 10) != 0) {
            perror("green_waitpid");
            rc = -1;
        } else if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) &&
                   !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            fprintf(stderr, "worker %d ended with status 0x%x\n", (int)w->pid, status);
            rc = -1;
        }
        /* Its pipes are dead: the feeder, if it was reading, is done. */
        if (green_join(w->feeder, 10) != 0)
            rc = -1;
        green_release(w->feeder);
        close(w->task_fd);
        close(w->reply_fd);
    }
    green_queue_free(p->tasks);
    return rc;
}

/* Prints a list the way Python prints one: [0, 1, 4]. */
static void print_list(const int64_t *v, size_t n)
{
    printf("[");
    for (size_t i = 0; i < n; i++)
        printf("%s%lld", i ? ", " : "", (long long)v[i]);
    printf("]\n");
}

int main(void)
{
    struct pool pool;
    if (pool_start(&pool) != 0) {
        perror("pool");
        return 1;
    }
    int rc = 0;

    /* print(pool.map(f, range(10))) */
    struct task *tasks[10];
    int64_t squares[10];
    for (int i = 0; i < 10; i++)
        tasks[i] = apply_async(&pool, OP_SQUARE, i, NULL);
    for (int i = 0; i < 10; i++) {
        if (!tasks[i] || task_get(tasks[i], &squares[i], GREEN_FOREVER) != 0)
            rc = 1;
        task_free(tasks[i]);
    }
    print_list(squares, 10);

    /* for i in pool.imap_unordered(f, range(10)): print(i) */
    green_queue_t *done = green_queue_new(0);
    for (int i = 0; i < 10; i++)
        tasks[i] = apply_async(&pool, OP_SQUARE, i, done);
    for (int i = 0; i < 10; i++) {
        void *item;
        int64_t v;
        if (!tasks[i] || green_queue_get(done, &item, GREEN_FOREVER) != 0 ||
            task_get(item, &v, 0) != 0) {
            rc = 1;
            continue;
        }
        printf("%lld\n", (long long)v);
    }
    for (int i = 0; i < 10; i++)
        task_free(tasks[i]);
    green_queue_free(done);

    /* res = pool.apply_async(f, (20,)); print(res.get(timeout=1)) */
    int64_t v;
    struct task *res = apply_async(&pool, OP_SQUARE, 20, NULL);
    if (res && task_get(res, &v, 1) == 0)
        printf("%lld\n", (long long)v);
    else
        rc = 1;
    task_free(res);

    /* res = pool.apply_async(os.getpid, ()); print(res.get(timeout=1)) */
    res = apply_async(&pool, OP_GETPID, 0, NULL);
    if (res && task_get(res, &v, 1) == 0)
        printf("%lld\n", (long long)v);
    else
        rc = 1;
    task_free(res);

    /* multiple_results = [pool.apply_async(os.getpid, ()) for i in range(4)] */
    int64_t pids[4];
    for (int i = 0; i < 4; i++)
        tasks[i] = apply_async(&pool, OP_GETPID, 0, NULL);
    for (int i = 0; i < 4; i++) {
        if (!tasks[i] || task_get(tasks[i], &pids[i], 1) != 0)
            rc = 1;
        task_free(tasks[i]);
    }
    print_list(pids, 4);

    /* res = pool.apply_async(time.sleep, (10,)); res.get(timeout=1) */
    res = apply_async(&pool, OP_SLEEP, 10, NULL);
    if (res && task_get(res, &v, 1) == 0)
        printf("%lld\n", (long long)v);
    else if (res && errno == ETIMEDOUT)
        printf("We lacked patience and got a multiprocessing.TimeoutError\n");
    else
        rc = 1;
    printf("For the moment, the pool remains available for more work\n");

    /* The end of the with-block: Pool.terminate(). */
    if (pool_terminate(&pool) != 0)
        rc = 1;
    task_free(res); /* its feeder is gone: nobody touches it any more */
    printf("Now the pool is closed and no longer available\n");
    return rc;
}
