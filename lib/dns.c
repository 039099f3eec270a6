/*
 * Cooperative name resolution: glibc's blocking getaddrinfo runs on the
 * thread pool while the calling greenlet waits. A caller that is killed or
 * times out gets EAI_SYSTEM with errno ECANCELED or ETIMEDOUT; the lookup
 * still finishes on its thread and its result is freed when it arrives.
 */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct lookup {
    char            *node, *service;
    struct addrinfo  hints;
    bool             has_hints;
    struct addrinfo *res;
    int              rc, err;
};

static void *lookup_run(void *arg)
{
    struct lookup *l = arg;
    l->rc = getaddrinfo(l->node, l->service, l->has_hints ? &l->hints : NULL, &l->res);
    l->err = errno;
    return NULL;
}

static void lookup_free(void *arg, void *result)
{
    (void)result;
    struct lookup *l = arg;
    if (l->rc == 0 && l->res)
        freeaddrinfo(l->res);
    free(l->node);
    free(l->service);
    free(l);
}

int green_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                      struct addrinfo **res)
{
    if (!res) {
        errno = EINVAL;
        return EAI_SYSTEM;
    }
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err) {
        errno = err;
        return EAI_SYSTEM;
    }
    struct lookup *l = calloc(1, sizeof *l);
    if (!l || (node && !(l->node = strdup(node))) || (service && !(l->service = strdup(service)))) {
        if (l)
            lookup_free(l, NULL);
        return EAI_MEMORY;
    }
    if (hints) {
        /* Only the fields getaddrinfo reads from hints. */
        l->hints.ai_flags = hints->ai_flags;
        l->hints.ai_family = hints->ai_family;
        l->hints.ai_socktype = hints->ai_socktype;
        l->hints.ai_protocol = hints->ai_protocol;
        l->has_hints = true;
    }
    err = green__threadpool_run(h, lookup_run, l, NULL, -1, lookup_free);
    if (err) {
        errno = err; /* l is freed by lookup_free when the lookup ends */
        return EAI_SYSTEM;
    }
    int rc = l->rc;
    *res = rc == 0 ? l->res : NULL;
    if (rc == EAI_SYSTEM)
        errno = l->err;
    l->res = NULL;
    l->rc = -1;
    lookup_free(l, NULL);
    return rc;
}
