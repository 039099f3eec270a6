/*
 * green-run [OPTIONS] PROGRAM ARGS...
 *
 * Runs PROGRAM with libgreen's monkey shim preloaded, as env(1) runs a
 * program: arguments after PROGRAM are the program's, the environment is
 * passed on with the shim added in front of LD_PRELOAD (what was there is
 * kept), and since green-run execs PROGRAM in its own process, the exit
 * status and a fatal signal pass through unchanged.
 *
 * The shim is looked for beside green-run (the build tree), then in
 * ../lib (an installed prefix); GREEN_MONKEY_LIB overrides both.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHIM "libgreen-monkey.so"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: green-run [OPTIONS] PROGRAM [ARGS...]\n"
            "\n"
            "Runs PROGRAM with libgreen's monkey shim (" SHIM ") preloaded, so that\n"
            "its blocking calls (sockets, sleep, getaddrinfo...) made from greenlets\n"
            "yield to the hub instead of blocking the thread. Like env(1), it passes\n"
            "the environment, the exit status and fatal signals through.\n"
            "\n"
            "options:\n"
            "  --threads    also map POSIX threads onto greenlets (sets GREEN_THREADS=1):\n"
            "               every thread the program creates is a greenlet on the main\n"
            "               thread's hub, and mutexes, condition variables, rwlocks,\n"
            "               barriers, semaphores, joins, keys and pthread_once wait\n"
            "               cooperatively. A thread's stack is the size its attributes\n"
            "               ask for, else GREEN_STACK_SIZE (default 256 KiB). All threads\n"
            "               share one core: CPU-bound threads no longer run in parallel,\n"
            "               and __thread variables are shared by them. A deadlock (every\n"
            "               thread blocked, nothing to wake one) is reported on stderr\n"
            "               with the list of threads, and the program exits with status 70.\n"
            "  --help       show this help and exit\n"
            "  --           end of options\n"
            "\n"
            "environment: GREEN_MONKEY_LIB=path overrides where the shim is found.\n");
}

/* The shim's path: beside this executable, or in ../lib. */
static int find_shim(char *out, size_t size)
{
    const char *env = getenv("GREEN_MONKEY_LIB");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return access(out, R_OK);
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    if ((size_t)snprintf(out, size, "%s/%s", self, SHIM) < size && access(out, R_OK) == 0)
        return 0;
    if ((size_t)snprintf(out, size, "%s/../lib/%s", self, SHIM) >= size)
        return -1;
    return access(out, R_OK);
}

int main(int argc, char **argv)
{
    int i = 1;
    int threads = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--threads") == 0) {
            threads = 1;
        } else {
            fprintf(stderr, "green-run: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 125;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 125;
    }
    char shim[2 * PATH_MAX];
    if (find_shim(shim, sizeof shim) != 0) {
        fprintf(stderr, "green-run: cannot find %s (set GREEN_MONKEY_LIB)\n", SHIM);
        return 125;
    }
    const char *old = getenv("LD_PRELOAD");
    size_t len = strlen(shim) + (old ? strlen(old) + 1 : 0) + 1;
    char *preload = malloc(len);
    if (!preload) {
        perror("green-run");
        return 125;
    }
    if (old && *old)
        snprintf(preload, len, "%s:%s", shim, old);
    else
        snprintf(preload, len, "%s", shim);
    setenv("LD_PRELOAD", preload, 1);
    if (threads)
        setenv("GREEN_THREADS", "1", 1);
    execvp(argv[i], argv + i);
    /* As env(1): 127 if the program was not found, 126 if it could not run. */
    int err = errno;
    fprintf(stderr, "green-run: %s: %s\n", argv[i], strerror(err));
    return err == ENOENT ? 127 : 126;
}
