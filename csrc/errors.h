/* The exceptions the faces (module.c, pager.c, request.c, token_type.c)
 * and the listing (pager_*.c, envelope.c) raise, below them both: a message
 * formatted into an exception class (cl_raise, declared in common.h), a
 * failed transfer as its custlist exception, and the part of a URL a
 * message may show.  Needs the GIL; calls only http.c below it. */
#ifndef CL_ERRORS_H
#define CL_ERRORS_H

#include "common.h"
#include "http.h"

/* What may be shown of a URL in a message or a log line: scheme, host,
 * port and path; never user info, query (tokens, signatures) or fragment. */
PyObject *cl_public_url(PyObject *url);

/* Raise the custlist exception for a failed transfer (`h->code` set, not a
 * cancel), naming the method, the public part of the URL and the attempts. */
int cl_raise_transport(cl_state *st, const cl_http *h, PyObject *url, const char *method,
                       int attempts);

#endif
