/*
 * Runs a program and reports its wall-clock and CPU time (user + system of
 * the child, from wait4's rusage) as "result KEY s" and "result KEY@cpu s".
 * The program's own output goes to /dev/null; a non-zero exit fails.
 *
 *   monkey_timeit KEY PROGRAM ARGS...
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: monkey_timeit KEY PROGRAM ARGS...\n");
        return 2;
    }
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 1);
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) {
        perror("wait4");
        return 1;
    }
    double wall = now() - t0;
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s: exit status %d\n", argv[2], status);
        return 1;
    }
    printf("# %s: %.3f s wall, %.3f s CPU (user %.3f, system %.3f)\n", argv[1], wall, cpu,
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    printf("result %s %.4f\nresult %s@cpu %.4f\n", argv[1], wall, argv[1], cpu);
    return 0;
}
