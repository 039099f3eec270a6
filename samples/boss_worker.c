/*
 * Recipe: gevent's "Assigning Jobs in Queue" (the gevent tutorial, Queues).
 * A boss fills a queue with 24 tasks; three workers take turns emptying it,
 * yielding after each task, and quit when it is empty:
 *
 *     tasks = Queue()
 *
 *     def worker(n):
 *         while not tasks.empty():
 *             task = tasks.get()
 *             print('Worker %s got task %s' % (n, task))
 *             gevent.sleep(0)
 *         print('Quitting time!')
 *
 *     def boss():
 *         for i in xrange(1, 25):
 *             tasks.put_nowait(i)
 *
 *     gevent.spawn(boss).join()
 *     gevent.joinall([
 *         gevent.spawn(worker, 'steve'),
 *         gevent.spawn(worker, 'john'),
 *         gevent.spawn(worker, 'nancy'),
 *     ])
 *
 * It prints "Worker steve got task 1", "Worker john got task 2", "Worker
 * nancy got task 3", "Worker steve got task 4"... up to task 24, then
 * "Quitting time!" three times. `make run` runs it.
 */
#include <green.h>
#include <stdint.h>
#include <stdio.h>

static green_queue_t *tasks;

static void *worker(void *name)
{
    while (!green_queue_empty(tasks)) {
        void *task;
        if (green_queue_get(tasks, &task, GREEN_FOREVER) != 0)
            break;
        printf("Worker %s got task %d\n", (const char *)name, (int)(intptr_t)task);
        green_sleep(0); /* let the other workers take their turn */
    }
    printf("Quitting time!\n");
    return NULL;
}

static void *boss(void *arg)
{
    (void)arg;
    for (intptr_t i = 1; i < 25; i++)
        green_queue_put(tasks, (void *)i, 0); /* put_nowait: unbounded, never waits */
    return NULL;
}

int main(void)
{
    tasks = green_queue_new(0);
    if (!tasks) {
        perror("green_queue_new");
        return 1;
    }
    green_t *b = green_spawn(boss, NULL);
    green_join(b, GREEN_FOREVER);
    green_release(b);

    const char *names[3] = {"steve", "john", "nancy"};
    green_t *workers[3];
    for (int i = 0; i < 3; i++)
        workers[i] = green_spawn(worker, (void *)names[i]);
    int rc = green_joinall(workers, 3, GREEN_FOREVER);
    for (int i = 0; i < 3; i++)
        green_release(workers[i]);
    green_queue_free(tasks);
    return rc == 0 ? 0 : 1;
}
