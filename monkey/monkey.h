/*
 * What libgreen exports for the monkey shim alone (lib/monkey_hooks.c).
 * Everything else the shim uses is the public API of green.h.
 */
#ifndef GREEN_MONKEY_H
#define GREEN_MONKEY_H

#include <green.h>
#include <poll.h>

/*
 * 1 when the calling thread has a hub and is running a greenlet (so a
 * blocking call may wait cooperatively); 0 on a thread with no hub and in
 * the hub itself, where calls must go straight to libc.
 */
GREEN_API int green__monkey_active(void);

/* Wakes every greenlet waiting on fd with EBADF and forgets the fd (close). */
GREEN_API void green__monkey_fd_closed(int fd);

/*
 * Waits until one of fds may be ready (as poll would report), the timeout
 * (seconds, < 0 forever), or a kill. Returns 0 (poll again with timeout 0 to
 * read the events), ETIMEDOUT, ECANCELED, EDEADLK or ENOMEM. Does not fill
 * revents.
 */
GREEN_API int green__monkey_poll(struct pollfd *fds, nfds_t n, double timeout);

#endif
