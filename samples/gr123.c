/*
 * Recipe: the asyncio "gr1, gr2, gr3" example. Two coroutines each block
 * for 2 s and a third does its own work meanwhile; the whole run takes
 * about 2 s, not 5, because waiting yields to the others:
 *
 *     start = time.time()
 *     def tic():
 *         return 'at %1.1f seconds' % (time.time() - start)
 *
 *     async def gr1():
 *         # Busy waits for a second, but we don't want to stick around...
 *         print('gr1 started work: {}'.format(tic()))
 *         await asyncio.sleep(2)
 *         print('gr1 ended work: {}'.format(tic()))
 *
 *     async def gr2():
 *         # Busy waits for a second, but we don't want to stick around...
 *         print('gr2 started work: {}'.format(tic()))
 *         await asyncio.sleep(2)
 *         print('gr2 Ended work: {}'.format(tic()))
 *
 *     async def gr3():
 *         print("Let's do some stuff while the coroutines are blocked, {}".format(tic()))
 *         await asyncio.sleep(1)
 *         print("Done!")
 *
 *     ioloop = asyncio.get_event_loop()
 *     tasks = [ioloop.create_task(gr1()), ioloop.create_task(gr2()),
 *              ioloop.create_task(gr3())]
 *     ioloop.run_until_complete(asyncio.wait(tasks))
 *     ioloop.close()
 *
 * Greenlets need no async/await: a plain function that calls green_sleep
 * yields to the others. It prints what the Python original prints:
 *
 *     gr1 started work: at 0.0 seconds
 *     gr2 started work: at 0.0 seconds
 *     Let's do some stuff while the coroutines are blocked, at 0.0 seconds
 *     Done!
 *     gr1 ended work: at 2.0 seconds
 *     gr2 Ended work: at 2.0 seconds
 */
#include <green.h>
#include <stdio.h>
#include <time.h>

static double start;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 'at %1.1f seconds' % (time.time() - start), in a buffer of the caller's. */
static const char *tic(char buf[32])
{
    snprintf(buf, 32, "at %1.1f seconds", now() - start);
    return buf;
}

static void *gr1(void *arg)
{
    char buf[32];
    (void)arg;
    printf("gr1 started work: %s\n", tic(buf));
    green_sleep(2);
    printf("gr1 ended work: %s\n", tic(buf));
    return NULL;
}

static void *gr2(void *arg)
{
    char buf[32];
    (void)arg;
    printf("gr2 started work: %s\n", tic(buf));
    green_sleep(2);
    printf("gr2 Ended work: %s\n", tic(buf));
    return NULL;
}

static void *gr3(void *arg)
{
    char buf[32];
    (void)arg;
    printf("Let's do some stuff while the coroutines are blocked, %s\n", tic(buf));
    green_sleep(1);
    printf("Done!\n");
    return NULL;
}

int main(void)
{
    start = now();
    green_t *tasks[3] = {green_spawn(gr1, NULL), green_spawn(gr2, NULL), green_spawn(gr3, NULL)};
    int rc = green_joinall(tasks, 3, GREEN_FOREVER);
    for (int i = 0; i < 3; i++)
        green_release(tasks[i]);
    return rc == 0 ? 0 : 1;
}
