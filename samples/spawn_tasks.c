/*
 * Recipe: gevent's "Synchronous & Asynchronous Execution" — ten task(pid)
 * greenlets, each sleeping a little, spawned and joined with joinall:
 *
 *     def task(pid):
 *         gevent.sleep(random.randint(0, 2) * 0.001)
 *         print('Task %s done' % pid)
 *     threads = [gevent.spawn(task, i) for i in range(10)]
 *     gevent.joinall(threads)
 */
#include <green.h>
#include <stdio.h>

static void *task(void *arg)
{
    long pid = (long)arg;
    green_sleep(0.01 * (double)pid);
    printf("Task %ld done\n", pid);
    return arg;
}

int main(void)
{
    green_t *g[10];
    for (long i = 0; i < 10; i++)
        g[i] = green_spawn(task, (void *)i);
    green_joinall(g, 10, GREEN_FOREVER);
    for (int i = 0; i < 10; i++)
        green_release(g[i]);
    return 0;
}
