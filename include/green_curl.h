/*
 * libgreen HTTP: libcurl easy handles performed through one curl multi
 * handle per hub, driven by the hub's libev loop (socket and timer
 * callbacks), so thousands of greenlets can have transfers in flight on one
 * thread.
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
 */
GREEN_API CURLcode green_curl_perform(CURL *easy);

#ifdef __cplusplus
}
#endif

#endif
