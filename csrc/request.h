/* The Python face of one libcurl transfer: transport settings read from
 * keyword arguments, transfer failures raised as custlist exceptions, and
 * the one-shot request (the OAuth token POST) that shares every rule of
 * the pager's transport (see http.h). */
#ifndef CL_REQUEST_H
#define CL_REQUEST_H

#include "common.h"
#include "http.h"

/* Fill the timing fields of `o` from seconds, refusing (ValueError) what
 * libcurl would misread: zero, under a millisecond (truncated to 0, which
 * libcurl takes as "no limit"), negative, infinite or NaN. */
int cl_http_opts_timing(cl_http_opts *o, double connect_timeout, double timeout,
                        long low_speed_limit, long low_speed_time);

/* Refuse (ValueError) a user agent or proxy that holds a line break: libcurl
 * would write it into the request as further header lines. */
int cl_http_opts_text(const cl_http_opts *o);

/* What may be shown of a URL in a message or a log line: scheme, host,
 * port and path; never user info, query (tokens, signatures) or fragment. */
PyObject *cl_public_url(PyObject *url);

/* Raise the custlist exception for a failed transfer (`h->code` set, not a
 * cancel), naming the method, the public part of the URL and the attempts. */
int cl_raise_transport(cl_state *st, const cl_http *h, PyObject *url, const char *method,
                       int attempts);

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

/* Fill `s` from _core.request's arguments; -1 with an exception set (and
 * nothing to free). */
int cl_request_spec_parse(cl_request_spec *s, PyObject *args, PyObject *kwds, const char *fname);
void cl_request_spec_free(cl_request_spec *s);
/* The request's transfer, on the calling thread without Python: set up `h`
 * (-1 when libcurl cannot be set up; cl_http_cleanup(h) either way), then
 * send; the outcome is in h (code, status, headers, body, errbuf). */
int cl_request_init(const cl_request_spec *s, cl_http *h, volatile int *cancel);
CURLcode cl_request_perform(const cl_request_spec *s, cl_http *h);

/* Adds _core.request to the module. */
int cl_request_register(PyObject *module);

#endif
