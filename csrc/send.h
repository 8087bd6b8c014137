/* One request as a value and its transfer, with no Python: the token
 * renewal of the fetch thread (token.c) sends it, and _core.request
 * (request.c) reads it from its arguments and sends it the same way. */
#ifndef CL_SEND_H
#define CL_SEND_H

#include "http.h"

/* One request as a value: the URL, header lines, body (a POST) and
 * transport settings, all owned (credentials in headers and body are wiped
 * when freed).  Read from the arguments of _core.request (method, url,
 * headers=(), body=None, *, connect_timeout, timeout, ...), so the token
 * request the engine sends itself (token.h) is given, checked and sent
 * exactly as the one Python sends. */
typedef struct {
    char *url;
    struct curl_slist *headers;
    char *post;                    /* NULL: a GET */
    size_t post_len;
    cl_http_opts opts;             /* its strings owned */
} cl_request_spec;

void cl_request_spec_free(cl_request_spec *s);
/* The request's transfer, on the calling thread without Python: set up `h`
 * (-1 when libcurl cannot be set up; cl_http_cleanup(h) either way), then
 * send; the outcome is in h (code, status, headers, body, errbuf). */
int cl_request_init(const cl_request_spec *s, cl_http *h, volatile int *cancel);
CURLcode cl_request_perform(const cl_request_spec *s, cl_http *h);

#endif
