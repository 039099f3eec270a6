/*
 * libgreen HTTP: libcurl easy handles performed through one curl multi
 * handle per hub, driven by the hub's libev loop (socket and timer
 * callbacks), so thousands of greenlets can have transfers in flight on one
 * thread.
 *
 * Connections and DNS results live in the hub's multi handle, so every
 * transfer of a thread reuses them (keep-alive across handles and across
 * greenlets), as a requests.Session or an aiohttp.ClientSession would.
 *
 * WHICH GREENLET RUNS THE CALLBACKS
 *
 * Every callback of the transfers (write, read, header, progress, debug,
 * socket-open...) runs on the hub's "curl driver" greenlet: one per hub,
 * alive while transfers are in flight (green_count counts it then;
 * green_dump shows it as 'curl driver'). Never on the hub's stack, and never
 * on the performing greenlet's. A callback may call libgreen, but a callback
 * that blocks (green_sleep, a queue get...) stalls every other transfer of
 * that hub meanwhile; spawn a greenlet for slow work instead.
 * green_current() in a callback is the driver, not the performer: pass what
 * the callback needs through its user data. green_curl_perform from a
 * callback (on the driver) returns CURLE_RECURSIVE_API_CALL.
 */
#ifndef GREEN_CURL_H
#define GREEN_CURL_H

#include <curl/curl.h>
#include <green.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Performs a configured easy handle as curl_easy_perform would, while other
 * greenlets run. Returns curl's result codes; a kill makes it return
 * CURLE_ABORTED_BY_CALLBACK, a green_timeout CURLE_OPERATION_TIMEDOUT, at
 * once, and in a greenlet already killed or past its timeout the transfer is
 * not started. On return the handle is out of the multi handle again and
 * reusable (by curl_easy_perform too). NULL: CURLE_BAD_FUNCTION_ARGUMENT.
 *
 * "At once" has one exception: if the driver is inside curl when the kill or
 * timeout comes (a callback of some transfer is blocked), the handle can only
 * be taken out of the multi once that curl call returns, and this call waits
 * for that (kills and timeouts do not cut that wait short); the transfer's
 * own callbacks may run until then.
 *
 * Also CURLE_BAD_FUNCTION_ARGUMENT: called from the hub (a libev callback),
 * or with a handle another greenlet is performing now, or one already in a
 * multi handle of the program's own. CURLE_RECURSIVE_API_CALL: called from a
 * transfer's callback. CURLE_OUT_OF_MEMORY: no memory for the multi handle
 * or the driver greenlet. The easy handle's options are not touched
 * (CURLOPT_PRIVATE stays the program's). A handle belongs to one thread at a
 * time, as in libcurl.
 */
GREEN_API CURLcode green_curl_perform(CURL *easy);

/**
 * Caps the transfers the calling thread's hub runs at once, as aiohttp's
 * TCPConnector(limit=) does: at most max handles are in its multi handle,
 * and green_curl_perform calls beyond that wait their turn, first come
 * first served (green_http_get's too). The wait is part of the call: a kill
 * or a green_timeout ends it as it would the transfer, while curl's own
 * CURLOPT_TIMEOUT starts with the transfer. 0, the default: no cap. A lower
 * cap lets the transfers under way finish. Returns the previous cap, or -1
 * with errno EINVAL (max < 0) or ENOMEM.
 *
 * Why: libcurl 7.88 walks its connection cache on every transfer, so its
 * CPU per transfer grows with the connections open to one host (a small
 * keep-alive GET from a local nginx: 37-60 µs with 500 open, 24-35 µs with 32,
 * tests/bench/suite_curl.sh). Many greenlets fetching from one host go
 * faster with a cap of a few dozen; a cap also bounds the sockets a burst
 * opens.
 */
GREEN_API long green_curl_limit(long max);

/**
 * GETs url into a new buffer: requests.get(url).content and .status_code.
 * On 0, *body is a malloc'd copy of the body with a NUL added after it (free
 * it with free()), *len its length and *status the HTTP status of the last
 * response (redirects are followed; an HTTP error status such as 404 is not
 * a failure); len and status may be NULL. Compressed bodies are decoded.
 * Connections are reused across calls (the hub's multi handle keeps them).
 *
 * timeout bounds the whole transfer (< 0: none). Returns -1 with errno:
 * ETIMEDOUT (EAGAIN for timeout 0), ECANCELED (killed), ECONNREFUSED
 * (could not connect), ENOENT (host does not resolve), ECONNRESET (the
 * connection failed mid-way or the server sent nothing), EINVAL (NULL url
 * or body, malformed URL, unsupported scheme), ENOMEM, EDEADLK (from the hub
 * or a transfer's callback), EPROTO (any other curl error). On failure
 * *body is NULL.
 */
GREEN_API int green_http_get(const char *url, char **body, size_t *len, long *status,
                             double timeout);

#ifdef __cplusplus
}
#endif

#endif
