/*
 * A thread-per-connection echo server written as programs were before
 * event loops: plain pthreads and blocking sockets, nothing of libgreen.
 *
 *   echo_server PORTFILE NCONNS [STACK_KIB]
 *
 * Listens on 127.0.0.1 (any free port, written to PORTFILE), serves NCONNS
 * connections with a detached thread each (stack STACK_KIB if given, else
 * the default attributes), waits for them all with a mutex and a condition
 * variable, and prints what it served.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_done = PTHREAD_COND_INITIALIZER;
static long live, max_live, finished, errors;
static unsigned long long bytes;

static void *serve(void *arg)
{
    int fd = (int)(long)arg;
    char buf[4096];
    unsigned long long n = 0;
    int err = 0;
    pthread_mutex_lock(&lock);
    if (++live > max_live)
        max_live = live;
    pthread_mutex_unlock(&lock);
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err = errno != ECONNRESET; /* a client may leave mid-echo */
            break;
        }
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(fd, buf + off, (size_t)(r - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                err = errno != ECONNRESET && errno != EPIPE ? 1 : -1;
                break;
            }
            off += w;
        }
        if (err) {
            err = err > 0;
            break;
        }
        n += (unsigned long long)r;
    }
    close(fd);
    pthread_mutex_lock(&lock);
    live--;
    finished++;
    errors += err;
    bytes += n;
    pthread_cond_signal(&all_done);
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: echo_server PORTFILE NCONNS [STACK_KIB]\n");
        return 2;
    }
    long want = atol(argv[2]);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 4096) != 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &len) != 0) {
        perror("echo_server: listen");
        return 1;
    }
    FILE *pf = fopen(argv[1], "w");
    if (!pf) {
        perror("echo_server: port file");
        return 1;
    }
    fprintf(pf, "%d\n", ntohs(sa.sin_port));
    fclose(pf);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (argc > 3 && atol(argv[3]) > 0)
        pthread_attr_setstacksize(&attr, (size_t)atol(argv[3]) * 1024);
    long accepted = 0;
    while (accepted < want) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("echo_server: accept");
            return 1;
        }
        pthread_t t;
        int err = pthread_create(&t, &attr, serve, (void *)(long)fd);
        if (err) {
            fprintf(stderr, "echo_server: pthread_create: %s\n", strerror(err));
            return 1;
        }
        accepted++;
    }
    close(ls);
    pthread_mutex_lock(&lock);
    while (finished < want)
        pthread_cond_wait(&all_done, &lock);
    pthread_mutex_unlock(&lock);
    printf("served=%ld max_live=%ld errors=%ld bytes=%llu\n", finished, max_live, errors, bytes);
    return errors != 0;
}
