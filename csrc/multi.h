/* The driver: the one engine that performs listings' requests.  One thread
 * runs the jobs of its workers (worker.h) on one libcurl multi handle
 * (shared connection cache, HTTP/2 multiplexing), at most `concurrency`
 * transfers at a time, each request paced by its rate limiter
 * (ratelimit.h) and retried by its worker's policy (backoff, Retry-After),
 * its attempts logged; a cancel drops its transfer or its wait at once;
 * and, for a listing whose requests are chained (chain.h), the thread
 * sends the next request itself as a page comes in.
 *
 * A fan-out's listings share one driver (fanout.c holds it); a pager on its
 * own gets a private driver of concurrency 1 at its first request
 * (cl_multi_private): the same loop either way.  No Python here.
 *
 * A cl_multi is reference counted: a fan-out's owner holds one reference,
 * every attached worker one more (dropped when the worker is destroyed), so
 * whichever goes last frees it; a private driver has only its worker's.
 * The multi handle is touched only by the driver's thread, or, once that
 * thread has stopped, under the driver's mutex.  A driver belongs to the
 * process that made it: in a forked child it is abandoned. */
#ifndef CL_MULTI_H
#define CL_MULTI_H

#include "common.h"
#include "worker.h"

typedef struct cl_multi cl_multi;

/* A driver for `nslots` listings (a fan-out's), its thread started; one
 * reference, the caller's.  NULL when libcurl or the thread could not be
 * set up. */
cl_multi *cl_multi_new(int nslots, int concurrency);
/* Worker w (fresh: no job yet) runs its jobs on slot i of m from now on;
 * the worker holds a reference. */
void cl_multi_attach(cl_multi *m, cl_worker *w, int i);
/* For a worker without a driver, at its first job (w->mu held): a driver
 * of its own, concurrency 1, its thread started.  -1 on failure. */
int cl_multi_private(cl_worker *w);

/* Queue the worker's job (state CL_W_QUEUED).  -1 when the driver has
 * stopped or let go of the worker: the job will never run. */
int cl_multi_enqueue(cl_multi *m, cl_worker *w);
/* Interrupt the driver's wait so it notices a cancel (any thread). */
void cl_multi_wakeup(cl_multi *m);
/* For chain_take.c: take the worker's request off the queue if not started yet
 * (the worker goes back to idle: never sent), and put it on the ready ring
 * again (a page taken with more finished behind it).  Without w->mu. */
void cl_multi_unqueue(cl_worker *w);
void cl_multi_ready(cl_worker *w);
/* The driver lets go of the worker: its transfer, if any, is off the multi
 * handle before this returns, and a private driver's thread is stopped.
 * Idempotent; the reference stays until cl_multi_release. */
void cl_multi_detach(cl_worker *w);
/* The worker's reference is dropped (w->driver cleared): at its destroy. */
void cl_multi_release(cl_worker *w);
/* Tell an event loop watching `fd` that a job is over (>= 0; an eventfd or
 * a non-blocking pipe). */
void cl_multi_signal_fd(int fd);

/* For the fan-out's owner (fanout.c): the index of a listing whose job is
 * done (or that let go of the driver), waiting up to `us` microseconds; -1
 * if none.  Stop the thread (once; blocking); drop the owner's reference;
 * transfers on the handle now and at most so far; whether this process
 * made it. */
int cl_multi_next_ready(cl_multi *m, long long us);
void cl_multi_stop(cl_multi *m);
void cl_multi_unref(cl_multi *m);
void cl_multi_stats(cl_multi *m, int *active, int *max_active);
int cl_multi_foreign(const cl_multi *m);

#endif
