/*
 * Greenlet-local storage (gevent.local): keys are process-wide, values are
 * per greenlet, destructors run in the ending greenlet before its joiners
 * resume.
 */
#include <stdlib.h>

#include "internal.h"

#define KEYS_MAX 1024
#define DESTRUCTOR_PASSES 4 /* as PTHREAD_DESTRUCTOR_ITERATIONS */

static void (*destructors[KEYS_MAX])(void *);
static _Atomic unsigned nkeys;
static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;

int green_key_create(green_key_t *key, void (*destructor)(void *))
{
    if (!key)
        return green__fail(EINVAL);
    pthread_mutex_lock(&keys_lock);
    unsigned k = atomic_load(&nkeys);
    if (k == KEYS_MAX) {
        pthread_mutex_unlock(&keys_lock);
        return green__fail(EAGAIN);
    }
    destructors[k] = destructor;
    atomic_store(&nkeys, k + 1);
    pthread_mutex_unlock(&keys_lock);
    *key = k;
    return 0;
}

void *green_getspecific(green_key_t key)
{
    struct green_hub *h = green__tls_hub;
    if (!h)
        return NULL;
    green_t *g = h->current;
    return key < g->nlocals ? g->locals[key] : NULL;
}

int green_setspecific(green_key_t key, const void *value)
{
    if (key >= atomic_load(&nkeys))
        return green__fail(EINVAL);
    struct green_hub *h = green__hub();
    if (!h)
        return -1;
    green_t *g = h->current;
    if (key >= g->nlocals) {
        unsigned n = atomic_load(&nkeys);
        void **grown = realloc(g->locals, n * sizeof *grown);
        if (!grown)
            return green__fail(ENOMEM);
        for (unsigned i = g->nlocals; i < n; i++)
            grown[i] = NULL;
        g->locals = grown;
        g->nlocals = n;
    }
    g->locals[key] = (void *)value;
    return 0;
}

void green__locals_destroy(green_t *g)
{
    for (int pass = 0; pass < DESTRUCTOR_PASSES; pass++) {
        bool again = false;
        for (unsigned i = 0; i < g->nlocals; i++) {
            void *v = g->locals[i];
            if (v && destructors[i]) {
                g->locals[i] = NULL;
                destructors[i](v);
                again = true;
            }
        }
        if (!again)
            break;
    }
}
