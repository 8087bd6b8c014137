/* One libcurl easy handle, reused for every page of a pager (keep-alive).
 * Nothing here touches Python: it runs without the GIL. */
#ifndef CL_HTTP_H
#define CL_HTTP_H

#include "shape.h"
#include <curl/curl.h>
#include <stddef.h>

#if LIBCURL_VERSION_NUM < 0x074400
#error "custlist needs libcurl 7.68 or newer (curl_multi_poll, curl_multi_wakeup)"
#endif

typedef struct {
    long connect_timeout_ms;
    long timeout_ms;
    long low_speed_limit;          /* bytes/s ... */
    long low_speed_time;           /* ... sustained for this many seconds */
    size_t max_body;
    const char *user_agent;
    /* The proxy for every request: "" (or NULL) for none.  libcurl never
     * reads proxy environment variables: custlist resolves them itself. */
    const char *proxy;
    /* Trusted CAs: a PEM file and/or a hashed directory.  Both NULL: the
     * libcurl build's default.  Peer and host verification are always on. */
    const char *ca_file;
    const char *ca_path;
    /* The caller drives the easy handle on a multi handle of its own
     * (cl_http_begin/cl_http_end: a listing's driver, multi.c): no private
     * multi handle is made, and cl_http_send/cl_http_get are not used. */
    int driven;
} cl_http_opts;

typedef struct {
    char *data;
    size_t len, cap;
} cl_buf;

typedef struct {
    CURL *easy;
    CURLM *multi;                  /* cl_http_send's, so a cancel can wake it (NULL when driven) */
    char errbuf[CURL_ERROR_SIZE];
    cl_buf body;
    /* Where the body's big arrays and objects end, scanned as it arrives
     * when shape_on (the pager's two-pass decode reads it); it goes with
     * the body wherever the body goes. */
    cl_shape shape;
    int shape_on;
    cl_buf headers;                /* raw header lines of the last response */
    size_t max_body;
    long status;
    long long retry_after_ms;      /* -1 when the response had none */
    int too_large;
    volatile int *cancel;          /* set from another thread to abort */
    CURLcode code;
    char *trusted;                 /* the CA file or directory, for messages (malloc'd) */
} cl_http;

int cl_http_init(cl_http *h, const cl_http_opts *o, volatile int *cancel);
/* GET `url`; fills status, body, headers.  Returns the curl code. */
CURLcode cl_http_get(cl_http *h, const char *url, struct curl_slist *headers);
/* POST `post_len` bytes of `post` (a GET when post is NULL); as cl_http_get. */
CURLcode cl_http_send(cl_http *h, const char *url, struct curl_slist *headers,
                      const char *post, size_t post_len);
/* The two halves of cl_http_send, for a caller that drives the easy handle
 * on a multi handle of its own (multi.c, every listing's transfers): set up
 * the request, then, once libcurl reports the transfer done with `code`,
 * fill status and body. */
void cl_http_begin(cl_http *h, const char *url, struct curl_slist *headers, const char *post,
                   size_t post_len);
void cl_http_end(cl_http *h, CURLcode code);
/* Wake a transfer in progress so it notices *cancel at once (any thread). */
void cl_http_wakeup(cl_http *h);
void cl_http_cleanup(cl_http *h);

/* How a failed transfer is reported and whether it is retried: the one
 * table of CURLcodes (http.c), used by the driver and the pager alike. */
typedef enum {
    CL_FAIL_TRANSPORT,             /* TransportError */
    CL_FAIL_TIMEOUT,               /* RequestTimeoutError */
    CL_FAIL_TOO_LARGE,             /* ResponseTooLargeError */
    CL_FAIL_CANCELLED,             /* the pager was closed: PagerClosedError */
} cl_fail_kind;

typedef struct {
    cl_fail_kind kind;
    int retry;
} cl_fail;

cl_fail cl_http_failure(CURLcode code, int too_large);

#endif
