/*
 * Processes and signals: green_waitpid and green_signal_wait.
 *
 * Both are built on libev's ev_signal, never on ev_child: libev's child
 * support reaps every child with waitpid(-1), which would steal the
 * program's own children from its own waitpid(2) calls. Instead, each
 * SIGCHLD makes the callback call waitpid(pid, WNOHANG) for exactly the pids
 * that green_waitpid calls wait for.
 *
 * ONE SLOT PER SIGNAL, OWNED BY ONE HUB
 *
 * libev attaches a signal to one loop at a time (its handler writes to that
 * loop's pipe), so the process keeps a table of slots, one per signal
 * number, each owned by at most one hub. The owner is taken and given back
 * under `slots_lock`; everything else in a slot (the watcher, the waitlists,
 * the flags) is touched only on the owner hub's thread, so it needs no lock.
 * A hub asking for a signal another hub owns gets EPERM.
 *
 * A slot's watcher is started when the first greenlet waits on it. It is
 * referenced (ev_ref, and counted in the hub's nactive so the scheduler
 * polls) exactly while some greenlet waits; while nobody waits it is either
 *
 *  - stopped, for a slot only green_waitpid ever used (SIGCHLD): the
 *    program's SIGCHLD disposition, saved before the start, is restored, and
 *    the hub gives up the slot; or
 *  - left installed but unreferenced (ev_unref), for a signal a
 *    green_signal_wait has waited on ("sticky"): a signal arriving between
 *    two waits then runs libev's handler instead of killing the process,
 *    and the idle watcher neither keeps green_wait waiting nor hides a
 *    deadlock. The hub keeps the slot until it is destroyed. Such a signal
 *    is kept pending (once, however often it came) and the next
 *    green_signal_wait returns it at once, as sigwait(3) returns a blocked
 *    signal that is pending: a loop that waits, handles, and waits again
 *    loses none.
 *
 * Per libev's rules an unreferenced watcher is referenced again (ev_ref)
 * before it is stopped.
 *
 * While green_waitpid holds SIGCHLD, the program's own SIGCHLD handler does
 * not run. So that it misses nothing, when the slot is given back and the
 * restored disposition is a handler (or SIGCHLD was blocked, for sigwait or
 * signalfd), SIGCHLD is raised once if a child is still waitable (waitid
 * with WNOWAIT): a child of the program's own that ended meanwhile is then
 * reported to it as if nothing had been in between. The thread's signal
 * mask is restored too: libev unblocks a signal it starts watching.
 *
 * Known limits: a hub that owns a sticky signal must give it back before its
 * loop is destroyed (green__proc_hub_free, to be called by the hub's
 * destructor); a program that attaches the same signal to a libev loop of
 * its own conflicts with libgreen as it would with any other libev user.
 * Each SIGCHLD costs one waitpid per pid being waited for.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

/* Gives back every signal h owns (its loop is about to be destroyed). */
void green__proc_hub_free(struct green_hub *h);

struct sig_slot {
    ev_signal              watcher;       /* first: the callback finds its slot */
    struct green_hub      *owner;         /* under slots_lock */
    bool                   started;
    bool                   refd;          /* counted in the loop's refs and nactive */
    bool                   sticky;        /* a green_signal_wait used it: stays installed */
    bool                   seen;          /* a signal arrived while we held it */
    bool                   pending;       /* a sticky signal arrived while nobody waited */
    bool                   was_blocked;   /* in the owner thread's mask before the start */
    struct sigaction       saved;         /* the disposition before the start */
    struct green__waitlist waiters;       /* green_signal_wait */
    struct green__waitlist pid_waiters;   /* green_waitpid: aux = pid, value = status */
};

static struct sig_slot slots[NSIG];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------------------ */
/* Slots                                                                      */
/* ------------------------------------------------------------------------ */

static void atfork_child(void)
{
    /* The lock may have been held by a thread the child does not have. */
    pthread_mutex_init(&slots_lock, NULL);
    /* The children the parent's greenlets wait for are not the child's. */
    struct green_hub *h = green__tls_hub;
    for (int sig = 1; sig < NSIG; sig++)
        if (h && slots[sig].owner == h)
            green__waitlist_wake_all(&slots[sig].pid_waiters, ECHILD);
}

static void atfork_init(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
}

/* The hub that owns the signal, or NULL. */
static struct green_hub *slot_owner(int sig)
{
    pthread_mutex_lock(&slots_lock);
    struct green_hub *owner = slots[sig].owner;
    pthread_mutex_unlock(&slots_lock);
    return owner;
}

/* EPERM if another hub owns the signal. */
static int slot_check(struct green_hub *h, int sig)
{
    struct green_hub *owner = slot_owner(sig);
    return owner && owner != h ? EPERM : 0;
}

/* Makes h the owner of the signal's slot, or EPERM. */
static int slot_take(struct green_hub *h, int sig)
{
    pthread_once(&atfork_once, atfork_init);
    int err = 0;
    pthread_mutex_lock(&slots_lock);
    if (!slots[sig].owner)
        slots[sig].owner = h;
    else if (slots[sig].owner != h)
        err = EPERM;
    pthread_mutex_unlock(&slots_lock);
    return err;
}

static void slot_give_back(struct sig_slot *s)
{
    pthread_mutex_lock(&slots_lock);
    s->owner = NULL;
    pthread_mutex_unlock(&slots_lock);
}

/* Restores the program's disposition after the watcher has stopped (and the
 * thread's mask: with EVFLAG_NOSIGMASK, libev unblocks the signal it starts
 * watching in the starting thread, and leaves it so). */
static void restore_disposition(struct sig_slot *s, int sig)
{
    sigaction(sig, &s->saved, NULL);
    if (s->was_blocked) {
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        pthread_sigmask(SIG_BLOCK, &one, NULL);
    }
    bool handler = (s->saved.sa_flags & SA_SIGINFO) ||
                   (s->saved.sa_handler != SIG_DFL && s->saved.sa_handler != SIG_IGN);
    if (sig != SIGCHLD || !s->seen || !(handler || s->was_blocked))
        return;
    /* A SIGCHLD we swallowed may have been for one of the program's own
     * children: if one is still there to collect, let its handler (or its
     * sigwait or signalfd, for a blocked SIGCHLD) know. */
    siginfo_t si;
    si.si_pid = 0;
    if (waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid != 0)
        raise(SIGCHLD);
}

static void sig_cb(struct ev_loop *loop, ev_signal *w, int revents);

/*
 * Brings the slot's watcher in line with its waiters: started and
 * referenced while anyone waits; when nobody does, unreferenced (sticky) or
 * stopped, with the disposition restored and the slot given back.
 */
static void slot_update(struct green_hub *h, int sig)
{
    struct sig_slot *s = &slots[sig];
    bool want = !green__waitlist_empty(&s->waiters) || !green__waitlist_empty(&s->pid_waiters);
    if (want) {
        if (!s->started) {
            sigaction(sig, NULL, &s->saved);
            sigset_t mask;
            pthread_sigmask(SIG_BLOCK, NULL, &mask);
            s->was_blocked = sigismember(&mask, sig) == 1;
            s->seen = false;
            ev_signal_init(&s->watcher, sig_cb, sig);
            ev_signal_start(h->loop, &s->watcher);
            s->started = true;
            s->refd = true;
            green__active_inc(h);
        } else if (!s->refd) {
            ev_ref(h->loop);
            s->refd = true;
            green__active_inc(h);
        }
        return;
    }
    if (!s->started)
        return;
    if (s->sticky) {
        if (s->refd) {
            ev_unref(h->loop);
            s->refd = false;
            green__active_dec(h);
        }
        return;
    }
    if (s->refd)
        green__active_dec(h);
    else
        ev_ref(h->loop); /* libev: reference an unref'd watcher before stopping it */
    ev_signal_stop(h->loop, &s->watcher); /* resets the disposition to SIG_DFL */
    s->started = false;
    s->refd = false;
    restore_disposition(s, sig);
    slot_give_back(s);
}

/* waitpid(pid, WNOHANG): pid and *status once exited, 0 while it runs, -1 errno. */
static pid_t try_reap(pid_t pid, int *status)
{
    pid_t r;
    while ((r = waitpid(pid, status, WNOHANG)) < 0 && errno == EINTR)
        ;
    return r;
}

/* Hands a reaped pid's status (or err) to every waiter for it. */
static void hand_over(struct sig_slot *s, pid_t pid, int status, int err)
{
    struct green__waiter *o = green__waitlist_first(&s->pid_waiters), *next;
    for (; o; o = next) {
        next = o->next;
        if ((pid_t)o->aux == pid) {
            o->value = (void *)(intptr_t)status;
            green__trigger(o, err);
        }
    }
}

static void sig_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    struct sig_slot *s = (struct sig_slot *)w;
    s->seen = true;
    if (s->sticky && green__waitlist_empty(&s->waiters))
        s->pending = true; /* kept for the next green_signal_wait */
    else
        green__waitlist_wake_all(&s->waiters, 0);
    /* Only the pids being waited for are reaped; every waiter for a pid
     * gets the same answer. Triggered waiters leave the list, so the walk
     * goes on from the next waiter for another pid. */
    struct green__waiter *pw = green__waitlist_first(&s->pid_waiters), *next;
    for (; pw; pw = next) {
        pid_t pid = (pid_t)pw->aux;
        next = pw->next;
        while (next && (pid_t)next->aux == pid)
            next = next->next;
        int status = 0;
        pid_t r = try_reap(pid, &status);
        if (r == 0)
            continue;
        /* ECHILD: the program reaped it itself. */
        hand_over(s, pid, status, r < 0 ? errno : 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Public                                                                     */
/* ------------------------------------------------------------------------ */

int green_waitpid(pid_t pid, int *status, double timeout)
{
    if (pid <= 0)
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return green__fail(err);
    int st = 0;
    pid_t r = try_reap(pid, &st);
    if (r < 0)
        return -1; /* ECHILD: not a child of ours (or already reaped) */
    if (r == pid) {
        /* Others of this hub waiting for it get the same status. */
        if (slot_owner(SIGCHLD) == h)
            hand_over(&slots[SIGCHLD], pid, st, 0);
        if (status)
            *status = st;
        return 0;
    }
    if ((err = slot_check(h, SIGCHLD)) != 0)
        return green__fail(err);
    if (timeout == 0)
        return green__fail(EAGAIN);
    if ((err = slot_take(h, SIGCHLD)) != 0)
        return green__fail(err);
    struct green__waiter w;
    green__waiter_init(&w, "waitpid", (const void *)(intptr_t)pid);
    w.aux = (uintptr_t)pid;
    green__waitlist_push(&slots[SIGCHLD].pid_waiters, &w);
    slot_update(h, SIGCHLD);
    /* The child may have ended before the watcher was there to see it. */
    r = try_reap(pid, &st);
    if (r != 0) {
        err = r < 0 ? errno : 0;
        green__waitlist_remove(&w);
        if (!err)
            hand_over(&slots[SIGCHLD], pid, st, 0);
        slot_update(h, SIGCHLD);
        if (err)
            return green__fail(err);
        if (status)
            *status = st;
        return 0;
    }
    err = green__park(&w, timeout);
    slot_update(h, SIGCHLD);
    if (err)
        return green__fail(err);
    if (status)
        *status = (int)(intptr_t)w.value;
    return 0;
}

int green_signal_wait(int signum, double timeout)
{
    struct sigaction probe;
    if (signum <= 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP ||
        sigaction(signum, NULL, &probe) < 0) /* the C library's own signals */
        return green__fail(EINVAL);
    struct green_hub *h;
    int err = green__enter(NULL, &h);
    if (err)
        return green__fail(err);
    if ((err = slot_check(h, signum)) != 0)
        return green__fail(err);
    struct sig_slot *s = &slots[signum];
    if (slot_owner(signum) == h && s->pending) {
        s->pending = false;
        return 0;
    }
    if (timeout == 0)
        return green__fail(EAGAIN);
    if ((err = slot_take(h, signum)) != 0)
        return green__fail(err);
    s->sticky = true;
    struct green__waiter w;
    green__waiter_init(&w, "signal", (const void *)(intptr_t)signum);
    green__waitlist_push(&s->waiters, &w);
    slot_update(h, signum);
    err = green__park(&w, timeout);
    slot_update(h, signum);
    return err ? green__fail(err) : 0;
}

void green__proc_hub_free(struct green_hub *h)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sig_slot *s = &slots[sig];
        if (slot_owner(sig) != h)
            continue;
        green__waitlist_wake_all(&s->waiters, EPIPE);
        green__waitlist_wake_all(&s->pid_waiters, EPIPE);
        if (s->started) {
            if (s->refd)
                green__active_dec(h);
            else
                ev_ref(h->loop);
            ev_signal_stop(h->loop, &s->watcher);
            s->started = s->refd = false;
            restore_disposition(s, sig);
        }
        s->sticky = s->pending = false;
        slot_give_back(s);
    }
}
