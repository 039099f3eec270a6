/*
 * Greenlet stacks: cheap, guarded, cached.
 *
 * A stack costs only the pages it touches: it is anonymous memory mapped
 * with MAP_NORESERVE and never pre-faulted. Under each stack lies a guard
 * region that faults on access, so an overflow is caught (and reported by the
 * SIGSEGV handler at the end of this file) instead of corrupting a
 * neighbour.
 *
 * Stacks are carved from chunks: one mapping holds up to SLOTS_MAX slots of
 * the same size, laid out as
 *
 *   chunk base                                                   chunk end
 *   | guard | stack 0      | guard | stack 1      | ... | guard | stack n-1 |
 *           ^lo           ^top
 *
 * On kernels with MADV_GUARD_INSTALL (Linux 6.13+) the guards are page-table
 * markers installed without splitting the mapping, so a chunk is one entry
 * of the kernel's map count however many stacks it holds: a million stacks
 * take ~4,000 entries of the default 65,530. Older kernels need mprotect for
 * each guard, which splits the mapping; there every stack gets a mapping of
 * its own (two map-count entries) and allocation fails with ENOMEM while a
 * reserve of the map count is still left to the rest of the program.
 *
 * Freed stacks go on a LIFO free list per pool (one pool per stack size,
 * per hub), so a warm spawn takes the most recently used stack and makes no
 * system call. Memory is given back in two ways:
 *  - a stack that went deep (its greenlet was seen suspended more than
 *    DEEP_KEEP below the top) has the pages below DEEP_KEEP dropped when it
 *    is given back (by the finished greenlet itself, before its last
 *    switch);
 *  - when the hub is about to sleep, chunks whose stacks are all free and
 *    were used since the last trim are dropped with one madvise each, as
 *    long as the pool keeps more than KEEP_FREE free stacks. Busy programs
 *    never pay for this; idle ones give back what a burst touched.
 *
 * The slot records (free-list links) live outside the stacks, in an array
 * per chunk, so dropping a chunk's pages loses nothing.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define RUNNING_ON_VALGRIND 0
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#define VALGRIND_MAKE_MEM_UNDEFINED(p, n) ((void)(p), (void)(n))
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)
#define STACK_DEFAULT (256 * KIB)
#define STACK_MIN (16 * KIB)
#define STACK_MAX (1024 * MIB)
#define GUARD_SIZE (64 * KIB)  /* virtual only: catches frames up to 64 KiB */
#define CHUNK_BYTES (64 * MIB) /* aim for chunks this large */
#define SLOTS_MAX 256
#define DEEP_KEEP GREEN__DEEP_KEEP
#define KEEP_FREE 64

struct green__chunk {
    struct green__chunk *next;      /* the pool's chunks */
    struct green__chunk *trim_next; /* pending trim */
    struct green__stack_pool *pool;
    char                *base;
    size_t               len;
    unsigned             nslots, ncarved, nused;
    unsigned             uses;      /* hand-outs since the last trim */
    bool                 trim_listed;
    struct green__slot   slots[];
};

struct green__stack_pool {
    struct green__stack_pool *next;
    size_t                    size;      /* usable bytes */
    size_t                    slot_size; /* guard + usable */
    unsigned                  per_chunk;
    struct green__slot       *free;
    size_t                    nfree;
    struct green__chunk      *chunks;
    struct green__chunk      *carving;   /* has slots never handed out */
    struct green__chunk      *trim;
};

static size_t page_size;
size_t green__stack_default_size;
static _Atomic int guard_mode;      /* 0 unknown, 1 MADV_GUARD_INSTALL, 2 mprotect */
static _Atomic long maps_used;      /* map-count entries our chunks take */
static long maps_limit;
bool green__stack_on_valgrind;
static pthread_once_t stack_once = PTHREAD_ONCE_INIT;

static size_t round_pages(size_t n)
{
    return (n + page_size - 1) & ~(page_size - 1);
}

static size_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return 0;
    if (*end == 'k' || *end == 'K')
        v *= KIB, end++;
    else if (*end == 'm' || *end == 'M')
        v *= MIB, end++;
    if (*end != '\0')
        return 0;
    return (size_t)v;
}

static void stack_init(void)
{
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 65530;
        fclose(f);
    }
    /* Leave an eighth of the map count to the rest of the program. */
    maps_limit = max - max / 8;
    size_t size = STACK_DEFAULT;
    const char *env = getenv("GREEN_STACK_SIZE");
    if (env) {
        size_t v = parse_size(env);
        size_t s = v ? green__stack_round(v) : 0;
        if (s)
            size = s;
        else
            fprintf(stderr, "libgreen: ignoring GREEN_STACK_SIZE=%s (16k to 1024m)\n", env);
    }
    /* valgrind does not know guard markers: its leak check would read them
     * as memory and fault on every page. mprotect guards it does know. */
    green__stack_on_valgrind = RUNNING_ON_VALGRIND;
    if (green__stack_on_valgrind)
        atomic_store(&guard_mode, 2);
    /* Published last: a thread that sees it skips this function. */
    __atomic_store_n(&green__stack_default_size, size, __ATOMIC_RELEASE);
}

size_t green__stack_round(size_t size)
{
    if (!page_size)
        page_size = (size_t)sysconf(_SC_PAGESIZE);
    if (size > STACK_MAX)
        return 0;
    if (size < STACK_MIN)
        size = STACK_MIN;
    return round_pages(size);
}

size_t green__stack_default_init(void)
{
    pthread_once(&stack_once, stack_init);
    return green__stack_default_size;
}

void green__stack_guard(const struct green__slot *s, const char **lo, const char **hi)
{
    *lo = s->lo - GUARD_SIZE;
    *hi = s->lo;
}

static struct green__stack_pool *pool_for(struct green_hub *h, size_t size)
{
    struct green__stack_pool *p;
    for (p = h->pools; p; p = p->next)
        if (p->size == size)
            return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->size = size;
    p->slot_size = size + GUARD_SIZE;
    /* Under valgrind, whose leak check reads every mapped page, a stack
     * per mapping keeps that scan to the stacks in use. */
    size_t n = RUNNING_ON_VALGRIND ? 1 : CHUNK_BYTES / p->slot_size;
    p->per_chunk = n < 1 ? 1 : n > SLOTS_MAX ? SLOTS_MAX : (unsigned)n;
    p->next = h->pools;
    h->pools = p;
    return p;
}

static bool reserve_maps(long n)
{
    if (atomic_fetch_add(&maps_used, n) + n > maps_limit) {
        atomic_fetch_sub(&maps_used, n);
        return false;
    }
    return true;
}

static struct green__chunk *chunk_new(struct green__stack_pool *p)
{
    int mode = atomic_load(&guard_mode);
    unsigned n = mode == 2 ? 1 : p->per_chunk;
    /* mprotect guards split the mapping in two; guard markers do not. */
    long maps = mode == 1 ? 1 : 2;
    if (!reserve_maps(maps)) {
        errno = ENOMEM;
        return NULL;
    }
    struct green__chunk *c = calloc(1, sizeof *c + n * sizeof c->slots[0]);
    if (!c) {
        atomic_fetch_sub(&maps_used, maps);
        return NULL;
    }
    c->pool = p;
    c->len = n * p->slot_size;
    c->nslots = n;
    c->base = mmap(NULL, c->len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (c->base == MAP_FAILED) {
        atomic_fetch_sub(&maps_used, maps);
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->next = p->chunks;
    p->chunks = c;
    return c;
}

/* Installs the guard below slot i; settles the guard mode on first use. */
static int guard_install(struct green__chunk *c, char *guard)
{
    int mode = atomic_load(&guard_mode);
    if (mode != 2) {
        if (madvise(guard, GUARD_SIZE, MADV_GUARD_INSTALL) == 0) {
            atomic_store(&guard_mode, 1);
            return 0;
        }
        if (mode == 1 || (errno != EINVAL && errno != ENOSYS))
            return -1;
        /* An older kernel: this chunk must hold a single slot, since each
         * mprotect splits the mapping. */
        atomic_store(&guard_mode, 2);
        if (c->nslots != 1)
            return 1;
        atomic_fetch_add(&maps_used, 1); /* the chunk now takes two entries */
    }
    return mprotect(guard, GUARD_SIZE, PROT_NONE);
}

static struct green__slot *carve(struct green__stack_pool *p)
{
    for (;;) {
        struct green__chunk *c = p->carving;
        if (!c || c->ncarved == c->nslots) {
            c = p->carving = chunk_new(p);
            if (!c)
                return NULL;
        }
        unsigned i = c->ncarved;
        char *guard = c->base + (size_t)i * p->slot_size;
        int r = guard_install(c, guard);
        if (r == 1) {
            /* Mode changed under us: abandon this chunk for carving. */
            c->ncarved = c->nslots;
            c->nused = c->nslots; /* never trimmed: its slots are not ours */
            p->carving = NULL;
            continue;
        }
        if (r < 0) {
            errno = ENOMEM;
            return NULL;
        }
        c->ncarved++;
        struct green__slot *s = &c->slots[i];
        s->chunk = c;
        s->lo = guard + GUARD_SIZE;
        s->top = s->lo + p->size;
        s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + p->size);
        return s;
    }
}

void green__stack_renew(const struct green__slot *s)
{
    /* memcheck made what lay below the last owner's final frame no-access
     * as that owner returned; the next owner may start lower. */
    VALGRIND_MAKE_MEM_UNDEFINED(s->top - page_size, page_size);
}

struct green__slot *green__stack_get(struct green_hub *h, size_t size)
{
    green__stack_default(); /* settles the page size, guard mode, map limit */
    struct green__stack_pool *p = h->pools;
    if (!p || p->size != size)
        p = pool_for(h, size);
    if (!p)
        return NULL;
    struct green__slot *s = p->free;
    if (GREEN__LIKELY(s != NULL)) {
        p->free = s->next;
        p->nfree--;
        /* A batch of spawns takes the free stacks one after another:
         * start the fetch (and the page walk) of the line the next one's
         * first frame goes to. */
        if (s->next)
            green__stack_prefetch(s->next, h->colour + 1);
    } else if (!(s = carve(p))) {
        return NULL;
    }
    s->chunk->nused++;
    s->chunk->uses++;
    return s;
}

void green__stack_put(struct green_hub *h, struct green__slot *s, const char *low_water,
                      const char *live)
{
    struct green__chunk *c = s->chunk;
    struct green__stack_pool *p = c->pool;
    (void)h;
    char *top = s->top;
    if (low_water && low_water < top - DEEP_KEEP) {
        /* It went deep: drop the pages below DEEP_KEEP before reuse, but
         * none at or above `live` (a green_exit called deep still runs). */
        const char *keep = top - DEEP_KEEP;
        if (live && live < keep)
            keep = live;
        size_t len = (size_t)(keep - s->lo) & ~(page_size - 1);
        if (len)
            madvise(s->lo, len, MADV_DONTNEED);
    }
    s->next = p->free;
    p->free = s;
    p->nfree++;
    if (--c->nused == 0 && !c->trim_listed) {
        c->trim_listed = true;
        c->trim_next = p->trim;
        p->trim = c;
    }
}

/* Puts the hub's hot stack back into its pool. */
static void hot_flush(struct green_hub *h)
{
    if (h->hot_stack) {
        green__stack_put(h, h->hot_stack, NULL, NULL);
        h->hot_stack = NULL;
    }
}

void green__stack_trim(struct green_hub *h)
{
    hot_flush(h);
    for (struct green__stack_pool *p = h->pools; p; p = p->next) {
        while (p->trim) {
            struct green__chunk *c = p->trim;
            p->trim = c->trim_next;
            c->trim_listed = false;
            if (c->nused || !c->uses || p->nfree <= KEEP_FREE)
                continue;
            /* Guard markers survive MADV_DONTNEED, so one call covers the
             * whole carved part of the chunk. */
            size_t len = (size_t)c->ncarved * p->slot_size;
            if (atomic_load(&guard_mode) == 1)
                madvise(c->base, len, MADV_DONTNEED);
            else
                madvise(c->base + GUARD_SIZE, p->size, MADV_DONTNEED);
            c->uses = 0;
        }
    }
}

void green__stack_pools_free(struct green_hub *h)
{
    h->hot_stack = NULL; /* its chunk goes with the rest */
    struct green__stack_pool *p = h->pools;
    while (p) {
        struct green__stack_pool *pn = p->next;
        struct green__chunk *c = p->chunks;
        while (c) {
            struct green__chunk *cn = c->next;
            for (unsigned i = 0; i < c->ncarved; i++)
                VALGRIND_STACK_DEREGISTER(c->slots[i].vg_id);
            munmap(c->base, c->len);
            atomic_fetch_sub(&maps_used, atomic_load(&guard_mode) == 1 ? 1 : 2);
            free(c);
            c = cn;
        }
        free(p);
        p = pn;
    }
    h->pools = NULL;
}

/* ------------------------------------------------------------------------ */
/* Stack overflow reporting                                                   */
/* ------------------------------------------------------------------------ */

static struct sigaction old_segv;
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;

static size_t fmt_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0, i = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        buf[i++] = tmp[--n];
    return i;
}

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    struct green_hub *h = green__tls_hub;
    green_t *g = h ? h->current : NULL;
    if (g && g->stack) {
        const char *lo, *hi, *a = si->si_addr;
        green__stack_guard(g->stack, &lo, &hi);
        if (a >= lo && a < hi) {
            /* Only async-signal-safe calls from here on. */
            char msg[512];
            size_t n = 0;
            static const char head[] = "libgreen: stack overflow in greenlet ";
            memcpy(msg, head, sizeof head - 1);
            n += sizeof head - 1;
            n += fmt_u64(msg + n, g->id);
            msg[n++] = ' ';
            msg[n++] = '\'';
            const char *name = g->is_hub ? "hub" : g->name ? g->name : "";
            size_t len = strnlen(name, 400);
            memcpy(msg + n, name, len);
            n += len;
            msg[n++] = '\'';
            msg[n++] = '\n';
            ssize_t w = write(STDERR_FILENO, msg, n);
            (void)w;
            abort();
        }
    }
    /* Not ours: hand it to whoever was there before. */
    if (old_segv.sa_flags & SA_SIGINFO) {
        old_segv.sa_sigaction(sig, si, uc);
    } else if (old_segv.sa_handler == SIG_DFL || old_segv.sa_handler == SIG_IGN) {
        /* Returning re-runs the faulting instruction under the default
         * action, which dumps core as if we had never been here. */
        signal(SIGSEGV, SIG_DFL);
    } else {
        old_segv.sa_handler(sig);
    }
}

static void segv_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
}

int green__overflow_init(struct green_hub *h)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) {
        h->altstack = NULL; /* the thread has one already */
    } else {
        size_t size = 64 * KIB;
        stack_t ss = {.ss_sp = malloc(size), .ss_size = size, .ss_flags = 0};
        if (!ss.ss_sp)
            return -1;
        if (sigaltstack(&ss, NULL) != 0) {
            free(ss.ss_sp);
            return -1;
        }
        h->altstack = ss.ss_sp;
    }
    pthread_once(&segv_once, segv_install);
    return 0;
}

void green__overflow_fini(struct green_hub *h)
{
    if (h->altstack) {
        stack_t ss = {.ss_flags = SS_DISABLE};
        sigaltstack(&ss, NULL);
        free(h->altstack);
        h->altstack = NULL;
    }
}
