/*
 * Recipe: gevent's "Synchronous & Asynchronous Execution" (the gevent
 * tutorial). The same non-deterministic task run as ten greenlets, which
 * finish in whatever order their sleeps end, then one after the other, then
 * spawned again for their return values, read back in spawn order:
 *
 *     def task(pid):
 *         gevent.sleep(random.randint(0, 2) * 0.001)
 *         print('Task %s done' % pid)
 *
 *     print('Asynchronous:')
 *     threads = [gevent.spawn(task, i) for i in xrange(10)]
 *     gevent.joinall(threads)
 *
 *     print('Synchronous:')
 *     for i in xrange(10):
 *         task(i)
 *
 *     def square(pid):
 *         gevent.sleep(random.randint(0, 2) * 0.001)
 *         return pid * pid
 *
 *     print('Results in synchronous fashion:')
 *     threads = [gevent.spawn(square, i) for i in xrange(10)]
 *     gevent.joinall(threads)
 *     for i, t in enumerate(threads):
 *         print('Task %s returned %s' % (i, t.value))
 *
 * The asynchronous "Task N done" lines come in a different order each run;
 * the synchronous ones and the results always in order.
 */
#include <green.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* random.randint(0, 2) * 0.001 */
static double random_pause(void)
{
    return (double)(rand() % 3) * 0.001;
}

static void *task(void *pid)
{
    green_sleep(random_pause());
    printf("Task %d done\n", (int)(intptr_t)pid);
    return NULL;
}

static void *square(void *pid)
{
    green_sleep(random_pause());
    intptr_t n = (intptr_t)pid;
    return (void *)(n * n);
}

/* Spawns fn(0..9) and waits for all ten. */
static int spawn_ten(green_fn fn, green_t *threads[10])
{
    for (intptr_t i = 0; i < 10; i++)
        if (!(threads[i] = green_spawn(fn, (void *)i)))
            return -1;
    return green_joinall(threads, 10, GREEN_FOREVER);
}

int main(void)
{
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    green_t *threads[10];

    printf("Asynchronous:\n");
    if (spawn_ten(task, threads) != 0)
        return 1;
    for (int i = 0; i < 10; i++)
        green_release(threads[i]);

    printf("Synchronous:\n");
    for (intptr_t i = 0; i < 10; i++)
        task((void *)i);

    printf("Results in synchronous fashion:\n");
    if (spawn_ten(square, threads) != 0)
        return 1;
    for (int i = 0; i < 10; i++) {
        printf("Task %d returned %d\n", i, (int)(intptr_t)green_value(threads[i]));
        green_release(threads[i]);
    }
    return 0;
}
