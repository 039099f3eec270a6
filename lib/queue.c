/*
 * Queues (gevent.queue): FIFO, LIFO, priority and channel.
 *
 * Storage. FIFO and LIFO queues keep their items in a power-of-two ring
 * that grows by doubling (a bounded queue never holds more than maxsize, so
 * its ring stays small); the priority queue keeps a binary heap of
 * (item, sequence number) pairs, the sequence number breaking ties in
 * insertion order. Nothing is allocated up front, so a huge maxsize costs
 * nothing until it is used. A channel stores nothing: an item goes from a
 * putter straight to a getter.
 *
 * Waiters. Four FIFO waitlists: getters, peekers, putters (each carrying its
 * item in w->value) and joiners. Every hand-over is direct, so nobody barges:
 *
 *  - a put that finds a getter waiting gives it the item (the queue is
 *    necessarily empty then);
 *  - a get that takes an item from a full queue moves the first blocked
 *    putter's item into the freed slot at once and wakes that putter with
 *    0, so a later put cannot slip into the slot ahead of it;
 *  - on a channel, a get takes the first blocked putter's item itself.
 *
 * Hence the invariants: getters wait only while nothing is queued (and, on a
 * channel, no putter waits); putters wait only while the queue is full (on a
 * channel: while no getter waits). Peekers wait while nothing could be got,
 * and every put during that time shows them its item: what a get would have
 * returned at that moment. A waiter reads only its own waiter record after
 * green__park returns, never the queue, which may have been freed by then.
 *
 * Accounting for join: `unfinished` counts items accepted (queued, or handed
 * straight to a getter) and not yet marked task_done, as Python's
 * Queue.unfinished_tasks. A putter whose item is moved in later is counted
 * then. close does not touch it: joiners wait for the items that remain to
 * be got and marked done (puts refused by close were never counted).
 *
 * Ownership. A queue belongs to the hub of the thread that created it and is
 * owned by whoever created it, who frees it once with green_queue_free, at
 * any time, even while greenlets still wait on it (they return -1 EPIPE);
 * the items are the user's: the queue never frees or touches what they point
 * to, and items still queued at free are simply forgotten.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum queue_kind { KIND_FIFO, KIND_LIFO, KIND_PRIORITY, KIND_CHANNEL };

struct prio_entry {
    void    *item;
    uint64_t seq;
};

struct green_queue {
    struct green_hub      *hub;
    enum queue_kind        kind;
    bool                   closed;
    size_t                 maxsize;   /* 0: unbounded (a channel holds nothing) */
    size_t                 count;     /* items queued */
    size_t                 cap;       /* slots allocated */
    size_t                 head;      /* ring: index of the oldest item */
    void                 **ring;      /* FIFO, LIFO */
    struct prio_entry     *heap;      /* priority */
    uint64_t               seq;       /* priority: next insertion number */
    int (*cmp)(const void *a, const void *b);
    size_t                 unfinished;
    struct green__waitlist getters, peekers, putters, joiners;
};

/* ------------------------------------------------------------------------ */
/* Storage                                                                    */
/* ------------------------------------------------------------------------ */

/* True if entry a comes out before entry b. */
static inline bool prio_before(const green_queue_t *q, const struct prio_entry *a,
                               const struct prio_entry *b)
{
    int c = q->cmp(a->item, b->item);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

/* Makes room for one more item: 0 or ENOMEM. */
static int storage_grow(green_queue_t *q)
{
    size_t ncap = q->cap ? q->cap * 2 : 8;
    if (q->cap == 0 && q->maxsize && q->maxsize < ncap) {
        ncap = 1;
        while (ncap < q->maxsize)
            ncap *= 2;
    }
    if (ncap <= q->cap || ncap > SIZE_MAX / sizeof(struct prio_entry))
        return ENOMEM;
    if (q->kind == KIND_PRIORITY) {
        struct prio_entry *heap = realloc(q->heap, ncap * sizeof *heap);
        if (!heap)
            return ENOMEM;
        q->heap = heap;
    } else {
        /* realloc (mremap for big rings: no copy), then the part that had
         * wrapped round, [0, head), moves up behind the rest. The ring is
         * full when it grows, so the items then sit at [head, head + cap). */
        void **ring = realloc(q->ring, ncap * sizeof *ring);
        if (!ring)
            return ENOMEM;
        if (q->head)
            memcpy(ring + q->cap, ring, q->head * sizeof *ring);
        q->ring = ring;
    }
    q->cap = ncap;
    return 0;
}

/* The heap's side of storage_push (kept out of line: the ring's is the hot
 * path). */
static __attribute__((noinline)) void heap_push(green_queue_t *q, void *item)
{
    struct prio_entry e = {item, q->seq++};
    size_t i = q->count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!prio_before(q, &e, &q->heap[parent]))
            break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = e;
}

/* Adds an item; the caller has made sure there is a free slot. */
static inline void storage_push(green_queue_t *q, void *item)
{
    if (GREEN__LIKELY(q->kind != KIND_PRIORITY))
        q->ring[(q->head + q->count++) & (q->cap - 1)] = item;
    else
        heap_push(q, item);
}

/* The item a get would take now (count > 0). */
static void *storage_front(const green_queue_t *q)
{
    switch (q->kind) {
    case KIND_LIFO:
        return q->ring[(q->head + q->count - 1) & (q->cap - 1)];
    case KIND_PRIORITY:
        return q->heap[0].item;
    default:
        return q->ring[q->head];
    }
}

/* The heap's side of storage_pop. */
static __attribute__((noinline)) void *heap_pop(green_queue_t *q)
{
    void *item = q->heap[0].item;
    struct prio_entry last = q->heap[--q->count];
    size_t n = q->count, i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && prio_before(q, &q->heap[child + 1], &q->heap[child]))
            child++;
        if (!prio_before(q, &q->heap[child], &last))
            break;
        q->heap[i] = q->heap[child];
        i = child;
    }
    if (n > 0)
        q->heap[i] = last;
    return item;
}

/* Removes and returns the item a get takes (count > 0). */
static inline void *storage_pop(green_queue_t *q)
{
    void *item;
    switch (q->kind) {
    case KIND_LIFO:
        return q->ring[(q->head + --q->count) & (q->cap - 1)];
    case KIND_PRIORITY:
        return heap_pop(q);
    default:
        item = q->ring[q->head];
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
        return item;
    }
}

static inline bool has_room(const green_queue_t *q)
{
    return q->kind != KIND_CHANNEL && (q->maxsize == 0 || q->count < q->maxsize);
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                 */
/* ------------------------------------------------------------------------ */

static green_queue_t *queue_create(enum queue_kind kind, size_t maxsize,
                                   int (*cmp)(const void *, const void *))
{
    struct green_hub *h = green__hub();
    if (!h)
        return NULL;
    green_queue_t *q = calloc(1, sizeof *q);
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    q->hub = h;
    q->kind = kind;
    q->maxsize = maxsize;
    q->cmp = cmp;
    return q;
}

green_queue_t *green_queue_new(size_t maxsize)
{
    return queue_create(KIND_FIFO, maxsize, NULL);
}

green_queue_t *green_queue_new_lifo(size_t maxsize)
{
    return queue_create(KIND_LIFO, maxsize, NULL);
}

green_queue_t *green_queue_new_priority(size_t maxsize, int (*cmp)(const void *a, const void *b))
{
    if (!cmp) {
        errno = EINVAL;
        return NULL;
    }
    return queue_create(KIND_PRIORITY, maxsize, cmp);
}

green_queue_t *green_channel_new(void)
{
    return queue_create(KIND_CHANNEL, 0, NULL);
}

void green_queue_close(green_queue_t *q)
{
    if (!q || green__owner_check(q->hub))
        return;
    q->closed = true;
    /* Getters and peekers only wait while nothing is queued, so waking them
     * loses nothing; what is queued is still there for later gets. */
    green__waitlist_wake_all(&q->putters, EPIPE);
    green__waitlist_wake_all(&q->getters, EPIPE);
    green__waitlist_wake_all(&q->peekers, EPIPE);
}

void green_queue_free(green_queue_t *q)
{
    if (!q || green__owner_check(q->hub))
        return;
    green__waitlist_wake_all(&q->putters, EPIPE);
    green__waitlist_wake_all(&q->getters, EPIPE);
    green__waitlist_wake_all(&q->peekers, EPIPE);
    green__waitlist_wake_all(&q->joiners, EPIPE);
    free(q->ring);
    free(q->heap);
    free(q);
}

/* ------------------------------------------------------------------------ */
/* Put, get, peek                                                             */
/* ------------------------------------------------------------------------ */

/* Shows every waiting peeker the item now on offer. */
static inline void show_peekers(green_queue_t *q, void *item)
{
    struct green__waiter *w;
    while ((w = green__waitlist_first(&q->peekers)) != NULL) {
        w->value = item;
        green__trigger(w, 0);
    }
}

/*
 * The waiting halves of put and get live in functions of their own, so that
 * the paths that do not wait (the common case under load) stay small: no
 * waiter on their stack, few registers to save.
 */
static __attribute__((noinline)) int put_wait(green_queue_t *q, void *item, double timeout)
{
    /* A channel's blocked putter is the item on offer. (A full queue has
     * no peekers: they wait only while it is empty.) */
    show_peekers(q, item);
    struct green__waiter w;
    green__waiter_init(&w, "queue put", q);
    w.value = item;
    green__waitlist_push(&q->putters, &w);
    int err = green__park(&w, timeout); /* 0: a getter took the item or moved it in */
    return err ? green__fail(err) : 0;
}

static __attribute__((noinline)) int get_wait(green_queue_t *q, void **item, double timeout)
{
    struct green__waiter w;
    green__waiter_init(&w, "queue get", q);
    green__waitlist_push(&q->getters, &w);
    int err = green__park(&w, timeout); /* 0: a putter handed us w.value */
    if (err)
        return green__fail(err);
    *item = w.value;
    return 0;
}

int green_queue_put(green_queue_t *q, void *item, double timeout)
{
    if (!q)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(q->hub, &h);
    if (err)
        return green__fail(err);
    if (q->closed)
        return green__fail(EPIPE);
    struct green__waiter *getter = green__waitlist_first(&q->getters);
    if (getter) {
        show_peekers(q, item);
        getter->value = item;
        green__trigger(getter, 0);
        q->unfinished++;
        return 0;
    }
    if (has_room(q)) {
        if (q->count == q->cap && (err = storage_grow(q)))
            return green__fail(err);
        storage_push(q, item);
        show_peekers(q, item);
        q->unfinished++;
        return 0;
    }
    if (timeout == 0)
        return green__fail(EAGAIN);
    return put_wait(q, item, timeout);
}

int green_queue_get(green_queue_t *q, void **item, double timeout)
{
    if (!q || !item)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(q->hub, &h);
    if (err)
        return green__fail(err);
    struct green__waiter *putter;
    if (q->count) {
        *item = storage_pop(q);
        if ((putter = green__waitlist_first(&q->putters)) != NULL) {
            /* The slot just freed belongs to the first blocked putter. */
            storage_push(q, putter->value);
            q->unfinished++;
            green__trigger(putter, 0);
        }
        return 0;
    }
    if ((putter = green__waitlist_first(&q->putters)) != NULL) {
        /* Only a channel has putters while empty. */
        *item = putter->value;
        q->unfinished++;
        green__trigger(putter, 0);
        return 0;
    }
    if (q->closed)
        return green__fail(EPIPE);
    if (timeout == 0)
        return green__fail(EAGAIN);
    return get_wait(q, item, timeout);
}

int green_queue_peek(green_queue_t *q, void **item, double timeout)
{
    if (!q || !item)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(q->hub, &h);
    if (err)
        return green__fail(err);
    if (q->count) {
        *item = storage_front(q);
        return 0;
    }
    struct green__waiter *putter = green__waitlist_first(&q->putters);
    if (putter) {
        *item = putter->value; /* a channel: what the next get returns */
        return 0;
    }
    if (q->closed)
        return green__fail(EPIPE);
    if (timeout == 0)
        return green__fail(EAGAIN);
    struct green__waiter w;
    green__waiter_init(&w, "queue peek", q);
    green__waitlist_push(&q->peekers, &w);
    err = green__park(&w, timeout);
    if (err)
        return green__fail(err);
    *item = w.value;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* State, task_done, join                                                     */
/* ------------------------------------------------------------------------ */

size_t green_queue_size(const green_queue_t *q)
{
    return q ? q->count : 0;
}

bool green_queue_empty(const green_queue_t *q)
{
    return q && q->count == 0;
}

bool green_queue_full(const green_queue_t *q)
{
    if (!q)
        return false;
    if (q->kind == KIND_CHANNEL)
        return green__waitlist_empty(&q->getters);
    return q->maxsize && q->count >= q->maxsize;
}

int green_queue_task_done(green_queue_t *q)
{
    if (!q)
        return green__fail(EINVAL);
    int err = green__owner_check(q->hub);
    if (err)
        return green__fail(err);
    if (q->unfinished == 0)
        return green__fail(EINVAL);
    if (--q->unfinished == 0)
        green__waitlist_wake_all(&q->joiners, 0);
    return 0;
}

int green_queue_join(green_queue_t *q, double timeout)
{
    if (!q)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(q->hub, &h);
    if (err)
        return green__fail(err);
    if (q->unfinished == 0)
        return 0;
    if (timeout == 0)
        return green__fail(EAGAIN);
    struct green__waiter w;
    green__waiter_init(&w, "queue join", q);
    green__waitlist_push(&q->joiners, &w);
    err = green__park(&w, timeout);
    return err ? green__fail(err) : 0;
}
