/*
 * libgreen — gevent for C.
 *
 * Stackful greenlets switched by hand-written assembly, scheduled by a libev
 * hub (one per OS thread), with gevent's toolbox: timeouts, kill, Event,
 * AsyncResult, Semaphore, RLock, queues, Group and Pool.
 *
 * Conventions (see SPEC.md):
 *  - int functions return 0, or -1 with errno set; pointer functions return
 *    NULL with errno set. If a call fails, nothing happened.
 *  - Every timeout is a double in seconds: < 0 (GREEN_FOREVER) waits forever,
 *    0 never blocks (EAGAIN instead of waiting), > 0 bounds the wait
 *    (ETIMEDOUT when it runs out).
 *  - A blocking call in a killed greenlet fails with ECANCELED; a blocking
 *    call made from the hub itself fails with EDEADLK; a call on an object
 *    from an OS thread other than its owner fails with EPERM.
 *  - Calls that do not block never switch greenlets: whoever they wake runs
 *    when the caller next blocks or yields.
 */
#ifndef GREEN_H
#define GREEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GREEN_API __attribute__((visibility("default")))
#define GREEN_NORETURN __attribute__((noreturn))
#else
#define GREEN_API
#define GREEN_NORETURN
#endif

#define GREEN_VERSION_MAJOR 0
#define GREEN_VERSION_MINOR 1

/** Wait forever: any negative timeout does. */
#define GREEN_FOREVER (-1.0)

/* ------------------------------------------------------------------------ */
/* Hubs                                                                       */
/* ------------------------------------------------------------------------ */

/**
 * Runs this thread's hub until every greenlet of it has finished (or all that
 * remain are blocked with nothing left that could wake them), or the timeout.
 * Returns 0 when nothing is left to run; -1 ETIMEDOUT (EAGAIN for timeout 0),
 * ECANCELED in a killed greenlet, EDEADLK from the hub or from a greenlet
 * other than the thread's main one (it would wait on itself).
 */
GREEN_API int green_wait(double timeout);

struct ev_loop;
/**
 * The libev loop of this thread's hub (created on first use), for programs
 * that add watchers of their own. Their callbacks run in the hub: a blocking
 * libgreen call made from one fails with EDEADLK.
 */
GREEN_API struct ev_loop *green_loop(void);

/* ------------------------------------------------------------------------ */
/* Greenlets                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct green green_t;
typedef void *(*green_fn)(void *arg);

typedef struct green_attr {
    size_t      stack_size; /* 0 = default (GREEN_STACK_SIZE env, else 256 KiB) */
    const char *name;       /* copied; shown by green_dump and in error messages */
} green_attr_t;

/**
 * Spawns fn(arg) in a new greenlet of this thread's hub and returns at once;
 * the greenlet first runs when the caller next blocks or yields. Ready
 * greenlets run in FIFO order. The caller owns one reference to the handle
 * (give it up with green_release). NULL fn: EINVAL; no memory: ENOMEM.
 * Like a new thread, the greenlet starts with its creator's floating-point
 * environment (rounding, exception masks), and keeps its own across switches.
 */
GREEN_API green_t *green_spawn(green_fn fn, void *arg);

/**
 * green_spawn with attributes (NULL: defaults). Stack sizes are rounded up
 * to whole pages, at least 16 KiB; above 1 GiB: EINVAL. As with a thread's
 * stack, not all of it is the greenlet's: successive greenlets start their
 * frames up to 1,344 bytes below the top, staggered so that their hot
 * frames do not compete for the same cache sets.
 */
GREEN_API green_t *green_spawn_attr(const green_attr_t *attr, green_fn fn, void *arg);

/** Spawns fn(arg) to start after `seconds` (<= 0: as green_spawn). */
GREEN_API green_t *green_spawn_later(double seconds, green_fn fn, void *arg);

/**
 * Waits for g to finish. 0 once finished; -1 ETIMEDOUT/EAGAIN, EDEADLK when
 * g is the calling greenlet, ECANCELED when the caller is killed, EINVAL for
 * NULL, EPERM from another thread.
 */
GREEN_API int green_join(green_t *g, double timeout);

/**
 * green_join, then stores what fn returned (or passed to green_exit) in
 * *result: NULL if g never ran. Killed or not; see green_killed.
 */
GREEN_API int green_get(green_t *g, void **result, double timeout);

/** The value g returned (NULL while it runs, if it never ran, or for NULL). */
GREEN_API void *green_value(const green_t *g);

/** True once g has finished (false for NULL). */
GREEN_API bool green_ready(const green_t *g);

/** True once g has been killed, before or while it ran (false for NULL). */
GREEN_API bool green_killed(const green_t *g);

/**
 * Kills g cooperatively: the blocking call it is in, and every later one,
 * fails with ECANCELED; a greenlet killed before it started never runs.
 * Then waits up to `timeout` for g to finish: 0 once finished, -1 ETIMEDOUT
 * (EAGAIN for 0). Killing the current greenlet marks it and returns 0;
 * killing a finished one is a no-op returning 0.
 */
GREEN_API int green_kill(green_t *g, double timeout);

/** Ends the current greenlet with `result` (in a thread's main greenlet: pthread_exit). */
GREEN_API GREEN_NORETURN void green_exit(void *result);

/** The running greenlet (the thread's main greenlet outside any spawned one). */
GREEN_API green_t *green_current(void);

/** Unique, increasing, never-reused id (0 for NULL). */
GREEN_API uint64_t green_id(const green_t *g);

/** The greenlet's name: "" when unnamed, never NULL (also "" for NULL). */
GREEN_API const char *green_name(const green_t *g);

/** Sets (copies) the greenlet's name; NULL clears it. */
GREEN_API void green_set_name(green_t *g, const char *name);

/** True when the current greenlet has been killed. */
GREEN_API bool green_cancelled(void);

/** Takes another reference to g. */
GREEN_API void green_ref(green_t *g);

/**
 * Gives up one reference. Releasing never stops a greenlet; the library
 * keeps its own reference while g runs. Releasing more references than you
 * own is a use-after-free.
 */
GREEN_API void green_release(green_t *g);

/**
 * Sleeps `seconds` (negative: 0). 0, or -1 ECANCELED / ETIMEDOUT (a
 * green_timeout ran out) / EDEADLK (from the hub). green_sleep(0) yields.
 */
GREEN_API int green_sleep(double seconds);

/**
 * Lets every other ready greenlet run once (timers and I/O are polled at
 * least once per pass over the ready greenlets), then returns.
 */
GREEN_API void green_yield(void);

/** Waits for all n greenlets; errors as green_join (EINVAL for a NULL entry). */
GREEN_API int green_joinall(green_t *const *gs, size_t n, double timeout);

/** Kills all n greenlets, then waits up to `timeout` for all to finish. */
GREEN_API int green_killall(green_t *const *gs, size_t n, double timeout);

typedef struct green_iwait green_iwait_t;

/** An iterator over gs[0..n) in the order they finish (holds references). */
GREEN_API green_iwait_t *green_iwait_new(green_t *const *gs, size_t n);

/**
 * The next greenlet to finish, each once. NULL with ETIMEDOUT (EAGAIN for
 * 0), ENOENT once all were returned, ECANCELED, EINVAL for NULL.
 */
GREEN_API green_t *green_iwait_next(green_iwait_t *it, double timeout);

/** Frees the iterator and its references. */
GREEN_API void green_iwait_free(green_iwait_t *it);

/* ------------------------------------------------------------------------ */
/* Timeouts (gevent.Timeout)                                                  */
/* ------------------------------------------------------------------------ */

/** Lives on the caller's stack; the fields are private. */
typedef struct green_timeout {
    double                 deadline_;
    struct green_timeout  *prev_;
    void                  *owner_;
} green_timeout_t;

/**
 * Starts a deadline `seconds` from now for the current greenlet: until the
 * matching cancel, every blocking call that would have to wait past it fails
 * with ETIMEDOUT (the one blocked when it fires included). Timeouts nest
 * (the earliest wins) and are cancelled in LIFO order.
 */
GREEN_API void green_timeout_start(green_timeout_t *t, double seconds);

/** Ends the timeout (before its frame returns). True if its deadline had passed. */
GREEN_API bool green_timeout_cancel(green_timeout_t *t);

/* ------------------------------------------------------------------------ */
/* Synchronisation (gevent.event, gevent.lock)                                */
/* ------------------------------------------------------------------------ */

typedef struct green_event green_event_t;
/** A new, clear Event owned by this thread's hub. */
GREEN_API green_event_t *green_event_new(void);
/** Sets the event and wakes every waiter (they return 0 even if cleared again). */
GREEN_API void green_event_set(green_event_t *e);
/** Clears the event. */
GREEN_API void green_event_clear(green_event_t *e);
/** True while the event is set. */
GREEN_API bool green_event_is_set(const green_event_t *e);
/** Waits until the event is set: 0, or -1 ETIMEDOUT/EAGAIN/ECANCELED/EPIPE (freed). */
GREEN_API int green_event_wait(green_event_t *e, double timeout);
/** Frees the event; greenlets still waiting wake with EPIPE. */
GREEN_API void green_event_free(green_event_t *e);

typedef struct green_result green_result_t;
/** A new, empty AsyncResult. */
GREEN_API green_result_t *green_result_new(void);
/** Sets the value (NULL is valid) and wakes every waiter; -1 EINVAL if already set or failed. */
GREEN_API int green_result_set(green_result_t *r, void *value);
/** Fails the result with err > 0: every get fails with errno = err. EINVAL twice or err <= 0. */
GREEN_API int green_result_fail(green_result_t *r, int err);
/** Waits for the value: 0 and *value, or -1 with the failure's errno / the wait's error. */
GREEN_API int green_result_get(green_result_t *r, void **value, double timeout);
/** True once set or failed. */
GREEN_API bool green_result_ready(const green_result_t *r);
/** Frees the result; greenlets still waiting wake with EPIPE. */
GREEN_API void green_result_free(green_result_t *r);

typedef struct green_sem green_sem_t;
/** A Semaphore holding `value` units. */
GREEN_API green_sem_t *green_sem_new(unsigned value);
/** A BoundedSemaphore: releasing above the start value is EINVAL. */
GREEN_API green_sem_t *green_sem_new_bounded(unsigned value);
/** Takes one unit, waiting in FIFO order. 0 or -1 ETIMEDOUT/EAGAIN/ECANCELED/EPIPE. */
GREEN_API int green_sem_acquire(green_sem_t *s, double timeout);
/** Gives one unit back, straight to the first waiter if any. */
GREEN_API int green_sem_release(green_sem_t *s);
/** Units available now (0 for NULL). */
GREEN_API unsigned green_sem_value(const green_sem_t *s);
/** Frees the semaphore; greenlets still waiting wake with EPIPE. */
GREEN_API void green_sem_free(green_sem_t *s);

typedef struct green_lock green_lock_t;
/** An RLock: re-entrant for the greenlet that holds it. */
GREEN_API green_lock_t *green_lock_new(void);
/** Acquires (again, for its owner). 0 or -1 ETIMEDOUT/EAGAIN/ECANCELED/EPIPE. */
GREEN_API int green_lock_acquire(green_lock_t *l, double timeout);
/** Releases one level; -1 EPERM if the caller is not the owner. */
GREEN_API int green_lock_release(green_lock_t *l);
/** Frees the lock; greenlets still waiting wake with EPIPE. */
GREEN_API void green_lock_free(green_lock_t *l);

/* ------------------------------------------------------------------------ */
/* Queues (gevent.queue)                                                      */
/* ------------------------------------------------------------------------ */

typedef struct green_queue green_queue_t;
/** A FIFO queue of void * items (NULL is an item); maxsize 0 = unbounded. */
GREEN_API green_queue_t *green_queue_new(size_t maxsize);
/** A LIFO queue. */
GREEN_API green_queue_t *green_queue_new_lifo(size_t maxsize);
/** A priority queue: get returns the item cmp ranks lowest, ties in insertion order. */
GREEN_API green_queue_t *green_queue_new_priority(size_t maxsize,
                                                  int (*cmp)(const void *a, const void *b));
/** A channel: put waits until a getter takes the item. */
GREEN_API green_queue_t *green_channel_new(void);

/** Puts an item, waiting while full. -1 EAGAIN/ETIMEDOUT/ECANCELED, EPIPE when closed. */
GREEN_API int green_queue_put(green_queue_t *q, void *item, double timeout);
/** Takes the next item, waiting while empty. -1 EPIPE once closed and drained. */
GREEN_API int green_queue_get(green_queue_t *q, void **item, double timeout);
/** As get, but leaves the item in the queue. */
GREEN_API int green_queue_peek(green_queue_t *q, void **item, double timeout);
/** Items queued now. */
GREEN_API size_t green_queue_size(const green_queue_t *q);
/** True when no item is queued. */
GREEN_API bool green_queue_empty(const green_queue_t *q);
/** True when a put would have to wait. */
GREEN_API bool green_queue_full(const green_queue_t *q);
/** Marks one item got as processed; -1 EINVAL if called more often than get. */
GREEN_API int green_queue_task_done(green_queue_t *q);
/** Waits until every item put has been marked task_done. */
GREEN_API int green_queue_join(green_queue_t *q, double timeout);
/** Closes the queue (gevent's ShutDown): puts fail with EPIPE, gets drain then EPIPE. */
GREEN_API void green_queue_close(green_queue_t *q);
/** Frees the queue; greenlets still waiting wake with EPIPE. */
GREEN_API void green_queue_free(green_queue_t *q);

/* ------------------------------------------------------------------------ */
/* Group and Pool (gevent.pool)                                               */
/* ------------------------------------------------------------------------ */

typedef struct green_group green_group_t;
/** An empty Group. */
GREEN_API green_group_t *green_group_new(void);
/** Spawns fn(arg) as a member; the caller owns the returned handle. */
GREEN_API green_t *green_group_spawn(green_group_t *grp, green_fn fn, void *arg);
/** Adds g (the group takes its own reference); finished or present: no-op, 0. */
GREEN_API int green_group_add(green_group_t *grp, green_t *g);
/** Removes g (a non-member: no-op, 0). */
GREEN_API int green_group_discard(green_group_t *grp, green_t *g);
/** Members not yet finished. */
GREEN_API size_t green_group_size(const green_group_t *grp);
/** Waits until every member has finished. */
GREEN_API int green_group_join(green_group_t *grp, double timeout);
/** Kills every member, then waits up to timeout for them to finish. */
GREEN_API int green_group_kill(green_group_t *grp, double timeout);
/** Runs fn(args[i]) for all i at once; results[i] in order (NULL if killed). */
GREEN_API int green_group_map(green_group_t *grp, green_fn fn, void *const *args,
                              void **results, size_t n);
/** Frees the group; members go on and are dropped as they finish. */
GREEN_API void green_group_free(green_group_t *grp);

typedef struct green_pool green_pool_t;
/** A Pool running at most `size` members at once (size 0: EINVAL). */
GREEN_API green_pool_t *green_pool_new(size_t size);
/** Spawns fn(arg) as a member, waiting while the pool is full. */
GREEN_API green_t *green_pool_spawn(green_pool_t *p, green_fn fn, void *arg);
/** Free slots now. */
GREEN_API size_t green_pool_free_count(const green_pool_t *p);
/** Waits until at least one slot is free. */
GREEN_API int green_pool_wait_available(green_pool_t *p, double timeout);
/** Waits until every member has finished. */
GREEN_API int green_pool_join(green_pool_t *p, double timeout);
/** Kills every member, then waits up to timeout for them to finish. */
GREEN_API int green_pool_kill(green_pool_t *p, double timeout);
/** Runs fn(args[i]) for all i, filling free slots; results[i] in order. */
GREEN_API int green_pool_map(green_pool_t *p, green_fn fn, void *const *args,
                             void **results, size_t n);
/** Runs fn(args[i]) for all i and calls each(i, result, ud) as results arrive. */
GREEN_API int green_pool_imap_unordered(green_pool_t *p, green_fn fn, void *const *args, size_t n,
                                        void (*each)(size_t index, void *result, void *ud),
                                        void *ud);
/** Frees the pool; members go on and are dropped as they finish. */
GREEN_API void green_pool_free(green_pool_t *p);

/* ------------------------------------------------------------------------ */
/* Cooperative I/O                                                            */
/* ------------------------------------------------------------------------ */

struct sockaddr;
struct addrinfo;

enum { GREEN_READ = 1, GREEN_WRITE = 2 };

/*
 * The fd functions make the descriptor non-blocking as needed and wait on the
 * hub instead of blocking the thread. They report their system call's errno
 * (EBADF, ENOTSOCK, ECONNREFUSED...), plus ETIMEDOUT/EAGAIN/ECANCELED for the
 * wait, EINVAL for a NULL buffer with n > 0. The library keeps no state about
 * an fd except while a greenlet waits on it. Writes never raise SIGPIPE: they
 * fail with EPIPE.
 */

/** Waits until fd is ready for `events` (GREEN_READ|GREEN_WRITE); returns those that became ready. */
GREEN_API int green_wait_fd(int fd, int events, double timeout);
/** read(2), waiting while no data is available. 0 at end of file. */
GREEN_API ssize_t green_read(int fd, void *buf, size_t n, double timeout);
/** write(2), waiting while the fd is full; may write less than n. */
GREEN_API ssize_t green_write(int fd, const void *buf, size_t n, double timeout);
/** Writes all n bytes; -1 if the timeout or a kill interrupts it (what was written is not reported). */
GREEN_API ssize_t green_write_all(int fd, const void *buf, size_t n, double timeout);
/** recv(2), waiting while no data is available. */
GREEN_API ssize_t green_recv(int fd, void *buf, size_t n, int flags, double timeout);
/** send(2) with MSG_NOSIGNAL, waiting while the socket is full. */
GREEN_API ssize_t green_send(int fd, const void *buf, size_t n, int flags, double timeout);
/** accept4(2): the new fd (close-on-exec, non-blocking), waiting for a connection. */
GREEN_API int green_accept(int fd, struct sockaddr *addr, socklen_t *len, double timeout);
/** connect(2), waiting for the connection to complete. */
GREEN_API int green_connect(int fd, const struct sockaddr *addr, socklen_t len, double timeout);
/** Wakes every greenlet waiting on fd with EBADF, then closes it. */
GREEN_API int green_close(int fd);

/** A listening TCP socket on host (NULL: any address) and port (0: any free port); bind/listen errno. */
GREEN_API int green_tcp_listen(const char *host, int port, int backlog);
/** The local port of a bound socket. */
GREEN_API int green_tcp_port(int listen_fd);
/** Resolves host cooperatively and connects to the first address that accepts; ENOENT if it does not resolve. */
GREEN_API int green_tcp_connect(const char *host, int port, double timeout);
/**
 * getaddrinfo(3) run on the thread pool while the caller waits cooperatively.
 * Returns getaddrinfo's codes (EAI_SYSTEM with errno for a failed wait; NULL
 * res: EAI_SYSTEM with EINVAL). Free the list with freeaddrinfo(3).
 */
GREEN_API int green_getaddrinfo(const char *node, const char *service,
                                const struct addrinfo *hints, struct addrinfo **res);

typedef struct green_server green_server_t;
/**
 * gevent's StreamServer: accepts on listen_fd (which it owns and closes when
 * it stops) in a greenlet of its own and runs handler(fd, ud) in a greenlet
 * per connection, closing the connection when the handler returns (the
 * handler must not close it). Past max_conns (0: unbounded) open connections
 * it stops accepting until one closes.
 */
GREEN_API green_server_t *green_server_new(int listen_fd, void (*handler)(int fd, void *ud),
                                           void *ud, size_t max_conns);
/** Stops accepting, waits up to timeout for handlers, then kills the rest; 0 once all finished, -1 EPIPE if already stopped. */
GREEN_API int green_server_stop(green_server_t *s, double timeout);
/** Frees the server (stopping it first, without waiting, if it runs). */
GREEN_API void green_server_free(green_server_t *s);

/* ------------------------------------------------------------------------ */
/* Threads, processes, signals                                                */
/* ------------------------------------------------------------------------ */

/**
 * Runs fn(arg) on a pool of OS threads (GREEN_THREADPOOL_SIZE, default the
 * number of cores) while the calling greenlet waits cooperatively; stores
 * what fn returned in *result (if result is not NULL). If the caller is
 * killed or times out, fn still runs to its end on its thread and its result
 * is dropped, so arg must outlive it. Timeout 0: EAGAIN (it would wait).
 */
GREEN_API int green_threadpool_call(void *(*fn)(void *), void *arg, void **result, double timeout);

/**
 * Cooperative waitpid(pid, status, 0): 0 and the status once the child has
 * exited. Reaps no other child (the program's own waitpid calls keep
 * working). ECHILD for a pid that is not a child, EINVAL for pid <= 0.
 */
GREEN_API int green_waitpid(pid_t pid, int *status, double timeout);

/**
 * Waits for signal signum (every greenlet waiting on it wakes when it
 * arrives; the handler stays installed after the first wait). EINVAL for
 * SIGKILL, SIGSTOP and numbers out of range.
 */
GREEN_API int green_signal_wait(int signum, double timeout);

/* ------------------------------------------------------------------------ */
/* Greenlet-local storage (gevent.local)                                      */
/* ------------------------------------------------------------------------ */

typedef unsigned green_key_t;
/**
 * Creates a key; destructor (may be NULL) runs in the ending greenlet for
 * each non-NULL value, before its joiners resume. -1 EAGAIN when out of keys.
 */
GREEN_API int green_key_create(green_key_t *key, void (*destructor)(void *));
/** The current greenlet's value for key (NULL if unset or unknown key). */
GREEN_API void *green_getspecific(green_key_t key);
/** Sets the current greenlet's value for key; EINVAL for an unknown key. */
GREEN_API int green_setspecific(green_key_t key, const void *value);

/* ------------------------------------------------------------------------ */
/* Introspection                                                              */
/* ------------------------------------------------------------------------ */

/** Writes one line per greenlet of this hub: id, 'name', state, what it waits on. */
GREEN_API void green_dump(FILE *out);

/** Greenlets of this hub that have not finished (pending ones included, main excluded). */
GREEN_API size_t green_count(void);

#ifdef __cplusplus
}
#endif

#endif /* GREEN_H */
