/*
 * The monkey shim, linked in (-lgreen-monkey): blocking libc calls made from
 * greenlets wait on the hub, the program's view of its descriptors is
 * unchanged, and calls without a hub go straight to libc.
 */
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static void *sleeper(void *arg)
{
    (void)arg;
    ck_assert_int_eq(usleep(200000), 0);
    struct timespec ts = {0, 100000000};
    ck_assert_int_eq(nanosleep(&ts, NULL), 0);
    return NULL;
}

START_TEST(test_sleeps_overlap)
{
    green_t *g[20];
    double t0 = tu_now();
    for (int i = 0; i < 20; i++)
        g[i] = green_spawn(sleeper, NULL);
    ck_assert_int_eq(green_joinall(g, 20, GREEN_FOREVER), 0);
    /* 20 x 0.3 s one after another would be 6 s. */
    ck_assert_elapsed(t0, 0.29, 2.0);
    for (int i = 0; i < 20; i++)
        green_release(g[i]);
}
END_TEST

static void *killed_sleeper(void *arg)
{
    unsigned left = sleep(10);
    *(unsigned *)arg = left;
    return NULL;
}

START_TEST(test_sleep_killed_returns_left)
{
    unsigned left = 0;
    green_t *g = green_spawn(killed_sleeper, &left);
    green_sleep(0.05);
    ck_assert_int_eq(green_kill(g, 1), 0);
    ck_assert_uint_ge(left, 9);
    ck_assert_uint_le(left, 10);
    green_release(g);
}
END_TEST

static int sv[2];

static void *blocking_reader(void *arg)
{
    char buf[16];
    ssize_t n = read(sv[1], buf, sizeof buf);
    *(ssize_t *)arg = n;
    return NULL;
}

START_TEST(test_blocking_read_is_cooperative)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ssize_t got = -2;
    green_t *g = green_spawn(blocking_reader, &got);
    green_sleep(0.05); /* the reader is parked, the thread is not */
    ck_assert_int_eq(got, -2);
    ck_assert_int_eq(write(sv[0], "hello", 5), 5);
    ck_assert_int_eq(green_join(g, 1), 0);
    ck_assert_int_eq(got, 5);
    /* The program never asked for O_NONBLOCK and never sees it. */
    ck_assert_int_eq(fcntl(sv[1], F_GETFL) & O_NONBLOCK, 0);
    green_release(g);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

static void *reader_errno(void *arg)
{
    char buf[4];
    errno = 0;
    ssize_t n = recv(sv[1], buf, sizeof buf, 0);
    *(int *)arg = n < 0 ? errno : 0;
    return NULL;
}

START_TEST(test_close_wakes_waiter)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int err = -1;
    green_t *g = green_spawn(reader_errno, &err);
    green_sleep(0.02);
    close(sv[1]);
    ck_assert_int_eq(green_join(g, 1), 0);
    ck_assert_int_eq(err, EBADF);
    green_release(g);
    close(sv[0]);
}
END_TEST

START_TEST(test_program_nonblocking_honoured)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    char buf[4];
    ck_assert_fails(read(sv[1], buf, sizeof buf), EAGAIN);
    ck_assert_int_ne(fcntl(sv[1], F_GETFL) & O_NONBLOCK, 0);
    int off = 0;
    ck_assert_int_eq(ioctl(sv[1], FIONBIO, &off), 0);
    ck_assert_int_eq(fcntl(sv[1], F_GETFL) & O_NONBLOCK, 0);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(test_rcvtimeo_gives_eagain)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct timeval tv = {0, 100000};
    ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct timeval back;
    socklen_t len = sizeof back;
    ck_assert_int_eq(getsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &back, &len), 0);
    ck_assert_int_eq(back.tv_usec, 100000);
    char buf[4];
    double t0 = tu_now();
    ck_assert_fails(recv(sv[1], buf, sizeof buf, 0), EAGAIN);
    ck_assert_elapsed(t0, 0.09, 1.0);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

static void *ticker(void *arg)
{
    int *ticks = arg;
    for (int i = 0; i < 10; i++) {
        green_sleep(0.01);
        (*ticks)++;
    }
    return NULL;
}

START_TEST(test_poll_select_cooperative)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int ticks = 0;
    green_t *t = green_spawn(ticker, &ticks);
    struct pollfd p = {.fd = sv[1], .events = POLLIN};
    double t0 = tu_now();
    ck_assert_int_eq(poll(&p, 1, 200), 0); /* timed out, but others ran */
    ck_assert_elapsed(t0, 0.19, 1.5);
    ck_assert_int_ge(ticks, 5);
    ck_assert_int_eq(write(sv[0], "x", 1), 1);
    ck_assert_int_eq(poll(&p, 1, 1000), 1);
    ck_assert(p.revents & POLLIN);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(sv[1], &rd);
    struct timeval tv = {1, 0};
    ck_assert_int_eq(select(sv[1] + 1, &rd, NULL, NULL, &tv), 1);
    ck_assert(FD_ISSET(sv[1], &rd));
    green_join(t, GREEN_FOREVER);
    green_release(t);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

static void *accept_one(void *arg)
{
    int l = *(int *)arg;
    int c = accept(l, NULL, NULL);
    char buf[8];
    ssize_t n = c >= 0 ? read(c, buf, sizeof buf) : -1;
    if (n > 0)
        write(c, buf, (size_t)n);
    if (c >= 0)
        close(c);
    return NULL;
}

START_TEST(test_tcp_blocking_api_on_loopback)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(l, 8), 0);
    socklen_t len = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &len);
    green_t *s = green_spawn(accept_one, &l);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_eq(send(c, "ping", 4, 0), 4);
    char buf[8];
    ck_assert_int_eq(recv(c, buf, sizeof buf, 0), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
    green_join(s, GREEN_FOREVER);
    green_release(s);
    close(c);
    /* Connection refused comes back as libc reports it. */
    close(l);
    c = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_fails(connect(c, (struct sockaddr *)&a, sizeof a), ECONNREFUSED);
    close(c);
}
END_TEST

START_TEST(test_getaddrinfo_cooperative)
{
    struct addrinfo *res = NULL;
    ck_assert_int_eq(getaddrinfo("127.0.0.1", "80", NULL, &res), 0);
    ck_assert_ptr_nonnull(res);
    freeaddrinfo(res);
}
END_TEST

static void *no_hub_thread(void *arg)
{
    (void)arg;
    /* No hub on this thread: straight to libc, and no hub gets created. */
    double t0 = tu_now();
    usleep(20000);
    ck_assert_elapsed(t0, 0.019, 1.0);
    ck_assert_uint_eq(green_count(), 0);
    return NULL;
}

START_TEST(test_thread_without_hub_passes_through)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, no_hub_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
}
END_TEST

START_TEST(test_waitpid_cooperative)
{
    pid_t pid = fork();
    if (pid == 0) {
        usleep(100000);
        _exit(7);
    }
    int ticks = 0;
    green_t *t = green_spawn(ticker, &ticks);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    ck_assert_int_ge(ticks, 3);
    green_join(t, GREEN_FOREVER);
    green_release(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("monkey");
    TCase *tc = tcase_create("monkey");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_sleeps_overlap);
    tcase_add_test(tc, test_sleep_killed_returns_left);
    tcase_add_test(tc, test_blocking_read_is_cooperative);
    tcase_add_test(tc, test_close_wakes_waiter);
    tcase_add_test(tc, test_program_nonblocking_honoured);
    tcase_add_test(tc, test_rcvtimeo_gives_eagain);
    tcase_add_test(tc, test_poll_select_cooperative);
    tcase_add_test(tc, test_tcp_blocking_api_on_loopback);
    tcase_add_test(tc, test_getaddrinfo_cooperative);
    tcase_add_test(tc, test_thread_without_hub_passes_through);
    tcase_add_test(tc, test_waitpid_cooperative);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
