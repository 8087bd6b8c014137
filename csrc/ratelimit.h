/* A rate limiter per origin, shared by every pager of a client (and by a
 * fan-out) across threads: a token bucket set by the user, and what the
 * server says (a bucket of one token: evenly spaced requests): a 429's Retry-After pauses every request through the
 * limiter until then; (X-)RateLimit-Remaining / -Reset give the requests
 * left in the server's window, and once those are spent (counting the ones
 * already on their way) nobody goes before the window resets.
 *
 * Nothing here touches Python.  The C struct is reference counted: the
 * Python RateLimiter object holds one reference, every worker using it one
 * more (dropped when the worker is destroyed).  The limiter is ratelimit.c;
 * its Python face, _core.RateLimiter, is ratelimit_type.c. */
#ifndef CL_RATELIMIT_H
#define CL_RATELIMIT_H

#include "common.h"
#include "http.h"

typedef struct cl_limiter cl_limiter;

/* 0: a request may go now (it is counted); otherwise the microseconds to
 * wait before asking again.  Any thread. */
long long cl_limiter_reserve(cl_limiter *l);
/* The outcome of a request that cl_limiter_reserve let go: `h` has the
 * response (status, headers, Retry-After), or a failed transfer. */
void cl_limiter_feed(cl_limiter *l, const cl_http *h, CURLcode code);
void cl_limiter_unref(cl_limiter *l);

/* Adds _core.RateLimiter to the module (ratelimit_type.c). */
int cl_ratelimit_register(PyObject *module, cl_state *st);

#endif
