/*
 * libgreen: CONC greenlets, each performing its own easy handle with
 * green_curl_perform in a loop until N transfers have finished (the hub's
 * one multi handle keeps the connections alive between them).
 *
 *   green_get URL [N] [CONC] [RUNS] [KEY] [LIMIT]
 *
 * Runs and results as client.h says, under the key "green" (or KEY). LIMIT
 * > 0: green_curl_limit(LIMIT) first, so that at most LIMIT of the CONC
 * transfers are in the multi handle at once.
 */
#include "client.h"
#include "green_curl.h"

static long left;

static void *client(void *arg)
{
    CURL *e = arg;
    while (left > 0) {
        left--;
        curl_client_done(e, green_curl_perform(e));
    }
    return NULL;
}

static void run(CURL **es, long conc, long n)
{
    green_t **gs = calloc((size_t)conc, sizeof *gs);
    left = n;
    for (long i = 0; i < conc; i++)
        gs[i] = green_spawn(client, es[i]);
    green_joinall(gs, (size_t)conc, -1);
    for (long i = 0; i < conc; i++)
        green_release(gs[i]);
    free(gs);
}

int main(int argc, char **argv)
{
    long limit = argc > 6 ? atol(argv[6]) : 0;
    if (limit > 0 && green_curl_limit(limit) < 0) {
        perror("green_curl_limit");
        return 1;
    }
    return curl_client_main(argc, argv, "green_get", "green", "greenlets", 500, run);
}
