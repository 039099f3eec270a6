/*
 * Blocking client libraries, unchanged, made concurrent by the monkey shim.
 *
 * Each greenlet below uses libpq, hiredis or libcurl's easy interface exactly
 * as a single-threaded blocking program would: PQconnectdb + PQexec,
 * redisConnect + redisCommand, curl_easy_perform. None of them knows about
 * greenlets; the shim turns their poll/recv/send/connect into waits on the
 * hub, so the greenlets' requests overlap on one thread. The elapsed times
 * prove it (100 connected clients' pg_sleep(0.5) in well under 5 s, not
 * 50 s; 100 BLPOPs blocked in redis at once), and every reply is checked.
 *
 *   clients LABEL pg CONNINFO N SLEEP concurrent|serial
 *   clients LABEL redis PORT N
 *   clients LABEL curl BASE_URL N SLEEP RAND_FILE
 *   clients LABEL errors BASE_URL REDIS_PORT PG_PORT CLOSED_PORT
 *
 * LABEL names the link mode in the output ("link", "green-run", ...). "serial"
 * is the control run of a binary without the shim: there the same greenlets
 * must take N * SLEEP, which shows that the concurrency comes from the shim.
 * "errors" checks that failures and timeouts come back from greenlets exactly
 * as they do without a hub.
 * Prints "ok: ..." or "FAIL: ..." per check; exits 1 if any failed.
 */
#include <green.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *label = "?";
static int failures;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One output line per check. */
static void report(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s: [%s] ", ok ? "ok" : "FAIL", label);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    if (!ok)
        failures++;
}

/* What one greenlet did: whether its replies were right, and why not. */
struct outcome {
    int    index;
    bool   ok;
    char   why[256];
    double elapsed;
    long   backend; /* libpq: the server process that answered */
};

static void fail_with(struct outcome *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->why, sizeof o->why, fmt, ap);
    va_end(ap);
    o->ok = false;
}

/* Spawns n greenlets of fn over outs[i], joins them all; returns the seconds. */
static double run_all(green_fn fn, struct outcome *outs, int n)
{
    green_t **gs = calloc((size_t)n, sizeof *gs);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        outs[i].index = i;
        gs[i] = green_spawn(fn, &outs[i]);
        if (!gs[i]) {
            perror("green_spawn");
            exit(2);
        }
    }
    if (green_joinall(gs, (size_t)n, 60) != 0)
        perror("green_joinall");
    double elapsed = now() - t0;
    for (int i = 0; i < n; i++)
        green_release(gs[i]);
    free(gs);
    return elapsed;
}

/* How many outcomes are right; the first wrong one's reason in *why. */
static int count_ok(const struct outcome *outs, int n, const char **why)
{
    int ok = 0;
    *why = "";
    for (int i = 0; i < n; i++) {
        if (outs[i].ok)
            ok++;
        else if (!**why)
            *why = outs[i].why;
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* libpq                                                                      */
/* ------------------------------------------------------------------------ */

static const char *pg_conninfo;
static double pg_sleep_s;
static int pg_n, pg_connected;
static green_event_t *pg_all_connected;
static double pg_connected_at, pg_last_done;

/*
 * One blocking connection, then (once every greenlet has connected) one
 * query: a sleep in the server, a value that depends on the greenlet, a
 * 100 KB text (several reads), and the backend's pid (distinct pids show
 * separate connections). Connecting (and a first query, which fills the new
 * backend's catalog caches) before querying together keeps the server's cost
 * of starting 100 backends out of the figure that shows the queries overlap:
 * on these VMs a backend costs ~35 ms of server CPU to start (pgbench -C).
 */
static void *pg_client(void *arg)
{
    struct outcome *o = arg;
    o->ok = true;
    PGconn *conn = PQconnectdb(pg_conninfo);
    if (PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "select pg_sleep(0), repeat('x', 1), pg_backend_pid()"));
    if (++pg_connected == pg_n) {
        pg_connected_at = now();
        green_event_set(pg_all_connected);
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        fail_with(o, "PQconnectdb: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    if (green_event_wait(pg_all_connected, 60) != 0) {
        fail_with(o, "the other greenlets did not connect within 60 s");
        PQfinish(conn);
        return NULL;
    }
    int len = 100000 + o->index;
    char sql[160];
    snprintf(sql, sizeof sql, "select pg_sleep(%g), %d * 7, repeat('x', %d), pg_backend_pid()",
             pg_sleep_s, o->index, len);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail_with(o, "PQexec: %s", PQerrorMessage(conn));
    } else if (PQntuples(res) != 1 || atoi(PQgetvalue(res, 0, 1)) != o->index * 7) {
        fail_with(o, "greenlet %d: got %s, not %d", o->index, PQgetvalue(res, 0, 1), o->index * 7);
    } else if (PQgetlength(res, 0, 2) != len ||
               strspn(PQgetvalue(res, 0, 2), "x") != (size_t)len) {
        fail_with(o, "greenlet %d: repeat() came back with %d bytes, not %d", o->index,
                  PQgetlength(res, 0, 2), len);
    } else {
        o->backend = atol(PQgetvalue(res, 0, 3));
    }
    PQclear(res);
    pg_last_done = now();
    PQfinish(conn);
    return NULL;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static void check_pg(const char *conninfo, int n, double sleep_s, bool serial)
{
    pg_conninfo = conninfo;
    pg_sleep_s = sleep_s;
    pg_n = n;
    pg_connected = 0;
    pg_all_connected = green_event_new();
    struct outcome *outs = calloc((size_t)n, sizeof *outs);
    double t0 = now();
    double elapsed = run_all(pg_client, outs, n);
    double connecting = pg_connected_at - t0, querying = pg_last_done - pg_connected_at;
    green_event_free(pg_all_connected);
    const char *why;
    int ok = count_ok(outs, n, &why);
    /* Distinct backend pids among the right answers. */
    long *pids = calloc((size_t)n, sizeof *pids);
    int npids = 0, distinct = 0;
    for (int i = 0; i < n; i++)
        if (outs[i].ok)
            pids[npids++] = outs[i].backend;
    qsort(pids, (size_t)npids, sizeof *pids, cmp_long);
    for (int i = 0; i < npids; i++)
        distinct += i == 0 || pids[i] != pids[i - 1];
    free(pids);
    if (serial) {
        /* Without the shim each PQexec blocks the thread: the sleeps add up. */
        report(ok == n && querying >= 0.9 * n * sleep_s,
               "libpq without the shim (control): %d greenlets x PQexec(pg_sleep(%g)) take "
               "%.2f s, serialized as expected (>= %.2f s); %d/%d right%s%s", n, sleep_s, querying,
               0.9 * n * sleep_s, ok, n, *why ? "; first error: " : "", why);
    } else {
        report(ok == n && distinct == n, "libpq: %d greenlets x PQconnectdb (+ a first query): "
               "%d distinct backends ready in %.2f s (the server starts one per connection)", n,
               distinct, connecting);
        report(ok == n && querying < 5.0 && querying >= 0.9 * sleep_s,
               "libpq: then %d x PQexec(\"select pg_sleep(%g), ... repeat('x', 100000+i)\") at once: "
               "done in %.2f s (limit 5 s; one after the other: >= %.0f s); %d/%d results right%s%s",
               n, sleep_s, querying, n * sleep_s, ok, n, *why ? "; first error: " : "", why);
        report(elapsed < 20.0, "libpq: whole run, connect + queries + PQfinish: %.2f s (limit 20 s; "
               "one after the other: >= %.0f s)", elapsed, n * sleep_s);
    }
    free(outs);
}

/* ------------------------------------------------------------------------ */
/* hiredis                                                                    */
/* ------------------------------------------------------------------------ */

static int redis_port;
static int redis_n;
static char redis_prefix[64];
static int redis_max_blocked; /* the most clients redis saw blocked at once */

static bool reply_is(redisReply *r, int type, const char *str)
{
    return r && r->type == type && (!str || (r->str && strcmp(r->str, str) == 0));
}

/* Connects to the test's redis; on failure records why in o and returns NULL. */
static redisContext *redis_connect(struct outcome *o, const char *what)
{
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    if (c && !c->err)
        return c;
    fail_with(o, "%s: %s", what, c ? c->errstr : "no memory");
    redisFree(c);
    return NULL;
}

/* SET and GET keys of its own (a short value and a 200 KB one), then BLPOP
 * its own list, which the pusher fills once every client is blocked. */
static void *redis_client(void *arg)
{
    struct outcome *o = arg;
    o->ok = true;
    redisContext *c = redis_connect(o, "redisConnect");
    if (!c)
        return NULL;
    char key[96], val[96], list[96], item[96];
    snprintf(key, sizeof key, "%s:key:%d", redis_prefix, o->index);
    snprintf(val, sizeof val, "value %d", o->index);
    snprintf(list, sizeof list, "%s:list:%d", redis_prefix, o->index);
    snprintf(item, sizeof item, "item %d", o->index);
    redisReply *r = redisCommand(c, "SET %s %s", key, val);
    if (!reply_is(r, REDIS_REPLY_STATUS, "OK"))
        fail_with(o, "SET %s: %s", key, r ? (r->str ? r->str : "?") : c->errstr);
    freeReplyObject(r);
    r = redisCommand(c, "GET %s", key);
    if (o->ok && !reply_is(r, REDIS_REPLY_STRING, val))
        fail_with(o, "GET %s: %s, not %s", key, r && r->str ? r->str : c->errstr, val);
    freeReplyObject(r);
    /* A value of ~200 KB: sends and receives that fill the socket buffers. */
    size_t big_len = 200000 + (size_t)o->index;
    char *big = malloc(big_len);
    memset(big, 'a' + o->index % 26, big_len);
    r = redisCommand(c, "SET %s:big %b", key, big, big_len);
    if (o->ok && !reply_is(r, REDIS_REPLY_STATUS, "OK"))
        fail_with(o, "SET %s:big: %s", key, r ? (r->str ? r->str : "?") : c->errstr);
    freeReplyObject(r);
    r = redisCommand(c, "GET %s:big", key);
    if (o->ok && !(r && r->type == REDIS_REPLY_STRING && r->len == big_len &&
                   memcmp(r->str, big, big_len) == 0))
        fail_with(o, "GET %s:big: wrong value (%zu bytes)", key, r ? r->len : 0);
    freeReplyObject(r);
    free(big);
    r = redisCommand(c, "BLPOP %s 10", list);
    if (o->ok && !(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                   reply_is(r->element[0], REDIS_REPLY_STRING, list) &&
                   reply_is(r->element[1], REDIS_REPLY_STRING, item)))
        fail_with(o, "BLPOP %s: wrong reply (type %d) %s", list, r ? r->type : -1,
                  r ? "" : c->errstr);
    freeReplyObject(r);
    freeReplyObject(redisCommand(c, "DEL %s %s:big", key, key));
    redisFree(c);
    return NULL;
}

/* A BLPOP on a list nobody fills: nil after its 1 s timeout. */
static void *redis_timeout_client(void *arg)
{
    struct outcome *o = arg;
    o->ok = true;
    redisContext *c = redis_connect(o, "redisConnect");
    if (!c)
        return NULL;
    double t0 = now();
    redisReply *r = redisCommand(c, "BLPOP %s:never 1", redis_prefix);
    o->elapsed = now() - t0;
    if (!r || r->type != REDIS_REPLY_NIL)
        fail_with(o, "BLPOP with 1 s timeout: type %d, not nil (%s)", r ? r->type : -1,
                  r ? "" : c->errstr);
    else if (o->elapsed < 0.9 || o->elapsed > 3.0)
        fail_with(o, "BLPOP with 1 s timeout returned after %.2f s", o->elapsed);
    freeReplyObject(r);
    redisFree(c);
    return NULL;
}

static int blocked_clients(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO clients");
    int n = -1;
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "blocked_clients:") : NULL;
    if (p)
        n = atoi(p + strlen("blocked_clients:"));
    freeReplyObject(r);
    return n;
}

/*
 * Waits (with usleep, which the shim makes cooperative) until redis reports
 * every client blocked in BLPOP at once (5 s at most), then fills the lists,
 * last first.
 */
static void *redis_pusher(void *arg)
{
    struct outcome *o = arg;
    o->ok = true;
    redisContext *c = redis_connect(o, "pusher redisConnect");
    if (!c)
        return NULL;
    double deadline = now() + 5;
    /* The clients (the one that times out may have finished already). */
    int want = redis_n;
    while (now() < deadline) {
        int b = blocked_clients(c);
        if (b > redis_max_blocked)
            redis_max_blocked = b;
        if (b >= want)
            break;
        usleep(10000);
    }
    for (int i = redis_n - 1; i >= 0; i--) {
        char item[32];
        snprintf(item, sizeof item, "item %d", i);
        redisReply *r = redisCommand(c, "RPUSH %s:list:%d %s", redis_prefix, i, item);
        if (!r || r->type != REDIS_REPLY_INTEGER)
            fail_with(o, "RPUSH: %s", r ? "wrong reply" : c->errstr);
        freeReplyObject(r);
    }
    redisFree(c);
    return NULL;
}

static void *redis_dispatch(void *arg)
{
    struct outcome *o = arg;
    if (o->index < redis_n)
        return redis_client(o);
    if (o->index == redis_n)
        return redis_timeout_client(o);
    return redis_pusher(o);
}

static void check_redis(int port, int n)
{
    redis_port = port;
    redis_n = n;
    snprintf(redis_prefix, sizeof redis_prefix, "green-clients:%s:%d", label, (int)getpid());
    /* n clients, the timeout client, the pusher. */
    struct outcome *outs = calloc((size_t)n + 2, sizeof *outs);
    double elapsed = run_all(redis_dispatch, outs, n + 2);
    const char *why;
    int ok = count_ok(outs, n, &why);
    report(ok == n && outs[n + 1].ok, "hiredis: %d greenlets x (redisConnect, SET/GET of a short "
           "and a 200 KB value, BLPOP on a list another greenlet fills): %d/%d right, in %.2f s%s%s", n, ok, n, elapsed,
           *why ? "; first error: " : outs[n + 1].ok ? "" : "; ", *why ? why : outs[n + 1].why);
    report(redis_max_blocked >= n, "hiredis: redis saw %d clients blocked in BLPOP at the same "
           "time (at least the %d; the BLPOPs overlap on one thread)", redis_max_blocked, n);
    report(outs[n].ok, "hiredis: a BLPOP with a 1 s timeout among them returns nil after %.2f s%s%s",
           outs[n].elapsed, outs[n].ok ? "" : ": ", outs[n].why);
    report(elapsed < 5.0, "hiredis: the whole run took %.2f s (limit 5 s; one blocking BLPOP "
           "would have stopped the thread until its 10 s timeout)", elapsed);
    free(outs);
}

/* ------------------------------------------------------------------------ */
/* libcurl, easy interface                                                    */
/* ------------------------------------------------------------------------ */

static const char *curl_base;
static double curl_sleep_s;
static char *rand_data;
static size_t rand_len;

struct body {
    char  *data;
    size_t len, cap;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct body *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > (64u << 20))
            return 0; /* a runaway body fails the transfer */
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

/* One blocking curl_easy_perform of URL into b; CURLE_* or -1 for an HTTP error. */
static int fetch(const char *url, struct body *b, char *err)
{
    CURL *h = curl_easy_init();
    if (!h)
        return CURLE_OUT_OF_MEMORY;
    err[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (rc == CURLE_OK && status != 200) {
        snprintf(err, CURL_ERROR_SIZE, "HTTP status %ld", status);
        return -1;
    }
    return (int)rc;
}

/* A GET of the slow endpoint: the server answers after curl_sleep_s. */
static void *curl_slow_client(void *arg)
{
    struct outcome *o = arg;
    o->ok = true;
    char url[512], want[64], err[CURL_ERROR_SIZE];
    snprintf(url, sizeof url, "%s/slow?s=%g&id=%d", curl_base, curl_sleep_s, o->index);
    snprintf(want, sizeof want, "slow %d\n", o->index);
    struct body b = {0};
    int rc = fetch(url, &b, err);
    if (rc != 0)
        fail_with(o, "GET %s: %s", url, err[0] ? err : curl_easy_strerror((CURLcode)rc));
    else if (b.len != strlen(want) || memcmp(b.data, want, b.len) != 0)
        fail_with(o, "GET %s: body '%.*s', not '%s'", url, (int)(b.len > 40 ? 40 : b.len),
                  b.data ? b.data : "", want);
    free(b.data);
    return NULL;
}

/* A GET of the 1 MiB random file, compared with the file itself. */
static void *curl_file_client(void *arg)
{
    struct outcome *o = arg;
    o->ok = true;
    char url[512], err[CURL_ERROR_SIZE];
    snprintf(url, sizeof url, "%s/rand.bin", curl_base);
    struct body b = {0};
    int rc = fetch(url, &b, err);
    if (rc != 0)
        fail_with(o, "GET %s: %s", url, err[0] ? err : curl_easy_strerror((CURLcode)rc));
    else if (b.len != rand_len || memcmp(b.data, rand_data, rand_len) != 0)
        fail_with(o, "GET %s: %zu bytes, %s", url, b.len,
                  b.len == rand_len ? "content differs" : "wrong length");
    free(b.data);
    return NULL;
}

/* A POST of the 1 MiB file to /echo, which sends the body back. */
static void *curl_echo_client(void *arg)
{
    struct outcome *o = arg;
    o->ok = true;
    char url[512], err[CURL_ERROR_SIZE];
    snprintf(url, sizeof url, "%s/echo", curl_base);
    struct body b = {0};
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, rand_data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)rand_len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    err[0] = '\0';
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK)
        fail_with(o, "POST %s: %s", url, err[0] ? err : curl_easy_strerror(rc));
    else if (b.len != rand_len || memcmp(b.data, rand_data, rand_len) != 0)
        fail_with(o, "POST %s: %zu bytes back, %s", url, b.len,
                  b.len == rand_len ? "content differs" : "wrong length");
    free(b.data);
    return NULL;
}

static bool load_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    rand_data = malloc(size > 0 ? (size_t)size : 1);
    rand_len = size > 0 && rand_data ? fread(rand_data, 1, (size_t)size, f) : 0;
    fclose(f);
    return size > 0 && rand_len == (size_t)size;
}

static void check_curl(const char *base, int n, double sleep_s, const char *rand_file)
{
    curl_base = base;
    curl_sleep_s = sleep_s;
    struct outcome *outs = calloc((size_t)n, sizeof *outs);
    double elapsed = run_all(curl_slow_client, outs, n);
    const char *why;
    int ok = count_ok(outs, n, &why);
    report(ok == n && elapsed < 5.0 && elapsed >= 0.9 * sleep_s,
           "libcurl: %d greenlets x curl_easy_perform of a %g s slow GET in %.2f s (limit 5 s; "
           "sequential would be >= %.0f s); %d/%d bodies right%s%s", n, sleep_s, elapsed,
           n * sleep_s, ok, n, *why ? "; first error: " : "", why);
    if (!load_file(rand_file)) {
        report(false, "libcurl: cannot read %s", rand_file);
    } else {
        memset(outs, 0, (size_t)n * sizeof *outs);
        elapsed = run_all(curl_file_client, outs, n);
        ok = count_ok(outs, n, &why);
        report(ok == n, "libcurl: %d greenlets x curl_easy_perform of a 1 MiB file at once: "
               "%d/%d bodies identical to the file, %.2f s%s%s", n, ok, n, elapsed,
               *why ? "; first error: " : "", why);
        int m = n < 20 ? n : 20;
        memset(outs, 0, (size_t)m * sizeof *outs);
        elapsed = run_all(curl_echo_client, outs, m);
        ok = count_ok(outs, m, &why);
        report(ok == m, "libcurl: %d greenlets x curl_easy_perform POSTing 1 MiB to an echo at once: "
               "%d/%d bodies came back identical, %.2f s%s%s", m, ok, m, elapsed,
               *why ? "; first error: " : "", why);
    }
    free(rand_data);
    rand_data = NULL;
    free(outs);
}

/* ------------------------------------------------------------------------ */
/* Errors and timeouts: the same answers in a greenlet as without a hub        */
/* ------------------------------------------------------------------------ */

/*
 * Each probe makes one blocking client call that fails (or goes through the
 * resolver) and describes the outcome in words that do not depend on
 * timing. It runs once on the main greenlet before any hub exists, where
 * the shim passes every call to libc (the reference), then in greenlets,
 * several at once, where the shim makes the calls cooperative: the
 * descriptions must be identical, and the timeouts must still fire on time
 * (hiredis's SO_RCVTIMEO, curl's own timer) while overlapping.
 */
static char probe_base[256];
static int probe_redis_port, probe_pg_port, probe_closed_port;

struct probe {
    const char *name;
    void (*run)(struct probe *p, char *out, size_t size);
    double timeout; /* > 0: the probe waits this long, then fails */
};

static void flatten(char *s)
{
    for (; *s; s++)
        if (*s == '\n')
            *s = ' ';
}

static void probe_pg_refused(struct probe *p, char *out, size_t size)
{
    (void)p;
    char ci[160];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=green dbname=postgres connect_timeout=5",
             probe_closed_port);
    PGconn *c = PQconnectdb(ci);
    snprintf(out, size, "status %d: %s", (int)PQstatus(c), PQerrorMessage(c));
    PQfinish(c);
}

static void probe_pg_localhost(struct probe *p, char *out, size_t size)
{
    (void)p;
    char ci[160];
    snprintf(ci, sizeof ci, "host=localhost port=%d user=green dbname=postgres", probe_pg_port);
    PGconn *c = PQconnectdb(ci);
    PGresult *r = PQexec(c, "select 6 * 7, current_user");
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        snprintf(out, size, "select 6 * 7: %s as %s", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    else
        snprintf(out, size, "error: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static void probe_pg_error(struct probe *p, char *out, size_t size)
{
    (void)p;
    char ci[160];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=green dbname=postgres", probe_pg_port);
    PGconn *c = PQconnectdb(ci);
    PGresult *r = PQexec(c, "select no_such_column");
    snprintf(out, size, "%s: %s", PQresStatus(PQresultStatus(r)), PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static void probe_redis_refused(struct probe *p, char *out, size_t size)
{
    (void)p;
    redisContext *c = redisConnect("127.0.0.1", probe_closed_port);
    snprintf(out, size, "err %d: %s", c ? c->err : -1, c ? c->errstr : "no memory");
    redisFree(c);
}

/* redisSetTimeout sets SO_RCVTIMEO and SO_SNDTIMEO: a BLPOP longer than
 * that fails with EAGAIN's message, as the kernel's timeout makes it. */
static void probe_redis_rcvtimeo(struct probe *p, char *out, size_t size)
{
    struct timeval tv = {0, (suseconds_t)(p->timeout * 1e6)};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", probe_redis_port, tv);
    if (!c || c->err) {
        snprintf(out, size, "connect: %s", c ? c->errstr : "no memory");
    } else if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(out, size, "redisSetTimeout: %s", c->errstr);
    } else {
        redisReply *r = redisCommand(c, "BLPOP green-clients:probe:%d 5", (int)getpid());
        snprintf(out, size, "reply %s, err %d: %s", r ? "yes" : "none", c->err, c->errstr);
        freeReplyObject(r);
    }
    redisFree(c);
}

static int probe_fetch(const char *url, long timeout_ms, bool failonerror, struct body *b)
{
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    if (timeout_ms)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (failonerror)
        curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    int rc = (int)curl_easy_perform(h);
    curl_easy_cleanup(h);
    return rc;
}

static void probe_curl(char *out, size_t size, const char *url, long timeout_ms, bool failonerror)
{
    struct body b = {0};
    int rc = probe_fetch(url, timeout_ms, failonerror, &b);
    snprintf(out, size, "curl_easy_perform: %d (%s), body '%.*s'", rc,
             curl_easy_strerror((CURLcode)rc), (int)(b.len > 40 ? 40 : b.len), b.data ? b.data : "");
    free(b.data);
}

static void probe_curl_refused(struct probe *p, char *out, size_t size)
{
    (void)p;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", probe_closed_port);
    probe_curl(out, size, url, 0, false);
}

static void probe_curl_timeout(struct probe *p, char *out, size_t size)
{
    char url[512];
    snprintf(url, sizeof url, "%s/slow?s=3&id=0", probe_base);
    probe_curl(out, size, url, (long)(p->timeout * 1000), false);
}

static void probe_curl_404(struct probe *p, char *out, size_t size)
{
    (void)p;
    char url[512];
    snprintf(url, sizeof url, "%s/missing", probe_base);
    probe_curl(out, size, url, 0, true);
}

/* "localhost": libcurl resolves it on its own resolver thread (no hub there)
 * while the greenlet waits for the answer on a socketpair. */
static void probe_curl_localhost(struct probe *p, char *out, size_t size)
{
    (void)p;
    char url[512];
    const char *port = strrchr(probe_base, ':');
    snprintf(url, sizeof url, "http://localhost%s/hello.txt", port ? port : "");
    probe_curl(out, size, url, 0, false);
}

static struct probe probes[] = {
    {"libpq: connection refused", probe_pg_refused, 0},
    {"libpq: host=localhost, a query", probe_pg_localhost, 0},
    {"libpq: a query error", probe_pg_error, 0},
    {"hiredis: connection refused", probe_redis_refused, 0},
    {"hiredis: redisSetTimeout 0.3 s (SO_RCVTIMEO) under a 5 s BLPOP", probe_redis_rcvtimeo, 0.3},
    {"libcurl: connection refused", probe_curl_refused, 0},
    {"libcurl: CURLOPT_TIMEOUT_MS 300 on a 3 s page", probe_curl_timeout, 0.3},
    {"libcurl: CURLOPT_FAILONERROR on a 404", probe_curl_404, 0},
    {"libcurl: http://localhost (resolver thread)", probe_curl_localhost, 0},
};
#define NPROBES (sizeof probes / sizeof probes[0])
#define PROBE_COPIES 5 /* of each probe, at once */

struct probe_run {
    struct probe *p;
    char          out[600];
    double        elapsed;
};

static void *probe_greenlet(void *arg)
{
    struct probe_run *r = arg;
    double t0 = now();
    r->p->run(r->p, r->out, sizeof r->out);
    r->elapsed = now() - t0;
    flatten(r->out);
    return NULL;
}

static void check_errors(const char *base, int rport, int pport, int closed)
{
    snprintf(probe_base, sizeof probe_base, "%s", base);
    probe_redis_port = rport;
    probe_pg_port = pport;
    probe_closed_port = closed;
    /* The reference: no hub yet, so every call is libc's. */
    struct probe_run ref[NPROBES];
    for (size_t i = 0; i < NPROBES; i++) {
        ref[i].p = &probes[i];
        probe_greenlet(&ref[i]);
    }
    /* Then every probe PROBE_COPIES times, all at once. */
    int n = (int)(NPROBES * PROBE_COPIES);
    struct probe_run *runs = calloc((size_t)n, sizeof *runs);
    green_t **gs = calloc((size_t)n, sizeof *gs);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        runs[i].p = &probes[i % NPROBES];
        gs[i] = green_spawn(probe_greenlet, &runs[i]);
    }
    green_joinall(gs, (size_t)n, 60);
    double elapsed = now() - t0;
    for (int i = 0; i < n; i++)
        green_release(gs[i]);
    double longest = 0;
    for (size_t i = 0; i < NPROBES; i++) {
        int same = 0;
        const char *other = NULL;
        bool on_time = true;
        for (int j = (int)i; j < n; j += (int)NPROBES) {
            if (strcmp(runs[j].out, ref[i].out) == 0)
                same++;
            else if (!other)
                other = runs[j].out;
            if (probes[i].timeout > 0 &&
                (runs[j].elapsed < 0.9 * probes[i].timeout || runs[j].elapsed > 2.5))
                on_time = false;
            if (probes[i].timeout > 0 && runs[j].elapsed > longest)
                longest = runs[j].elapsed;
        }
        report(same == PROBE_COPIES && on_time, "%s, %d greenlets at once: %d/%d as without a hub"
               "%s: \"%s\"%s%s%s", probes[i].name, PROBE_COPIES, same, PROBE_COPIES,
               probes[i].timeout > 0 ? (on_time ? ", on time" : ", NOT on time") : "", ref[i].out,
               other ? " (in a greenlet: \"" : "", other ? other : "", other ? "\")" : "");
    }
    /* One after the other, the timeouts alone would take 3 s. */
    report(elapsed < 2.5, "the %d probes ran at once in %.2f s (limit 2.5 s; the %d timeouts of 0.3 s "
           "each overlap: the longest took %.2f s)", n, elapsed, 2 * PROBE_COPIES, longest);
    free(gs);
    free(runs);
}

/* ------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: clients LABEL pg CONNINFO N SLEEP concurrent|serial\n"
                    "       clients LABEL redis PORT N\n"
                    "       clients LABEL curl BASE_URL N SLEEP RAND_FILE\n"
                    "       clients LABEL errors BASE_URL REDIS_PORT PG_PORT CLOSED_PORT\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    label = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[2], "pg") == 0 && argc == 7) {
        check_pg(argv[3], atoi(argv[4]), atof(argv[5]), strcmp(argv[6], "serial") == 0);
    } else if (strcmp(argv[2], "redis") == 0 && argc == 5) {
        check_redis(atoi(argv[3]), atoi(argv[4]));
    } else if (strcmp(argv[2], "curl") == 0 && argc == 7) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        check_curl(argv[3], atoi(argv[4]), atof(argv[5]), argv[6]);
        curl_global_cleanup();
    } else if (strcmp(argv[2], "errors") == 0 && argc == 7) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        check_errors(argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
        curl_global_cleanup();
    } else {
        usage();
    }
    return failures ? 1 : 0;
}
