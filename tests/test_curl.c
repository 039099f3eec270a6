/*
 * HTTP through libcurl (lib/curl.c, include/green_curl.h), against real
 * servers on 127.0.0.1:
 *
 *  - nginx (Debian's nginx-light), started by main() before the tests fork:
 *    it writes an nginx.conf into a mkdtemp directory, runs
 *    `nginx -p DIR -c DIR/nginx.conf` as a child with the files to serve in
 *    DIR/www, waits until the port accepts and kills it at the end. As root,
 *    a missing nginx is first installed with apt-get. Without nginx (or with
 *    GREEN_TEST_NO_NGINX=1), the same files are served by a libgreen
 *    StreamServer inside each test's process instead.
 *  - a slow endpoint: a libgreen StreamServer in the test's own process
 *    that answers /slow/<ms> after green_sleep(ms), and counts what it got
 *    and how many of those it served at once.
 *
 * Every test ends with green_wait: every greenlet, the curl driver included,
 * has finished.
 */
#define _GNU_SOURCE /* memmem, strcasestr, pthread_tryjoin_np */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <ev.h>
#include <fcntl.h>
#include <green_curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "testutil.h"

#define BIG_SIZE (8u << 20) /* the multi-MiB body */
#define NFILES 500          /* one small distinct file per greenlet */

static char g_dir[64];        /* the mkdtemp directory */
static char g_www[128];       /* its www/ */
static pid_t g_nginx_pid;     /* 0: no nginx */
static int g_nginx_port;
static int g_port;            /* where the files are served in this test */
static green_server_t *g_files; /* the fallback file server, or NULL */

/* ------------------------------------------------------------------------ */
/* Content                                                                    */
/* ------------------------------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

/* The big body: xorshift bytes, so any lost, doubled or swapped block shows. */
static unsigned char *big_content(void)
{
    unsigned char *b = malloc(BIG_SIZE);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < BIG_SIZE; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(b + i, &x, 8);
    }
    return b;
}

/* File i's content: its number, repeated a number of times that varies. */
static size_t small_content(int i, char *buf, size_t size)
{
    size_t n = 0;
    int reps = 1 + (i * 7) % 40;
    for (int r = 0; r < reps && n + 32 < size; r++)
        n += (size_t)snprintf(buf + n, size - n, "file %d line %d\n", i, r);
    return n;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static void make_www(void)
{
    snprintf(g_www, sizeof g_www, "%s/www", g_dir);
    mkdir(g_www, 0755);
    char path[256], buf[2048];
    snprintf(path, sizeof path, "%s/hello.txt", g_www);
    write_file(path, "hello\n", 6);
    unsigned char *big = big_content();
    snprintf(path, sizeof path, "%s/big.bin", g_www);
    write_file(path, big, BIG_SIZE);
    free(big);
    for (int i = 0; i < NFILES; i++) {
        snprintf(path, sizeof path, "%s/f%d.txt", g_www, i);
        write_file(path, buf, small_content(i, buf, sizeof buf));
    }
}

/* ------------------------------------------------------------------------ */
/* nginx                                                                      */
/* ------------------------------------------------------------------------ */

static const char *nginx_bin(void)
{
    static const char *paths[] = {"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

/* As root on Debian, a missing nginx is installed (tests/install-deps.sh
 * should list nginx-light; this is the fallback). */
static void nginx_install(void)
{
    if (nginx_bin() || geteuid() != 0 || access("/usr/bin/apt-get", X_OK) != 0)
        return;
    fprintf(stderr, "test_curl: installing nginx-light with apt-get\n");
    int rc = system("export DEBIAN_FRONTEND=noninteractive; "
                    "apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 || "
                    "{ apt-get update -qq >/dev/null 2>&1 && "
                    "apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1; }");
    if (rc != 0)
        fprintf(stderr, "test_curl: could not install nginx-light (status %d)\n", rc);
}

/* A port that was free a moment ago. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        perror("free_port");
        exit(2);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void nginx_stop(void)
{
    if (g_nginx_pid > 0) {
        kill(g_nginx_pid, SIGTERM);
        int st;
        for (int i = 0; i < 300 && waitpid(g_nginx_pid, &st, WNOHANG) == 0; i++)
            usleep(10000);
        if (waitpid(g_nginx_pid, &st, WNOHANG) == 0) {
            kill(g_nginx_pid, SIGKILL);
            waitpid(g_nginx_pid, &st, 0);
        }
        g_nginx_pid = 0;
    }
}

static void nginx_start(void)
{
    const char *bin = nginx_bin();
    if (!bin || getenv("GREEN_TEST_NO_NGINX"))
        return;
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = free_port();
        char conf[256], text[2048];
        snprintf(conf, sizeof conf, "%s/nginx.conf", g_dir);
        const char *d = g_dir;
        snprintf(text, sizeof text,
                 "daemon off;\nmaster_process off;\nworker_processes 1;\n"
                 "pid %s/nginx.pid;\nerror_log %s/error.log;\n"
                 "events { worker_connections 4096; }\n"
                 "http {\n  access_log off;\n  keepalive_requests 100000;\n"
                 "  client_body_temp_path %s/client_body;\n  proxy_temp_path %s/proxy;\n"
                 "  fastcgi_temp_path %s/fastcgi;\n  uwsgi_temp_path %s/uwsgi;\n"
                 "  scgi_temp_path %s/scgi;\n"
                 "  server { listen 127.0.0.1:%d; root %s; }\n}\n",
                 d, d, d, d, d, d, d, port, g_www);
        write_file(conf, text, strlen(text));
        char errlog[256], out[256];
        snprintf(errlog, sizeof errlog, "%s/error.log", g_dir);
        snprintf(out, sizeof out, "%s/nginx.out", g_dir);
        pid_t pid = fork();
        if (pid < 0)
            return;
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test */
            int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            execl(bin, "nginx", "-p", g_dir, "-c", conf, "-e", errlog, (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 500; i++) { /* up to 5 s */
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                pid = 0;
                break;
            }
            if (port_accepts(port)) {
                g_nginx_pid = pid;
                g_nginx_port = port;
                return;
            }
            usleep(10000);
        }
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
    }
    fprintf(stderr, "test_curl: nginx did not start (see %s/error.log): using libgreen's server\n",
            g_dir);
}

/* ------------------------------------------------------------------------ */
/* The in-process servers (slow endpoint; files without nginx)                */
/* ------------------------------------------------------------------------ */

struct tserver {
    green_server_t *srv;
    int             port;
    int             nconns, nreqs; /* accepted connections, requests read */
    int             nslow, max_slow; /* /slow/ requests being served now, at most */
};

static void respond(int fd, int code, const void *body, size_t n)
{
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n",
                      code, code == 200 ? "OK" : code == 404 ? "Not Found" : "Not Allowed", n);
    if (green_write_all(fd, head, (size_t)hl, -1) < 0)
        return;
    green_write_all(fd, body, n, -1);
}

/* One connection, keep-alive: GET /slow/<ms> sleeps first; anything else is
 * a file of www/. */
static void serve(int fd, void *ud)
{
    struct tserver *ts = ud;
    ts->nconns++;
    char buf[4096];
    size_t have = 0;
    for (;;) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof buf)
                return;
            ssize_t r = green_read(fd, buf + have, sizeof buf - have, -1);
            if (r <= 0)
                return;
            have += (size_t)r;
        }
        ts->nreqs++;
        char method[16] = "", path[256] = "";
        sscanf(buf, "%15s %255s", method, path);
        size_t body = 0;
        *end = '\0';
        char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl)
            body = strtoul(cl + 17, NULL, 10);
        size_t used = (size_t)(end + 4 - buf);
        memmove(buf, buf + used, have - used);
        have -= used;
        while (body > 0) { /* a request body: read and dropped */
            if (have == 0) {
                ssize_t r = green_read(fd, buf, sizeof buf, -1);
                if (r <= 0)
                    return;
                have = (size_t)r;
            }
            size_t n = body < have ? body : have;
            memmove(buf, buf + n, have - n);
            have -= n;
            body -= n;
        }
        if (strcmp(method, "GET") != 0) {
            respond(fd, 405, "not allowed\n", 12);
            continue;
        }
        int ms;
        if (sscanf(path, "/slow/%d", &ms) == 1) {
            if (++ts->nslow > ts->max_slow)
                ts->max_slow = ts->nslow;
            int slept = green_sleep(ms / 1000.0);
            ts->nslow--;
            if (slept < 0)
                return;
            char text[64];
            int n = snprintf(text, sizeof text, "slow %d\n", ms);
            respond(fd, 200, text, (size_t)n);
            continue;
        }
        char file[512];
        snprintf(file, sizeof file, "%s%s", g_www, path);
        FILE *f = strstr(path, "..") ? NULL : fopen(file, "rb");
        if (!f) {
            respond(fd, 404, "not found\n", 10);
            continue;
        }
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *data = malloc((size_t)n + 1);
        size_t got = fread(data, 1, (size_t)n, f);
        fclose(f);
        respond(fd, 200, data, got);
        free(data);
    }
}

static void tserver_start(struct tserver *ts)
{
    memset(ts, 0, sizeof *ts);
    int lfd = green_tcp_listen("127.0.0.1", 0, 1024);
    ck_assert_int_ge(lfd, 0);
    ts->port = green_tcp_port(lfd);
    ts->srv = green_server_new(lfd, serve, ts, 0);
    ck_assert_ptr_nonnull(ts->srv);
}

static void tserver_stop(struct tserver *ts)
{
    /* Keep-alive connections idle in curl's cache: their handlers are killed. */
    green_server_stop(ts->srv, 0.05);
    green_server_free(ts->srv);
    ts->srv = NULL;
}

static struct tserver g_fileserver;

static void setup(void)
{
    if (g_nginx_port) {
        g_port = g_nginx_port;
    } else {
        tserver_start(&g_fileserver);
        g_files = g_fileserver.srv;
        g_port = g_fileserver.port;
    }
}

static void teardown(void)
{
    if (g_files) {
        tserver_stop(&g_fileserver);
        g_files = NULL;
    }
}

/* Every greenlet (the curl driver too) has finished. */
static void assert_all_done(void)
{
    teardown();
    ck_assert_int_eq(green_wait(5), 0);
    ck_assert_uint_eq(green_count(), 0);
}

/* ------------------------------------------------------------------------ */
/* Client helpers                                                             */
/* ------------------------------------------------------------------------ */

static void url_of(char *url, size_t size, int port, const char *path)
{
    snprintf(url, size, "http://127.0.0.1:%d%s", port, path);
}

struct buf {
    char  *data;
    size_t len, cap;
};

static size_t buf_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return n;
}

static CURL *easy_new(const char *url, struct buf *b)
{
    CURL *e = curl_easy_init();
    ck_assert_ptr_nonnull(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, buf_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    return e;
}

static long status_of(CURL *e)
{
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* A greenlet that performs its handle. */
struct performer {
    CURL    *easy;
    CURLcode rc;
    double   elapsed;
    double   timeout; /* > 0: a green_timeout around the perform */
};

static void *perform_main(void *arg)
{
    struct performer *p = arg;
    double t0 = tu_now();
    green_timeout_t t;
    if (p->timeout > 0)
        green_timeout_start(&t, p->timeout);
    p->rc = green_curl_perform(p->easy);
    if (p->timeout > 0)
        green_timeout_cancel(&t);
    p->elapsed = tu_now() - t0;
    return NULL;
}

/* Spawns n performers, the i-th GETting /slow/<ms>/<i> from port. */
static void spawn_slow_gets(int port, int ms, int n, CURL **es, struct buf *bs,
                            struct performer *ps, green_t **gs)
{
    char url[128];
    for (int i = 0; i < n; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d/slow/%d/%d", port, ms, i);
        bs[i] = (struct buf){0};
        es[i] = easy_new(url, &bs[i]);
        ps[i] = (struct performer){.easy = es[i]};
        gs[i] = green_spawn(perform_main, &ps[i]);
    }
}

static void *easy_perform_job(void *arg)
{
    return (void *)(intptr_t)curl_easy_perform(arg);
}

/* The handle works again, with green_curl_perform and with curl_easy_perform
 * (on the thread pool: the test's own servers run on this thread). */
static void assert_reusable(CURL *e, struct buf *b)
{
    char url[128];
    url_of(url, sizeof url, g_port, "/hello.txt");
    curl_easy_setopt(e, CURLOPT_URL, url);
    b->len = 0;
    ck_assert_int_eq(green_curl_perform(e), CURLE_OK);
    ck_assert_int_eq(status_of(e), 200);
    ck_assert_int_eq(b->len, 6);
    ck_assert(memcmp(b->data, "hello\n", 6) == 0);
    b->len = 0;
    void *rc;
    ck_assert_int_eq(green_threadpool_call(easy_perform_job, e, &rc, 10), 0);
    ck_assert_int_eq((int)(intptr_t)rc, CURLE_OK);
    ck_assert_int_eq(b->len, 6);
    ck_assert(memcmp(b->data, "hello\n", 6) == 0);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                      */
/* ------------------------------------------------------------------------ */

START_TEST(curl_null)
{
    ck_assert_int_eq(green_curl_perform(NULL), CURLE_BAD_FUNCTION_ARGUMENT);
    char *body = (char *)1;
    ck_assert_fails(green_http_get(NULL, &body, NULL, NULL, -1), EINVAL);
    ck_assert_fails(green_http_get("http://127.0.0.1:1/", NULL, NULL, NULL, -1), EINVAL);
    ck_assert_fails(green_http_get("http://127.0.0.1:1/", &body, NULL, NULL, 0), EAGAIN);
    ck_assert_ptr_null(body);
    assert_all_done();
}
END_TEST

START_TEST(curl_get_small)
{
    char url[128], *body;
    size_t len;
    long status;
    url_of(url, sizeof url, g_port, "/hello.txt");
    ck_assert_int_eq(green_http_get(url, &body, &len, &status, 10), 0);
    ck_assert_int_eq(status, 200);
    ck_assert_uint_eq(len, 6);
    ck_assert_str_eq(body, "hello\n");
    free(body);
    url_of(url, sizeof url, g_port, "/missing.txt");
    ck_assert_int_eq(green_http_get(url, &body, &len, &status, 10), 0);
    ck_assert_int_eq(status, 404);
    free(body);

    struct buf b = {0};
    url_of(url, sizeof url, g_port, "/f7.txt");
    CURL *e = easy_new(url, &b);
    ck_assert_int_eq(green_curl_perform(e), CURLE_OK);
    char want[2048];
    size_t n = small_content(7, want, sizeof want);
    ck_assert_uint_eq(b.len, n);
    ck_assert(memcmp(b.data, want, n) == 0);
    /* The driver took the last handle out and finished before we resumed:
     * a thread that ends now leaves no greenlet behind. */
    if (!g_files)
        ck_assert_uint_eq(green_count(), 0);
    curl_easy_cleanup(e);
    free(b.data);
    assert_all_done();
}
END_TEST

struct sum {
    uint64_t h;
    size_t   len;
};

static size_t sum_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct sum *s = ud;
    s->h = fnv1a(s->h, p, size * nmemb);
    s->len += size * nmemb;
    return size * nmemb;
}

START_TEST(curl_big_body)
{
    unsigned char *want = big_content();
    uint64_t want_sum = fnv1a(FNV_INIT, want, BIG_SIZE);
    char url[128], *body;
    size_t len;
    long status;
    url_of(url, sizeof url, g_port, "/big.bin");
    ck_assert_int_eq(green_http_get(url, &body, &len, &status, 20), 0);
    ck_assert_int_eq(status, 200);
    ck_assert_uint_eq(len, BIG_SIZE);
    ck_assert(memcmp(body, want, BIG_SIZE) == 0);
    free(body);

    /* Streamed through a write callback, three at once. */
    struct sum sums[3];
    CURL *es[3];
    struct performer ps[3];
    green_t *gs[3];
    for (int i = 0; i < 3; i++) {
        sums[i] = (struct sum){FNV_INIT, 0};
        es[i] = curl_easy_init();
        curl_easy_setopt(es[i], CURLOPT_URL, url);
        curl_easy_setopt(es[i], CURLOPT_WRITEFUNCTION, sum_write);
        curl_easy_setopt(es[i], CURLOPT_WRITEDATA, &sums[i]);
        ps[i] = (struct performer){.easy = es[i]};
        gs[i] = green_spawn(perform_main, &ps[i]);
    }
    ck_assert_int_eq(green_joinall(gs, 3, 30), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ps[i].rc, CURLE_OK);
        ck_assert_uint_eq(sums[i].len, BIG_SIZE);
        ck_assert(sums[i].h == want_sum);
        curl_easy_cleanup(es[i]);
        green_release(gs[i]);
    }
    free(want);
    assert_all_done();
}
END_TEST

struct many {
    int   i;
    bool  ok;
    long  connects[2]; /* new connections made by round 1 and round 2 */
    char  why[128];
};

static void *many_main(void *arg)
{
    struct many *m = arg;
    char url[128], want[2048];
    url_of(url, sizeof url, g_port, "");
    snprintf(url + strlen(url), sizeof url - strlen(url), "/f%d.txt", m->i);
    size_t n = small_content(m->i, want, sizeof want);
    struct buf b = {0};
    CURL *e = easy_new(url, &b);
    m->ok = true;
    for (int round = 0; round < 2 && m->ok; round++) {
        b.len = 0;
        CURLcode rc = green_curl_perform(e);
        if (rc != CURLE_OK || status_of(e) != 200 || b.len != n || memcmp(b.data, want, n) != 0) {
            snprintf(m->why, sizeof m->why, "round %d: rc %d status %ld len %zu want %zu", round,
                     rc, status_of(e), b.len, n);
            m->ok = false;
        }
        curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &m->connects[round]);
    }
    curl_easy_cleanup(e);
    free(b.data);
    return NULL;
}

START_TEST(curl_many_at_once)
{
    int n = RUNNING_ON_VALGRIND ? 50 : NFILES;
    struct many *ms = calloc((size_t)n, sizeof *ms);
    green_t **gs = calloc((size_t)n, sizeof *gs);
    double t0 = tu_now();
    for (int i = 0; i < n; i++) {
        ms[i].i = i;
        gs[i] = green_spawn(many_main, &ms[i]);
        ck_assert_ptr_nonnull(gs[i]);
    }
    ck_assert_int_eq(green_joinall(gs, (size_t)n, 60), 0);
    long connects[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        ck_assert_msg(ms[i].ok, "greenlet %d: %s", i, ms[i].why);
        connects[0] += ms[i].connects[0];
        connects[1] += ms[i].connects[1];
        green_release(gs[i]);
    }
    /* The second round reuses the first round's connections (the multi
     * handle's cache): hardly any new connection. */
    ck_assert_msg(connects[0] >= 1 && connects[1] <= n / 10,
                  "new connections: %ld in round 1, %ld in round 2 (of %d)", connects[0],
                  connects[1], n);
    fprintf(stderr, "curl_many_at_once: %d greenlets x 2 GETs in %.3f s; new connections %ld + %ld\n",
            n, tu_now() - t0, connects[0], connects[1]);
    free(ms);
    free(gs);
    assert_all_done();
}
END_TEST

struct ticker {
    bool   stop;
    int    ticks;
    double max_gap;
};

static void *ticker_main(void *arg)
{
    struct ticker *t = arg;
    double last = tu_now();
    while (!t->stop && green_sleep(0.01) == 0) {
        double now = tu_now();
        if (now - last > t->max_gap)
            t->max_gap = now - last;
        last = now;
        t->ticks++;
    }
    return NULL;
}

START_TEST(curl_transfers_overlap)
{
    struct tserver slow;
    tserver_start(&slow);
    struct ticker tk = {0};
    green_t *tg = green_spawn(ticker_main, &tk);
    /* Under valgrind each transfer costs much more CPU: longer delays keep
     * the proof (one after the other they would take N x delay). */
    enum { N = 10 };
    int ms = RUNNING_ON_VALGRIND ? 1000 : 300;
    CURL *es[N];
    struct buf bs[N];
    struct performer ps[N];
    green_t *gs[N];
    double t0 = tu_now();
    spawn_slow_gets(slow.port, ms, N, es, bs, ps, gs);
    ck_assert_int_eq(green_joinall(gs, N, 10), 0);
    double elapsed = tu_now() - t0;
    tk.stop = true;
    ck_assert_int_eq(green_join(tg, 1), 0);
    green_release(tg);
    char want[32];
    int wn = snprintf(want, sizeof want, "slow %d\n", ms);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(ps[i].rc, CURLE_OK);
        ck_assert_uint_eq(bs[i].len, (size_t)wn);
        ck_assert(memcmp(bs[i].data, want, (size_t)wn) == 0);
        curl_easy_cleanup(es[i]);
        free(bs[i].data);
        green_release(gs[i]);
    }
    ck_assert_int_eq(slow.nreqs, N);
    /* One after the other they would take N x delay (3 s). */
    double bound = RUNNING_ON_VALGRIND ? N * ms / 1000.0 / 2 : 1.5;
    ck_assert_msg(elapsed >= ms / 1000.0 - 0.01 && elapsed < bound, "%d x %d ms took %.3f s", N, ms,
                  elapsed);
    /* The thread never blocked: the ticker kept its 10 ms pace (valgrind
     * translates curl's code on first use, which takes a while). */
    ck_assert_msg(tk.ticks >= 10 && tk.max_gap < (RUNNING_ON_VALGRIND ? 2 : 0.25),
                  "ticker: %d ticks, max gap %.3f s", tk.ticks, tk.max_gap);
    tserver_stop(&slow);
    assert_all_done();
}
END_TEST

static void interrupted_then_reused(bool by_kill)
{
    struct tserver slow;
    tserver_start(&slow);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow/5000", slow.port);
    struct buf b = {0};
    CURL *e = easy_new(url, &b);
    double tmo = RUNNING_ON_VALGRIND ? 2 : 0.2;
    struct performer p = {.easy = e, .timeout = by_kill ? 0 : tmo};
    green_t *g = green_spawn(perform_main, &p);
    if (by_kill) {
        for (int i = 0; i < 500 && slow.nreqs == 0; i++)
            green_sleep(0.01);
        ck_assert_int_eq(slow.nreqs, 1); /* the transfer is under way */
        double t0 = tu_now();
        ck_assert_int_eq(green_kill(g, 2), 0);
        ck_assert_elapsed(t0, 0, RUNNING_ON_VALGRIND ? 0.5 : 0.1);
        ck_assert_int_eq(p.rc, CURLE_ABORTED_BY_CALLBACK);
    } else {
        ck_assert_int_eq(green_join(g, tmo + 2), 0);
        ck_assert_int_eq(slow.nreqs, 1); /* it was under way */
        ck_assert_int_eq(p.rc, CURLE_OPERATION_TIMEDOUT);
        ck_assert_msg(p.elapsed >= tmo - 0.01 && p.elapsed < tmo + 0.4, "timed out after %.3f s",
                      p.elapsed);
    }
    ck_assert_uint_eq(b.len, 0);
    green_release(g);
    assert_reusable(e, &b);
    /* And the slow endpoint again, in full. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow/50", slow.port);
    curl_easy_setopt(e, CURLOPT_URL, url);
    b.len = 0;
    ck_assert_int_eq(green_curl_perform(e), CURLE_OK);
    ck_assert_uint_eq(b.len, 8);
    curl_easy_cleanup(e);
    free(b.data);
    tserver_stop(&slow);
    assert_all_done();
}

START_TEST(curl_kill_mid_transfer)
{
    interrupted_then_reused(true);
}
END_TEST

START_TEST(curl_timeout_mid_transfer)
{
    interrupted_then_reused(false);
}
END_TEST

static void *killed_then_perform(void *arg)
{
    struct performer *p = arg;
    green_kill(green_current(), 0); /* marks itself */
    p->rc = green_curl_perform(p->easy);
    return NULL;
}

START_TEST(curl_not_started_when_killed_or_late)
{
    struct tserver slow;
    tserver_start(&slow);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow/10", slow.port);
    struct buf b = {0};
    CURL *e = easy_new(url, &b);

    struct performer p = {.easy = e};
    green_t *g = green_spawn(killed_then_perform, &p);
    ck_assert_int_eq(green_join(g, 2), 0);
    green_release(g);
    ck_assert_int_eq(p.rc, CURLE_ABORTED_BY_CALLBACK);

    green_timeout_t t;
    green_timeout_start(&t, 0);
    ck_assert_int_eq(green_curl_perform(e), CURLE_OPERATION_TIMEDOUT);
    char *body = (char *)1;
    ck_assert_fails(green_http_get(url, &body, NULL, NULL, -1), ETIMEDOUT);
    ck_assert_ptr_null(body);
    green_timeout_cancel(&t);

    /* Nothing reached the server. */
    green_sleep(0.1);
    ck_assert_int_eq(slow.nconns, 0);
    ck_assert_int_eq(slow.nreqs, 0);
    ck_assert_int_eq(green_curl_perform(e), CURLE_OK);
    ck_assert_int_eq(slow.nreqs, 1);
    curl_easy_cleanup(e);
    free(b.data);
    tserver_stop(&slow);
    assert_all_done();
}
END_TEST

START_TEST(curl_connection_refused)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", free_port());
    struct buf b = {0};
    CURL *e = easy_new(url, &b);
    ck_assert_int_eq(green_curl_perform(e), CURLE_COULDNT_CONNECT);
    char *body = (char *)1;
    ck_assert_fails(green_http_get(url, &body, NULL, NULL, 5), ECONNREFUSED);
    ck_assert_ptr_null(body);
    assert_reusable(e, &b);
    curl_easy_cleanup(e);
    free(b.data);
    assert_all_done();
}
END_TEST

/* A write callback that blocks on its first call, and notes who runs it. */
struct blocking {
    size_t   len, calls;
    green_t *runner;
    char     runner_name[32];
    double   block;
};

static size_t blocking_write(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    struct blocking *bl = ud;
    if (bl->calls++ == 0) {
        bl->runner = green_current();
        snprintf(bl->runner_name, sizeof bl->runner_name, "%s", green_name(bl->runner));
        green_sleep(bl->block);
    }
    bl->len += size * nmemb;
    return size * nmemb;
}

START_TEST(curl_kill_while_callback_runs)
{
    char url[128];
    url_of(url, sizeof url, g_port, "/big.bin");
    struct blocking bl = {.block = 0.3};
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, blocking_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &bl);
    struct performer p = {.easy = e};
    green_t *g = green_spawn(perform_main, &p);
    double t0 = tu_now();
    for (int i = 0; i < 500 && bl.calls == 0; i++)
        green_sleep(0.01);
    ck_assert_uint_eq(bl.calls, 1); /* the callback is blocked in its sleep */
    /* The callback runs on the hub's curl driver, not on the performer. */
    ck_assert_ptr_ne(bl.runner, g);
    ck_assert_str_eq(bl.runner_name, "curl driver");
    green_sleep(0.05);
    ck_assert_int_eq(green_kill(g, 5), 0);
    /* The performer could only return once the callback had returned. */
    ck_assert_int_eq(p.rc, CURLE_ABORTED_BY_CALLBACK);
    double dt = tu_now() - t0;
    ck_assert_msg(dt >= 0.28 && dt < 3, "returned after %.3f s", dt);
    ck_assert_uint_lt(bl.len, BIG_SIZE);
    green_release(g);
    struct buf b = {0};
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, buf_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    assert_reusable(e, &b);
    curl_easy_cleanup(e);
    free(b.data);
    assert_all_done();
}
END_TEST

/* Every kind of callback, noting which greenlet runs it. */
struct who {
    green_t *performer;
    int      calls[4], on_driver[4], on_performer[4]; /* read, header, write, progress */
    size_t   sent;
};

static void note(struct who *w, int kind)
{
    green_t *g = green_current();
    w->calls[kind]++;
    w->on_performer[kind] += g == w->performer;
    w->on_driver[kind] += strcmp(green_name(g), "curl driver") == 0;
}

static size_t who_read(char *p, size_t size, size_t nmemb, void *ud)
{
    struct who *w = ud;
    note(w, 0);
    static const char body[] = "name=libgreen&kind=greenlets";
    size_t n = sizeof body - 1 - w->sent;
    if (n > size * nmemb)
        n = size * nmemb;
    memcpy(p, body + w->sent, n);
    w->sent += n;
    return n;
}

static size_t who_header(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    note(ud, 1);
    return size * nmemb;
}

static size_t who_write(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    note(ud, 2);
    return size * nmemb;
}

static int who_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    note(ud, 3);
    return 0;
}

static void *who_main(void *arg)
{
    struct who *w = arg;
    char url[128];
    url_of(url, sizeof url, g_port, "/hello.txt");
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 28L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, who_read);
    curl_easy_setopt(e, CURLOPT_READDATA, w);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, who_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, w);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, who_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, who_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, w);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    ck_assert_int_eq(green_curl_perform(e), CURLE_OK);
    ck_assert_int_gt(status_of(e), 0); /* nginx: 405, a POST to a file */
    curl_easy_cleanup(e);
    return NULL;
}

START_TEST(curl_callbacks_run_on_the_driver)
{
    struct who w = {0};
    w.performer = green_spawn(who_main, &w);
    ck_assert_int_eq(green_join(w.performer, 10), 0);
    for (int k = 0; k < 4; k++) {
        ck_assert_msg(w.calls[k] > 0, "callback %d never ran", k);
        ck_assert_int_eq(w.on_performer[k], 0);
        ck_assert_int_eq(w.on_driver[k], w.calls[k]);
    }
    ck_assert_uint_eq(w.sent, 28);
    green_release(w.performer);
    assert_all_done();
}
END_TEST

/* curl's own timeouts run on the multi's timer callback. */
START_TEST(curl_own_timeout)
{
    struct tserver slow;
    tserver_start(&slow);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow/5000", slow.port);
    struct buf b = {0};
    CURL *e = easy_new(url, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 200L);
    double t0 = tu_now();
    ck_assert_int_eq(green_curl_perform(e), CURLE_OPERATION_TIMEDOUT);
    ck_assert_elapsed(t0, 0.19, RUNNING_ON_VALGRIND ? 3 : 1);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 0L);
    assert_reusable(e, &b);
    curl_easy_cleanup(e);
    free(b.data);
    tserver_stop(&slow);
    assert_all_done();
}
END_TEST

/* Transfers started while the driver is held up in a callback wait for it,
 * and one killed meanwhile never starts. */
START_TEST(curl_start_while_callback_blocks)
{
    struct tserver slow;
    tserver_start(&slow);
    char url[128];
    url_of(url, sizeof url, g_port, "/hello.txt");
    struct blocking bl = {.block = 0.3};
    CURL *blocker = curl_easy_init();
    curl_easy_setopt(blocker, CURLOPT_URL, url);
    curl_easy_setopt(blocker, CURLOPT_WRITEFUNCTION, blocking_write);
    curl_easy_setopt(blocker, CURLOPT_WRITEDATA, &bl);
    struct performer pb = {.easy = blocker};
    green_t *gb = green_spawn(perform_main, &pb);
    for (int i = 0; i < 500 && bl.calls == 0; i++)
        green_sleep(0.01);
    ck_assert_uint_eq(bl.calls, 1); /* the driver is inside curl, held up */

    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow/10", slow.port);
    struct buf b1 = {0}, b2 = {0};
    CURL *e1 = easy_new(url, &b1), *e2 = easy_new(url, &b2);
    struct performer p1 = {.easy = e1}, p2 = {.easy = e2};
    double t0 = tu_now();
    green_t *g1 = green_spawn(perform_main, &p1);
    green_t *g2 = green_spawn(perform_main, &p2);
    green_sleep(0.05);
    ck_assert_int_eq(slow.nconns, 0); /* queued, not started */
    ck_assert_int_eq(green_kill(g2, 1), 0);
    ck_assert_int_eq(p2.rc, CURLE_ABORTED_BY_CALLBACK);
    ck_assert_elapsed(t0, 0, 0.25); /* at once, while the callback still blocks */
    ck_assert_int_eq(green_join(g1, 5), 0);
    ck_assert_int_eq(p1.rc, CURLE_OK);
    ck_assert_uint_eq(b1.len, 8);
    ck_assert_int_eq(green_join(gb, 5), 0);
    ck_assert_int_eq(pb.rc, CURLE_OK);
    ck_assert_int_eq(slow.nreqs, 1); /* the killed one never reached it */
    ck_assert_int_eq(green_curl_perform(e2), CURLE_OK);
    ck_assert_uint_eq(b2.len, 8);
    green_release(gb);
    green_release(g1);
    green_release(g2);
    curl_easy_cleanup(blocker);
    curl_easy_cleanup(e1);
    curl_easy_cleanup(e2);
    free(b1.data);
    free(b2.data);
    tserver_stop(&slow);
    assert_all_done();
}
END_TEST

struct nested {
    CURL    *other;
    CURLcode rc;
    bool     called;
};

static size_t nested_write(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    struct nested *n = ud;
    if (!n->called) {
        n->called = true;
        n->rc = green_curl_perform(n->other);
    }
    return size * nmemb;
}

START_TEST(curl_perform_from_callback)
{
    char url[128];
    url_of(url, sizeof url, g_port, "/hello.txt");
    struct buf b = {0};
    struct nested n = {.other = easy_new(url, &b)};
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, nested_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &n);
    ck_assert_int_eq(green_curl_perform(e), CURLE_OK);
    ck_assert(n.called);
    ck_assert_int_eq(n.rc, CURLE_RECURSIVE_API_CALL);
    ck_assert_int_eq(green_curl_perform(n.other), CURLE_OK);
    ck_assert_uint_eq(b.len, 6);
    curl_easy_cleanup(e);
    curl_easy_cleanup(n.other);
    free(b.data);
    assert_all_done();
}
END_TEST

struct from_hub {
    ev_timer timer;
    CURL    *easy;
    CURLcode rc;
    int      get_errno;
    bool     fired;
};

static void from_hub_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct from_hub *fh = (struct from_hub *)t;
    fh->fired = true;
    fh->rc = green_curl_perform(fh->easy);
    char *body;
    errno = 0;
    if (green_http_get("http://127.0.0.1:1/", &body, NULL, NULL, -1) < 0)
        fh->get_errno = errno;
}

START_TEST(curl_perform_from_hub)
{
    struct buf b = {0};
    char url[128];
    url_of(url, sizeof url, g_port, "/hello.txt");
    struct from_hub fh = {.easy = easy_new(url, &b)};
    struct ev_loop *loop = green_loop();
    ev_timer_init(&fh.timer, from_hub_cb, 0.01, 0.);
    ev_timer_start(loop, &fh.timer);
    green_sleep(0.05);
    ck_assert(fh.fired);
    ck_assert_int_eq(fh.rc, CURLE_BAD_FUNCTION_ARGUMENT);
    ck_assert_int_eq(fh.get_errno, EDEADLK);
    ck_assert_int_eq(green_curl_perform(fh.easy), CURLE_OK);
    curl_easy_cleanup(fh.easy);
    free(b.data);
    assert_all_done();
}
END_TEST

START_TEST(curl_same_handle_twice)
{
    struct tserver slow;
    tserver_start(&slow);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow/100", slow.port);
    struct buf b = {0};
    CURL *e = easy_new(url, &b);
    struct performer p1 = {.easy = e}, p2 = {.easy = e};
    green_t *g1 = green_spawn(perform_main, &p1);
    green_t *g2 = green_spawn(perform_main, &p2);
    ck_assert_int_eq(green_join(g1, 5), 0);
    ck_assert_int_eq(green_join(g2, 5), 0);
    ck_assert_int_eq(p1.rc, CURLE_OK);
    ck_assert_int_eq(p2.rc, CURLE_BAD_FUNCTION_ARGUMENT);
    ck_assert_uint_eq(b.len, 9);
    green_release(g1);
    green_release(g2);
    curl_easy_cleanup(e);
    free(b.data);
    tserver_stop(&slow);
    assert_all_done();
}
END_TEST

/* Each thread has its own hub and multi handle; they go at thread exit. */
static void *thread_main(void *arg)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/f%d.txt", g_port, (int)(intptr_t)arg);
    int fails = 0;
    for (int i = 0; i < 20; i++) {
        char *body;
        size_t len;
        long status;
        if (green_http_get(url, &body, &len, &status, 10) < 0 || status != 200 || len == 0)
            fails++;
        else
            free(body);
    }
    return (void *)(intptr_t)fails;
}

START_TEST(curl_threads)
{
    /* Without nginx the files are served by this thread's hub: the threads
     * fetch from it while the main greenlet keeps the hub running. */
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, thread_main, (void *)(intptr_t)(i + 1)), 0);
    for (int i = 0; i < 2; i++) {
        void *fails = (void *)1;
        /* Cooperatively: the main hub may be serving the files. */
        while (pthread_tryjoin_np(t[i], &fails) == EBUSY)
            green_sleep(0.01);
        ck_assert_int_eq((int)(intptr_t)fails, 0);
    }
    assert_all_done();
}
END_TEST

static void *limit_of_thread(void *arg)
{
    (void)arg;
    long old = green_curl_limit(5);
    return (void *)(intptr_t)old;
}

START_TEST(curl_limit_misuse)
{
    errno = 0;
    ck_assert_int_eq(green_curl_limit(-1), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(green_curl_limit(0), 0); /* the default: no cap */
    ck_assert_int_eq(green_curl_limit(3), 0);
    ck_assert_int_eq(green_curl_limit(-5), -1); /* unchanged by a bad call */
    ck_assert_int_eq(green_curl_limit(4), 3);
    /* Per thread, as the multi handle: another thread's hub has its own. */
    pthread_t t;
    void *rc;
    ck_assert_int_eq(pthread_create(&t, NULL, limit_of_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(t, &rc), 0);
    ck_assert_int_eq((long)(intptr_t)rc, 0);
    ck_assert_int_eq(green_curl_limit(0), 4);
    assert_all_done();
}
END_TEST

/* With a cap of 3, nine slow transfers run in three waves, in the order
 * they were started, and the server never serves more than 3 at once. */
START_TEST(curl_limit_caps_transfers)
{
    struct tserver slow;
    tserver_start(&slow);
    enum { N = 9, CAP = 3 };
    int ms = RUNNING_ON_VALGRIND ? 600 : 150;
    ck_assert_int_eq(green_curl_limit(CAP), 0);
    CURL *es[N];
    struct buf bs[N];
    struct performer ps[N];
    green_t *gs[N];
    double t0 = tu_now();
    spawn_slow_gets(slow.port, ms, N, es, bs, ps, gs);
    ck_assert_int_eq(green_joinall(gs, N, 30), 0);
    double elapsed = tu_now() - t0;
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(ps[i].rc, CURLE_OK);
        ck_assert_int_eq(status_of(es[i]), 200);
        curl_easy_cleanup(es[i]);
        free(bs[i].data);
        green_release(gs[i]);
    }
    ck_assert_int_eq(slow.nreqs, N);
    ck_assert_int_eq(slow.max_slow, CAP);
    ck_assert_msg(elapsed >= N / CAP * ms / 1000.0 - 0.01, "%d x %d ms, cap %d: %.3f s", N, ms, CAP,
                  elapsed);
    /* First come, first served: each wave ends before the next. */
    for (int i = 0; i < CAP; i++)
        ck_assert_msg(ps[i].elapsed < ps[N - CAP + i].elapsed - ms / 2000.0,
                      "transfer %d: %.3f s, transfer %d: %.3f s", i, ps[i].elapsed,
                      N - CAP + i, ps[N - CAP + i].elapsed);
    ck_assert_int_eq(green_curl_limit(0), CAP);
    tserver_stop(&slow);
    assert_all_done();
}
END_TEST

/* A transfer waiting for room is ended by a kill or a timeout at once, never
 * reaches the server, and its handle is reusable; raising the cap lets a
 * waiting one in at once. */
START_TEST(curl_limit_wait_is_interruptible)
{
    struct tserver slow;
    tserver_start(&slow);
    ck_assert_int_eq(green_curl_limit(1), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow/10000", slow.port);
    struct buf ba = {0}, bb = {0}, bc = {0}, bd = {0};
    CURL *a = easy_new(url, &ba);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow/10/b", slow.port);
    CURL *b = easy_new(url, &bb);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow/10/c", slow.port);
    CURL *c = easy_new(url, &bc);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow/10/d", slow.port);
    CURL *d = easy_new(url, &bd);
    double tmo = RUNNING_ON_VALGRIND ? 1 : 0.1, fast = RUNNING_ON_VALGRIND ? 0.5 : 0.1;

    struct performer pa = {.easy = a};
    green_t *ga = green_spawn(perform_main, &pa);
    for (int i = 0; i < 500 && slow.nreqs == 0; i++)
        green_sleep(0.01);
    ck_assert_int_eq(slow.nreqs, 1); /* a holds the only room */

    struct performer pb = {.easy = b, .timeout = tmo}, pc = {.easy = c};
    green_t *gb = green_spawn(perform_main, &pb);
    green_t *gc = green_spawn(perform_main, &pc);
    ck_assert_int_eq(green_join(gb, tmo + 2), 0);
    ck_assert_int_eq(pb.rc, CURLE_OPERATION_TIMEDOUT);
    ck_assert_msg(pb.elapsed >= tmo - 0.01 && pb.elapsed < tmo + fast, "timed out after %.3f s",
                  pb.elapsed);
    double t0 = tu_now();
    ck_assert_int_eq(green_kill(gc, 2), 0);
    ck_assert_elapsed(t0, 0, fast);
    ck_assert_int_eq(pc.rc, CURLE_ABORTED_BY_CALLBACK);
    ck_assert_int_eq(slow.nreqs, 1); /* neither got to the server */

    struct performer pd = {.easy = d};
    green_t *gd = green_spawn(perform_main, &pd);
    green_sleep(0.05);
    ck_assert_int_eq(slow.nreqs, 1); /* d waits too */
    ck_assert_int_eq(green_curl_limit(2), 1);
    ck_assert_int_eq(green_join(gd, 5), 0); /* let in while a still runs */
    ck_assert_int_eq(pd.rc, CURLE_OK);
    ck_assert_int_eq(bd.len, 8);
    ck_assert_int_eq(green_kill(ga, 2), 0);
    ck_assert_int_eq(pa.rc, CURLE_ABORTED_BY_CALLBACK);
    ck_assert_uint_eq(bb.len + bc.len, 0);

    green_t *gs[] = {ga, gb, gc, gd};
    for (int i = 0; i < 4; i++)
        green_release(gs[i]);
    assert_reusable(b, &bb);
    assert_reusable(c, &bc);
    CURL *es[] = {a, b, c, d};
    struct buf *bs[] = {&ba, &bb, &bc, &bd};
    for (int i = 0; i < 4; i++) {
        curl_easy_cleanup(es[i]);
        free(bs[i]->data);
    }
    ck_assert_int_eq(green_curl_limit(0), 2);
    tserver_stop(&slow);
    assert_all_done();
}
END_TEST

int main(void)
{
    char tmpl[] = "/tmp/green-curl-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "%s", tmpl);
    make_www();
    nginx_install();
    nginx_start();
    fprintf(stderr, "test_curl: files served by %s\n",
            g_nginx_port ? "nginx" : "libgreen's StreamServer (no nginx)");

    Suite *s = suite_create("curl");
    TCase *tc = tcase_create("curl");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, RUNNING_ON_VALGRIND ? 300 : 30);
    tcase_add_test(tc, curl_null);
    tcase_add_test(tc, curl_get_small);
    tcase_add_test(tc, curl_big_body);
    tcase_add_test(tc, curl_many_at_once);
    tcase_add_test(tc, curl_transfers_overlap);
    tcase_add_test(tc, curl_kill_mid_transfer);
    tcase_add_test(tc, curl_timeout_mid_transfer);
    tcase_add_test(tc, curl_not_started_when_killed_or_late);
    tcase_add_test(tc, curl_connection_refused);
    tcase_add_test(tc, curl_kill_while_callback_runs);
    tcase_add_test(tc, curl_callbacks_run_on_the_driver);
    tcase_add_test(tc, curl_own_timeout);
    tcase_add_test(tc, curl_start_while_callback_blocks);
    tcase_add_test(tc, curl_perform_from_callback);
    tcase_add_test(tc, curl_perform_from_hub);
    tcase_add_test(tc, curl_same_handle_twice);
    tcase_add_test(tc, curl_threads);
    tcase_add_test(tc, curl_limit_misuse);
    tcase_add_test(tc, curl_limit_caps_transfers);
    tcase_add_test(tc, curl_limit_wait_is_interruptible);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);

    nginx_stop();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_curl: could not remove %s\n", g_dir);
    return rc;
}
