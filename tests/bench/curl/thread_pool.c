/*
 * The blocking peer: a pool of THREADS OS threads (16), each reusing its own
 * easy handle (so its keep-alive connection) with curl_easy_perform in a
 * loop until N transfers have finished in all.
 *
 *   thread_pool URL [N] [THREADS] [RUNS]
 *
 * Runs and results as client.h says, under the key "threads".
 */
#include <pthread.h>

#include "client.h"

static atomic_long left;

static void *worker(void *arg)
{
    CURL *e = arg;
    long long q0 = curl_client_runq_ns();
    while (atomic_fetch_sub(&left, 1) > 0)
        curl_client_done(e, curl_easy_perform(e));
    atomic_fetch_add(&curl_client_runq_threads, curl_client_runq_ns() - q0);
    return NULL;
}

static void run(CURL **es, long nthreads, long n)
{
    pthread_t *ts = calloc((size_t)nthreads, sizeof *ts);
    atomic_store(&left, n);
    for (long i = 0; i < nthreads; i++)
        pthread_create(&ts[i], NULL, worker, es[i]);
    for (long i = 0; i < nthreads; i++)
        pthread_join(ts[i], NULL);
    free(ts);
}

int main(int argc, char **argv)
{
    int rc = curl_client_main(argc, argv, "thread_pool", "threads", "threads", 16, run);
    curl_global_cleanup();
    return rc;
}
