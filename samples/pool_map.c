/*
 * Recipe: gevent's Pool (the gevent tutorial, "Groups and Pools"): a pool
 * of two runs map over three items, two at a time; then imap_unordered
 * hands back results as they arrive, not in item order:
 *
 *     pool = Pool(2)
 *
 *     def hello_from(n):
 *         print('Size of pool %s' % len(pool))
 *
 *     pool.map(hello_from, xrange(3))
 *
 *     def slow_square(n):
 *         gevent.sleep(0.1 / (n + 1))
 *         return n * n
 *
 *     for square in pool.imap_unordered(slow_square, xrange(4)):
 *         print(square)
 *
 * It prints "Size of pool 2", "Size of pool 2", "Size of pool 1", then
 * 1, 4, 0, 9: item 1 (50 ms) ends first and lets item 2 (33 ms) in, item 0
 * (100 ms) ends before item 3 (25 ms, started after it) does.
 *
 * len(pool) is the slots in use: the size minus green_pool_free_count.
 * gevent drops a finished greenlet from its pool in a callback the hub runs
 * later; libgreen drops it the moment it finishes. So hello_from yields
 * once after printing, to stay in the pool while its neighbour prints, as
 * it does in gevent.
 */
#include <green.h>
#include <stdint.h>
#include <stdio.h>

#define POOL_SIZE 2

static green_pool_t *pool;

static void *hello_from(void *n)
{
    (void)n;
    printf("Size of pool %zu\n", POOL_SIZE - green_pool_free_count(pool));
    green_sleep(0);
    return NULL;
}

static void *slow_square(void *arg)
{
    intptr_t n = (intptr_t)arg;
    green_sleep(0.1 / (double)(n + 1));
    return (void *)(n * n);
}

static void print_square(size_t index, void *square, void *ud)
{
    (void)index;
    (void)ud;
    printf("%d\n", (int)(intptr_t)square);
}

int main(void)
{
    pool = green_pool_new(POOL_SIZE);
    if (!pool) {
        perror("green_pool_new");
        return 1;
    }
    void *items[4] = {(void *)0, (void *)1, (void *)2, (void *)3};
    void *results[3];
    int rc = green_pool_map(pool, hello_from, items, results, 3);
    rc |= green_pool_imap_unordered(pool, slow_square, items, 4, print_square, NULL);
    green_pool_free(pool);
    return rc == 0 ? 0 : 1;
}
