/*
 * State Threads' side of the hand-off latency benchmark: two threads pass
 * the turn back and forth with st_cond_signal + st_cond_wait (the run queue
 * alone, no I/O), as libgreen's Event and Semaphore ping-pongs do.
 *
 *   st_cond [N] [RUNS]     ns per hand-off (2 per round), median of RUNS
 */
#include <st.h>

#include "tb.h"

static long n_rounds, rounds_done;
static st_cond_t cond_a, cond_b;
static int turn;

static void *ping(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_rounds; i++) {
        turn = 1;
        st_cond_signal(cond_b);
        while (turn == 1)
            st_cond_wait(cond_a);
    }
    return NULL;
}

static void *pong(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_rounds; i++) {
        while (turn != 1)
            st_cond_wait(cond_b);
        turn = 0;
        st_cond_signal(cond_a);
        rounds_done++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    n_rounds = argc > 1 ? atol(argv[1]) : 5000000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (runs < 1 || runs > 64 || n_rounds < 1)
        return 2;
    if (st_init() != 0) {
        perror("st_init");
        return 1;
    }
    cond_a = st_cond_new();
    cond_b = st_cond_new();
    double v[64];
    for (int r = 0; r < runs; r++) {
        turn = 0;
        rounds_done = 0;
        double t0 = tb_now();
        st_thread_t a = st_thread_create(ping, NULL, 1, 0);
        st_thread_t b = st_thread_create(pong, NULL, 1, 0);
        if (!a || !b) {
            perror("st_thread_create");
            return 1;
        }
        st_thread_join(a, NULL);
        st_thread_join(b, NULL);
        double dt = tb_now() - t0;
        if (rounds_done != n_rounds) {
            fprintf(stderr, "st_cond: %ld rounds, want %ld\n", rounds_done, n_rounds);
            return 1;
        }
        v[r] = dt * 1e9 / (2.0 * (double)n_rounds);
    }
    tb_report("st_cond_pp_ns", "ns per hand-off", v, runs);
    return 0;
}
