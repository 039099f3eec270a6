/*
 * Recipe: gevent's Group (the gevent tutorial, "Groups and Pools"). Three
 * talkers print their word three times each; a Group tracks them and join
 * waits for the members it has:
 *
 *     def talk(msg):
 *         for i in xrange(3):
 *             print(msg)
 *             gevent.sleep(0)
 *
 *     g1 = gevent.spawn(talk, 'bar')
 *     g2 = gevent.spawn(talk, 'foo')
 *     g3 = gevent.spawn(talk, 'fizz')
 *
 *     group = Group()
 *     group.add(g1)
 *     group.add(g2)
 *     group.join()
 *
 *     group.add(g3)
 *     group.join()
 *
 * The sleep(0) makes the talkers take turns, so it prints bar, foo, fizz
 * three times over (without it each would print its three lines at once).
 * fizz, spawned with the others, talks while the group waits for bar and
 * foo; it finishes last, so adding it and joining again waits for it.
 */
#include <green.h>
#include <stdio.h>

static void *talk(void *msg)
{
    for (int i = 0; i < 3; i++) {
        printf("%s\n", (const char *)msg);
        green_sleep(0);
    }
    return NULL;
}

int main(void)
{
    green_t *g1 = green_spawn(talk, "bar");
    green_t *g2 = green_spawn(talk, "foo");
    green_t *g3 = green_spawn(talk, "fizz");

    green_group_t *group = green_group_new();
    if (!g1 || !g2 || !g3 || !group) {
        perror("libgreen");
        return 1;
    }
    green_group_add(group, g1);
    green_group_add(group, g2);
    int rc = green_group_join(group, GREEN_FOREVER);

    green_group_add(group, g3);
    rc |= green_group_join(group, GREEN_FOREVER);

    green_group_free(group);
    green_release(g1);
    green_release(g2);
    green_release(g3);
    return rc == 0 ? 0 : 1;
}
