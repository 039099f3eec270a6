/*
 * What libgreen exports for the monkey shim alone (lib/monkey_hooks.c).
 * Everything else the shim uses is the public API of green.h.
 */
#ifndef GREEN_MONKEY_H
#define GREEN_MONKEY_H

#include <green.h>
#include <poll.h>

struct ev_loop;

/*
 * 1 when the calling thread has a hub and is running a greenlet (so a
 * blocking call may wait cooperatively); 0 on a thread with no hub and in
 * the hub itself, where calls must go straight to libc. Never creates a hub.
 */
GREEN_API int green__monkey_active(void);

/* The calling thread's hub loop, or NULL when it has no hub. */
GREEN_API struct ev_loop *green__monkey_loop(void);

/*
 * Wakes g, a greenlet of the calling thread's hub, with err if it is parked
 * (its wait returns err); a greenlet that is not parked is left alone. Must
 * not be called from a signal handler.
 */
GREEN_API void green__monkey_interrupt(green_t *g, int err);

/*
 * Before fd is closed: wakes every greenlet waiting on it with EBADF, wakes
 * the polls that watch it (they poll again and see POLLNVAL), and forgets it.
 */
GREEN_API void green__monkey_fd_closed(int fd);

/*
 * Waits until one of fds may be ready (as poll would report), the timeout
 * (seconds, < 0 forever), or a kill. Returns 0 (poll again with timeout 0 to
 * read the events), ETIMEDOUT, ECANCELED, EDEADLK, ENOMEM, or the err given
 * to green__monkey_interrupt. Does not fill revents.
 */
GREEN_API int green__monkey_poll(struct pollfd *fds, nfds_t n, double timeout);

#endif
