/*
 * State Threads' side of the hand-off latency benchmark: two threads pass
 * the turn back and forth with st_cond_signal + st_cond_wait (the run queue
 * alone, no I/O). Both run the same function, as libgreen's ping-pongs do.
 *
 *   st_cond [N] [RUNS]     ns per hand-off (2 per round), wall clock and CPU
 *                          time (st_cond_pp_ns@cpu), medians of RUNS
 */
#include <st.h>
#include <stdint.h>

#include "tb.h"

static long n_rounds, rounds[2];
static st_cond_t cond[2];
static int turn;

static void *side(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < n_rounds; i++) {
        while (turn != me)
            st_cond_wait(cond[me]);
        turn = 1 - me;
        st_cond_signal(cond[1 - me]);
        rounds[me]++;
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
    cond[0] = st_cond_new();
    cond[1] = st_cond_new();
    double v[64], c[64];
    for (int r = 0; r < runs; r++) {
        turn = 0;
        rounds[0] = rounds[1] = 0;
        double t0 = tb_now(), c0 = tb_cpu();
        st_thread_t a = st_thread_create(side, (void *)0, 1, 0);
        st_thread_t b = st_thread_create(side, (void *)1, 1, 0);
        if (!a || !b) {
            perror("st_thread_create");
            return 1;
        }
        st_thread_join(a, NULL);
        st_thread_join(b, NULL);
        double dt = tb_now() - t0, dc = tb_cpu() - c0;
        if (rounds[0] != n_rounds || rounds[1] != n_rounds) {
            fprintf(stderr, "st_cond: %ld + %ld rounds, want %ld each\n", rounds[0], rounds[1],
                    n_rounds);
            return 1;
        }
        v[r] = dt * 1e9 / (2.0 * (double)n_rounds);
        c[r] = dc * 1e9 / (2.0 * (double)n_rounds);
    }
    tb_report("st_cond_pp_ns", "ns per hand-off", v, runs);
    tb_report("st_cond_pp_ns@cpu", "CPU ns per hand-off", c, runs);
    return 0;
}
