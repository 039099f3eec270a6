/*
 * Recipe: the aiohttp client of the "Asynchronous Python" post, where
 * MAX_CLIENTS coroutines fetch a URL at once and the whole takes as long as
 * the slowest fetch, not the sum:
 *
 *     URL = 'https://api.github.com/events'
 *     MAX_CLIENTS = 3
 *
 *     async def fetch_async(pid):
 *         print('Fetch async process {} started'.format(pid))
 *         start = time.time()
 *         response = await aiohttp.request('GET', URL)
 *         datetime = response.headers.get('Date')
 *
 *         print('Process {}: {}, took: {:.2f} seconds'.format(
 *             pid, datetime, time.time() - start))
 *
 *         response.close()
 *         return datetime
 *
 *     async def asynchronous():
 *         start = time.time()
 *         tasks = [asyncio.ensure_future(
 *             fetch_async(i)) for i in range(1, MAX_CLIENTS + 1)]
 *         await asyncio.wait(tasks)
 *         print("Process took: {:.2f} seconds".format(time.time() - start))
 *
 *     ioloop = asyncio.get_event_loop()
 *     ioloop.run_until_complete(asynchronous())
 *
 * Here each greenlet performs a curl easy handle with green_curl_perform
 * (the hub's one curl multi handle runs all the transfers at once) and reads
 * the Date header with a header callback.
 *
 *     fetch_many [URL...]
 *
 * One greenlet per URL given. With none, it starts its own HTTP server on
 * 127.0.0.1 (libgreen's StreamServer), which answers after 0.5 s as the
 * remote API did, and MAX_CLIENTS greenlets fetch from it: the whole takes
 * about 0.5 s, not 1.5 s.
 */
#define _GNU_SOURCE /* memmem */
#include <green_curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_CLIENTS 3
#define SERVER_DELAY 0.5 /* seconds the local server takes to answer */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* The client                                                                 */
/* ------------------------------------------------------------------------ */

struct fetch {
    int         pid;
    const char *url;
    char        date[64];
    int         ok;
};

/* response.headers.get('Date') */
static size_t header_cb(char *line, size_t size, size_t nmemb, void *ud)
{
    struct fetch *f = ud;
    size_t n = size * nmemb;
    if (n > 5 && strncasecmp(line, "Date:", 5) == 0) {
        size_t i = 5;
        while (i < n && line[i] == ' ')
            i++;
        size_t end = n;
        while (end > i && (line[end - 1] == '\r' || line[end - 1] == '\n'))
            end--;
        size_t len = end - i < sizeof f->date - 1 ? end - i : sizeof f->date - 1;
        memcpy(f->date, line + i, len);
        f->date[len] = '\0';
    }
    return n;
}

static size_t discard_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    return size * nmemb;
}

static void *fetch_async(void *arg)
{
    struct fetch *f = arg;
    printf("Fetch async process %d started\n", f->pid);
    double start = now();
    CURL *easy = curl_easy_init();
    if (!easy)
        return NULL;
    curl_easy_setopt(easy, CURLOPT_URL, f->url);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "libgreen fetch_many");
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_cb);
    CURLcode rc = green_curl_perform(easy);
    curl_easy_cleanup(easy);
    if (rc != CURLE_OK) {
        fprintf(stderr, "Process %d: %s: %s\n", f->pid, f->url, curl_easy_strerror(rc));
        return NULL;
    }
    f->ok = 1;
    printf("Process %d: %s, took: %.2f seconds\n", f->pid, f->date[0] ? f->date : "None",
           now() - start);
    return NULL;
}

static int asynchronous(const char *const *urls, int n)
{
    double start = now();
    struct fetch *fs = calloc((size_t)n, sizeof *fs);
    green_t **tasks = calloc((size_t)n, sizeof *tasks);
    if (!fs || !tasks)
        return 1;
    for (int i = 0; i < n; i++) {
        fs[i] = (struct fetch){.pid = i + 1, .url = urls[i]};
        tasks[i] = green_spawn(fetch_async, &fs[i]);
    }
    green_joinall(tasks, (size_t)n, GREEN_FOREVER);
    printf("Process took: %.2f seconds\n", now() - start);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        failed += !fs[i].ok;
        green_release(tasks[i]);
    }
    free(fs);
    free(tasks);
    return failed ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* The local server (no URL given)                                            */
/* ------------------------------------------------------------------------ */

/* Reads one request, waits as a remote API would, answers with a Date. */
static void handle(int fd, void *ud)
{
    (void)ud;
    char buf[4096];
    size_t have = 0;
    while (have < sizeof buf && !memmem(buf, have, "\r\n\r\n", 4)) {
        ssize_t r = green_read(fd, buf + have, sizeof buf - have, 10);
        if (r <= 0)
            return;
        have += (size_t)r;
    }
    if (green_sleep(SERVER_DELAY) < 0)
        return;
    char date[64], resp[512];
    time_t t = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&t, &tm));
    const char *body = "[]\n";
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 200 OK\r\nDate: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     date, strlen(body), body);
    green_write_all(fd, resp, (size_t)n, 10);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return asynchronous((const char *const *)argv + 1, argc - 1);

    int lfd = green_tcp_listen("127.0.0.1", 0, 128);
    if (lfd < 0) {
        perror("fetch_many: listen");
        return 1;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/events", green_tcp_port(lfd));
    green_server_t *srv = green_server_new(lfd, handle, NULL, 0);
    if (!srv) {
        perror("fetch_many: server");
        return 1;
    }
    const char *urls[MAX_CLIENTS];
    for (int i = 0; i < MAX_CLIENTS; i++)
        urls[i] = url;
    int rc = asynchronous(urls, MAX_CLIENTS);
    green_server_stop(srv, 1);
    green_server_free(srv);
    return rc;
}
