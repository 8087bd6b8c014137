/* The Python face of one libcurl transfer: transport settings read from
 * keyword arguments, and _core.request, the one-shot request (the OAuth
 * token POST) that shares every rule of the pager's transport (see http.h;
 * its transfer is send.c's, its failures errors.c's). */
#ifndef CL_REQUEST_H
#define CL_REQUEST_H

#include "common.h"
#include "http.h"
#include "send.h"
#include "errors.h"

/* Fill the timing fields of `o` from seconds, refusing (ValueError) what
 * libcurl would misread: zero, under a millisecond (truncated to 0, which
 * libcurl takes as "no limit"), negative, infinite or NaN. */
int cl_http_opts_timing(cl_http_opts *o, double connect_timeout, double timeout,
                        long low_speed_limit, long low_speed_time);

/* Refuse (ValueError) a user agent or proxy that holds a line break: libcurl
 * would write it into the request as further header lines. */
int cl_http_opts_text(const cl_http_opts *o);

/* Fill `s` from _core.request's arguments; -1 with an exception set (and
 * nothing to free). */
int cl_request_spec_parse(cl_request_spec *s, PyObject *args, PyObject *kwds, const char *fname);
/* Adds _core.request to the module. */
int cl_request_register(PyObject *module);

#endif
