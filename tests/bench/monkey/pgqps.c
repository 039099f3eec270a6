/*
 * The shim's concurrency win on a real client library: libpq queries per
 * second, many greenlets each with its own blocking connection (PQexec, as
 * any single-threaded program calls it; linked with -lgreen-monkey) against
 * one blocking connection doing the same queries one after the other.
 *
 *   monkey_pgqps green CONNINFO CONNS QUERIES_EACH SQL KEY
 *   monkey_pgqps seq   CONNINFO QUERIES SQL KEY
 *
 * Connections are opened (and a first query run) before the clock starts.
 * Prints "result KEY queries_per_s"; every result is checked.
 */
#include <green.h>
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *conninfo, *sql;
static int conns, each, connected, errors;
static green_event_t *go;
static double t_start, t_end;

static PGconn *open_conn(void)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "PQconnectdb: %s", PQerrorMessage(c));
        exit(1);
    }
    PQclear(PQexec(c, sql)); /* the new backend's caches */
    return c;
}

static void run_queries(PGconn *c, int n)
{
    for (int i = 0; i < n; i++) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            if (errors++ == 0)
                fprintf(stderr, "PQexec: %s", PQerrorMessage(c));
        }
        PQclear(r);
    }
}

static void *client(void *arg)
{
    PGconn *c = open_conn();
    if (++connected == conns) {
        t_start = now();
        green_event_set(go);
    }
    green_event_wait(go, -1);
    run_queries(c, each);
    t_end = now();
    PQfinish(c);
    return arg;
}

int main(int argc, char **argv)
{
    const char *key;
    double queries;
    if (argc == 7 && strcmp(argv[1], "green") == 0) {
        conninfo = argv[2];
        conns = atoi(argv[3]);
        each = atoi(argv[4]);
        sql = argv[5];
        key = argv[6];
        go = green_event_new();
        green_t **gs = calloc((size_t)conns, sizeof *gs);
        for (int i = 0; i < conns; i++)
            gs[i] = green_spawn(client, NULL);
        if (green_joinall(gs, (size_t)conns, -1) != 0) {
            perror("green_joinall");
            return 1;
        }
        for (int i = 0; i < conns; i++)
            green_release(gs[i]);
        free(gs);
        green_event_free(go);
        queries = (double)conns * each;
        printf("# %d greenlets x %d x \"%s\": %.0f queries in %.3f s\n", conns, each, sql, queries,
               t_end - t_start);
    } else if (argc == 6 && strcmp(argv[1], "seq") == 0) {
        conninfo = argv[2];
        each = atoi(argv[3]);
        sql = argv[4];
        key = argv[5];
        PGconn *c = open_conn();
        t_start = now();
        run_queries(c, each);
        t_end = now();
        PQfinish(c);
        queries = each;
        printf("# one connection x %d x \"%s\": %.3f s\n", each, sql, t_end - t_start);
    } else {
        fprintf(stderr, "usage: monkey_pgqps green CONNINFO CONNS QUERIES_EACH SQL KEY\n"
                        "       monkey_pgqps seq CONNINFO QUERIES SQL KEY\n");
        return 2;
    }
    if (errors) {
        fprintf(stderr, "%d queries failed\n", errors);
        return 1;
    }
    printf("result %s %.1f\n", key, queries / (t_end - t_start));
    return 0;
}
