/*
 * Recipe: gevent's "Determinism" example (the gevent tutorial), which
 * fetches a JSON time document nine times, one fetch after the other and
 * then all at once in greenlets:
 *
 *     import gevent.monkey
 *     gevent.monkey.patch_socket()
 *
 *     import gevent
 *     import urllib2
 *     import simplejson as json
 *
 *     def fetch(pid):
 *         response = urllib2.urlopen('http://json-time.appspot.com/time.json')
 *         result = response.read()
 *         json_result = json.loads(result)
 *         datetime = json_result['datetime']
 *
 *         print('Process %s: %s' % (pid, datetime))
 *         return json_result['datetime']
 *
 *     def synchronous():
 *         for i in range(1,10):
 *             fetch(i)
 *
 *     def asynchronous():
 *         threads = []
 *         for i in range(1,10):
 *             threads.append(gevent.spawn(fetch, i))
 *         gevent.joinall(threads)
 *
 *     print('Synchronous:')
 *     synchronous()
 *
 *     print('Asynchronous:')
 *     asynchronous()
 *
 * The synchronous lines come in order 1 to 9; the asynchronous ones in the
 * order the responses arrive, different from run to run. urllib2.urlopen
 * plus read() is green_http_get here.
 *
 *     fetch_time [URL]
 *
 * With no URL it serves the JSON document itself on 127.0.0.1 (libgreen's
 * StreamServer), as json-time.appspot.com did: the current time, after a
 * random pause of up to 50 ms, like a remote server's varying latency.
 */
#define _GNU_SOURCE /* memmem */
#include <green_curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *url;
static int failures;

/* json_result['datetime']: the string value of "datetime" (no escapes in
 * a date), copied into out. */
static int json_datetime(const char *json, char *out, size_t size)
{
    const char *p = strstr(json, "\"datetime\"");
    if (!p)
        return -1;
    p += strlen("\"datetime\"");
    while (*p == ' ' || *p == ':')
        p++;
    if (*p++ != '"')
        return -1;
    const char *end = strchr(p, '"');
    if (!end || (size_t)(end - p) >= size)
        return -1;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return 0;
}

static void *fetch(void *arg)
{
    int pid = (int)(intptr_t)arg;
    char *result;
    long status;
    if (green_http_get(url, &result, NULL, &status, 10) < 0) {
        perror("fetch_time: GET");
        failures++;
        return NULL;
    }
    char datetime[128];
    if (status != 200 || json_datetime(result, datetime, sizeof datetime) < 0) {
        fprintf(stderr, "fetch_time: HTTP %ld, no datetime in: %s\n", status, result);
        failures++;
    } else {
        printf("Process %d: %s\n", pid, datetime);
    }
    free(result);
    return NULL;
}

static void synchronous(void)
{
    for (int i = 1; i < 10; i++)
        fetch((void *)(intptr_t)i);
}

static void asynchronous(void)
{
    green_t *threads[9];
    for (int i = 1; i < 10; i++)
        threads[i - 1] = green_spawn(fetch, (void *)(intptr_t)i);
    green_joinall(threads, 9, GREEN_FOREVER);
    for (int i = 0; i < 9; i++)
        green_release(threads[i]);
}

/* ------------------------------------------------------------------------ */
/* The local time.json (no URL given)                                         */
/* ------------------------------------------------------------------------ */

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
    if (green_sleep((rand() % 51) / 1000.0) < 0)
        return;
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    char datetime[64], body[256], resp[512];
    strftime(datetime, sizeof datetime, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    int bn = snprintf(body, sizeof body,
                      "{\"tz\": \"UTC\", \"hour\": %d, \"datetime\": \"%s\", \"second\": %d, "
                      "\"error\": false, \"minute\": %d}",
                      tm.tm_hour, datetime, tm.tm_sec, tm.tm_min);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     bn, body);
    green_write_all(fd, resp, (size_t)n, 10);
}

int main(int argc, char **argv)
{
    green_server_t *srv = NULL;
    char local[64];
    if (argc > 1) {
        url = argv[1];
    } else {
        srand((unsigned)time(NULL));
        int lfd = green_tcp_listen("127.0.0.1", 0, 128);
        if (lfd < 0 || !(srv = green_server_new(lfd, handle, NULL, 0))) {
            perror("fetch_time: server");
            return 1;
        }
        snprintf(local, sizeof local, "http://127.0.0.1:%d/time.json", green_tcp_port(lfd));
        url = local;
    }

    printf("Synchronous:\n");
    synchronous();

    printf("Asynchronous:\n");
    asynchronous();

    if (srv) {
        green_server_stop(srv, 1);
        green_server_free(srv);
    }
    return failures ? 1 : 0;
}
