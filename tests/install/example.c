/* The README's example, built against an installed prefix by install-test.sh. */
#include <green.h>
#include <stdio.h>

static void *task(void *arg)
{
    green_sleep(0.01 * (long)arg);
    printf("Task %ld done\n", (long)arg);
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
}
